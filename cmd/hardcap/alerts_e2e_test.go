package main

import (
	"bufio"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/internal/fakeopenai"
)

// hookSecret is the Standard Webhooks secret of the test receiver.
const hookSecret = "whsec_dGVzdC1zZWNyZXQtb2YtdGhlLXJlY2VpdmVyLTAxMjM0NTY3"

// hookReceiver is a real HTTP receiver of hardcap's JSON webhooks: it
// checks each delivery's Standard Webhooks signature on its own, and
// answers 503 while failing is set.
type hookReceiver struct {
	t       *testing.T
	srv     *httptest.Server
	failing atomic.Bool
	mu      sync.Mutex
	// accepted are the alerts answered 2xx, in order; attempts counts
	// every delivery by alert id.
	accepted []alert.Alert
	attempts map[string]int
	problems []string
}

func newHookReceiver(t *testing.T) *hookReceiver {
	t.Helper()
	h := &hookReceiver{t: t, attempts: map[string]int{}}
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(hookSecret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		id, ts, sig := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp"), r.Header.Get("webhook-signature")
		mac := hmac.New(sha256.New, key)
		mac.Write([]byte(id + "." + ts + "." + string(body)))
		want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
		var a alert.Alert
		h.mu.Lock()
		defer h.mu.Unlock()
		switch sec, err := strconv.ParseInt(ts, 10, 64); {
		case !hmac.Equal([]byte(sig), []byte(want)):
			h.problems = append(h.problems, "bad signature "+sig)
		case err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute:
			h.problems = append(h.problems, "bad timestamp "+ts)
		case json.Unmarshal(body, &a) != nil:
			h.problems = append(h.problems, "body is not an alert: "+string(body))
		case a.ID != id || a.Type == "" || a.Message == "" || a.Time.IsZero() || a.Scope.Kind == "":
			h.problems = append(h.problems, "incomplete alert: "+string(body))
		}
		h.attempts[id]++
		if h.failing.Load() {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		h.accepted = append(h.accepted, a)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

// config is the alerts section that sends everything to the receiver.
func (h *hookReceiver) config(extra string) string {
	return fmt.Sprintf(`alerts:
  webhooks:
    - name: ops
      url: %s/hook
      format: json
      secret: env:HARDCAP_TEST_WEBHOOK_SECRET
%s`, h.srv.URL, extra)
}

// ofType returns the accepted alerts of type typ, and how many distinct
// ids they have.
func (h *hookReceiver) ofType(typ alert.Type) ([]alert.Alert, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []alert.Alert
	ids := map[string]bool{}
	for _, a := range h.accepted {
		if a.Type == typ {
			out = append(out, a)
			ids[a.ID] = true
		}
	}
	return out, len(ids)
}

func (h *hookReceiver) check() {
	h.t.Helper()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.problems) > 0 {
		h.t.Fatalf("the receiver found %d problems, the first: %s", len(h.problems), h.problems[0])
	}
}

// TestAlerts_ThresholdOnceUnderConcurrency: 1,000 concurrent requests
// cross a project's 50 % and 80 % thresholds together; the receiver gets
// each threshold's alert under one id, signed, and nothing else.
func TestAlerts_ThresholdOnceUnderConcurrency(t *testing.T) {
	if testing.Short() {
		t.Skip("1,000 requests")
	}
	t.Setenv("HARDCAP_TEST_WEBHOOK_SECRET", hookSecret)
	h := newHookReceiver(t)
	s := startServer(t, h.config(""))
	s.up.SetBehavior(fakeopenai.Behavior{BillAtCap: true})
	// About 241,500 nano-USD a request (400 output tokens at 600): 1,000
	// requests spend about 0.2415 of the 0.29 budget, past 50 % and 80 %,
	// short of 100 %, and their worst cases (about 0.255 in all) fit
	// together.
	s.mustCLI("project", "create", "crowd", "--budget", "0.29")
	var tok struct{ Token string }
	decodeJSON(t, s.mustCLI("token", "create", "--project", "crowd", "--json"), &tok)

	const n = 1000
	start := make(chan struct{})
	var wg sync.WaitGroup
	var ok atomic.Int64
	var codesMu sync.Mutex
	codes := map[int]int{}
	for range n {
		wg.Go(func() {
			<-start
			req, _ := http.NewRequest("POST", s.url+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","max_tokens":400,"messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("Authorization", "Bearer "+tok.Token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				codesMu.Lock()
				codes[-1]++
				codesMu.Unlock()
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			codesMu.Lock()
			codes[resp.StatusCode]++
			codesMu.Unlock()
			if resp.StatusCode == 200 {
				ok.Add(1)
			}
		})
	}
	close(start)
	wg.Wait()
	if ok.Load() != n {
		t.Fatalf("%d of %d requests succeeded; statuses %v", ok.Load(), n, codes)
	}
	waitFor(t, "both thresholds delivered", func() bool { _, ids := h.ofType(alert.TypeThreshold); return ids >= 2 })
	// Anything late would have arrived by now: delivery is immediate.
	time.Sleep(300 * time.Millisecond)
	h.check()
	got, ids := h.ofType(alert.TypeThreshold)
	if ids != 2 {
		t.Fatalf("got %d threshold alerts (%d ids), want 2: %+v", len(got), ids, got)
	}
	shares := map[string]bool{}
	for _, a := range got {
		if a.Scope.Kind != "project" || a.Scope.Project != "crowd" || a.Threshold == nil || a.Limit == nil {
			t.Fatalf("alert %+v", a)
		}
		shares[a.Threshold.String()] = true
	}
	if !shares["0.5"] || !shares["0.8"] {
		t.Fatalf("thresholds %v, want 0.5 and 0.8", shares)
	}
	h.mu.Lock()
	for _, a := range h.accepted {
		if a.Type != alert.TypeThreshold {
			t.Errorf("an unexpected alert: %s %s", a.Type, a.Message)
		}
	}
	h.mu.Unlock()
}

// TestAlerts_NewAddressFreezesAndResume: with new_ip: freeze, a request
// from an address the token never used is refused, the token is frozen,
// its stream in flight from the known address is cut, the receiver is
// told (with the resume command), and after `hardcap resume` the new
// address works.
func TestAlerts_NewAddressFreezesAndResume(t *testing.T) {
	t.Setenv("HARDCAP_TEST_WEBHOOK_SECRET", hookSecret)
	h := newHookReceiver(t)
	s := startServer(t, "trusted_proxies: [127.0.0.1]\n"+h.config("  anomalies:\n    new_ip: freeze\n"))
	tokenSecret := s.newToken("web")
	send := func(ip, body string) *http.Response {
		req, _ := http.NewRequest("POST", s.url+"/v1/chat/completions", strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tokenSecret)
		req.Header.Set("X-Forwarded-For", ip)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	const small = `{"model":"gpt-4o-mini","max_tokens":5,"messages":[{"role":"user","content":"hi"}]}`
	resp := send("198.51.100.1", small)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("first request: %d", resp.StatusCode)
	}
	// A stream from the known address, held open by the upstream.
	s.up.SetBehavior(fakeopenai.Behavior{StallAfterEvents: 1})
	stream := send("198.51.100.1", `{"model":"gpt-4o-mini","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"long"}]}`)
	defer stream.Body.Close()
	rd := bufio.NewReader(stream.Body)
	if _, err := rd.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	s.up.SetBehavior(fakeopenai.Behavior{})
	cut := make(chan struct{})
	go func() { _, _ = io.Copy(io.Discard, rd); close(cut) }()

	resp = send("203.0.113.50", small)
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 403 || !strings.Contains(string(b), "kill_switch") {
		t.Fatalf("request from a new address: %d %s, want 403 kill_switch", resp.StatusCode, b)
	}
	select {
	case <-cut:
	case <-time.After(10 * time.Second):
		t.Fatal("the frozen token's stream in flight was not cut")
	}
	waitFor(t, "the freeze alerts", func() bool {
		_, a := h.ofType(alert.TypeNewIP)
		_, f := h.ofType(alert.TypeFrozen)
		return a == 1 && f == 1
	})
	h.check()
	ipAlerts, _ := h.ofType(alert.TypeNewIP)
	frozen, _ := h.ofType(alert.TypeFrozen)
	if ipAlerts[0].Action != alert.ActionFreeze || ipAlerts[0].Details["ip"] != "203.0.113.50" {
		t.Fatalf("new_ip alert %+v", ipAlerts[0])
	}
	resume := frozen[0].Details["resume"]
	if !strings.HasPrefix(resume, "hardcap resume --token tok_") || !strings.Contains(frozen[0].Message, resume) {
		t.Fatalf("token.frozen alert %+v", frozen[0])
	}
	s.mustCLI(strings.Fields(resume)[1:]...)
	resp = send("203.0.113.50", small)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("after resume, the address that froze the token: %d", resp.StatusCode)
	}
}

// TestAlerts_DeliveredAfterKillNine: an alert raised while the receiver
// is down survives a kill -9 of hardcap and is delivered after the
// restart, under the id of its failed attempts.
func TestAlerts_DeliveredAfterKillNine(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	t.Setenv("HARDCAP_TEST_WEBHOOK_SECRET", hookSecret)
	h := newHookReceiver(t)
	h.failing.Store(true)
	up := fakeopenai.New(t, fakeopenai.Options{APIKey: fakeKey})
	up.SetBehavior(fakeopenai.Behavior{BillAtCap: true})
	dataDir := t.TempDir()
	cfgPath := writeConfig(t, t.TempDir(), up.URL(), h.config(""))
	c := startChild(t, cfgPath, dataDir)
	var tok struct {
		Token string `json:"token"`
	}
	c.post(t, "/admin/v1/projects", `{"name":"web","budget_usd":"0.0001"}`, &struct{}{})
	c.post(t, "/admin/v1/tokens", `{"project":"web"}`, &tok)
	for range 2 { // 2 x 25,500 nano-USD: past 50 % of 100,000
		if code, body := chat(t, c.url, tok.Token, `{"model":"gpt-4o-mini","max_tokens":40,"messages":[{"role":"user","content":"hi"}]}`); code != 200 {
			t.Fatalf("got %d: %s", code, body)
		}
	}
	var failedID string
	waitFor(t, "a failed delivery attempt", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		for id := range h.attempts {
			failedID = id
		}
		return failedID != ""
	})
	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
	h.failing.Store(false)
	startChild(t, cfgPath, dataDir)
	waitFor(t, "the delivery after the restart", func() bool { _, ids := h.ofType(alert.TypeThreshold); return ids == 1 })
	h.check()
	got, _ := h.ofType(alert.TypeThreshold)
	if got[0].ID != failedID || got[0].Threshold == nil || got[0].Threshold.String() != "0.5" {
		t.Fatalf("delivered %+v, want the alert %s that failed before the crash", got[0], failedID)
	}
}
