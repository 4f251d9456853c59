package pricing

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
)

func embeddedCatalog(t testing.TB) *Catalog {
	t.Helper()
	c, err := Embedded()
	if err != nil {
		t.Fatalf("Embedded: %v", err)
	}
	return c
}

// dataDay is the embedded genai-prices snapshot's date.
var dataDay = time.Date(2026, 8, 21, 12, 0, 0, 0, time.UTC)

func TestLookupMatchRules(t *testing.T) {
	c := embeddedCatalog(t)
	tests := []struct {
		provider, name string
		wantProvider   string
		wantID         string
		wantInput      string // USD per Mtok
	}{
		{"openai", "gpt-4o", "openai", "gpt-4o", "2.5"},
		{"openai", "gpt-4o-2024-08-06", "openai", "gpt-4o", "2.5"},
		// gpt-4o's rule is a list of equals: gpt-4o-mini must not hit it.
		{"openai", "gpt-4o-mini", "openai", "gpt-4o-mini", "0.15"},
		{"openai", "gpt-4o-mini-2024-07-18", "openai", "gpt-4o-mini", "0.15"},
		// o3's rule is equals "o3"; o3-mini has its own model.
		{"openai", "o3-mini", "openai", "o3-mini", "1.1"},
		{"openai", "o3", "openai", "o3", "2"},
		// claude-sonnet-4-5 matches by starts_with.
		{"anthropic", "claude-sonnet-4-5-20250929", "anthropic", "claude-sonnet-4-5", "3"},
		{"anthropic", "claude-sonnet-4.5", "anthropic", "claude-sonnet-4-5", "3"},
		// Regex rule ^gpt-5\.6-luna-\d{4}-\d{2}-\d{2}$ (after 2026-07-30: 0.2).
		{"openai", "gpt-5.6-luna-2026-07-01", "openai", "gpt-5.6-luna", "0.2"},
		// Azure has no gpt-4o entry of its own and falls back to OpenAI.
		{"azure", "gpt-4o", "openai", "gpt-4o", "2.5"},
		{"aws", "global.anthropic.claude-sonnet-5-v1:0", "aws", "global.anthropic.claude-sonnet-5-v1:0", "2"},
		// Provider ids are case-insensitive.
		{"OpenAI", "gpt-4o", "openai", "gpt-4o", "2.5"},
		// Case-sensitive rule hit (avian writes its names in mixed case).
		{"avian", "Meta-Llama-3.1-8B-Instruct", "avian", "Meta-Llama-3.1-8B-Instruct", ""},
		// The data writes Hugging Face rules in lower case for mixed-case
		// ids, relying on genai-prices' case folding.
		{"huggingface_sambanova", "Qwen/Qwen3-32B", "huggingface_sambanova", "Qwen/Qwen3-32B", ""},
		{"openai", "GPT-4o-Mini", "openai", "gpt-4o-mini", "0.15"},
	}
	for _, tt := range tests {
		t.Run(tt.provider+"/"+tt.name, func(t *testing.T) {
			m, err := c.Lookup(tt.provider, tt.name, dataDay)
			if err != nil {
				t.Fatalf("Lookup: unexpected error %v", err)
			}
			if m.Provider != tt.wantProvider || m.ID != tt.wantID {
				t.Errorf("got %s/%s, want %s/%s", m.Provider, m.ID, tt.wantProvider, tt.wantID)
			}
			if tt.wantInput != "" {
				if want := rate(t, tt.wantInput); m.Prices.Input.Base != want {
					t.Errorf("input base: got %d, want %d", m.Prices.Input.Base, want)
				}
			}
		})
	}
}

func TestLookupErrors(t *testing.T) {
	c := embeddedCatalog(t)
	tests := []struct {
		provider, name string
		want           error
	}{
		{"openai", "gpt-nonexistent-9", ErrModelNotPriced},
		{"openai", "", ErrModelNotPriced},
		{"anthropic", "gpt-4o", ErrModelNotPriced},
		{"no-such-provider", "gpt-4o", ErrUnknownProvider},
		{"", "gpt-4o", ErrUnknownProvider},
		// provider_match rules are not used: "amazon-bedrock" is not
		// guessed as aws.
		{"amazon-bedrock", "global.anthropic.claude-sonnet-5-v1:0", ErrUnknownProvider},
	}
	for _, tt := range tests {
		t.Run(tt.provider+"/"+tt.name, func(t *testing.T) {
			m, err := c.Lookup(tt.provider, tt.name, dataDay)
			if !errors.Is(err, tt.want) {
				t.Errorf("got %+v, %v; want %v", m, err, tt.want)
			}
		})
	}
}

