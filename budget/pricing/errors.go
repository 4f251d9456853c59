package pricing

import "errors"

// Errors returned by this package. Callers match them with errors.Is; the
// returned errors wrap them with the offending provider, model or value.
var (
	// ErrUnknownProvider is returned by Lookup when no price data names the
	// provider.
	ErrUnknownProvider = errors.New("pricing: unknown provider")

	// ErrModelNotPriced is returned by Lookup when the provider (and its
	// fallback providers) have no model matching the name, or the matching
	// model lacks an input or an output token price. hardcap refuses such
	// requests rather than guess.
	ErrModelNotPriced = errors.New("pricing: model not priced")

	// ErrInvalidUsage is returned by Prices.Cost for token counts that are
	// negative or do not add up (cache parts larger than the input, reasoning
	// larger than the output).
	ErrInvalidUsage = errors.New("pricing: inconsistent token usage")

	// ErrInvalidRate is returned for a price that is not a non-negative
	// decimal number or does not fit in a budget.Rate.
	ErrInvalidRate = errors.New("pricing: invalid price")

	// ErrInvalidData is returned by the parsers for price data that does not
	// follow its format.
	ErrInvalidData = errors.New("pricing: invalid price data")

	// ErrInvalidOverride is returned by Catalog.WithOverrides for an override
	// that names no provider or model, has negative limits, or would create a
	// model without both an input and an output price.
	ErrInvalidOverride = errors.New("pricing: invalid price override")
)
