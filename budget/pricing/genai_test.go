package pricing

import (
	"errors"
	"testing"
)

// testGenAI is a small genai-prices v2 file exercising every match clause.
const testGenAI = `[
 {"id": "acme", "name": "Acme", "api_pattern": "x", "provider_match": {"contains": "acme"},
  "fallback_model_providers": ["base"],
  "models": [
   {"id": "wide", "match": {"starts_with": "model-"}, "prices": {"input_mtok": 9, "output_mtok": 9}},
   {"id": "model-exact", "match": {"equals": "model-exact"}, "prices": {"input_mtok": 1, "output_mtok": 2}},
   {"id": "tail", "match": {"ends_with": "-tail"}, "prices": {"input_mtok": 3, "output_mtok": 3}},
   {"id": "both", "match": {"and": [{"contains": "big"}, {"regex": "v\\d+$"}]}, "prices": {"input_mtok": 4, "output_mtok": 4}},
   {"id": "either", "match": {"or": [{"contains": "big"}, {"equals": "alias"}]}, "prices": {"input_mtok": 5, "output_mtok": 5}},
   {"id": "tiered", "match": {"equals": "tiered"}, "context_window": 1000,
    "prices": {"input_mtok": {"base": 1, "tiers": [{"start": 500, "price": 3}, {"start": 100, "price": 2}]},
               "output_mtok": 1, "web_searches_kcount": 10, "input_audio_mtok": 40}},
   {"id": "five", "match": {"equals": "five"},
    "prices": {"input_mtok": 1, "cache_write_mtok": 2, "cache_write_5m_mtok": 1.5, "output_mtok": 1}},
   {"id": "dated", "match": {"equals": "dated"}, "prices": [
     {"prices": {"input_mtok": 1, "output_mtok": 1}},
     {"constraint": {"start_date": "2026-01-01"}, "prices": {"input_mtok": 2, "output_mtok": 2}},
     {"constraint": {"start_date": "2025-01-01"}, "prices": {"input_mtok": 3, "output_mtok": 3}}]},
   {"id": "shadow", "match": {"equals": "shared"}, "prices": {"input_mtok": 1}}
  ]},
 {"id": "base", "name": "Base", "api_pattern": "y", "fallback_model_providers": ["acme"],
  "models": [
   {"id": "shared", "match": {"equals": "shared"}, "prices": {"input_mtok": 6, "output_mtok": 6}},
   {"id": "base-only", "match": {"equals": "base-only"}, "prices": {"input_mtok": 7, "output_mtok": 7}}
  ]}
]`

func TestParseGenAIPricesRules(t *testing.T) {
	c, err := ParseGenAIPrices([]byte(testGenAI))
	if err != nil {
		t.Fatalf("ParseGenAIPrices: %v", err)
	}
	tests := []struct {
		provider, name string
		wantProvider   string
		wantID         string
	}{
		// starts_with covers snapshots and variants of its prefix.
		{"acme", "model-20250101", "acme", "wide"},
		{"acme", "model-latest", "acme", "wide"},
		// An exact equals hit beats an earlier starts_with rule.
		{"acme", "model-exact", "acme", "model-exact"},
		{"acme", "the-tail", "acme", "tail"},
		// and: contains "big" and regex v\d+$; otherwise or's contains wins.
		{"acme", "big-v2", "acme", "both"},
		{"acme", "big-v2x", "acme", "either"},
		{"acme", "alias", "acme", "either"},
		// Found in acme but unpriced there (no output): base prices it.
		{"acme", "shared", "base", "shared"},
		{"acme", "base-only", "base", "base-only"},
		{" ACME ", "alias", "acme", "either"},
		// Case-folded retry.
		{"acme", "MODEL-EXACT", "acme", "model-exact"},
	}
	for _, tt := range tests {
		t.Run(tt.provider+"/"+tt.name, func(t *testing.T) {
			m, err := c.Lookup(tt.provider, tt.name, dataDay)
			if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			if m.Provider != tt.wantProvider || m.ID != tt.wantID {
				t.Errorf("got %s/%s, want %s/%s", m.Provider, m.ID, tt.wantProvider, tt.wantID)
			}
		})
	}
	if _, err := c.Lookup("acme-cloud", "alias", dataDay); !errors.Is(err, ErrUnknownProvider) {
		t.Errorf("provider_match guess: got %v, want ErrUnknownProvider", err)
	}
	// Fallback cycles (acme -> base -> acme) end.
	if _, err := c.Lookup("base", "nothing", dataDay); !errors.Is(err, ErrModelNotPriced) {
		t.Errorf("fallback cycle: got %v, want ErrModelNotPriced", err)
	}

	t.Run("tiers sorted, other prices ignored", func(t *testing.T) {
		m, err := c.Lookup("acme", "tiered", dataDay)
		if err != nil {
			t.Fatal(err)
		}
		want := Tiered{Base: 1e9, Tiers: []Tier{{Start: 100, Rate: 2e9}, {Start: 500, Rate: 3e9}}, Set: true}
		if !equalPrices(Prices{Input: m.Prices.Input}, Prices{Input: want}) {
			t.Errorf("input: got %+v, want %+v", m.Prices.Input, want)
		}
		if m.ContextWindow != 1000 {
			t.Errorf("context window: got %d, want 1000", m.ContextWindow)
		}
	})
	t.Run("two spellings of one price: the higher", func(t *testing.T) {
		m, err := c.Lookup("acme", "five", dataDay)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := m.Prices.CacheWrite.Base, rate(t, "2"); got != want {
			t.Errorf("cache write: got %d, want %d", got, want)
		}
	})
	t.Run("last active variant wins", func(t *testing.T) {
		// Variants: none, from 2026-01-01 (2), from 2025-01-01 (3). Tried
		// last to first: in 2026 the 2025 variant is also active and wins.
		for _, tt := range []struct {
			year int
			want string
		}{{2024, "1"}, {2025, "3"}, {2026, "3"}} {
			at := dataDay.AddDate(tt.year-dataDay.Year(), 0, 0)
			m, err := c.Lookup("acme", "dated", at)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := m.Prices.Input.Base, rate(t, tt.want); got != want {
				t.Errorf("%d: got %d, want %d", tt.year, got, want)
			}
		}
	})
}

