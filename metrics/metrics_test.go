package metrics_test

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/metrics"
	"github.com/hardcap/hardcap/storage"
)

var ctx = context.Background()

// dollars is a quote whose worst case is n USD: n output tokens at 1 USD
// each.
func dollars(n int64) budget.Quote {
	return budget.Quote{MaxOutput: n, OutputRate: budget.Rate(budget.NanoPerUSD * 1_000_000)}
}

// usd parses a dollar amount or fails the test.
func usd(t *testing.T, s string) budget.Money {
	t.Helper()
	m, err := budget.ParseUSD(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitingQueue is a proxy's settlement queue with fixed contents.
type waitingQueue struct {
	n    int
	held budget.Money
}

func (q waitingQueue) SettlementsWaiting() (int, budget.Money) { return q.n, q.held }

// scrape gets the metrics and returns the body and its samples by series
// ("name{labels}" exactly as written).
func scrape(t *testing.T, h http.Handler) (string, map[string]float64) {
	t.Helper()
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: got %d, want 200: %s", resp.StatusCode, b)
	}
	samples := map[string]float64{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			t.Fatalf("scrape: line %q: %v", line, err)
		}
		samples[line[:i]] = v
	}
	return string(b), samples
}

// TestMetrics_Books: after a few reservations and settlements the scrape
// shows the ledger's counters and histograms, the overshoot, the open
// reservations, each budget's spend, limit and headroom, the waiting
// settlements, the alert outbox and the counted requests and refusals;
// no token id appears.
func TestMetrics_Books(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "hardcap.db"), storage.Options{Global: budget.Ceiling(usd(t, "10"), budget.Total)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.CreateProject(ctx, "web", budget.Ceiling(usd(t, "5"), budget.Total)); err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateProject(ctx, "batch", budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	tok, secret, err := db.CreateToken(ctx, storage.TokenSpec{Project: "web"})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Options{Books: db, Settlements: waitingQueue{n: 2, held: usd(t, "0.3")}})

	req := budget.Request{TokenID: tok.ID, Project: "web", Provider: "openai", Model: "gpt-4o-mini", Route: "chat"}
	settle := func(worst int64, charged string) {
		t.Helper()
		res, err := db.Reserve(ctx, req, dollars(worst))
		if err != nil {
			t.Fatal(err)
		}
		rec, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: usd(t, charged), Outcome: budget.Complete, Status: 200})
		if err != nil {
			t.Fatal(err)
		}
		m.Settled(rec)
	}
	settle(2, "1.5")
	settle(1, "1.25") // an overshoot of 0.25
	if _, err := db.Reserve(ctx, req, dollars(1)); err != nil {
		t.Fatal(err)
	}
	m.Refused("budget_exceeded")
	m.Refused("budget_exceeded")
	m.Refused("rate_limited")

	body, got := scrape(t, m.Handler())
	ws := db.WriterStats()
	waiting, failed, err := db.AlertCounts()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]float64{
		`hardcap_requests_total{model="gpt-4o-mini",outcome="complete",provider="openai",route="chat"}`: 2,
		`hardcap_refusals_total{code="budget_exceeded"}`:                                                2,
		`hardcap_refusals_total{code="rate_limited"}`:                                                   1,
		`hardcap_spent_usd{project="web"}`:                                                              2.75,
		`hardcap_reserved_usd{project="web"}`:                                                           1,
		`hardcap_spent_usd{project="batch"}`:                                                            0,
		`hardcap_budget_limit_usd{scope="project:web"}`:                                                 5,
		`hardcap_budget_remaining_usd{scope="project:web"}`:                                             1.25,
		`hardcap_budget_limit_usd{scope="global"}`:                                                      10,
		`hardcap_budget_remaining_usd{scope="global"}`:                                                  6.25,
		`hardcap_reservations_open`:                                                                     1,
		`hardcap_reservations_open_usd`:                                                                 1,
		`hardcap_overshoots_total`:                                                                      1,
		`hardcap_overshoot_usd_total`:                                                                   0.25,
		`hardcap_settlements_waiting`:                                                                   2,
		`hardcap_settlements_waiting_usd`:                                                               0.3,
		`hardcap_kill_all`:                                                                              0,
		`hardcap_alerts_waiting`:                                                                        float64(waiting),
		`hardcap_alerts_failed`:                                                                         float64(failed),
		`hardcap_scrape_errors_total`:                                                                   0,
		`hardcap_ledger_commits_total`:                                                                  float64(ws.Commits),
		`hardcap_ledger_operations_total`:                                                               float64(ws.Ops),
		`hardcap_ledger_commit_seconds_count`:                                                           float64(ws.Commits),
		`hardcap_ledger_commit_seconds_bucket{le="+Inf"}`:                                               float64(ws.Commits),
		`hardcap_ledger_commit_batch_size_count`:                                                        float64(ws.Commits),
		`hardcap_ledger_commit_batch_size_sum`:                                                          float64(ws.Ops),
	}
	for series, w := range want {
		g, ok := got[series]
		if !ok {
			t.Errorf("%s: missing from the scrape", series)
			continue
		}
		if math.Abs(g-w) > 1e-9 {
			t.Errorf("%s: got %v, want %v", series, g, w)
		}
	}
	if ws.Commits < 5 {
		t.Errorf("got %d commits, want at least the five writes above", ws.Commits)
	}
	// Unlimited budgets have no limit series.
	if _, ok := got[`hardcap_budget_limit_usd{scope="project:batch"}`]; ok {
		t.Error("an unlimited project has a budget_limit_usd series")
	}
	// The buckets are cumulative and end at the count.
	if b := got[`hardcap_ledger_commit_batch_size_bucket{le="1024"}`]; b > float64(ws.Commits) {
		t.Errorf("batch size bucket le=1024 is %v, above the %d commits", b, ws.Commits)
	}
	for _, secretish := range []string{tok.ID, secret} {
		if strings.Contains(body, secretish) {
			t.Errorf("the scrape holds a token's id or secret")
		}
	}
}

