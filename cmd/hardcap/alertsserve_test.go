package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/alert/webhook"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/testlog"
	"github.com/hardcap/hardcap/storage"
)

// fakeNotifier stands in for alert/webhook's Deliverer: it records what
// the server asks of it.
type fakeNotifier struct {
	opts     webhook.Options
	wakes    atomic.Int64
	running  atomic.Bool
	stopped  atomic.Bool
	mu       sync.Mutex
	channels []webhook.ChannelInfo
}

func (f *fakeNotifier) Run(ctx context.Context) {
	f.running.Store(true)
	<-ctx.Done()
	f.stopped.Store(true)
}

func (f *fakeNotifier) Wake() { f.wakes.Add(1) }

func (f *fakeNotifier) Channels() []webhook.ChannelInfo {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.channels
}

func (f *fakeNotifier) DeliverNow(context.Context, alert.Entry) []webhook.Result { return nil }

// useFakeNotifier makes the servers of the test build a fakeNotifier, and
// returns the pointer it will be stored in.
func useFakeNotifier(t *testing.T) **fakeNotifier {
	t.Helper()
	var got *fakeNotifier
	prev := newNotifier
	newNotifier = func(o webhook.Options) (notifier, error) {
		f := &fakeNotifier{opts: o}
		for _, w := range o.Webhooks {
			f.channels = append(f.channels, webhook.ChannelInfo{Name: w.Name, Kind: string(w.Format), Signed: w.Secret != ""})
		}
		got = f
		return f, nil
	}
	t.Cleanup(func() { newNotifier = prev })
	return &got
}

