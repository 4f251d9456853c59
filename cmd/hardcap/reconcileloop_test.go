package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/fakecosts"
	"github.com/hardcap/hardcap/internal/testlog"
	"github.com/hardcap/hardcap/storage"
	"github.com/rs/zerolog"
)

// fixedBooks is a database whose books say what the test wants.
type fixedBooks struct {
	*storage.DB
	days []storage.DailyUsage
}

func (b fixedBooks) Daily(f storage.DailyFilter) ([]storage.DailyUsage, error) {
	var out []storage.DailyUsage
	for _, d := range b.days {
		if d.Provider == f.Provider {
			out = append(out, d)
		}
	}
	return out, nil
}

func openTestDB(t *testing.T) *storage.DB {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "hardcap.db"), storage.Options{Alerts: alert.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = db.Close() })
	return db
}

func usd(t *testing.T, s string) budget.Money {
	t.Helper()
	m, err := budget.ParseUSD(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// TestReconcileLoop_Drift: a day the provider billed more than the books
// by more than the tolerance raises one reconcile_drift alert, whatever
// the rounds that follow; a day within the tolerance raises none; a
// report that fails is logged without the key and tried again next round.
func TestReconcileLoop_Drift(t *testing.T) {
	t.Setenv("HARDCAP_TEST_OPENAI_ADMIN", openAIAdminKey)
	t.Setenv("HARDCAP_TEST_ANTHROPIC_ADMIN", anthropicAdminKey)
	costs := fakecosts.New(t, fakecosts.Options{OpenAIKey: openAIAdminKey, AnthropicKey: anthropicAdminKey})
	now := time.Date(2026, 12, 2, 15, 0, 0, 0, time.UTC)
	today, yesterday := now.Truncate(24*time.Hour), now.Truncate(24*time.Hour).Add(-24*time.Hour)
	// openai: yesterday 10.15 billed for 10 booked (within 2 %), today
	// 10.25 (above). anthropic: 0.05 billed for nothing booked (within
	// USD 0.10).
	costs.AddOpenAI(
		fakecosts.OpenAICost{Day: yesterday, LineItem: "gpt-4o-2024-08-06, input", USD: "10.15"},
		fakecosts.OpenAICost{Day: today, LineItem: "gpt-4o-2024-08-06, input", USD: "6"},
		fakecosts.OpenAICost{Day: today, LineItem: "gpt-4o-2024-08-06, output", USD: "4.25"},
	)
	costs.AddAnthropic(fakecosts.AnthropicCost{Day: today, Model: "claude-haiku-4-5", Cents: "5"})
	db := openTestDB(t)
	books := fixedBooks{DB: db, days: []storage.DailyUsage{
		{Day: yesterday.Format(storage.DayLayout), Provider: "openai", Model: "gpt-4o", Charged: usd(t, "10"), Requests: 3},
		{Day: today.Format(storage.DayLayout), Provider: "openai", Model: "gpt-4o", Charged: usd(t, "6"), Requests: 1},
		{Day: today.Format(storage.DayLayout), Provider: "openai", Model: "gpt-4o-mini", Charged: usd(t, "4"), Requests: 1},
	}}
	cfg, err := parseConfig(fmt.Appendf(nil, `
providers:
  openai: {base_url: %s, api_key: env:K, admin_key: env:HARDCAP_TEST_OPENAI_ADMIN}
  anthropic: {base_url: %s, api_key: env:K, admin_key: env:HARDCAP_TEST_ANTHROPIC_ADMIN}
  groq: {kind: openai, base_url: https://api.groq.com/openai/v1, api_key: env:K}
`, costs.OpenAIBaseURL(), costs.URL()), defaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	set, err := cfg.check()
	if err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	l := newReconcileLoop(cfg, set, books, func() time.Time { return now }, zerolog.New(logs))
	if l == nil || len(l.providers) != 2 {
		t.Fatalf("loop %+v, want openai and anthropic", l)
	}
	ctx := context.Background()
	for range 3 {
		l.round(ctx)
	}
	got := alertsOf(t, db, alert.TypeReconcileDrift)
	if len(got) != 1 {
		t.Fatalf("got %d drift alerts, want 1: %+v", len(got), got)
	}
	a := got[0].Alert
	day := today.Format(storage.DayLayout)
	wantMsg := "openai billed 10.250000 USD on " + day + ", 0.250000 USD more than hardcap's books (10.000000 USD). hardcap should be the only holder of the real key, so it is probably used somewhere else: rotate the provider key now, then run `hardcap scan` on your repositories and CI."
	if a.Message != wantMsg {
		t.Errorf("message\n%s\nwant\n%s", a.Message, wantMsg)
	}
	if a.Scope != (alert.Scope{Kind: "provider", Provider: "openai"}) || a.Spent != usd(t, "10.25") || a.Limit == nil || *a.Limit != usd(t, "10") ||
		a.Details["day"] != day || a.Details["excess_usd"] != "0.250000" || a.Details["books_usd"] != "10.000000" || a.Details["provider_usd"] != "10.250000" {
		t.Errorf("alert %+v", a)
	}

	// A failing report: a warning without the key, and the next round
	// compares again.
	costs.SetFailure(fakecosts.Failure{Status: 500, EchoKey: true})
	before := len(costs.Calls())
	l.round(ctx)
	if !strings.Contains(logs.String(), "scheduled reconcile: the provider's cost report could not be compared") {
		t.Errorf("no warning: %s", logs)
	}
	if strings.Contains(logs.String(), openAIAdminKey) || strings.Contains(logs.String(), anthropicAdminKey) {
		t.Errorf("the log shows an admin key: %s", logs)
	}
	costs.SetFailure(fakecosts.Failure{})
	costs.AddAnthropic(fakecosts.AnthropicCost{Day: yesterday, Model: "claude-haiku-4-5", Cents: "10000"})
	l.round(ctx)
	if len(costs.Calls()) <= before {
		t.Fatal("no call after the failure")
	}
	got = alertsOf(t, db, alert.TypeReconcileDrift)
	if len(got) != 2 || got[0].Alert.Scope.Provider != "anthropic" || got[0].Alert.Details["day"] != yesterday.Format(storage.DayLayout) {
		t.Fatalf("after the retry: %+v", got)
	}
}

// TestReconcileLoop_Off: no loop without a provider with an admin_key,
// with reconcile.every off, or with reconcile_drift off.
func TestReconcileLoop_Off(t *testing.T) {
	db := openTestDB(t)
	for _, y := range []string{
		"providers:\n  openai: {base_url: https://x/v1, api_key: env:K}\n",
		"providers:\n  openai: {base_url: https://x/v1, api_key: env:K, admin_key: env:A}\nreconcile: {every: \"off\"}\n",
		"providers:\n  openai: {base_url: https://x/v1, api_key: env:K, admin_key: env:A}\nalerts: {anomalies: {reconcile_drift: \"off\"}}\n",
	} {
		cfg, err := parseConfig([]byte(y), defaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		set, err := cfg.check()
		if err != nil {
			t.Fatal(err)
		}
		if l := newReconcileLoop(cfg, set, db, time.Now, zerolog.Nop()); l != nil {
			t.Errorf("%q: a loop", y)
		}
	}
}

// TestReconcileLoop_Tolerance: the larger of the percentage of the books
// and the amount.
func TestReconcileLoop_Tolerance(t *testing.T) {
	s := reconcileSettings{percent: 2 * budget.NanoPerUSD, usd: budget.NanoPerUSD / 10}
	for _, tt := range []struct{ books, want string }{
		{"0", "0.1"}, {"1", "0.1"}, {"5", "0.1"}, {"10", "0.2"}, {"1000", "20"}, {"0.000000001", "0.1"},
	} {
		if got := s.tolerance(usd(t, tt.books)); got != usd(t, tt.want) {
			t.Errorf("books %s: tolerance %s, want %s", tt.books, got, tt.want)
		}
	}
	if got := s.tolerance(budget.MaxMoney); got <= 0 {
		t.Errorf("tolerance of the largest books %s", got)
	}
}

// TestServe_ScheduledReconcile: the server runs the reconcile on its own,
// and raises the drift of a provider whose report is above the books.
func TestServe_ScheduledReconcile(t *testing.T) {
	t.Setenv("HARDCAP_TEST_FAKE_KEY", fakeKey)
	t.Setenv("HARDCAP_TEST_OPENAI_ADMIN", openAIAdminKey)
	t.Setenv("HARDCAP_ADMIN_TOKEN", "")
	costs := fakecosts.New(t, fakecosts.Options{OpenAIKey: openAIAdminKey, AnthropicKey: anthropicAdminKey})
	costs.AddOpenAI(fakecosts.OpenAICost{Day: time.Now(), LineItem: "gpt-4o, input", USD: "3"})
	path := filepath.Join(t.TempDir(), "hardcap.yaml")
	if err := os.WriteFile(path, fmt.Appendf(nil, `listen: 127.0.0.1:0
providers:
  openai: {base_url: %s, api_key: env:HARDCAP_TEST_FAKE_KEY, admin_key: env:HARDCAP_TEST_OPENAI_ADMIN}
reconcile: {every: 1h}
`, costs.OpenAIBaseURL()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	s := launch(t, &Main{Config: cfg, reconcileFirst: time.Millisecond})
	var got []alert.Entry
	waitFor(t, "the drift alert", func() bool {
		got = alertsOf(t, s.main.db, alert.TypeReconcileDrift)
		return len(got) > 0
	})
	if a := got[0].Alert; a.Scope.Provider != "openai" || a.Spent != usd(t, "3") || !strings.Contains(a.Message, "rotate the provider key now") {
		t.Errorf("alert %+v", a)
	}
	s.stop()
	if strings.Contains(s.logs.String(), openAIAdminKey) {
		t.Error("the log shows the admin key")
	}
}
