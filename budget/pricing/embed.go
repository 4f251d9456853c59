package pricing

import (
	_ "embed"
	"sync"
)

// The embedded price data and its licences live in data/; see
// data/README.md for their source and version.
var (
	//go:embed data/genai-prices-v2.json
	genaiPricesJSON []byte
	//go:embed data/litellm-subset.json
	litellmSubsetJSON []byte
)

// embedded parses the embedded data once.
var embedded = sync.OnceValues(func() (*Catalog, error) {
	c, err := ParseGenAIPrices(genaiPricesJSON)
	if err != nil {
		return nil, err
	}
	l, err := ParseLiteLLM(litellmSubsetJSON)
	if err != nil {
		return nil, err
	}
	c.limits = append(c.limits, l.limits...)
	return c, nil
})

// Embedded returns the catalog built from the embedded genai-prices data
// (pydantic/genai-prices v2, prices and context windows), with output-token
// limits, and context windows where genai-prices has none, taken from the
// embedded LiteLLM subset. LiteLLM prices are not used. The data is parsed on
// the first call; every call returns the same immutable catalog.
func Embedded() (*Catalog, error) { return embedded() }