func TestLookupUnpricedModel(t *testing.T) {
	// A model without an input price is not priced; one with an input price
	// only (an embedding model) is, without output.
	c, err := ParseGenAIPrices([]byte(`[{"id":"p","name":"P","api_pattern":"x","models":[
		{"id":"embed","match":{"equals":"embed"},"prices":{"input_mtok":0.1}},
		{"id":"outonly","match":{"equals":"outonly"},"prices":{"output_mtok":0.1}}]}]`))
	if err != nil {
		t.Fatal(err)
	}
	if m, err := c.Lookup("p", "outonly", dataDay); !errors.Is(err, ErrModelNotPriced) {
		t.Errorf("got %+v, %v; want ErrModelNotPriced", m, err)
	}
	m, err := c.Lookup("p", "embed", dataDay)
	if err != nil || m.Prices.HasOutput() {
		t.Errorf("got %+v, %v; want an input-only model", m, err)
	}
	if _, err := m.Prices.Cost(budget.Usage{InputTokens: 1, OutputTokens: 1}); !errors.Is(err, ErrModelNotPriced) {
		t.Errorf("output on an input-only model: got %v, want ErrModelNotPriced", err)
	}
}

// genaiOnly is the embedded genai-prices data alone.
func genaiOnly(t testing.TB) *Catalog {
	t.Helper()
	c, err := ParseGenAIPrices(genaiPricesJSON)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Date and time variants, as genai-prices specifies them (its data alone),
// and never above what the merged catalog charges.
func TestLookupDateBound(t *testing.T) {
	c, merged := genaiOnly(t), embeddedCatalog(t)
	before := time.Date(2026, 3, 12, 23, 59, 59, 0, time.UTC)
	from := time.Date(2026, 3, 13, 0, 0, 0, 0, time.UTC)
	// The same instant as `from`, written in UTC-5: the date is taken in UTC.
	fromNY := from.In(time.FixedZone("EST", -5*3600))
	big := budget.Usage{InputTokens: 300_000, OutputTokens: 1_000}
	tests := []struct {
		name, provider, model string
		at                    time.Time
		u                     budget.Usage
		want                  string // USD
	}{
		// Before 2026-03-13 sonnet-4-6 is tiered: 300,000 × 6 + 1,000 × 22.5 = 1.8225.
		{"sonnet-4-6 before", "anthropic", "claude-sonnet-4-6", before, big, "1.8225"},
		// From 2026-03-13 flat: 300,000 × 3 + 1,000 × 15 = 0.915.
		{"sonnet-4-6 from", "anthropic", "claude-sonnet-4-6", from, big, "0.915"},
		{"sonnet-4-6 from, other zone", "anthropic", "claude-sonnet-4-6", fromNY, big, "0.915"},
		// opus-4-6: 300,000 × 10 + 1,000 × 37.5 = 3.0375 before; 300,000 × 5
		// + 1,000 × 25 = 1.525 after.
		{"opus-4-6 before", "anthropic", "claude-opus-4-6", before, big, "3.0375"},
		{"opus-4-6 from", "anthropic", "claude-opus-4-6", from, big, "1.525"},
		// o3 dropped from 10/40 to 2/8 on 2025-06-10: 1M input each.
		{"o3 before", "openai", "o3", time.Date(2025, 6, 9, 23, 0, 0, 0, time.UTC), budget.Usage{InputTokens: 1_000_000}, "10"},
		{"o3 from", "openai", "o3", time.Date(2025, 6, 10, 0, 0, 0, 0, time.UTC), budget.Usage{InputTokens: 1_000_000}, "2"},
		// deepseek-chat: 0.27 from 00:30 to 16:30 UTC, else the first
		// (off-peak) price 0.135. 1M input tokens.
		{"deepseek peak", "deepseek", "deepseek-chat", time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), budget.Usage{InputTokens: 1_000_000}, "0.27"},
		{"deepseek window start", "deepseek", "deepseek-chat", time.Date(2026, 1, 1, 0, 30, 0, 0, time.UTC), budget.Usage{InputTokens: 1_000_000}, "0.27"},
		{"deepseek before window", "deepseek", "deepseek-chat", time.Date(2026, 1, 1, 0, 29, 59, 999_999_999, time.UTC), budget.Usage{InputTokens: 1_000_000}, "0.135"},
		{"deepseek window end exclusive", "deepseek", "deepseek-chat", time.Date(2026, 1, 1, 16, 30, 0, 0, time.UTC), budget.Usage{InputTokens: 1_000_000}, "0.135"},
		{"deepseek off-peak", "deepseek", "deepseek-chat", time.Date(2026, 1, 1, 20, 0, 0, 0, time.UTC), budget.Usage{InputTokens: 1_000_000}, "0.135"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h, ok, _, _ := c.sources[0].lookup(tt.provider, tt.model, tt.at)
			if !ok {
				t.Fatalf("%s/%s not found", tt.provider, tt.model)
			}
			got, err := h.prices.Cost(tt.u)
			if err != nil {
				t.Fatalf("Cost: %v", err)
			}
			if want := usd(t, tt.want); got != want {
				t.Errorf("Cost at %s: got %s, want %s", tt.at.Format(time.RFC3339Nano), got, want)
			}
			mm, err := merged.Lookup(tt.provider, tt.model, tt.at)
			if err != nil {
				t.Fatal(err)
			}
			if mc, err := mm.Prices.Cost(tt.u); err != nil || mc < got {
				t.Errorf("merged cost at %s: got %s, %v; want at least genai-prices' %s", tt.at.Format(time.RFC3339Nano), mc, err, got)
			}
		})
	}
}