// startAlertDemo starts `hardcap serve --demo` with the config extra (YAML)
// and returns it with a token of a project "alerted" of budget USD.
func startAlertDemo(t *testing.T, extra, budgetUSD string) (*server, string) {
	t.Helper()
	t.Setenv("HARDCAP_ADMIN_TOKEN", "")
	t.Setenv("HARDCAP_CONFIG", "")
	t.Setenv("OPENAI_API_KEY", "")
	t.Setenv("ANTHROPIC_API_KEY", "")
	cfg, err := parseConfig([]byte(extra), defaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = "127.0.0.1:0"
	s := launch(t, &Main{Config: cfg, Demo: true})
	s.mustCLI("project", "create", "alerted", "--budget", budgetUSD)
	var created struct {
		Token string `json:"token"`
	}
	decodeJSON(t, s.mustCLI("token", "create", "--project", "alerted", "--json"), &created)
	return s, created.Token
}

// launch opens m on a new data dir, logging to a buffer, and runs it
// until the test ends.
func launch(t *testing.T, m *Main) *server {
	t.Helper()
	s := &server{t: t, dataDir: t.TempDir(), logs: &testlog.Buffer{}, main: m}
	m.DataDir, m.LogOutput = s.dataDir, s.logs
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + m.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() { s.done <- m.Run(ctx) }()
	t.Cleanup(s.stop)
	return s
}

// embed sends one embedding request of a fixed size through the demo
// provider: its cost is known before it is sent, so the reservation is
// the charge.
func embed(t *testing.T, s *server, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", s.url+"/v1/embeddings", strings.NewReader(`{"model":"text-embedding-3-small","input":"one"}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func alertsOf(t *testing.T, db *storage.DB, typ alert.Type) []alert.Entry {
	t.Helper()
	got, err := db.Alerts(storage.AlertFilter{Type: typ})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestServe_Thresholds: requests crossing 50 and 80 % of a project's
// budget fire one budget.threshold each, however many requests follow;
// each wakes the deliverer; status lists the channels without their URLs;
// the deliverer stops at shutdown.
func TestServe_Thresholds(t *testing.T) {
	fake := useFakeNotifier(t)
	t.Setenv("HARDCAP_TEST_HOOK_URL", testWebhookURL)
	t.Setenv("HARDCAP_TEST_HOOK_SECRET", testWebhookSecret)
	// An embedding of "one" is 2 tokens at 20 nano-USD: 40 nano-USD, a
	// 200th of the budget (its reservation is 1280 nano-USD).
	s, token := startAlertDemo(t, `
alerts:
  webhooks:
    - {name: ops, url: env:HARDCAP_TEST_HOOK_URL, secret: env:HARDCAP_TEST_HOOK_SECRET}
`, "0.000008")
	f := *fake
	if f == nil {
		t.Fatal("no notifier built")
	}
	waitFor(t, "the deliverer running", f.running.Load)
	if len(f.opts.Webhooks) != 1 || f.opts.Webhooks[0].URL != testWebhookURL || f.opts.Outbox == nil {
		t.Fatalf("delivery options %+v", f.opts.Webhooks)
	}
	// 165 requests: 6600 nano-USD, 82.5 %.
	for i := range 165 {
		if code, body := embed(t, s, token); code != 200 {
			t.Fatalf("request %d: %d %s", i+1, code, body)
		}
	}
	db := s.main.db
	var got []alert.Entry
	waitFor(t, "two threshold alerts", func() bool {
		got = alertsOf(t, db, alert.TypeThreshold)
		return len(got) >= 2
	})
	if len(got) != 2 {
		t.Fatalf("got %d threshold alerts, want 2 (0.5 and 0.8): %+v", len(got), got)
	}
	// Newest first.
	for i, want := range []budget.Fraction{800_000, 500_000} {
		a := got[i].Alert
		if a.Threshold == nil || *a.Threshold != want || a.Scope.Project != "alerted" {
			t.Errorf("alert %d: threshold %v scope %+v, want %s", i, a.Threshold, a.Scope, want)
		}
	}
	waitFor(t, "the deliverer woken", func() bool { return f.wakes.Load() >= 1 })

	out := s.mustCLI("status", "--json")
	if !strings.Contains(out, `"alerts"`) || !strings.Contains(out, `"ops"`) {
		t.Errorf("status lacks the channel: %s", out)
	}
	if strings.Contains(out, "SECRETPATH") || strings.Contains(out, "whsec_") {
		t.Errorf("status shows a credential: %s", out)
	}
	s.stop()
	if !f.stopped.Load() {
		t.Error("the deliverer still runs after shutdown")
	}
	if logs := s.logs.String(); strings.Contains(logs, "SECRETPATH") || strings.Contains(logs, "whsec_") {
		t.Errorf("the log shows a credential: %s", logs)
	}
}

// TestServe_SpikeFreezes: a spend spike with action freeze turns on the
// token's kill switch: the next request is refused 403 kill_switch, and
// the alert says how to resume. Without a channel no deliverer is built.
// The server's clock is moved two spike windows past the token's
// creation: a token needs one window of history before the window its
// spend is a spike in.
func TestServe_SpikeFreezes(t *testing.T) {
	fake := useFakeNotifier(t)
	t.Setenv("HARDCAP_ADMIN_TOKEN", "")
	t.Setenv("HARDCAP_CONFIG", "")
	t.Setenv("OPENAI_API_KEY", "")
	t.Setenv("ANTHROPIC_API_KEY", "")
	cfg, err := parseConfig([]byte(`
alerts:
  anomalies:
    spend_spike: {action: freeze, factor: 1, floor_usd: "0.000000001"}
`), defaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = "127.0.0.1:0"
	var ahead atomic.Int64
	s := launch(t, &Main{Config: cfg, Demo: true, Now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }})
	s.mustCLI("project", "create", "alerted", "--budget", "1")
	var created struct {
		Token string `json:"token"`
	}
	decodeJSON(t, s.mustCLI("token", "create", "--project", "alerted", "--json"), &created)
	token := created.Token
	ahead.Store(int64(21 * time.Minute))
	if code, body := embed(t, s, token); code != 200 {
		t.Fatalf("first request: %d %s", code, body)
	}
	db := s.main.db
	var got []alert.Entry
	waitFor(t, "the spike alert", func() bool {
		got = alertsOf(t, db, alert.TypeSpendSpike)
		return len(got) > 0
	})
	if a := got[0].Alert; a.Action != alert.ActionFreeze || !strings.Contains(a.Details["resume"], "hardcap resume") {
		t.Errorf("alert %+v", a)
	}
	code, body := embed(t, s, token)
	if code != 403 || !strings.Contains(body, "kill_switch") {
		t.Fatalf("after the freeze: %d %s, want 403 kill_switch", code, body)
	}
	if *fake != nil {
		t.Error("a deliverer was built with no channel configured")
	}
	if !strings.Contains(s.logs.String(), "alerts: no channel configured") {
		t.Error("no log line says no channel is configured")
	}
}