// TestMetrics_FailedReadIsLeftOut: when the books cannot be read (the
// database is closed), the scrape still answers with what it has and
// counts the failed reads.
func TestMetrics_FailedReadIsLeftOut(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "hardcap.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Options{Books: db})
	m.Refused("kill_switch")
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	_, got := scrape(t, m.Handler())
	if got[`hardcap_scrape_errors_total`] < 1 {
		t.Errorf("got scrape_errors_total %v, want at least 1", got[`hardcap_scrape_errors_total`])
	}
	if got[`hardcap_refusals_total{code="kill_switch"}`] != 1 {
		t.Errorf("got refusals %v, want the one counted before", got[`hardcap_refusals_total{code="kill_switch"}`])
	}
	if _, ok := got[`hardcap_reservations_open`]; ok {
		t.Error("a figure read from a closed database was reported")
	}
}

// TestRequireToken: only GET or HEAD with one of the tokens as a bearer
// token reaches the metrics.
func TestRequireToken(t *testing.T) {
	const admin, scraper = "hcadmin_0123456789ABCDEFGH", "scrape-token-0123456789"
	inner := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "metrics") })
	tests := []struct {
		name   string
		tokens []string
		method string
		auth   string
		want   int
	}{
		{"admin token", []string{admin, scraper}, http.MethodGet, "Bearer " + admin, http.StatusOK},
		{"metrics token", []string{admin, scraper}, http.MethodGet, "Bearer " + scraper, http.StatusOK},
		{"lower-case scheme", []string{admin}, http.MethodGet, "bearer " + admin, http.StatusOK},
		{"head", []string{admin}, http.MethodHead, "Bearer " + admin, http.StatusOK},
		{"no header", []string{admin, scraper}, http.MethodGet, "", http.StatusUnauthorized},
		{"wrong token", []string{admin, scraper}, http.MethodGet, "Bearer " + admin + "x", http.StatusUnauthorized},
		{"prefix of a token", []string{admin}, http.MethodGet, "Bearer " + admin[:10], http.StatusUnauthorized},
		{"basic scheme", []string{admin}, http.MethodGet, "Basic " + admin, http.StatusUnauthorized},
		{"empty bearer with an empty token configured", []string{admin, ""}, http.MethodGet, "Bearer ", http.StatusUnauthorized},
		{"no tokens at all", nil, http.MethodGet, "Bearer ", http.StatusUnauthorized},
		{"post", []string{admin}, http.MethodPost, "Bearer " + admin, http.StatusMethodNotAllowed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest(tt.method, "/metrics", nil)
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			rec := httptest.NewRecorder()
			metrics.RequireToken(inner, tt.tokens...).ServeHTTP(rec, req)
			if rec.Code != tt.want {
				t.Fatalf("got %d, want %d", rec.Code, tt.want)
			}
			body := rec.Body.String()
			if tt.want == http.StatusOK && tt.method == http.MethodGet && body != "metrics" {
				t.Errorf("got body %q, want the metrics", body)
			}
			if tt.want != http.StatusOK && (strings.Contains(body, admin) || strings.Contains(body, scraper) || body == "") {
				t.Errorf("got body %q, want a short message without a token", body)
			}
		})
	}
}

