package pricing

import (
	"errors"
	"slices"
	"testing"

	"github.com/hardcap/hardcap/budget"
)

func TestMerge(t *testing.T) {
	emb := embeddedCatalog(t)
	user, err := ParseLiteLLM([]byte(`{
		"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 5e-06, "output_cost_per_token": 1e-06},
		"gpt-4o-mini": {"litellm_provider": "openai", "input_cost_per_token": 1e-06},
		"gemini-2.5-flash": {"litellm_provider": "gemini", "input_cost_per_token": 1e-06, "output_cost_per_token": 4e-06},
		"acme-1": {"litellm_provider": "acme", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "max_output_tokens": 999}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	userFirst := Merge(user, nil, emb)
	embFirst := Merge(emb, user)
	tests := []struct {
		name                string
		cat                 *Catalog
		provider, mod       string
		wantProvider        string
		wantInput, wantOut  string // USD per Mtok
		wantContext, wantMO int64
	}{
		// The file raises input to 5 but cannot lower output below the
		// embedded 10; limits come from whichever source has them.
		{"highest of each rate", userFirst, "openai", "gpt-4o", "openai", "5", "10", 128_000, 16_384},
		{"order does not matter", embFirst, "openai", "gpt-4o", "openai", "5", "10", 128_000, 16_384},
		// The file only knows the bare key; the snapshot resolves in the
		// embedded data.
		{"other names from embedded", userFirst, "openai", "gpt-4o-2024-08-06", "openai", "2.5", "10", 128_000, 16_384},
		// An entry without an output price still raises input.
		{"input-only entry merged", userFirst, "openai", "gpt-4o-mini", "openai", "1", "0.6", 128_000, 16_384},
		// LiteLLM's "gemini" is filed as genai-prices' "google".
		{"litellm provider alias", userFirst, "google", "gemini-2.5-flash", "google", "1", "4", 0, 0},
		{"provider only in user file", userFirst, "acme", "acme-1", "acme", "1", "1", 0, 999},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.cat.Lookup(tt.provider, tt.mod, dataDay)
			if err != nil {
				t.Fatalf("Lookup(%s, %s): %v", tt.provider, tt.mod, err)
			}
			if m.Provider != tt.wantProvider {
				t.Errorf("provider: got %s, want %s", m.Provider, tt.wantProvider)
			}
			if want := rate(t, tt.wantInput); m.Prices.Input.Base < want {
				t.Errorf("input: got %d, want at least %d", m.Prices.Input.Base, want)
			}
			if want := rate(t, tt.wantOut); m.Prices.Output.Base < want {
				t.Errorf("output: got %d, want at least %d", m.Prices.Output.Base, want)
			}
			if tt.wantContext != 0 && m.ContextWindow != tt.wantContext {
				t.Errorf("context window: got %d, want %d", m.ContextWindow, tt.wantContext)
			}
			if tt.wantMO != 0 && m.MaxOutputTokens != tt.wantMO {
				t.Errorf("max output: got %d, want %d", m.MaxOutputTokens, tt.wantMO)
			}
		})
	}
	if _, err := Merge().Lookup("openai", "gpt-4o", dataDay); !errors.Is(err, ErrUnknownProvider) {
		t.Errorf("empty merge: got %v, want ErrUnknownProvider", err)
	}
	if m, err := emb.Lookup("openai", "gpt-4o", dataDay); err != nil || m.Prices.Input.Base != rate(t, "2.5") {
		t.Errorf("embedded after Merge: got %+v, %v; want input 2.5", m.Prices.Input, err)
	}
}

// The rows of the price review: each is priced at least at what the
// provider publishes (OpenAI and Anthropic price pages), not at what one
// source says.
func TestEmbeddedUpperBounds(t *testing.T) {
	c := embeddedCatalog(t)
	tests := []struct {
		provider, name string
		// input tokens of the request, and the published per-million
		// rates at that size.
		inputTokens   int64
		input, output string
		searchHigh    string // USD per query at the high context size
	}{
		{"openai", "gpt-4o-2024-05-13", 1000, "5", "15", ""},
		{"openai", "gpt-4o-mini-search-preview", 1000, "0.15", "0.6", "0.03"},
		{"openai", "gpt-4o-mini-search-preview-2025-03-11", 1000, "0.15", "0.6", "0.03"},
		{"openai", "gpt-4o-search-preview", 1000, "2.5", "10", "0.05"},
		{"openai", "gpt-4o-search-preview-2025-03-11", 1000, "2.5", "10", "0.05"},
		{"openai", "gpt-5.5", 300_000, "10", "45", ""},
		{"openai", "gpt-5.5-pro", 300_000, "60", "270", ""},
		{"openai", "gpt-5.5", 1000, "5", "30", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := c.Lookup(tt.provider, tt.name, dataDay)
			if err != nil {
				t.Fatal(err)
			}
			if got, want := m.Prices.Input.At(tt.inputTokens), rate(t, tt.input); got < want {
				t.Errorf("input at %d tokens: got %d, want at least %d", tt.inputTokens, got, want)
			}
			if got, want := m.Prices.Output.At(tt.inputTokens), rate(t, tt.output); got < want {
				t.Errorf("output at %d tokens: got %d, want at least %d", tt.inputTokens, got, want)
			}
			if tt.searchHigh != "" {
				if got, want := m.Prices.Fees.Search.At(""), usd(t, tt.searchHigh); got < want {
					t.Errorf("search fee: got %s, want at least %s", got, want)
				}
			}
		})
	}
}

func TestMaxTiered(t *testing.T) {
	a := Tiered{Base: 3, Set: true, Tiers: []Tier{{Start: 200, Rate: 6}}}
	b := Tiered{Base: 4, Set: true, Tiers: []Tier{{Start: 100, Rate: 5}, {Start: 300, Rate: 5}}}
	m := maxTiered(a, b)
	for _, x := range []int64{0, 1, 100, 101, 200, 201, 300, 301, 1 << 40} {
		if got, want := m.At(x), max(a.At(x), b.At(x)); got != want {
			t.Errorf("At(%d): got %d, want %d", x, got, want)
		}
	}
	if got := maxTiered(Tiered{}, a); got.Base != 3 || len(got.Tiers) != 1 {
		t.Errorf("unset and set: got %+v, want a", got)
	}
	if got := maxTiered(Tiered{}, Tiered{}); got.Set {
		t.Errorf("unset and unset: got %+v, want unset", got)
	}
}

func TestImpliedTier(t *testing.T) {
	c := embeddedCatalog(t)
	tests := []struct {
		provider, name string
		implied        bool
		start          int64
	}{
		// 1M context, no tier in either source: OpenAI's dearest tier
		// (2x input, 1.5x output above 272K) is applied.
		{"openai", "gpt-4.1", true, 272_000},
		// Anthropic's lowest threshold is 200K.
		{"anthropic", "claude-opus-4-7", true, 200_000},
		// Tiered in the data: its own tiers, nothing implied.
		{"openai", "gpt-5.4", false, 272_000},
		// 128K context cannot reach a 272K threshold.
		{"openai", "gpt-4o", false, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := c.Lookup(tt.provider, tt.name, dataDay)
			if err != nil {
				t.Fatal(err)
			}
			if m.ImpliedTier != tt.implied {
				t.Fatalf("ImpliedTier: got %v, want %v", m.ImpliedTier, tt.implied)
			}
			if tt.start == 0 {
				if m.Prices.HasTiers() {
					t.Errorf("got tiers %+v, want none", m.Prices.Input)
				}
				return
			}
			in, out := m.Prices.Input, m.Prices.Output
			if in.At(tt.start+1) < 2*in.Base || 2*out.At(tt.start+1) < 3*out.Base {
				t.Errorf("above %d: input %d (base %d), output %d (base %d); want at least 2x and 1.5x", tt.start, in.At(tt.start+1), in.Base, out.At(tt.start+1), out.Base)
			}
			if in.At(tt.start) != in.Base {
				t.Errorf("at %d: input %d, want base %d", tt.start, in.At(tt.start), in.Base)
			}
		})
	}
	// An override may declare a model untiered.
	o, err := c.WithOverrides(Override{Provider: "openai", Model: "gpt-4.1", Untiered: true})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := o.Lookup("openai", "gpt-4.1", dataDay); err != nil || m.ImpliedTier || m.Prices.HasTiers() {
		t.Errorf("untiered override: got %+v, %v; want no tiers", m.Prices.Input, err)
	}
}

func TestLiteLLMFees(t *testing.T) {
	c, err := ParseLiteLLM([]byte(`{
		"search-model": {"litellm_provider": "openai", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
			"search_context_cost_per_query": {"search_context_size_low": 0.01, "search_context_size_medium": 0.02, "search_context_size_high": 0.03}},
		"vision": {"litellm_provider": "openai", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06,
			"input_cost_per_image_token": 4e-06, "input_cost_per_image": 0.001, "output_cost_per_image_token": 8e-06,
			"input_cost_per_audio_token": 1e-04, "input_cost_per_token_priority": 9e-06, "metadata": {"notes": "x"}},
		"tts": {"litellm_provider": "openai", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "output_cost_per_second": 0.01},
		"tiered": {"litellm_provider": "openai", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "tiered_pricing": [{"range": [0, 1]}]},
		"regional": {"litellm_provider": "openai", "input_cost_per_token": 1e-06, "output_cost_per_token": 2e-06, "regional_processing_uplift_multiplier_us": 1.1}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	m, err := c.Lookup("openai", "search-model", dataDay)
	if err != nil {
		t.Fatal(err)
	}
	if s := m.Prices.Fees.Search; s.Low != usd(t, "0.01") || s.Medium != usd(t, "0.02") || s.High != usd(t, "0.03") || s.At("") != usd(t, "0.03") || s.At("low") != usd(t, "0.01") {
		t.Errorf("search fee: got %+v", s)
	}
	m, err = c.Lookup("openai", "vision", dataDay)
	if err != nil {
		t.Fatal(err)
	}
	if m.Prices.InputMedia.Base != rate(t, "4") || m.Prices.OutputMedia.Base != rate(t, "8") || m.Prices.Fees.Image != usd(t, "0.001") || len(m.Prices.Fees.Unpriced) != 0 {
		t.Errorf("vision: got media %+v / %+v, fees %+v", m.Prices.InputMedia, m.Prices.OutputMedia, m.Prices.Fees)
	}
	// Image requests bound input at the image rate; output is charged at
	// the image-output rate, which the usage does not tell from text.
	if got := m.Prices.WithMedia().Input.Base; got != rate(t, "4") {
		t.Errorf("WithMedia input: got %d, want 4 USD/M", got)
	}
	cost, err := m.Prices.Cost(budget.Usage{InputTokens: 1_000_000, OutputTokens: 1_000_000})
	if want := usd(t, "9"); err != nil || cost != want {
		t.Errorf("cost: got %s, %v; want %s", cost, err, want)
	}
	for _, name := range []string{"tts", "tiered"} {
		m, err := c.Lookup("openai", name, dataDay)
		if err != nil || len(m.Prices.Fees.Unpriced) == 0 {
			t.Errorf("%s: got unpriced %v, %v; want a fee hardcap cannot price", name, m.Prices.Fees.Unpriced, err)
		}
	}
	if m, _ := c.Lookup("openai", "regional", dataDay); m.RegionalUplift != "1.1" {
		t.Errorf("regional uplift: got %q, want 1.1", m.RegionalUplift)
	}
}

func TestGenAIFees(t *testing.T) {
	c, err := ParseGenAIPrices([]byte(`[{"id": "p", "models": [
		{"id": "a", "match": {"equals": "a"}, "prices": {"input_mtok": 1, "output_mtok": 2, "requests_kcount": 5, "web_searches_kcount": 10, "input_audio_mtok": 100}},
		{"id": "b", "match": {"equals": "b"}, "prices": {"input_mtok": 1, "output_mtok": 2, "output_citation_mtok": 3}},
		{"id": "c", "match": {"equals": "c"}, "prices": {"input_mtok": 1, "input_text_mtok": 3, "output_mtok": 2, "input_image_mtok": 7}}
	]}]`))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := c.Lookup("p", "a", dataDay)
	if a.Prices.Fees.Request != usd(t, "0.005") || a.Prices.Fees.Search.At("") != usd(t, "0.01") || len(a.Prices.Fees.Unpriced) != 0 {
		t.Errorf("a: fees %+v", a.Prices.Fees)
	}
	b, _ := c.Lookup("p", "b", dataDay)
	if !slices.Equal(b.Prices.Fees.Unpriced, []string{"output_citation_mtok"}) {
		t.Errorf("b: unpriced %v, want output_citation_mtok", b.Prices.Fees.Unpriced)
	}
	cm, _ := c.Lookup("p", "c", dataDay)
	if cm.Prices.Input.Base != rate(t, "3") || cm.Prices.InputMedia.Base != rate(t, "7") {
		t.Errorf("c: input %d media %d; want the higher spelling 3 and media 7", cm.Prices.Input.Base, cm.Prices.InputMedia.Base)
	}
}

func TestScale(t *testing.T) {
	m, err := ParseMultiplier("1.1")
	if err != nil {
		t.Fatal(err)
	}
	p := Prices{Input: Tiered{Base: 3, Set: true, Tiers: []Tier{{Start: 10, Rate: 10}}}, Output: Flat(1_000_000_000)}
	p.Fees.Request = 7
	s, err := p.Scale(m)
	if err != nil {
		t.Fatal(err)
	}
	// ceil(3 × 1.1) = 4, ceil(10 × 1.1) = 11, ceil(7 × 1.1) = 8.
	if s.Input.Base != 4 || s.Input.Tiers[0].Rate != 11 || s.Output.Base != 1_100_000_000 || s.Fees.Request != 8 {
		t.Errorf("got %+v %+v fees %+v", s.Input, s.Output, s.Fees)
	}
	if p.Input.Tiers[0].Rate != 10 {
		t.Errorf("Scale changed its receiver: %+v", p.Input)
	}
	for _, bad := range []string{"0.9", "-1", "abc", "1001"} {
		if _, err := ParseMultiplier(bad); err == nil {
			t.Errorf("ParseMultiplier(%q): got nil error", bad)
		}
	}
}

// A hostile or broken file whose tier factor does not fit in a Multiplier
// must not wrap to a cheap implied tier: the tier saturates and prices a
// long request out.
func TestImpliedTierSaturates(t *testing.T) {
	evil, err := ParseGenAIPrices([]byte(`[{"id": "openai", "models": [
		{"id": "x", "match": {"equals": "x"}, "prices": {"input_mtok": {"base": 0.000000001, "tiers": [{"start": 0, "price": 21540798.010448781}]}, "output_mtok": 1}}
	]}]`))
	if err != nil {
		t.Fatal(err)
	}
	c := Merge(evil, embeddedCatalog(t))
	m, err := c.Lookup("openai", "gpt-4.1", dataDay)
	if err != nil {
		t.Fatal(err)
	}
	if !m.ImpliedTier {
		t.Fatal("no implied tier")
	}
	for _, tr := range m.Prices.Input.Tiers {
		if tr.Rate < m.Prices.Input.Base {
			t.Errorf("implied tier %+v below the base %d", tr, m.Prices.Input.Base)
		}
	}
	if got := m.Prices.Input.At(300_000); got < 2*m.Prices.Input.Base {
		t.Errorf("input at 300K: got %d, want at least twice the base %d", got, m.Prices.Input.Base)
	}
	// A tier that starts at 0 counts: the threshold is 0.
	if m.Prices.Input.Tiers[0].Start != 0 {
		t.Errorf("implied threshold %d, want 0 (the evil file's)", m.Prices.Input.Tiers[0].Start)
	}
}
