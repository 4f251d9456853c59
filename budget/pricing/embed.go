package pricing

import (
	_ "embed"
	"sync"
	"time"
)

// The embedded price data and its licences live in data/; see
// data/README.md for their source and version.
var (
	//go:embed data/genai-prices-v2.json
	genaiPricesJSON []byte
	//go:embed data/litellm-subset.json
	litellmSubsetJSON []byte
)

// The dates the embedded copies were taken from their projects (keep in
// step with data/README.md).
var (
	EmbeddedGenAIAsOf   = time.Date(2026, 8, 21, 0, 0, 0, 0, time.UTC)
	EmbeddedLiteLLMAsOf = time.Date(2026, 7, 24, 0, 0, 0, 0, time.UTC)
)

// EmbeddedGenAIPrices returns the embedded genai-prices v2 file.
func EmbeddedGenAIPrices() []byte { return genaiPricesJSON }

// EmbeddedLiteLLM returns the embedded LiteLLM subset file.
func EmbeddedLiteLLM() []byte { return litellmSubsetJSON }

// embedded parses the embedded data once.
var embedded = sync.OnceValues(func() (*Catalog, error) {
	g, err := ParseGenAIPrices(genaiPricesJSON)
	if err != nil {
		return nil, err
	}
	l, err := ParseLiteLLM(litellmSubsetJSON)
	if err != nil {
		return nil, err
	}
	return Merge(g.Describe("embedded", EmbeddedGenAIAsOf), l.Describe("embedded", EmbeddedLiteLLMAsOf)), nil
})

// Embedded returns the catalog built from the embedded genai-prices data
// (pydantic/genai-prices v2) and the embedded LiteLLM subset: both price
// every model they know, each rate taken at the higher of the two, and
// LiteLLM supplies output-token limits and context windows. The data is
// parsed on the first call; every call returns the same immutable catalog.
func Embedded() (*Catalog, error) { return embedded() }