// TestMetrics_PerToken: with PerToken, each live token has its spend,
// reservations and requests by outcome, and a token with a limit its limit
// and headroom; a revoked token has no series, and the secret never
// appears. Without PerToken no series names a token.
func TestMetrics_PerToken(t *testing.T) {
	db, err := storage.Open(filepath.Join(t.TempDir(), "hardcap.db"), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.CreateProject(ctx, "web", budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	capped, secret, err := db.CreateToken(ctx, storage.TokenSpec{Project: "web", Limit: budget.Ceiling(usd(t, "3"), budget.Total)})
	if err != nil {
		t.Fatal(err)
	}
	free, _, err := db.CreateToken(ctx, storage.TokenSpec{Project: "web"})
	if err != nil {
		t.Fatal(err)
	}
	gone, _, err := db.CreateToken(ctx, storage.TokenSpec{Project: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.RevokeToken(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	on := metrics.New(metrics.Options{Books: db, PerToken: true})
	off := metrics.New(metrics.Options{Books: db})
	req := budget.Request{TokenID: capped.ID, Project: "web", Provider: "openai", Model: "gpt-4o-mini", Route: "chat"}
	res, err := db.Reserve(ctx, req, dollars(2))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: usd(t, "0.5"), Outcome: budget.Complete, Status: 200})
	if err != nil {
		t.Fatal(err)
	}
	on.Settled(rec)
	off.Settled(rec)
	if _, err := db.Reserve(ctx, req, dollars(1)); err != nil {
		t.Fatal(err)
	}

	body, got := scrape(t, on.Handler())
	want := map[string]float64{
		`hardcap_token_spent_usd{project="web",token="` + capped.ID + `"}`:                         0.5,
		`hardcap_token_reserved_usd{project="web",token="` + capped.ID + `"}`:                      1,
		`hardcap_token_spent_usd{project="web",token="` + free.ID + `"}`:                           0,
		`hardcap_budget_limit_usd{scope="token:` + capped.ID + `"}`:                                3,
		`hardcap_budget_remaining_usd{scope="token:` + capped.ID + `"}`:                            1.5,
		`hardcap_token_requests_total{outcome="complete",project="web",token="` + capped.ID + `"}`: 1,
	}
	for series, w := range want {
		if g, ok := got[series]; !ok {
			t.Errorf("%s: missing from the scrape", series)
		} else if math.Abs(g-w) > 1e-9 {
			t.Errorf("%s: got %v, want %v", series, g, w)
		}
	}
	if _, ok := got[`hardcap_budget_limit_usd{scope="token:`+free.ID+`"}`]; ok {
		t.Error("a token without a limit has a budget_limit_usd series")
	}
	if strings.Contains(body, gone.ID) {
		t.Error("a revoked token has series")
	}
	if strings.Contains(body, secret) {
		t.Error("the scrape holds a token secret")
	}
	offBody, _ := scrape(t, off.Handler())
	for _, id := range []string{capped.ID, free.ID} {
		if strings.Contains(offBody, id) {
			t.Errorf("without PerToken the scrape names token %s", id)
		}
	}
}

// TestGrafanaDashboard: every hardcap_ metric the example Grafana
// dashboard queries is one the scrape serves (a renamed metric must not
// leave a panel empty), and the dashboard is valid JSON with a
// Prometheus datasource input.
func TestGrafanaDashboard(t *testing.T) {
	raw, err := os.ReadFile("../examples/grafana/hardcap.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Inputs []struct{ Name, PluginID string } `json:"__inputs"`
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("the dashboard is not JSON: %v", err)
	}
	if len(dash.Inputs) != 1 || dash.Inputs[0].Name != "DS_PROMETHEUS" {
		t.Errorf("inputs %+v, want one DS_PROMETHEUS", dash.Inputs)
	}

	db, err := storage.Open(filepath.Join(t.TempDir(), "hardcap.db"), storage.Options{Global: budget.Ceiling(usd(t, "10"), budget.Total)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.CreateProject(ctx, "web", budget.Ceiling(usd(t, "5"), budget.Total)); err != nil {
		t.Fatal(err)
	}
	m := metrics.New(metrics.Options{Books: db, Settlements: waitingQueue{}})
	m.Settled(budget.Record{Request: budget.Request{Route: "chat", Provider: "openai", Model: "gpt-4o-mini"}, Outcome: budget.Complete})
	m.Responded("openai", 0)
	m.Refused("budget_exceeded")
	body, _ := scrape(t, m.Handler())
	families := map[string]bool{}
	for line := range strings.SplitSeq(body, "\n") {
		if f, ok := strings.CutPrefix(line, "# TYPE "); ok {
			families[strings.Fields(f)[0]] = true
		}
	}
	name := regexp.MustCompile(`hardcap_[a-z_]+`)
	queried := 0
	for _, p := range dash.Panels {
		if len(p.Targets) == 0 {
			t.Errorf("panel %q has no query", p.Title)
		}
		for _, tg := range p.Targets {
			for _, n := range name.FindAllString(tg.Expr, -1) {
				queried++
				f := n
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if base, ok := strings.CutSuffix(n, suffix); ok && families[base] {
						f = base
					}
				}
				if !families[f] {
					t.Errorf("panel %q queries %s, which the scrape does not serve", p.Title, n)
				}
			}
		}
	}
	if queried < 10 {
		t.Errorf("the dashboard queries %d hardcap metrics, want the main ones", queried)
	}
}
