package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/alert/webhook"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/proxy/admin"
	"github.com/hardcap/hardcap/storage"
	"github.com/rs/zerolog"
)

// TestCLI_AlertAt: --alert-at sets a project's and a token's thresholds on
// create and set, default goes back to the config's, and a bad share is a
// usage error that sends nothing.
func TestCLI_AlertAt(t *testing.T) {
	s := startServer(t, "")
	if out := s.mustCLI("project", "create", "web", "--budget", "10", "--alert-at", "0.9,0.5"); !strings.Contains(out, "alerts at 0.5, 0.9") {
		t.Fatalf("project create printed %q", out)
	}
	if out := s.mustCLI("project", "list"); !strings.Contains(out, "ALERT AT") || !strings.Contains(out, "0.5,0.9") {
		t.Fatalf("project list printed %q", out)
	}
	if out := s.mustCLI("project", "set", "web", "--alert-at", "default"); !strings.Contains(out, "alerts at the config's thresholds") {
		t.Fatalf("project set --alert-at default printed %q", out)
	}
	if out := s.mustCLI("project", "set", "web", "--alert-at", "0.8"); !strings.Contains(out, "alerts at 0.8") || !strings.Contains(out, "budget 10.000000") {
		t.Fatalf("project set --alert-at 0.8 printed %q", out)
	}
	var created struct {
		ID      string   `json:"id"`
		AlertAt []string `json:"alert_at"`
	}
	decodeJSON(t, s.mustCLI("token", "create", "--project", "web", "--alert-at", "0.25", "--json"), &created)
	if strings.Join(created.AlertAt, ",") != "0.25" {
		t.Fatalf("token create --json alert_at %v", created.AlertAt)
	}
	if out := s.mustCLI("token", "show", created.ID); !strings.Contains(out, "alert at") || !strings.Contains(out, "0.25") {
		t.Fatalf("token show printed %q", out)
	}
	if out := s.mustCLI("token", "set", created.ID, "--alert-at", ""); !strings.Contains(out, "alerts at the config's thresholds") {
		t.Fatalf("token set --alert-at \"\" printed %q", out)
	}
	for _, args := range [][]string{
		{"project", "create", "api", "--alert-at", "0,0.5"},
		{"project", "set", "web", "--alert-at", "half"},
		{"token", "create", "--project", "web", "--alert-at", "11"},
		{"token", "set", created.ID, "--alert-at", "0.5,,0.9"},
	} {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append(args, "--server", s.url, "--data-dir", s.dataDir), &out, &errOut)
		if code != 2 || !strings.Contains(errOut.String(), "--alert-at") {
			t.Errorf("hardcap %v: exit %d (%s), want 2 naming --alert-at", args, code, errOut.String())
		}
	}
	ps, err := s.main.db.Projects()
	if err != nil || len(ps) != 1 || len(ps[0].AlertAt) != 1 || ps[0].AlertAt[0] != 800_000 {
		t.Fatalf("projects after the refusals %+v (%v)", ps, err)
	}
	if tok, err := s.main.db.Token(created.ID); err != nil || len(tok.AlertAt) != 0 {
		t.Fatalf("token thresholds %v (%v), want the config's", tok.AlertAt, err)
	}
}

