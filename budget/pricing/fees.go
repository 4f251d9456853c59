package pricing

import (
	"slices"

	"github.com/hardcap/hardcap/budget"
)

// Fees are what a model bills beside its tokens: amounts the usage does not
// report, so hardcap adds them to both the reservation and the charge.
type Fees struct {
	// Request is charged on every request, in nano-USD (genai-prices
	// requests_kcount).
	Request budget.Money
	// Image is charged per input image, in nano-USD (LiteLLM
	// input_cost_per_image).
	Image budget.Money
	// Search is the price of one web search query. A search model (one that
	// searches on every call) pays it on every request; other models pay it
	// only for a web-search tool.
	Search SearchFee
	// CodeSession is the price of one code-interpreter container session,
	// in nano-USD, where the data has one (LiteLLM
	// code_interpreter_cost_per_session).
	CodeSession budget.Money
	// Unpriced lists the data keys of fees hardcap cannot price (per second,
	// per character, per generated image, ...). A model with any is refused.
	Unpriced []string
}

// SearchFee is a per-query web search price by search context size, in
// nano-USD. Zero sizes are unknown.
type SearchFee struct {
	Low, Medium, High budget.Money
}

// Set reports whether any size has a price.
func (s SearchFee) Set() bool { return s.Low != 0 || s.Medium != 0 || s.High != 0 }

// At returns the price of one query at the given context size ("low",
// "medium", "high"). Any other size, the empty string included, and a size
// without a price of its own get the dearest price known: a request that
// does not fix its size may be billed at the largest.
func (s SearchFee) At(size string) budget.Money {
	dearest := max(s.Low, s.Medium, s.High)
	var p budget.Money
	switch size {
	case "low":
		p = s.Low
	case "medium":
		p = s.Medium
	case "high":
		p = s.High
	}
	if p == 0 {
		return dearest
	}
	return p
}

// maxFees is the per-field maximum of a and b; their unpriced kinds are
// joined.
func maxFees(a, b Fees) Fees {
	out := Fees{
		Request:     max(a.Request, b.Request),
		Image:       max(a.Image, b.Image),
		CodeSession: max(a.CodeSession, b.CodeSession),
		Search: SearchFee{
			Low:    max(a.Search.Low, b.Search.Low),
			Medium: max(a.Search.Medium, b.Search.Medium),
			High:   max(a.Search.High, b.Search.High),
		},
	}
	if len(b.Unpriced) == 0 {
		out.Unpriced = a.Unpriced
	} else {
		out.Unpriced = slices.Compact(slices.Sorted(slices.Values(append(slices.Clone(a.Unpriced), b.Unpriced...))))
	}
	return out
}
