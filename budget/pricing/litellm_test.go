package pricing

import (
	"errors"
	"github.com/hardcap/hardcap/budget"
	"testing"
)

func TestParseLiteLLMSubset(t *testing.T) {
	c, err := ParseLiteLLM(litellmSubsetJSON)
	if err != nil {
		t.Fatalf("ParseLiteLLM: %v", err)
	}
	t.Run("gpt-4o exponent prices and limits", func(t *testing.T) {
		m, err := c.Lookup("openai", "gpt-4o", dataDay)
		if err != nil {
			t.Fatal(err)
		}
		// 2.5e-06 USD/token = 2.5 USD/Mtok; 1.25e-06 = 1.25; 1e-05 = 10.
		want := Prices{Input: Flat(2_500_000_000), CacheRead: Flat(1_250_000_000), Output: Flat(10_000_000_000)}
		if !equalPrices(m.Prices, want) {
			t.Errorf("prices: got %+v, want %+v", m.Prices, want)
		}
		if m.MaxOutputTokens != 16_384 || m.ContextWindow != 128_000 {
			t.Errorf("limits: got context %d, max output %d; want 128000, 16384", m.ContextWindow, m.MaxOutputTokens)
		}
	})
	t.Run("claude-sonnet-4-5 tiers", func(t *testing.T) {
		m, err := c.Lookup("anthropic", "claude-sonnet-4-5", dataDay)
		if err != nil {
			t.Fatal(err)
		}
		tier := func(base, above int64) Tiered {
			return Tiered{Base: 1_000_000 * rateT(base), Tiers: []Tier{{Start: 200_000, Rate: 1_000_000 * rateT(above)}}, Set: true}
		}
		// USD/token × 1e15: 3e-06 -> 3e9, 6e-06 -> 6e9, 3e-07 -> 3e8, ...
		want := Prices{
			Input:        tier(3000, 6000),
			CacheRead:    tier(300, 600),
			CacheWrite:   tier(3750, 7500),
			CacheWrite1h: tier(6000, 12000), // _above_1hr with _above_1hr_above_200k_tokens
			Output:       tier(15000, 22500),
		}
		if !equalPrices(m.Prices, want) {
			t.Errorf("prices: got %+v, want %+v", m.Prices, want)
		}
		if m.MaxOutputTokens != 64_000 || m.ContextWindow != 200_000 {
			t.Errorf("limits: got context %d, max output %d; want 200000, 64000", m.ContextWindow, m.MaxOutputTokens)
		}
	})
	t.Run("gemini and vertex filed under google too", func(t *testing.T) {
		for _, q := range [][2]string{{"gemini", "gemini-pro-latest"}, {"vertex_ai-language-models", "gemini-2.5-pro"}} {
			a, errA := c.Lookup(q[0], q[1], dataDay)
			b, errB := c.Lookup("google", q[1], dataDay)
			if errA != nil || errB != nil {
				t.Fatalf("%s/%s: got errors %v, %v", q[0], q[1], errA, errB)
			}
			if !equalPrices(a.Prices, b.Prices) || a.ID != q[1] || b.ID != q[1] {
				t.Errorf("%s/%s: got %+v and %+v, want the same model", q[0], q[1], a, b)
			}
		}
	})
	t.Run("image model without output token prices", func(t *testing.T) {
		if m, err := c.Lookup("openai", "gpt-image-1", dataDay); err == nil && m.Prices.HasOutput() {
			t.Errorf("got %+v, want no output token price", m.Prices)
		}
	})
}

// rateT is nano-USD per Mtok of a price given in thousandths of a USD/Mtok,
// divided by 1e6 (so that 1_000_000 × rateT(3000) is 3 USD/Mtok).
func rateT(thousandths int64) budget.Rate { return budget.Rate(thousandths) }

func equalPrices(a, b Prices) bool {
	eq := func(x, y Tiered) bool {
		if x.Set != y.Set || x.Base != y.Base || len(x.Tiers) != len(y.Tiers) {
			return false
		}
		for i := range x.Tiers {
			if x.Tiers[i] != y.Tiers[i] {
				return false
			}
		}
		return true
	}
	return eq(a.Input, b.Input) && eq(a.CacheRead, b.CacheRead) && eq(a.CacheWrite, b.CacheWrite) &&
		eq(a.CacheWrite1h, b.CacheWrite1h) && eq(a.Output, b.Output) && eq(a.OutputReasoning, b.OutputReasoning)
}

// sourcePrices returns what the first source of c says of name, without
// merging or implied tiers.
func sourcePrices(t *testing.T, c *Catalog, provider, name string) Prices {
	t.Helper()
	h, ok, _, _ := c.sources[0].lookup(provider, name, dataDay)
	if !ok {
		t.Fatalf("%s/%s not in the first source", provider, name)
	}
	return h.prices
}