// TestCLI_AlertsList: hardcap alerts prints each alert's scope, action,
// delivery per channel and its message on one row, clipped; --json has the
// message whole; --type and --limit select.
func TestCLI_AlertsList(t *testing.T) {
	s := startServer(t, "")
	if out := s.mustCLI("alerts"); !strings.Contains(out, "no alerts") {
		t.Fatalf("alerts with none printed %q", out)
	}
	db := s.main.db
	now := time.Now()
	long := "Token tok_a was used from a new address 203.0.113.9.\nIf that is not you, run hardcap kill --token tok_a and rotate it. " + strings.Repeat("x", 100) + " END"
	ip := raiseAt(t, db, alert.Alert{Type: alert.TypeNewIP, Time: now.Add(-3 * time.Hour), Scope: alert.Scope{Kind: "token", TokenID: "tok_a"}, Message: long})
	mustSet(t, db, ip.Alert.ID, alert.Delivery{Channel: "ops", State: alert.Delivered, Attempts: 1}, false)
	mustSet(t, db, ip.Alert.ID, alert.Delivery{Channel: "slack-1", State: alert.Pending, Attempts: 3, Error: "status 503"}, false)
	frozen := raiseAt(t, db, alert.Alert{Type: alert.TypeFrozen, Time: now.Add(-2 * time.Hour), Scope: alert.Scope{Kind: "project", Project: "web"}, Message: "frozen", Action: alert.ActionFreeze})
	mustSet(t, db, frozen.Alert.ID, alert.Delivery{Channel: "ops", State: alert.Failed, Attempts: 9}, true)
	raiseAt(t, db, alert.Alert{Type: alert.TypeKeyRejected, Time: now.Add(-time.Hour), Scope: alert.Scope{Kind: "provider", Provider: "openai"}, Message: "401"})
	raiseAt(t, db, alert.Alert{Type: alert.TypeThreshold, Time: now.Add(-time.Minute), Scope: alert.Scope{Kind: "global"}, Message: "half"})

	out := s.mustCLI("alerts")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) < 5 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[0], "DELIVERY") {
		t.Fatalf("alerts printed %q", out)
	}
	for i, want := range [][]string{
		{"budget.threshold", "global", "alert", " - ", "half"},
		{"anomaly.key_rejected", "provider openai", "401"},
		{"token.frozen", "project web", "freeze", "ops:failed", "frozen"},
		{"anomaly.new_ip", "token tok_a", "ops:delivered,slack-1:pending(3)", "203.0.113.9. If that"},
	} {
		for _, w := range want {
			if !strings.Contains(lines[i+1], w) {
				t.Errorf("row %d %q lacks %q", i+1, lines[i+1], w)
			}
		}
	}
	if strings.Contains(out, "END") {
		t.Errorf("the table shows a long message whole: %q", out)
	}
	var listed admin.AlertsView
	decodeJSON(t, s.mustCLI("alerts", "--json", "--type", "anomaly.new_ip"), &listed)
	if len(listed.Alerts) != 1 || listed.Alerts[0].Alert.Message != long || len(listed.Alerts[0].Deliveries) != 2 {
		t.Fatalf("alerts --json --type got %+v", listed.Alerts)
	}
	if out := s.mustCLI("alerts", "--limit", "1"); strings.Count(out, "\n") != 4 || !strings.Contains(out, "half") {
		t.Fatalf("alerts --limit 1 printed %q", out)
	}
	if out := s.mustCLI("alerts", "--since", "90m"); !strings.Contains(out, "2 alert(s)") {
		t.Fatalf("alerts --since 90m printed %q", out)
	}
	for _, args := range [][]string{{"alerts", "--type", "nope"}, {"alerts", "--since", "soon"}, {"alerts", "--limit", "5000"}} {
		if _, err := s.cli(args...); err == nil || !strings.Contains(err.Error(), "invalid_request") {
			t.Errorf("hardcap %v: got %v, want invalid_request", args, err)
		}
	}
	if _, err := s.cli("alerts", "--limit", "-1"); err == nil || !strings.Contains(err.Error(), "exit 2") {
		t.Errorf("alerts --limit -1: got %v, want a usage error", err)
	}
	// No channel is configured: the test is refused, and status says so.
	if _, err := s.cli("alerts", "test"); err == nil || !strings.Contains(err.Error(), "no alert channel is configured") {
		t.Errorf("alerts test with no channel: got %v", err)
	}
	if out := s.mustCLI("status"); !strings.Contains(out, "alerts: no channel configured") || !strings.Contains(out, "3 recorded and not sent, 1 with a failed channel") {
		t.Errorf("status printed %q", out)
	}
}

func raiseAt(t *testing.T, db *storage.DB, a alert.Alert) alert.Entry {
	t.Helper()
	e, ok, err := db.RaiseAlert(context.Background(), a, storage.RaiseOptions{})
	if err != nil || !ok {
		t.Fatalf("RaiseAlert: %v %v", ok, err)
	}
	return e
}

// mustSet records a delivery; done says every channel of the alert is
// final.
func mustSet(t *testing.T, db *storage.DB, id string, d alert.Delivery, done bool) {
	t.Helper()
	if err := db.SetDelivery(context.Background(), id, d, done); err != nil {
		t.Fatal(err)
	}
}

// fakeChannels is alert delivery with fixed outcomes per channel: a
// channel in fail answers 500, an e-mail channel has no status.
type fakeChannels struct {
	channels []webhook.ChannelInfo
	fail     map[string]bool
}

func (f fakeChannels) Channels() []webhook.ChannelInfo { return f.channels }