func TestTimeOfDayWrap(t *testing.T) {
	c := timeOfDay{start: 22 * time.Hour, end: 6 * time.Hour}
	for _, tt := range []struct {
		hour int
		want bool
	}{{21, false}, {22, true}, {23, true}, {0, true}, {5, true}, {6, false}, {12, false}} {
		at := time.Date(2026, 1, 1, tt.hour, 0, 0, 0, time.UTC)
		if got := c.active(at); got != tt.want {
			t.Errorf("22:00-06:00 at %02d:00: got %v, want %v", tt.hour, got, tt.want)
		}
	}
}

func TestLookupLimits(t *testing.T) {
	c := embeddedCatalog(t)
	tests := []struct {
		provider, name          string
		wantContext, wantMaxOut int64
	}{
		// genai context 128000; LiteLLM gpt-4o max_output_tokens 16384.
		{"openai", "gpt-4o", 128_000, 16_384},
		{"openai", "gpt-4o-mini", 128_000, 16_384},
		// LiteLLM by request name (claude-sonnet-4-5-20250929: 64000);
		// genai context 1,000,000 beats LiteLLM's 200,000.
		{"anthropic", "claude-sonnet-4-5-20250929", 1_000_000, 64_000},
		// LiteLLM claude-opus-4-6: max_output_tokens 128000; the larger
		// context window wins (LiteLLM's 1,000,000 over genai's 200,000).
		{"anthropic", "claude-opus-4-6", 1_000_000, 128_000},
		// o3-mini has no genai context window: LiteLLM max_input_tokens 200000.
		{"openai", "o3-mini", 200_000, 100_000},
		// A provider-prefixed request name finds the bare LiteLLM key.
		{"openrouter", "openai/gpt-4o", 0, 16_384},
	}
	for _, tt := range tests {
		t.Run(tt.provider+"/"+tt.name, func(t *testing.T) {
			m, err := c.Lookup(tt.provider, tt.name, dataDay)
			if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			if tt.wantContext != 0 && m.ContextWindow != tt.wantContext {
				t.Errorf("ContextWindow: got %d, want %d", m.ContextWindow, tt.wantContext)
			}
			if m.MaxOutputTokens != tt.wantMaxOut {
				t.Errorf("MaxOutputTokens: got %d, want %d", m.MaxOutputTokens, tt.wantMaxOut)
			}
		})
	}
}