func TestParseGenAIPricesRejects(t *testing.T) {
	model := func(m string) string {
		return `[{"id":"p","name":"P","api_pattern":"x","models":[` + m + `]}]`
	}
	tests := map[string]string{
		"not json":           `[{`,
		"not an array":       `{"id": "p"}`,
		"no provider id":     `[{"name":"P","models":[]}]`,
		"duplicate":          `[{"id":"p","models":[]},{"id":"p","models":[]}]`,
		"bad regex":          model(`{"id":"m","match":{"regex":"("},"prices":{"input_mtok":1}}`),
		"unknown clause":     model(`{"id":"m","match":{"glob":"m*"},"prices":{"input_mtok":1}}`),
		"two-key clause":     model(`{"id":"m","match":{"equals":"m","contains":"m"},"prices":{"input_mtok":1}}`),
		"no match":           model(`{"id":"m","prices":{"input_mtok":1}}`),
		"no prices":          model(`{"id":"m","match":{"equals":"m"}}`),
		"empty price list":   model(`{"id":"m","match":{"equals":"m"},"prices":[]}`),
		"negative price":     model(`{"id":"m","match":{"equals":"m"},"prices":{"input_mtok":-1}}`),
		"string price":       model(`{"id":"m","match":{"equals":"m"},"prices":{"input_mtok":"1"}}`),
		"bad tier":           model(`{"id":"m","match":{"equals":"m"},"prices":{"input_mtok":{"base":1,"tiers":[{"start":1.5,"price":2}]}}}`),
		"tier extra key":     model(`{"id":"m","match":{"equals":"m"},"prices":{"input_mtok":{"base":1,"tiers":[],"cap":3}}}`),
		"bad date":           model(`{"id":"m","match":{"equals":"m"},"prices":[{"constraint":{"start_date":"2026-13-01"},"prices":{}}]}`),
		"bad time":           model(`{"id":"m","match":{"equals":"m"},"prices":[{"constraint":{"start_time":"25:00","end_time":"01:00"},"prices":{}}]}`),
		"unknown constraint": model(`{"id":"m","match":{"equals":"m"},"prices":[{"constraint":{"weekday":"mon"},"prices":{}}]}`),
		"half time window":   model(`{"id":"m","match":{"equals":"m"},"prices":[{"constraint":{"start_time":"01:00:00Z"},"prices":{}}]}`),
		"fraction context":   model(`{"id":"m","match":{"equals":"m"},"context_window":1.5,"prices":{}}`),
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			c, err := ParseGenAIPrices([]byte(data))
			if !errors.Is(err, ErrInvalidData) && !errors.Is(err, ErrInvalidRate) {
				t.Errorf("got %v, %v; want ErrInvalidData or ErrInvalidRate", c, err)
			}
		})
	}
}

func TestParseTimeOfDay(t *testing.T) {
	tests := map[string]string{
		"00:30:00Z":      "30m0s",
		"16:30:00Z":      "16h30m0s",
		"16:30":          "16h30m0s",
		"08:00:00+08:00": "0s",
		"01:00:00-02:00": "3h0m0s",
		"12:00:00.5Z":    "12h0m0.5s",
	}
	for in, want := range tests {
		got, err := parseTimeOfDay(in)
		if err != nil || got.String() != want {
			t.Errorf("parseTimeOfDay(%q): got %v, %v; want %s", in, got, err, want)
		}
	}
}