func (f fakeChannels) DeliverNow(_ context.Context, e alert.Entry) []webhook.Result {
	var out []webhook.Result
	for _, ch := range e.Channels {
		switch {
		case f.fail[ch]:
			out = append(out, webhook.Result{Channel: ch, Status: 500, Error: "status 500"})
		case ch == "mail":
			out = append(out, webhook.Result{Channel: ch, OK: true})
		default:
			out = append(out, webhook.Result{Channel: ch, OK: true, Status: 200})
		}
	}
	return out
}

// alertsAPI is the admin API over a fresh database with channels as its
// alert delivery; the CLI reaches it with $HARDCAP_ADMIN_TOKEN.
func alertsAPI(t *testing.T, channels fakeChannels) (string, *storage.DB) {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "hardcap.db"), storage.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	const token = "hcadmin_alertscli"
	t.Setenv("HARDCAP_ADMIN_TOKEN", token)
	srv := httptest.NewServer(admin.New(admin.Options{DB: db, Proxy: proxy.New(proxy.Options{Tokens: db, Ledger: db}),
		AdminToken: token, Log: zerolog.Nop(), Notifier: channels}))
	t.Cleanup(srv.Close)
	return srv.URL, db
}

func TestCLI_AlertsTest(t *testing.T) {
	url, db := alertsAPI(t, fakeChannels{
		channels: []webhook.ChannelInfo{{Name: "ops", Kind: "json", Signed: true}, {Name: "slack-1", Kind: "slack"}, {Name: "mail", Kind: "email"}},
		fail:     map[string]bool{"slack-1": true},
	})
	cli := func(args ...string) (int, string, string) {
		var out, errOut bytes.Buffer
		code := run(context.Background(), append(args, "--server", url), &out, &errOut)
		return code, out.String(), errOut.String()
	}
	code, out, errOut := cli("alerts", "test")
	if code != 1 || !strings.Contains(out, "ops: delivered (200)\n") || !strings.Contains(out, "slack-1: failed: status 500\n") ||
		!strings.Contains(out, "mail: delivered\n") || !strings.Contains(errOut, "1 of 3 channel(s) failed") {
		t.Fatalf("alerts test: exit %d, %q, %q", code, out, errOut)
	}
	if code, out, errOut = cli("alerts", "test", "--channel", "ops"); code != 0 || out != "ops: delivered (200)\n" {
		t.Fatalf("alerts test --channel ops: exit %d, %q, %q", code, out, errOut)
	}
	if code, out, _ = cli("alerts", "test", "--channel", "slack-1", "--json"); code != 1 || !strings.Contains(out, `"results"`) || !strings.Contains(out, `"status 500"`) {
		t.Fatalf("alerts test --json of a failing channel: exit %d, %q", code, out)
	}
	if code, _, errOut = cli("alerts", "test", "--channel", "pager"); code != 1 || !strings.Contains(errOut, "ops, slack-1, mail") {
		t.Fatalf("alerts test --channel pager: exit %d, %q", code, errOut)
	}
	es, err := db.Alerts(storage.AlertFilter{Type: alert.TypeTest})
	if err != nil || len(es) != 3 {
		t.Fatalf("outbox holds %d test alerts (%v), want 3", len(es), err)
	}
	if fmt.Sprint(es[0].Channels) != "[slack-1]" || fmt.Sprint(es[2].Channels) != "[ops slack-1 mail]" {
		t.Fatalf("test alert channels %v, %v", es[0].Channels, es[2].Channels)
	}
	if code, out, _ = cli("status"); code != 0 || !strings.Contains(out, "alerts: channels ops (json, signed), slack-1 (slack), mail (email)") {
		t.Fatalf("status: exit %d, %q", code, out)
	}
}

func TestAlertsCLI_Usage(t *testing.T) {
	for _, args := range [][]string{{"alerts", "bogus"}, {"alerts", "test", "extra"}, {"alerts", "--nope"}} {
		var out, errOut bytes.Buffer
		if code := run(context.Background(), args, &out, &errOut); code != 2 {
			t.Errorf("hardcap %v: exit %d, want 2 (%s)", args, code, errOut.String())
		}
	}
	var out, errOut bytes.Buffer
	if code := run(context.Background(), []string{"help", "alerts", "test"}, &out, &errOut); code != 0 || !strings.Contains(out.String(), "--channel") || !strings.Contains(out.String(), "Example:") {
		t.Errorf("help alerts test: exit %d: %s", code, out.String())
	}
}
