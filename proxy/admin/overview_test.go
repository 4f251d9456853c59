package admin

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
)

// TestOverview: every budget with a limit, each with its last hour's spend
// and run-out at that rate, and the spend of each hour.
func TestOverview(t *testing.T) {
	now := time.Date(2026, 12, 1, 12, 30, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	db, err := storage.Open(filepath.Join(t.TempDir(), "hardcap.db"), storage.Options{NoSync: true, Now: clock, Global: budget.Ceiling(100*budget.NanoPerUSD, budget.Month)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if _, err := db.CreateProject(ctx, "web", budget.Ceiling(10*budget.NanoPerUSD, budget.Day)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateProject(ctx, "free", budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	capped, _, err := db.CreateToken(ctx, storage.TokenSpec{Project: "web", Name: "ci", Limit: budget.Ceiling(2*budget.NanoPerUSD, budget.Total)})
	if err != nil {
		t.Fatal(err)
	}
	open, _, err := db.CreateToken(ctx, storage.TokenSpec{Project: "free"})
	if err != nil {
		t.Fatal(err)
	}
	revoked, _, err := db.CreateToken(ctx, storage.TokenSpec{Project: "web", Limit: budget.Ceiling(budget.NanoPerUSD, budget.Total)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.RevokeToken(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	spend := func(tokenID string, c budget.Money, ago time.Duration) {
		t.Helper()
		res, err := db.Reserve(ctx, budget.Request{TokenID: tokenID, Provider: "openai", Model: "gpt-4o-mini"}, budget.Quote{MaxOutput: 10, OutputRate: 1000})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: c, Status: 200, Outcome: budget.Complete, Ended: now.Add(-ago)}); err != nil {
			t.Fatal(err)
		}
	}
	spend(capped.ID, 500_000_000, 20*time.Minute)  // this hour, the last 60 minutes
	spend(capped.ID, 250_000_000, 90*time.Minute)  // the hour before, not in the last 60 minutes
	spend(open.ID, 1_000_000_000, 3*time.Hour)     // three hours back
	spend(open.ID, 5_000_000_000, 30*24*time.Hour) // out of the chart
	srv := httptest.NewServer(New(Options{DB: db, Proxy: proxy.New(proxy.Options{Tokens: db, Ledger: db}), AdminToken: testAdminToken, Now: clock}))
	t.Cleanup(srv.Close)
	e := &adminEnv{t: t, db: db, srv: srv}

	code, body := e.do("GET", "/admin/v1/overview?hours=6", "")
	if code != 200 {
		t.Fatalf("%d %s", code, body)
	}
	var ov OverviewView
	if err := json.Unmarshal([]byte(body), &ov); err != nil {
		t.Fatal(err)
	}
	scopes := map[string]OverviewBudget{}
	var order []string
	for _, b := range ov.Budgets {
		scopes[b.Scope] = b
		order = append(order, b.Scope)
	}
	want := []string{"global:month", "project:web", "token:" + capped.ID}
	if len(order) != len(want) {
		t.Fatalf("budgets %v, want %v (no unlimited, no revoked)", order, want)
	}
	for i := range want {
		if order[i] != want[i] {
			t.Fatalf("budgets %v, want %v", order, want)
		}
	}
	tok := scopes["token:"+capped.ID]
	if tok.LastHour != 500_000_000 || tok.Budget.Spent != 750_000_000 || tok.Name != "ci" || tok.Project != "web" {
		t.Fatalf("token budget %+v", tok)
	}
	// 1.25 USD left at 0.5 USD an hour: 2.5 hours.
	if tok.RunOut == nil || !tok.RunOut.Equal(now.Add(150*time.Minute)) {
		t.Fatalf("token run-out %v, want %v", tok.RunOut, now.Add(150*time.Minute))
	}
	// The window counts every charge made in it (the budget is charged
	// when the request is reserved); the chart goes by when each ended.
	if g := scopes["global:month"]; g.Budget.Spent != 6_750_000_000 || g.LastHour != 500_000_000 {
		t.Fatalf("global %+v", g)
	}
	if len(ov.Hours) != 6 || !ov.Hours[5].Start.Equal(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)) {
		t.Fatalf("hours %+v, want 6 ending with 12:00", ov.Hours)
	}
	wantHours := []budget.Money{0, 0, 1_000_000_000, 0, 250_000_000, 500_000_000}
	for i, h := range ov.Hours {
		if h.Spent != wantHours[i] {
			t.Fatalf("hour %d (%s): %s, want %s", i, h.Start, h.Spent, wantHours[i])
		}
	}
	for _, q := range []string{"?hours=0", "?hours=x", "?hours=100000"} {
		if code, body := e.do("GET", "/admin/v1/overview"+q, ""); code != 400 || field(t, body, "error.code") != "invalid_request" {
			t.Errorf("%s: %d %s", q, code, body)
		}
	}
}

func TestRunOut(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	limit := budget.Money(10 * budget.NanoPerUSD)
	huge := budget.MaxMoney
	tests := []struct {
		name string
		b    BudgetView
		rate budget.Money
		want time.Duration // -1: none
	}{
		{"no limit", BudgetView{}, 5, -1},
		{"no spend", BudgetView{Limit: &limit}, 0, -1},
		{"half left", BudgetView{Limit: &limit, Spent: limit / 2}, limit / 10, 5 * time.Hour},
		{"reserved counts", BudgetView{Limit: &limit, Spent: limit / 2, Reserved: limit / 4}, limit / 10, 150 * time.Minute},
		{"reached", BudgetView{Limit: &limit, Spent: limit}, 0, 0},
		{"too far", BudgetView{Limit: &limit}, 1, -1},
		{"large budget", BudgetView{Limit: &huge}, huge / 2, 2 * time.Hour},
	}
	for _, tt := range tests {
		got := runOut(tt.b, tt.rate, now)
		switch {
		case tt.want < 0 && got != nil:
			t.Errorf("%s: %v, want none", tt.name, got)
		case tt.want >= 0 && (got == nil || !got.Equal(now.Add(tt.want))):
			t.Errorf("%s: %v, want %v", tt.name, got, now.Add(tt.want))
		}
	}
}
