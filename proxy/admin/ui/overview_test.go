package ui

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
)

func TestLevel(t *testing.T) {
	def := []budget.Fraction{500_000, 800_000, 1_000_000}
	const limit = budget.Money(1_000_000_000)
	tests := []struct {
		used budget.Money
		ths  []budget.Fraction
		want string
	}{
		{0, def, levelOK},
		{limit/2 - 1, def, levelOK},
		{limit / 2, def, levelWarn},
		{limit*8/10 - 1, def, levelWarn},
		{limit * 8 / 10, def, levelHigh},
		{limit - 1, def, levelHigh},
		{limit, def, levelOver},
		{limit * 2, def, levelOver},
		// One threshold below the limit: past it is amber, never red-ish.
		{limit * 9 / 10, []budget.Fraction{900_000}, levelWarn},
		// None: green up to the limit.
		{limit - 1, nil, levelOK},
		{limit, nil, levelOver},
		// Thresholds at or past the limit do not colour below it.
		{limit - 1, []budget.Fraction{1_000_000, 1_500_000}, levelOK},
	}
	for _, tt := range tests {
		if got := level(tt.used, limit, tt.ths); got != tt.want {
			t.Errorf("level(%s of %s, %v) = %s, want %s", tt.used, limit, tt.ths, got, tt.want)
		}
	}
	if got := level(0, 0, def); got != levelOver {
		t.Errorf("a zero budget: %s, want %s", got, levelOver)
	}
}

func TestPercentAndUSD(t *testing.T) {
	tests := []struct {
		a, b budget.Money
		clip bool
		want string
	}{
		{0, 100, false, "0"},
		{1, 3, false, "33.3"},
		{50, 100, false, "50"},
		{150, 100, false, "150"},
		{150, 100, true, "100"},
		{budget.MaxMoney, budget.MaxMoney, false, "100"},
	}
	for _, tt := range tests {
		if got := percent(tt.a, tt.b, tt.clip); got != tt.want {
			t.Errorf("percent(%d, %d, %v) = %s, want %s", tt.a, tt.b, tt.clip, got, tt.want)
		}
	}
	for m, want := range map[budget.Money]string{0: "$0.00", 5_000_000_000: "$5.00", 450_000: "$0.00045", 1: "$0.000000001", 7_500_000_000: "$7.50", -2_000_000_000: "-$2.00"} {
		if got := usd(m); got != want {
			t.Errorf("usd(%d) = %s, want %s", m, got, want)
		}
	}
}

var budgetRe = regexp.MustCompile(`<div class="budget level-(\w+)" data-scope="([^"]+)" data-committed-usd="([^"]+)" data-reserved-usd="([^"]+)" data-limit-usd="([^"]+)"`)

// budgetsOf maps each .budget's data-scope to its level and amounts.
func budgetsOf(body string) map[string][4]string {
	out := map[string][4]string{}
	for _, m := range budgetRe.FindAllStringSubmatch(body, -1) {
		out[m[2]] = [4]string{m[1], m[3], m[4], m[5]}
	}
	return out
}

func TestOverview_BudgetsAndLive(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login()
	// web has 10 a day (createToken's project); its token 1 a day, alert
	// thresholds of its own at 0.1 and 0.2.
	id, secret := b.createToken("web", "name", "ci", "budget", "1", "period", "day")
	e.adminDo("PATCH", "/admin/v1/tokens/"+id, `{"alert_at":["0.1","0.2"]}`)
	e.record(id, "gpt-4o-mini", 150_000_000, -10*time.Minute) // 0.15 of the token's, 0.015 of web's
	a := b.get("/ui/")
	mustContain(t, "overview", a.body, `id="budgets"`, `id="open-reservations">0<`, `id="recent-alerts"`, `<svg id="spend-chart"`, `<rect class="hour"`)
	got := budgetsOf(a.body)
	if g := got["project:web"]; g != [4]string{levelOK, "0.150000", "0.000000", "10.000000"} {
		t.Errorf("project:web %v", g)
	}
	if g := got["token:"+id]; g != [4]string{levelWarn, "0.150000", "0.000000", "1.000000"} {
		t.Errorf("token:%s %v, want warn (past its own 0.1)", id, g)
	}
	if len(got) != 2 {
		t.Errorf("budgets %v, want the project's and the token's (the global one has no limit)", got)
	}
	mustContain(t, "overview", a.body, "at this rate runs out")

	// The live answer follows new spend without a reload.
	e.record(id, "gpt-4o-mini", 100_000_000, -time.Minute)
	l := b.get("/ui/live")
	if l.status != http.StatusOK || !strings.HasPrefix(l.header.Get("Content-Type"), "application/json") {
		t.Fatalf("live: %d %s", l.status, l.header.Get("Content-Type"))
	}
	var live LiveView
	if err := json.Unmarshal([]byte(l.body), &live); err != nil {
		t.Fatal(err)
	}
	if g := budgetsOf(live.Budgets)["token:"+id]; g != [4]string{levelHigh, "0.250000", "0.000000", "1.000000"} {
		t.Errorf("live token:%s %v, want high (past its last threshold below the limit)", id, g)
	}
	if !strings.Contains(live.Chart, `id="spend-chart"`) || !strings.Contains(live.Alerts, `<li class="alert">`) || !strings.Contains(live.Alerts, "budget.threshold") {
		t.Errorf("live chart or alerts missing: %+v", live)
	}
	if strings.Contains(l.body, secret) || strings.Contains(l.body, testAdminToken) {
		t.Fatal("the live answer holds a secret")
	}
	// Over the limit: dark red, and the run-out is reached.
	e.record(id, "gpt-4o-mini", 900_000_000, -time.Second)
	a = b.get("/ui/")
	if g := budgetsOf(a.body)["token:"+id]; g[0] != levelOver {
		t.Errorf("token over its limit: %v, want over", g)
	}
	mustContain(t, "overview over the limit", a.body, "limit reached")

	// The alerts page lists them.
	mustContain(t, "alerts page", b.get("/ui/alerts").body, `id="alerts"`, `class="alert-row"`, "budget.threshold", `href="/ui/tokens/`+id+`"`)
	mustContain(t, "alerts of a type", b.get("/ui/alerts?type=budget.threshold").body, `class="alert-row"`)
	if a := b.get("/ui/alerts?type=nope"); a.status != http.StatusBadRequest {
		t.Errorf("alerts of an unknown type: %d, want 400", a.status)
	}

	// Without a session the live answer is the login redirect, never data.
	if a := e.browser().get("/ui/live"); a.status != http.StatusSeeOther {
		t.Fatalf("live without a session: %d, want 303", a.status)
	}
}
