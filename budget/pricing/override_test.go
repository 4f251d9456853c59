package pricing

import (
	"errors"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
)

func TestWithOverrides(t *testing.T) {
	emb := embeddedCatalog(t)
	c, err := emb.WithOverrides(
		Override{Provider: "openai", Model: "gpt-4o", OutputMTok: "12", MaxOutputTokens: 1000},
		Override{Provider: "anthropic", Model: "claude-sonnet-4-6", InputMTok: "4"},
		Override{Provider: "acme", Model: "my-model", InputMTok: "1", OutputMTok: "2", CacheReadMTok: "0.1", ContextWindow: 32_000, MaxOutputTokens: 4096},
		Override{Provider: "openai", Model: "gpt-custom", InputMTok: "0.5", OutputMTok: "1.5", ContextWindow: 64_000},
		Override{Provider: "azure", Model: "gpt-4o", InputMTok: "3", OutputMTok: "11"},
	)
	if err != nil {
		t.Fatalf("WithOverrides: %v", err)
	}
	before := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name             string
		cat              *Catalog
		provider, model  string
		at               time.Time
		wantProvider     string
		wantID           string
		wantIn, wantOut  string // base rates, USD per Mtok
		wantOutTiers     int
		wantCtx, wantMax int64
	}{
		// Output changed, input kept, limit overridden (beats LiteLLM 16384).
		{"price changed", c, "openai", "gpt-4o", dataDay, "openai", "gpt-4o", "2.5", "12", 0, 128_000, 1000},
		// The override applies to names every source resolves to the same
		// entry; LiteLLM prices the snapshot with an entry of its own, so
		// the snapshot keeps the data's price.
		{"snapshot with its own entry", c, "openai", "gpt-4o-2024-08-06", dataDay, "openai", "gpt-4o", "2.5", "10", 0, 128_000, 16_384},
		{"original unchanged", emb, "openai", "gpt-4o", dataDay, "openai", "gpt-4o", "2.5", "10", 0, 128_000, 16_384},
		{"neighbour unchanged", c, "openai", "gpt-4o-mini", dataDay, "openai", "gpt-4o-mini", "0.15", "0.6", 0, 128_000, 16_384},
		// Input overridden (and made flat) in every date variant; output
		// keeps its tiers before 2026-03-13.
		{"dated, before", c, "anthropic", "claude-sonnet-4-6", before, "anthropic", "claude-sonnet-4-6", "4", "15", 1, 0, 64_000},
		{"dated, after", c, "anthropic", "claude-sonnet-4-6", dataDay, "anthropic", "claude-sonnet-4-6", "4", "15", 0, 0, 64_000},
		{"new provider and model", c, "acme", "my-model", dataDay, "acme", "my-model", "1", "2", 0, 32_000, 4096},
		{"new model in known provider", c, "openai", "gpt-custom", dataDay, "openai", "gpt-custom", "0.5", "1.5", 0, 64_000, 0},
		// Azure had no gpt-4o of its own: the override creates one and
		// leaves OpenAI's alone.
		{"new model shadows fallback", c, "azure", "gpt-4o", dataDay, "azure", "gpt-4o", "3", "11", 0, 0, 16_384},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := tt.cat.Lookup(tt.provider, tt.model, tt.at)
			if err != nil {
				t.Fatalf("Lookup: %v", err)
			}
			if m.Provider != tt.wantProvider || m.ID != tt.wantID {
				t.Errorf("got %s/%s, want %s/%s", m.Provider, m.ID, tt.wantProvider, tt.wantID)
			}
			if want := rate(t, tt.wantIn); m.Prices.Input.Base != want || len(m.Prices.Input.Tiers) != 0 {
				t.Errorf("input: got %+v, want flat %d", m.Prices.Input, want)
			}
			if want := rate(t, tt.wantOut); m.Prices.Output.Base != want || len(m.Prices.Output.Tiers) != tt.wantOutTiers {
				t.Errorf("output: got %+v, want base %d with %d tiers", m.Prices.Output, want, tt.wantOutTiers)
			}
			if tt.wantCtx != 0 && m.ContextWindow != tt.wantCtx {
				t.Errorf("context window: got %d, want %d", m.ContextWindow, tt.wantCtx)
			}
			if m.MaxOutputTokens != tt.wantMax {
				t.Errorf("max output: got %d, want %d", m.MaxOutputTokens, tt.wantMax)
			}
		})
	}
	// my-model: 1,000 input (400 cached) and 1,000 output:
	// 600 × 1 + 400 × 0.1 + 1,000 × 2 = 0.0006 + 0.00004 + 0.002 = 0.00264.
	m, err := c.Lookup("acme", "my-model", dataDay)
	if err != nil {
		t.Fatal(err)
	}
	got, err := m.Prices.Cost(budget.Usage{InputTokens: 1000, CacheReadTokens: 400, OutputTokens: 1000})
	if want := usd(t, "0.00264"); err != nil || got != want {
		t.Errorf("my-model cost: got %s, %v; want %s", got, err, want)
	}
}

func TestWithOverridesRejects(t *testing.T) {
	emb := embeddedCatalog(t)
	tests := []struct {
		name string
		ov   Override
		want error
	}{
		{"no provider", Override{Model: "gpt-4o", InputMTok: "1"}, ErrInvalidOverride},
		{"no model", Override{Provider: "openai", InputMTok: "1"}, ErrInvalidOverride},
		{"new model without input", Override{Provider: "acme", Model: "x", OutputMTok: "1"}, ErrInvalidOverride},
		{"negative limit", Override{Provider: "openai", Model: "gpt-4o", MaxOutputTokens: -1}, ErrInvalidOverride},
		{"bad price", Override{Provider: "openai", Model: "gpt-4o", InputMTok: "2,5"}, ErrInvalidRate},
		{"negative price", Override{Provider: "openai", Model: "gpt-4o", OutputMTok: "-1"}, ErrInvalidRate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := emb.WithOverrides(tt.ov)
			if !errors.Is(err, tt.want) {
				t.Errorf("got %v, %v; want %v", c, err, tt.want)
			}
		})
	}
}

// Applying an override twice, or to a model created by an earlier override,
// works on the catalog's own copy.
func TestWithOverridesChained(t *testing.T) {
	emb := embeddedCatalog(t)
	c, err := emb.WithOverrides(
		Override{Provider: "acme", Model: "m", InputMTok: "1", OutputMTok: "1"},
		Override{Provider: "acme", Model: "m", OutputMTok: "3"},
		Override{Provider: "openai", Model: "gpt-4o", InputMTok: "4"},
	)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := c.WithOverrides(Override{Provider: "openai", Model: "gpt-4o", InputMTok: "5"})
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		cat             *Catalog
		provider, model string
		wantIn, wantOut string
	}{
		{c, "acme", "m", "1", "3"},
		{c, "openai", "gpt-4o", "4", "10"},
		{c2, "openai", "gpt-4o", "5", "10"},
	} {
		m, err := tt.cat.Lookup(tt.provider, tt.model, dataDay)
		if err != nil {
			t.Fatal(err)
		}
		if m.Prices.Input.Base != rate(t, tt.wantIn) || m.Prices.Output.Base != rate(t, tt.wantOut) {
			t.Errorf("%s/%s: got input %d output %d, want %s and %s USD/Mtok", tt.provider, tt.model, m.Prices.Input.Base, m.Prices.Output.Base, tt.wantIn, tt.wantOut)
		}
	}
}
