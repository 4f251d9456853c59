package admin

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/alert/webhook"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/testlog"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
	"github.com/rs/zerolog"
)

// fakeNotifier is alert delivery that answers each channel with a fixed
// result and records it in the outbox, as the real deliverer does.
type fakeNotifier struct {
	db       *storage.DB
	channels []webhook.ChannelInfo
	// fail names the channels whose delivery fails with status 500.
	fail map[string]bool

	mu        sync.Mutex
	delivered []alert.Entry
}

func (n *fakeNotifier) Channels() []webhook.ChannelInfo { return n.channels }

func (n *fakeNotifier) DeliverNow(ctx context.Context, e alert.Entry) []webhook.Result {
	n.mu.Lock()
	n.delivered = append(n.delivered, e)
	n.mu.Unlock()
	var out []webhook.Result
	for _, ch := range e.Channels {
		r := webhook.Result{Channel: ch, OK: true, Status: 200}
		d := alert.Delivery{Channel: ch, State: alert.Delivered, Attempts: 1, Last: time.Now()}
		if n.fail[ch] {
			r = webhook.Result{Channel: ch, Status: 500, Error: "status 500"}
			d.State, d.Error = alert.Failed, r.Error
		}
		if err := n.db.SetDelivery(ctx, e.Alert.ID, d, true); err != nil {
			r = webhook.Result{Channel: ch, Error: err.Error()}
		}
		out = append(out, r)
	}
	return out
}

var _ Notifier = (*fakeNotifier)(nil)

// newAlertsEnv is the admin API over a database that raises alerts by
// policy, with n (when not nil) as its alert delivery.
func newAlertsEnv(t *testing.T, policy alert.Policy, n *fakeNotifier) *adminEnv {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "hardcap.db"), storage.Options{NoSync: true, Alerts: policy})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &adminEnv{t: t, db: db, log: &testlog.Buffer{}, now: time.Now().UTC()}
	opts := Options{
		DB: db, Proxy: proxy.New(proxy.Options{Tokens: db, Ledger: db}), AdminToken: testAdminToken,
		Log: zerolog.New(e.log), Now: func() time.Time { return e.now },
	}
	if n != nil {
		n.db = db
		opts.Notifier = n
	}
	e.srv = httptest.NewServer(New(opts))
	t.Cleanup(e.srv.Close)
	return e
}

func twoChannels() *fakeNotifier {
	return &fakeNotifier{channels: []webhook.ChannelInfo{{Name: "ops", Kind: "json", Signed: true}, {Name: "slack-1", Kind: "slack"}}}
}

func alertsOf(t *testing.T, body string) []alert.Entry {
	t.Helper()
	var v AlertsView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("not an alerts answer: %v: %s", err, body)
	}
	return v.Alerts
}

// raise writes an alert of type typ at time at.
func raise(t *testing.T, db *storage.DB, typ alert.Type, at time.Time, msg string) alert.Entry {
	t.Helper()
	e, ok, err := db.RaiseAlert(context.Background(), alert.Alert{Type: typ, Time: at, Scope: alert.Scope{Kind: "token", TokenID: "tok_a"}, Message: msg}, storage.RaiseOptions{})
	if err != nil || !ok {
		t.Fatalf("RaiseAlert: %v %v", ok, err)
	}
	return e
}