func TestParseLiteLLMSynthetic(t *testing.T) {
	data := []byte(`{
		"sample_spec": {"max_tokens": "LEGACY parameter", "litellm_provider": "one of ..."},
		"anthropic/claude-z": {"litellm_provider": "anthropic", "input_cost_per_token": 1e-06,
			"output_cost_per_token": 5e-06, "output_cost_per_reasoning_token": 7.5e-06,
			"input_cost_per_token_above_128k_tokens": 2e-06,
			"input_cost_per_token_above_200k_tokens_priority": 9e-06,
			"input_cost_per_token_priority": 9e-06,
			"max_tokens": 4096, "max_input_tokens": 100000.0},
		"xai/grok-q": {"litellm_provider": "xai", "input_cost_per_token": 2e-07, "output_cost_per_token": 5e-07,
			"output_cost_per_token_above_200k_tokens": 1e-06},
		"orphan-tier": {"litellm_provider": "openai", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06,
			"cache_read_input_token_cost_above_200k_tokens": 1e-07}
	}`)
	c, err := ParseLiteLLM(data)
	if err != nil {
		t.Fatalf("ParseLiteLLM: %v", err)
	}
	tests := []struct {
		provider, name string
		wantID         string
		want           Prices
		wantMaxOut     int64
		wantContext    int64
	}{
		{"anthropic", "claude-z", "anthropic/claude-z", Prices{
			Input:           Tiered{Base: 1_000_000_000, Tiers: []Tier{{Start: 128_000, Rate: 2_000_000_000}}, Set: true},
			Output:          Flat(5_000_000_000),
			OutputReasoning: Flat(7_500_000_000),
		}, 4096, 100_000},
		{"anthropic", "anthropic/claude-z", "anthropic/claude-z", Prices{
			Input:           Tiered{Base: 1_000_000_000, Tiers: []Tier{{Start: 128_000, Rate: 2_000_000_000}}, Set: true},
			Output:          Flat(5_000_000_000),
			OutputReasoning: Flat(7_500_000_000),
		}, 4096, 100_000},
		// xai is also filed as genai-prices' x-ai.
		{"x-ai", "grok-q", "xai/grok-q", Prices{
			Input:  Flat(200_000_000),
			Output: Tiered{Base: 500_000_000, Tiers: []Tier{{Start: 200_000, Rate: 1_000_000_000}}, Set: true},
		}, 0, 0},
		// A tier without a base price is dropped: cache reads stay unset
		// and fall back to the input price.
		{"openai", "orphan-tier", "orphan-tier", Prices{Input: Flat(1_000_000_000), Output: Flat(1_000_000_000)}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.provider+"/"+tt.name, func(t *testing.T) {
			m, err := c.Lookup(tt.provider, tt.name, dataDay)
			if err != nil {
				t.Fatal(err)
			}
			if m.ImpliedTier {
				// claude-z's tier implies one for the untiered entries;
				// this test is about what the file says.
				m.Prices = sourcePrices(t, c, tt.provider, tt.name)
			}
			if m.ID != tt.wantID || !equalPrices(m.Prices, tt.want) {
				t.Errorf("got %s %+v, want %s %+v", m.ID, m.Prices, tt.wantID, tt.want)
			}
			if m.MaxOutputTokens != tt.wantMaxOut || m.ContextWindow != tt.wantContext {
				t.Errorf("limits: got %d/%d, want context %d, max output %d", m.ContextWindow, m.MaxOutputTokens, tt.wantContext, tt.wantMaxOut)
			}
		})
	}
	if _, err := c.Lookup("one of ...", "sample_spec", dataDay); !errors.Is(err, ErrUnknownProvider) {
		t.Errorf("sample_spec: got %v, want it skipped (ErrUnknownProvider)", err)
	}
}

func TestParseLiteLLMRejects(t *testing.T) {
	tests := map[string]string{
		"not an object":    `[1, 2]`,
		"bad json":         `{"a": `,
		"no provider":      `{"m": {"input_cost_per_token": 1e-06}}`,
		"string price":     `{"m": {"litellm_provider": "openai", "input_cost_per_token": "1e-06"}}`,
		"negative price":   `{"m": {"litellm_provider": "openai", "input_cost_per_token": -1e-06}}`,
		"fraction limit":   `{"m": {"litellm_provider": "openai", "max_output_tokens": 10.5}}`,
		"entry not object": `{"m": 5}`,
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := ParseLiteLLM([]byte(data))
			if !errors.Is(err, ErrInvalidData) && !errors.Is(err, ErrInvalidRate) {
				t.Errorf("got %v, %v; want ErrInvalidData or ErrInvalidRate", c, err)
			}
		})
	}
}