func TestLimitTablePrefixes(t *testing.T) {
	lt := newLimitTable()
	lt.add("claude-x", limits{contextWindow: 100, maxOutput: 10})
	lt.add("vertex_ai/claude-y", limits{contextWindow: 200, maxOutput: 20})
	lt.add("bedrock/claude-y", limits{contextWindow: 300, maxOutput: 5})
	tests := []struct {
		name string
		want limits
	}{
		{"claude-x", limits{100, 10}},
		{"anthropic/claude-x", limits{100, 10}}, // request prefix stripped
		{"CLAUDE-X", limits{100, 10}},           // lower-cased last
		{"vertex_ai/claude-y", limits{200, 20}}, // exact prefixed key
		{"claude-y", limits{300, 20}},           // stripped keys keep the largest of each
		{"unknown", limits{}},
	}
	for _, tt := range tests {
		if got := lt.get(tt.name); got != tt.want {
			t.Errorf("get(%q): got %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

// Every model in the embedded data must parse, be reachable by its id or one
// of its match names, and either be priced or fail closed.
func TestEmbeddedEveryModel(t *testing.T) {
	c := embeddedCatalog(t)
	var models, priced, unpriced int
	for _, src := range c.sources {
		for _, p := range src.order {
			for _, m := range p.seg.models {
				models++
				probe := probeName(m)
				if probe == "" {
					t.Errorf("%s %s/%s: no name matches its own rule", src.info.Name, p.id, m.id)
					continue
				}
				got, err := c.Lookup(p.id, probe, dataDay)
				own := m.pricesAt(dataDay)
				ownPriced := own.Priced()
				switch {
				case err == nil:
					priced++
					// No source may lower what this entry says.
					for _, f := range own.fields() {
						if !f.t.Set {
							continue
						}
						var gotT Tiered
						for _, g := range got.Prices.fields() {
							if g.name == f.name {
								gotT = *g.t
							}
						}
						if f.name == "input" && got.Provider != p.id {
							continue // priced by a fallback provider
						}
						if p.seg.find(probe) != m {
							continue // the probe name resolves to another entry of this source
						}
						for _, at := range []int64{1, 200_001, 272_001, 1 << 40} {
							if gotT.At(at) < f.t.At(at) {
								t.Errorf("%s %s/%s %s at %d tokens: got %d, below this source's %d", src.info.Name, p.id, probe, f.name, at, gotT.At(at), f.t.At(at))
							}
						}
					}
				case errors.Is(err, ErrModelNotPriced) && !ownPriced:
					unpriced++
				default:
					t.Errorf("%s %s/%s: Lookup(%q) = %s/%s, %v", src.info.Name, p.id, m.id, probe, got.Provider, got.ID, err)
				}
			}
		}
	}
	if models < 1600 || priced < 1400 {
		t.Errorf("embedded data: got %d models, %d priced; want at least 1600 and 1400", models, priced)
	}
	t.Logf("embedded data: %d sources, %d models, %d priced, %d without input or output price", len(c.sources), models, priced, unpriced)
}

// probeName returns a request name that m's rule matches: its id, else the
// first clause text that the rule accepts.
func probeName(m *model) string {
	cands := []string{m.id}
	var walk func(r *rule)
	walk = func(r *rule) {
		if r.op == opOr || r.op == opAnd {
			for _, s := range r.subs {
				walk(s)
			}
			return
		}
		if r.op != opRegex {
			cands = append(cands, r.s)
		}
	}
	walk(m.rule)
	for _, s := range cands {
		if m.rule.match(s, false) || m.rule.match(strings.ToLower(s), true) {
			return s
		}
	}
	return ""
}

func TestEmbeddedIsShared(t *testing.T) {
	a, b := embeddedCatalog(t), embeddedCatalog(t)
	if a != b {
		t.Errorf("Embedded: got two catalogs %p and %p, want one shared", a, b)
	}
}

func TestLookupConcurrent(t *testing.T) {
	c := embeddedCatalog(t)
	done := make(chan error)
	for range 8 {
		go func() {
			var err error
			for range 200 {
				if _, err = c.Lookup("anthropic", "claude-sonnet-4-5-20250929", dataDay); err != nil {
					break
				}
			}
			done <- err
		}()
	}
	for range 8 {
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	c := embeddedCatalog(b)
	for _, q := range []struct{ provider, name string }{
		{"openai", "gpt-4o"},                        // exact-equals index
		{"anthropic", "claude-sonnet-4-5-20250929"}, // starts_with scan
		{"azure", "gpt-4o"},                         // fallback provider
		{"openai", "gpt-5.6-luna-2026-07-01"},       // regex
		{"huggingface_sambanova", "Qwen/Qwen3-32B"}, // case-folded retry
	} {
		b.Run(q.provider+"/"+q.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.Lookup(q.provider, q.name, dataDay); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// A starts_with rule prices its model's snapshots and variants, not a newer
// model whose name happens to start the same way: that one is unknown, so
// refused, until a source prices it.
func TestStartsWithCoversSnapshotsOnly(t *testing.T) {
	c := embeddedCatalog(t)
	for _, tt := range []struct {
		provider, name string
		priced         bool
	}{
		{"anthropic", "claude-opus-5", true},
		{"anthropic", "claude-opus-5-20260101", true},
		{"anthropic", "claude-opus-5@20260101", true},
		{"anthropic", "claude-sonnet-4-5-20250929", true},
		{"anthropic", "claude-3-5-sonnet-latest", true},
		{"anthropic", "claude-opus-5-5", false},
		{"anthropic", "claude-sonnet-5-5", false},
		{"anthropic", "claude-opus-4-10", false},
		{"openai", "gpt-4o-realtime-preview-2024-12-17", true},
		{"openai", "ft:gpt-3.5-turbo-0125:acme::abc123", true},
		{"openai", "gpt-5-nano-pro", false},
		{"cohere", "command-a-vision-07-2025", true},
		{"mistral", "mistral-medium-3", false},
	} {
		_, err := c.Lookup(tt.provider, tt.name, dataDay)
		if got := err == nil; got != tt.priced {
			t.Errorf("%s/%s: priced %v (%v), want %v", tt.provider, tt.name, got, err, tt.priced)
		}
	}
	if r := (&rule{op: opStartsWith}); !r.match("anything", false) {
		t.Error("an empty starts_with must not panic and matches everything")
	}
}
