package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
	"github.com/hardcap/hardcap/internal/testlog"
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

// priceServer serves price files by path from a local server.
func priceServer(t *testing.T, files map[string][]byte) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, ok := files[r.URL.Path]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write(b)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// runPrices runs a prices command with the given data dir and returns its
// exit code and output.
func runPrices(t *testing.T, dir string, args ...string) (int, string) {
	t.Helper()
	t.Setenv("HARDCAP_CONFIG", "")
	var out, errOut bytes.Buffer
	code := run(context.Background(), append(append([]string{"prices"}, args...), "--data-dir", dir), &out, &errOut)
	return code, out.String() + errOut.String()
}

// litellmWith returns the embedded LiteLLM subset with one entry changed
// (nil removes it).
func litellmWith(t *testing.T, key string, entry map[string]any) []byte {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(pricing.EmbeddedLiteLLM(), &m); err != nil {
		t.Fatal(err)
	}
	if entry == nil {
		delete(m, key)
	} else {
		m[key] = entry
	}
	b, err := json.Marshal(m)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestPricesUpdate(t *testing.T) {
	dir := t.TempDir()
	genai := pricing.EmbeddedGenAIPrices()
	dearer := litellmWith(t, "gpt-4o", map[string]any{"litellm_provider": "openai", "mode": "chat",
		"input_cost_per_token": 4e-06, "output_cost_per_token": 1.6e-05, "max_output_tokens": 16384})
	// A model that only LiteLLM prices, to remove.
	g, err := pricing.ParseGenAIPrices(genai)
	if err != nil {
		t.Fatal(err)
	}
	lite, err := pricing.ParseLiteLLM(pricing.EmbeddedLiteLLM())
	if err != nil {
		t.Fatal(err)
	}
	only := ""
	for _, n := range lite.Names("openai") {
		if _, err := g.Lookup("openai", n, time.Now()); err != nil && !strings.Contains(n, "/") {
			if _, err := lite.Lookup("openai", n, time.Now()); err == nil {
				only = n
				break
			}
		}
	}
	if only == "" {
		t.Fatal("no model only LiteLLM prices")
	}
	// The same model at a thousandth of its price.
	cheaper := litellmWith(t, only, map[string]any{"litellm_provider": "openai", "mode": "chat",
		"input_cost_per_token": 1e-12, "output_cost_per_token": 1e-12})
	base := priceServer(t, map[string][]byte{
		"/genai.json": genai, "/dearer.json": dearer, "/cheaper.json": cheaper,
		"/missing.json": litellmWith(t, only, nil), "/broken.json": []byte(`{"gpt-4o": {"input_cost_per_token": "x"}`),
	})
	update := func(litellm string, extra ...string) (int, string) {
		return runPrices(t, dir, append([]string{"update", "--genai-url", base + "/genai.json", "--litellm-url", base + litellm}, extra...)...)
	}
	if code, out := update("/dearer.json"); code != 0 {
		t.Fatalf("update: exit %d: %s", code, out)
	}
	for _, f := range []string{"genai-prices-v2.json", "litellm.json", "sources.json"} {
		fi, err := os.Stat(filepath.Join(dir, "prices", f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	cat, err := loadPricesFrom(PricesConfig{}, dir)
	if err != nil {
		t.Fatal(err)
	}
	if m, _ := cat.Lookup("openai", "gpt-4o", time.Now()); m.Prices.Input.Base != 4*budget.NanoPerUSD {
		t.Errorf("after update gpt-4o input: got %d, want 4 USD/Mtok", m.Prices.Input.Base)
	}
	if src := cat.Sources(); len(src) != 2 || src[1].Origin != base+"/dearer.json" || time.Since(src[1].AsOf) > time.Hour {
		t.Errorf("sources after update: %+v", src)
	}
	for _, tt := range []struct {
		name, file string
		want       string
	}{
		{"a model would stop pricing", "/missing.json", only},
		{"a rate fell by more than half", "/cheaper.json", "--accept-drops"},
		{"does not parse", "/broken.json", "does not parse"},
		{"unreachable", "/nothing.json", "404"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := os.ReadFile(filepath.Join(dir, "prices", "litellm.json"))
			code, out := update(tt.file)
			if code == 0 || !strings.Contains(out, tt.want) {
				t.Errorf("got exit %d: %s; want a refusal naming %q", code, out, tt.want)
			}
			after, _ := os.ReadFile(filepath.Join(dir, "prices", "litellm.json"))
			if !bytes.Equal(before, after) {
				t.Error("a refused update changed the installed file")
			}
		})
	}
	if code, out := update("/cheaper.json", "--accept-drops"); code != 0 {
		t.Fatalf("update --accept-drops: exit %d: %s", code, out)
	}
	if prev, err := os.ReadFile(filepath.Join(dir, "prices", "litellm.json.prev")); err != nil || !bytes.Equal(prev, dearer) {
		t.Errorf("the previous copy was not kept: %v", err)
	}
	// A damaged installed copy stops the start rather than fall back to
	// older data.
	if err := os.WriteFile(filepath.Join(dir, "prices", "litellm.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := loadPricesFrom(PricesConfig{}, dir); err == nil || !strings.Contains(err.Error(), "prices update") {
		t.Errorf("damaged price file: got %v, want an error that says what to do", err)
	}
}

func TestPricesCheck(t *testing.T) {
	code, out := runPrices(t, t.TempDir(), "check", "--json")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, out)
	}
	var r struct {
		Sources []struct {
			Name    string `json:"name"`
			AgeDays int    `json:"age_days"`
		} `json:"sources"`
		Disagreements []struct {
			Model, Price, Used string
			Sources            map[string]string
		} `json:"disagreements"`
		Implied []string `json:"implied_tier"`
	}
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(r.Sources) != 2 || r.Sources[0].AgeDays <= 0 {
		t.Errorf("sources: %+v", r.Sources)
	}
	found := false
	for _, d := range r.Disagreements {
		if d.Model == "gpt-4o-2024-05-13" && d.Price == "input" {
			found = d.Used == "5.000000" && len(d.Sources) == 2
		}
	}
	if !found {
		t.Errorf("gpt-4o-2024-05-13 input (2.50 in one source, 5 in the other, 5 used) not listed: %+v", r.Disagreements)
	}
	if !slices.Contains(r.Implied, "openai/gpt-4.1") {
		t.Errorf("implied tiers do not list openai/gpt-4.1: %v", r.Implied)
	}
	if code, out := runPrices(t, t.TempDir(), "check"); code != 0 || !strings.Contains(out, "gpt-4o-2024-05-13") {
		t.Errorf("text check: exit %d: %.500s", code, out)
	}
}

// A start with price data older than 90 days logs a warning; status shows
// each source's age.
func TestPricesAge(t *testing.T) {
	t.Setenv("HARDCAP_ADMIN_TOKEN", "test-admin-token")
	for _, tt := range []struct {
		now   time.Time
		stale bool
	}{
		{pricing.EmbeddedGenAIAsOf.Add(24 * time.Hour), false},
		{pricing.EmbeddedGenAIAsOf.Add(200 * 24 * time.Hour), true},
	} {
		logs := &testlog.Buffer{}
		cfg := defaultConfig()
		cfg.Listen = "127.0.0.1:0"
		now := tt.now
		m := &Main{Config: cfg, DataDir: t.TempDir(), LogOutput: logs, Now: func() time.Time { return now }}
		if err := m.Open(); err != nil {
			t.Fatal(err)
		}
		warned := strings.Contains(logs.String(), "price data is older than 90 days")
		facts := m.statusFacts(settings{location: time.UTC})
		m.Close()
		if warned != tt.stale {
			t.Errorf("at %s: warned %v, want %v", now.Format(time.DateOnly), warned, tt.stale)
		}
		srcs, _ := facts["prices"].([]map[string]any)
		if len(srcs) != 2 || srcs[0]["stale"] != tt.stale && srcs[1]["stale"] != tt.stale {
			t.Errorf("status prices: %v", facts["prices"])
		}
	}
}
