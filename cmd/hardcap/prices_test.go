package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
)

func TestLoadPrices_FileAndOverrides(t *testing.T) {
	// A LiteLLM-format file that makes gpt-4o-mini ten times dearer:
	// 1.5e-06 USD a token is 1.5 USD per million.
	file := filepath.Join(t.TempDir(), "prices.json")
	if err := os.WriteFile(file, []byte(`{"gpt-4o-mini": {"litellm_provider": "openai", "mode": "chat",
		"input_cost_per_token": 1.5e-06, "output_cost_per_token": 6e-06, "max_output_tokens": 1000}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	cat, err := loadPrices(PricesConfig{
		File:      file,
		Overrides: []OverrideConfig{{Provider: "openai", Model: "my-finetune", InputMTok: "3", OutputMTok: "12", MaxOutputTokens: 4096}},
	})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	mini, err := cat.Lookup("openai", "gpt-4o-mini", now)
	if err != nil {
		t.Fatal(err)
	}
	cost, _ := mini.Prices.Cost(budget.Usage{InputTokens: 1_000_000})
	if cost != 1_500_000_000 || mini.MaxOutputTokens != 1000 {
		t.Fatalf("gpt-4o-mini from the file: got %s USD per Mtok and %d max output, want 1.5 and 1000", cost, mini.MaxOutputTokens)
	}
	if _, err := cat.Lookup("openai", "gpt-4o", now); err != nil {
		t.Fatalf("models the file lacks must still come from the embedded data: %v", err)
	}
	ft, err := cat.Lookup("openai", "my-finetune", now)
	if err != nil {
		t.Fatal(err)
	}
	if cost, _ := ft.Prices.Cost(budget.Usage{OutputTokens: 1_000_000}); cost != 12*budget.NanoPerUSD || ft.MaxOutputTokens != 4096 {
		t.Fatalf("override: got %s and %d", cost, ft.MaxOutputTokens)
	}
	if _, err := loadPrices(PricesConfig{File: filepath.Join(t.TempDir(), "missing.json")}); err == nil {
		t.Fatal("a missing price file loaded")
	}
}
