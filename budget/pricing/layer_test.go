package pricing

import (
	"errors"
	"testing"
)

func TestLayer(t *testing.T) {
	emb := embeddedCatalog(t)
	user, err := ParseLiteLLM([]byte(`{
		"gpt-4o": {"litellm_provider": "openai", "input_cost_per_token": 5e-06, "output_cost_per_token": 2e-05},
		"gpt-4o-mini": {"litellm_provider": "openai", "input_cost_per_token": 1e-06},
		"gemini-2.5-flash": {"litellm_provider": "gemini", "input_cost_per_token": 1e-06, "output_cost_per_token": 4e-06},
		"acme-1": {"litellm_provider": "acme", "input_cost_per_token": 1e-06, "output_cost_per_token": 1e-06, "max_output_tokens": 999}
	}`))
	if err != nil {
		t.Fatal(err)
	}
	userFirst := Layer(user, nil, emb)
	embFirst := Layer(emb, user)
	tests := []struct {
		name          string
		cat           *Catalog
		provider, mod string
		wantProvider  string
		wantInput     string // USD per Mtok
		wantContext   int64
		wantMaxOut    int64
	}{
		// The user file wins; limits it lacks come from the embedded layer
		// (context 128000 from genai, max output 16384 from LiteLLM).
		{"user price wins", userFirst, "openai", "gpt-4o", "openai", "5", 128_000, 16_384},
		{"embedded first keeps data price", embFirst, "openai", "gpt-4o", "openai", "2.5", 128_000, 16_384},
		// The user file only knows the bare key; the snapshot name resolves
		// in the embedded data.
		{"other names from embedded", userFirst, "openai", "gpt-4o-2024-08-06", "openai", "2.5", 128_000, 16_384},
		// The user's gpt-4o-mini has no output price, so the embedded one is used.
		{"unpriced user entry passed over", userFirst, "openai", "gpt-4o-mini", "openai", "0.15", 128_000, 16_384},
		// LiteLLM's "gemini" is filed as genai-prices' "google".
		{"litellm provider alias", userFirst, "google", "gemini-2.5-flash", "google", "1", 0, 0},
		// Azure falls back to OpenAI, whose first layer is the user file.
		{"fallback sees every layer", userFirst, "azure", "gpt-4o", "openai", "5", 128_000, 16_384},
		{"provider only in user file", userFirst, "acme", "acme-1", "acme", "1", 0, 999},
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
			if want := rate(t, tt.wantInput); m.Prices.Input.Base != want {
				t.Errorf("input: got %d, want %d", m.Prices.Input.Base, want)
			}
			if tt.wantContext != 0 && m.ContextWindow != tt.wantContext {
				t.Errorf("context window: got %d, want %d", m.ContextWindow, tt.wantContext)
			}
			if tt.wantMaxOut != 0 && m.MaxOutputTokens != tt.wantMaxOut {
				t.Errorf("max output: got %d, want %d", m.MaxOutputTokens, tt.wantMaxOut)
			}
		})
	}
	if _, err := Layer().Lookup("openai", "gpt-4o", dataDay); !errors.Is(err, ErrUnknownProvider) {
		t.Errorf("empty layer: got %v, want ErrUnknownProvider", err)
	}
	// Layering does not change its inputs.
	if m, err := emb.Lookup("openai", "gpt-4o", dataDay); err != nil || m.Prices.Input.Base != rate(t, "2.5") {
		t.Errorf("embedded after Layer: got %+v, %v; want input 2.5", m.Prices.Input, err)
	}
}