func TestAlerts_ListFilters(t *testing.T) {
	e := newAlertsEnv(t, alert.Policy{}, nil)
	old := raise(t, e.db, alert.TypeNewIP, e.now.Add(-10*24*time.Hour), "old address")
	ip := raise(t, e.db, alert.TypeNewIP, e.now.Add(-2*time.Hour), "new address")
	spike := raise(t, e.db, alert.TypeSpendSpike, e.now.Add(-time.Hour), "spike")
	ids := func(es []alert.Entry) []string {
		var out []string
		for _, x := range es {
			out = append(out, x.Alert.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name, query string
		want        []string
	}{
		{"all newest first", "", []string{spike.Alert.ID, ip.Alert.ID, old.Alert.ID}},
		{"limit", "?limit=1", []string{spike.Alert.ID}},
		{"type", "?type=anomaly.new_ip", []string{ip.Alert.ID, old.Alert.ID}},
		{"since duration", "?since=7d", []string{spike.Alert.ID, ip.Alert.ID}},
		{"since time", "?since=" + e.now.Add(-90*time.Minute).Format(time.RFC3339), []string{spike.Alert.ID}},
		{"type and since", "?type=anomaly.new_ip&since=7d", []string{ip.Alert.ID}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, body := e.do("GET", "/admin/v1/alerts"+tc.query, "")
			if code != 200 {
				t.Fatalf("got %d: %s", code, body)
			}
			if got := ids(alertsOf(t, body)); strings.Join(got, " ") != strings.Join(tc.want, " ") {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
			if !strings.Contains(body, `"deliveries": []`) {
				t.Fatalf("deliveries not [] before any attempt: %s", body)
			}
		})
	}
}

func TestAlerts_ListEmpty(t *testing.T) {
	e := newAlertsEnv(t, alert.Policy{}, nil)
	code, body := e.do("GET", "/admin/v1/alerts", "")
	if code != 200 || !strings.Contains(body, `"alerts": []`) {
		t.Fatalf("got %d: %s, want an empty list", code, body)
	}
}

func TestAlerts_ListBadParams(t *testing.T) {
	e := newAlertsEnv(t, alert.Policy{}, nil)
	for _, tc := range []struct{ query, want string }{
		{"?limit=x", "limit"},
		{"?limit=-1", "limit"},
		{"?limit=1001", "1000"},
		{"?type=budget.nope", "budget.threshold"},
		{"?since=yesterday", "since"},
		{"?since=-7d", "since"},
	} {
		t.Run(tc.query, func(t *testing.T) {
			code, body := e.do("GET", "/admin/v1/alerts"+tc.query, "")
			if code != 400 || field(t, body, "error.code") != "invalid_request" || !strings.Contains(field(t, body, "error.message").(string), tc.want) {
				t.Fatalf("got %d: %s, want 400 invalid_request naming %q", code, body, tc.want)
			}
		})
	}
}

func TestAlerts_TestDelivers(t *testing.T) {
	n := twoChannels()
	n.fail = map[string]bool{"slack-1": true}
	e := newAlertsEnv(t, alert.Policy{}, n)

	code, body := e.do("POST", "/admin/v1/alerts/test", `{"channel":"ops"}`)
	if code != 200 {
		t.Fatalf("got %d: %s", code, body)
	}
	var v AlertTestView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if v.Alert.Type != alert.TypeTest || v.Alert.Message != TestMessage || v.Alert.Scope.Kind != "global" || v.Alert.ID == "" {
		t.Fatalf("test alert %+v", v.Alert)
	}
	if len(v.Results) != 1 || v.Results[0] != (webhook.Result{Channel: "ops", OK: true, Status: 200}) {
		t.Fatalf("results %+v, want ops delivered", v.Results)
	}
	if len(n.delivered) != 1 || strings.Join(n.delivered[0].Channels, ",") != "ops" {
		t.Fatalf("delivered %+v, want one entry for ops only", n.delivered)
	}

	// No channel named: every channel, each with its own outcome.
	code, body = e.do("POST", "/admin/v1/alerts/test", "")
	if code != 200 {
		t.Fatalf("got %d: %s", code, body)
	}
	v = AlertTestView{}
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Results) != 2 || !v.Results[0].OK || v.Results[1].OK || v.Results[1].Error != "status 500" {
		t.Fatalf("results %+v, want ops delivered and slack-1 failed", v.Results)
	}

	// Both are in the outbox with what their delivery came to.
	_, body = e.do("GET", "/admin/v1/alerts?type=test", "")
	got := alertsOf(t, body)
	if len(got) != 2 {
		t.Fatalf("listed %d test alerts, want 2: %s", len(got), body)
	}
	if d, ok := got[0].Delivery("slack-1"); !ok || d.State != alert.Failed {
		t.Fatalf("newest test alert's slack-1 delivery %+v", got[0].Deliveries)
	}
	if d, ok := got[1].Delivery("ops"); !ok || d.State != alert.Delivered || len(got[1].Channels) != 1 {
		t.Fatalf("first test alert %+v", got[1])
	}
	_, body = e.do("GET", "/admin/v1/status", "")
	if field(t, body, "alerts.failed") != float64(1) || field(t, body, "alerts.waiting") != float64(0) {
		t.Fatalf("status alerts %v, want 1 failed and none waiting", field(t, body, "alerts"))
	}
}

func TestAlerts_TestRefusals(t *testing.T) {
	t.Run("no notifier", func(t *testing.T) {
		e := newAlertsEnv(t, alert.Policy{}, nil)
		code, body := e.do("POST", "/admin/v1/alerts/test", `{}`)
		if code != 409 || !strings.Contains(body, "add alerts.webhooks or alerts.email to the config") {
			t.Fatalf("got %d: %s", code, body)
		}
		assertNoAlerts(t, e)
	})
	t.Run("no channels", func(t *testing.T) {
		e := newAlertsEnv(t, alert.Policy{}, &fakeNotifier{})
		if code, body := e.do("POST", "/admin/v1/alerts/test", ""); code != 409 || !strings.Contains(body, "no alert channel is configured") {
			t.Fatalf("got %d: %s", code, body)
		}
	})
	t.Run("unknown channel", func(t *testing.T) {
		n := twoChannels()
		e := newAlertsEnv(t, alert.Policy{}, n)
		code, body := e.do("POST", "/admin/v1/alerts/test", `{"channel":"pager"}`)
		if code != 404 || !strings.Contains(body, `\"pager\"`) || !strings.Contains(body, "ops, slack-1") {
			t.Fatalf("got %d: %s, want 404 naming the channels", code, body)
		}
		if len(n.delivered) != 0 {
			t.Fatalf("delivered %v", n.delivered)
		}
		assertNoAlerts(t, e)
	})
	t.Run("bad body", func(t *testing.T) {
		e := newAlertsEnv(t, alert.Policy{}, twoChannels())
		for _, b := range []string{`{"channel":"ops","channel":"slack-1"}`, `{"channel":"ops"} {}`, `{"chanel":"ops"}`} {
			if code, body := e.do("POST", "/admin/v1/alerts/test", b); code != 400 || field(t, body, "error.code") != "invalid_request" {
				t.Fatalf("%s: got %d: %s", b, code, body)
			}
		}
		assertNoAlerts(t, e)
	})
}

func assertNoAlerts(t *testing.T, e *adminEnv) {
	t.Helper()
	if got, err := e.db.Alerts(storage.AlertFilter{}); err != nil || len(got) != 0 {
		t.Fatalf("outbox holds %v (%v), want nothing", got, err)
	}
}

func TestAlerts_Status(t *testing.T) {
	t.Run("no notifier", func(t *testing.T) {
		e := newAlertsEnv(t, alert.Policy{}, nil)
		raise(t, e.db, alert.TypeNewIP, time.Time{}, "x")
		code, body := e.do("GET", "/admin/v1/status", "")
		if code != 200 {
			t.Fatalf("got %d: %s", code, body)
		}
		if ch, ok := field(t, body, "alerts.channels").([]any); !ok || len(ch) != 0 {
			t.Fatalf("channels %v, want []", field(t, body, "alerts.channels"))
		}
		if field(t, body, "alerts.waiting") != float64(1) || field(t, body, "alerts.failed") != float64(0) {
			t.Fatalf("alerts %v, want 1 waiting", field(t, body, "alerts"))
		}
	})
	t.Run("channels", func(t *testing.T) {
		e := newAlertsEnv(t, alert.Policy{}, twoChannels())
		code, body := e.do("GET", "/admin/v1/status", "")
		if code != 200 {
			t.Fatalf("got %d: %s", code, body)
		}
		ch := field(t, body, "alerts.channels").([]any)
		if len(ch) != 2 || ch[0].(map[string]any)["name"] != "ops" || ch[0].(map[string]any)["signed"] != true || ch[1].(map[string]any)["kind"] != "slack" {
			t.Fatalf("channels %v", ch)
		}
		for _, bad := range []string{`"url"`, "http://", "https://", "secret"} {
			if strings.Contains(strings.ToLower(body), bad) {
				t.Fatalf("status carries %s: %s", bad, body)
			}
		}
	})
}

func TestAlertAt_Project(t *testing.T) {
	e := newAlertsEnv(t, alert.Policy{}, nil)
	code, body := e.do("POST", "/admin/v1/projects", `{"name":"web","budget_usd":"10","alert_at":["0.9","0.5","0.5"]}`)
	if code != 201 {
		t.Fatalf("create got %d: %s", code, body)
	}
	if got := jsonList(t, body, "alert_at"); got != "0.5,0.9" {
		t.Fatalf("alert_at %q, want 0.5,0.9", got)
	}
	if strings.Contains(body, "ppm") {
		t.Fatalf("the view shows the stored form: %s", body)
	}
	_, body = e.do("GET", "/admin/v1/projects", "")
	if got := field(t, body, "projects").([]any)[0].(map[string]any)["alert_at"]; strings.Join(strs(got), ",") != "0.5,0.9" {
		t.Fatalf("listed alert_at %v", got)
	}
	code, body = e.do("PATCH", "/admin/v1/projects/web", `{"alert_at":["0.75"]}`)
	if code != 200 || jsonList(t, body, "alert_at") != "0.75" || field(t, body, "budget.limit_usd") != "10.000000" {
		t.Fatalf("update got %d: %s", code, body)
	}
	// Changing the budget keeps the thresholds.
	if _, body = e.do("PATCH", "/admin/v1/projects/web", `{"budget_usd":"20"}`); jsonList(t, body, "alert_at") != "0.75" {
		t.Fatalf("a budget change moved the thresholds: %s", body)
	}
	if _, body = e.do("PATCH", "/admin/v1/projects/web", `{"alert_at":[]}`); jsonList(t, body, "alert_at") != "" || !strings.Contains(body, `"alert_at": []`) {
		t.Fatalf("[] did not go back to the config's: %s", body)
	}
	// A project with none shows [].
	if _, body = e.do("POST", "/admin/v1/projects", `{"name":"api"}`); !strings.Contains(body, `"alert_at": []`) {
		t.Fatalf("a project without thresholds: %s", body)
	}
}

func TestAlertAt_Token(t *testing.T) {
	e := newAlertsEnv(t, alert.Policy{}, nil)
	e.do("POST", "/admin/v1/projects", `{"name":"web"}`)
	code, body := e.do("POST", "/admin/v1/tokens", `{"project":"web","budget_usd":"5","alert_at":["0.8","0.25"]}`)
	if code != 201 || jsonList(t, body, "alert_at") != "0.25,0.8" {
		t.Fatalf("create got %d: %s", code, body)
	}
	id := field(t, body, "id").(string)
	for _, path := range []string{"/admin/v1/tokens/" + id, "/admin/v1/tokens?project=web"} {
		_, body := e.do("GET", path, "")
		if !strings.Contains(body, `"alert_at": [`+"\n") || !strings.Contains(body, `"0.25"`) {
			t.Fatalf("%s: alert_at missing: %s", path, body)
		}
	}
	code, body = e.do("PATCH", "/admin/v1/tokens/"+id, `{"alert_at":["1.5"]}`)
	if code != 200 || jsonList(t, body, "alert_at") != "1.5" {
		t.Fatalf("update got %d: %s", code, body)
	}
	if tok, err := e.db.Token(id); err != nil || len(tok.AlertAt) != 1 || tok.AlertAt[0] != 1_500_000 {
		t.Fatalf("stored %v (%v)", tok.AlertAt, err)
	}
	if code, body = e.do("PATCH", "/admin/v1/tokens/"+id, `{"alert_at":[]}`); code != 200 || jsonList(t, body, "alert_at") != "" {
		t.Fatalf("clear got %d: %s", code, body)
	}
}

// TestAlertAt_Invalid: a bad share is a 400 that names it, and nothing is
// created or changed.
func TestAlertAt_Invalid(t *testing.T) {
	e := newAlertsEnv(t, alert.Policy{}, nil)
	e.do("POST", "/admin/v1/projects", `{"name":"web","alert_at":["0.5"]}`)
	_, body := e.do("POST", "/admin/v1/tokens", `{"project":"web","alert_at":["0.5"]}`)
	id := field(t, body, "id").(string)
	many := `["` + strings.TrimSuffix(strings.Repeat(`0.1","`, MaxAlertAt+1), `","`) + `"]`
	for _, bad := range []string{`["0"]`, `["-0.5"]`, `["11"]`, `["half"]`, `["0.5,0.9"]`, `["0.1234567"]`, many} {
		t.Run(bad, func(t *testing.T) {
			for _, req := range []struct{ method, path, body string }{
				{"POST", "/admin/v1/projects", `{"name":"api","alert_at":` + bad + `}`},
				{"PATCH", "/admin/v1/projects/web", `{"budget_usd":"3","alert_at":` + bad + `}`},
				{"POST", "/admin/v1/tokens", `{"project":"web","name":"second","alert_at":` + bad + `}`},
				{"PATCH", "/admin/v1/tokens/" + id, `{"budget_usd":"3","alert_at":` + bad + `}`},
			} {
				code, body := e.do(req.method, req.path, req.body)
				if code != 400 || field(t, body, "error.code") != "invalid_request" || !strings.Contains(body, "alert_at") {
					t.Fatalf("%s %s: got %d: %s, want 400 naming alert_at", req.method, req.path, code, body)
				}
			}
		})
	}
	ps, _ := e.db.Projects()
	if len(ps) != 1 || len(ps[0].AlertAt) != 1 || ps[0].AlertAt[0] != 500_000 {
		t.Fatalf("projects after refusals %+v", ps)
	}
	ts, _ := e.db.Tokens("web")
	if len(ts) != 1 || len(ts[0].AlertAt) != 1 || ts[0].AlertAt[0] != 500_000 {
		t.Fatalf("tokens after refusals %+v", ts)
	}
}

// TestAlertAt_Fires: a project's own threshold, set through the API,
// fires when committed spend crosses it, and GET /admin/v1/alerts lists it.
func TestAlertAt_Fires(t *testing.T) {
	e := newAlertsEnv(t, alert.Policy{Thresholds: []budget.Fraction{budget.FractionOne}}, nil)
	e.do("POST", "/admin/v1/projects", `{"name":"web","budget_usd":"10","alert_at":["0.3"]}`)
	_, body := e.do("POST", "/admin/v1/tokens", `{"project":"web"}`)
	id := field(t, body, "id").(string)
	ctx := context.Background()
	res, err := e.db.Reserve(ctx, budget.Request{TokenID: id, Model: "m"}, budget.Quote{MaxOutput: 1000, OutputRate: budget.Rate(5 * budget.NanoPerUSD * 1000)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Settle(ctx, res.ID, budget.Settlement{Charged: 4 * budget.NanoPerUSD, Status: 200, Outcome: budget.Complete, Ended: time.Now()}); err != nil {
		t.Fatal(err)
	}
	code, body := e.do("GET", "/admin/v1/alerts?type=budget.threshold", "")
	got := alertsOf(t, body)
	if code != 200 || len(got) != 1 {
		t.Fatalf("got %d: %s, want one threshold alert", code, body)
	}
	a := got[0].Alert
	if a.Scope.Kind != "project" || a.Scope.Project != "web" || a.Threshold == nil || *a.Threshold != 300_000 {
		t.Fatalf("alert %+v, want the project's 0.3", a)
	}
}

// jsonList is a list of strings in a JSON answer, joined by commas.
func jsonList(t *testing.T, body, path string) string {
	t.Helper()
	return strings.Join(strs(field(t, body, path)), ",")
}

func strs(v any) []string {
	l, _ := v.([]any)
	out := make([]string, 0, len(l))
	for _, x := range l {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}
