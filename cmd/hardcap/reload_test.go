package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/hardcap/hardcap/internal/holdup"
	"github.com/hardcap/hardcap/storage"
)

// hupConfig is a config whose openai provider is at upstream, with
// gpt-4o-mini at in and out USD per million tokens; providers is added
// under providers:, extra at the top level.
func hupConfig(upstream, in, out, providers, extra string) string {
	return fmt.Sprintf(`listen: 127.0.0.1:0
providers:
  openai:
    base_url: %s
    api_key: env:HARDCAP_TEST_FAKE_KEY
%sprices:
  overrides:
    - {provider: openai, model: gpt-4o-mini, input_mtok: "%s", output_mtok: "%s"}
log:
  level: debug
  format: json
%s`, upstream, providers, in, out, extra)
}

// hupServer is a server in this process started from a config file, with
// SIGHUP delivered through its Hangups channel.
type hupServer struct {
	*server
	path string
	hups chan os.Signal
	n    int
}

func startHup(t *testing.T, config string) *hupServer {
	t.Helper()
	t.Setenv("HARDCAP_TEST_FAKE_KEY", fakeKey)
	t.Setenv("HARDCAP_ADMIN_TOKEN", "")
	path := filepath.Join(t.TempDir(), "hardcap.yaml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	hups := make(chan os.Signal, 1)
	s := launch(t, &Main{Config: cfg, ConfigPath: path, Hangups: hups})
	return &hupServer{server: s, path: path, hups: hups}
}

// Messages of a reload's outcome.
const (
	reloadedMsg = "config reloaded"
	refusedMsg  = "SIGHUP: the config was refused; the running config is kept"
)

// reload writes config over the file, sends a SIGHUP and returns the
// reload's outcome line, once the reload (and its key re-read) is done.
func (h *hupServer) reload(t *testing.T, config string) map[string]any {
	t.Helper()
	if err := os.WriteFile(h.path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	h.hups <- syscall.SIGHUP
	h.n++
	waitFor(t, "the SIGHUP's key re-read", func() bool { return len(logLines(h.logs.String(), "SIGHUP: provider keys re-read")) >= h.n })
	var outcomes []map[string]any
	for _, l := range logLines(h.logs.String(), "") {
		if l["message"] == reloadedMsg || l["message"] == refusedMsg {
			outcomes = append(outcomes, l)
		}
	}
	if len(outcomes) != h.n {
		t.Fatalf("%d reload outcomes logged after %d SIGHUPs", len(outcomes), h.n)
	}
	return outcomes[h.n-1]
}

// logLines returns the JSON log lines with message msg (every line for "").
func logLines(logs, msg string) []map[string]any {
	var out []map[string]any
	for _, l := range strings.Split(logs, "\n") {
		var line map[string]any
		if json.Unmarshal([]byte(l), &line) == nil && (msg == "" || line["message"] == msg) {
			out = append(out, line)
		}
	}
	return out
}

// names is a log line's list field as strings.
func names(line map[string]any, field string) []string {
	var out []string
	vs, _ := line[field].([]any)
	for _, v := range vs {
		s, _ := v.(string)
		out = append(out, s)
	}
	return out
}

// post sends a chat body to path with token and returns the status and
// the body; safe from any goroutine.
func post(base, path, token, body string) (int, string, error) {
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// records returns every usage record, the settlements queued so far
// written first.
func (h *hupServer) records(t *testing.T) []budget.Record {
	t.Helper()
	if err := h.main.db.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	u, err := h.main.db.Usage(storage.RecordFilter{})
	if err != nil {
		t.Fatal(err)
	}
	return u.Records
}

// charge is tokens times USD per million tokens, exact.
func charge(t *testing.T, u budget.Usage, in, out string) budget.Money {
	t.Helper()
	ri, err := pricing.ParseRate(in)
	if err != nil {
		t.Fatal(err)
	}
	ro, err := pricing.ParseRate(out)
	if err != nil {
		t.Fatal(err)
	}
	m, err := budget.Cost(budget.TokenCharge{Tokens: u.InputTokens, Rate: ri}, budget.TokenCharge{Tokens: u.OutputTokens, Rate: ro})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

const miniChat = `{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"hello there"}]}`

// TestReload_UnderLoad: a SIGHUP while a stream is in flight and other
// requests keep coming drops none of them. The stream is charged at the
// prices it started with, each concurrent request at the old or the new
// prices (never a mix), and the requests after the reload at the new
// ones; the provider the reload adds is routable, and the reload's line
// names what changed.
func TestReload_UnderLoad(t *testing.T) {
	up := fakeopenai.New(t, fakeopenai.Options{APIKey: fakeKey})
	front := holdup.New(t, up.URL())
	// The stream goes through "streamer", held after its first event.
	streamer := fmt.Sprintf("  streamer:\n    base_url: %s\n    api_key: env:HARDCAP_TEST_FAKE_KEY\n    prices: openai\n", front.URL())
	h := startHup(t, hupConfig(up.URL(), "1", "2", streamer, ""))
	tok := h.newToken("web")

	req, _ := http.NewRequest("POST", h.url+"/p/streamer/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"a stream"}]}`))
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("the stream's first line: %q, %v", line, err)
	}

	var wg sync.WaitGroup
	results := make(chan string, 20)
	for range 4 {
		wg.Go(func() {
			for range 5 {
				code, body, err := post(h.url, "/v1/chat/completions", tok, miniChat)
				if err != nil || code != http.StatusOK {
					results <- fmt.Sprintf("%d %v %s", code, err, body)
					continue
				}
				results <- ""
			}
		})
	}
	second := fmt.Sprintf("  second:\n    base_url: %s\n    api_key: env:HARDCAP_TEST_FAKE_KEY\n    prices: openai\n", up.URL())
	line := h.reload(t, hupConfig(up.URL(), "100", "200", streamer+second, ""))
	wg.Wait()
	close(results)
	for r := range results {
		if r != "" {
			t.Fatalf("a request during the reload failed: %s", r)
		}
	}
	if line["message"] != reloadedMsg || !slices.Equal(names(line, "providers_added"), []string{"second"}) ||
		!slices.Equal(names(line, "changed"), []string{"prices"}) || len(names(line, "providers_changed")) != 0 {
		t.Fatalf("the reload's line: %v", line)
	}
	for _, rec := range h.records(t) {
		if rec.Provider == "streamer" {
			t.Fatal("the stream settled before the reload: it was not in flight")
		}
	}
	front.Release()
	if rest, err := io.ReadAll(br); err != nil || !strings.Contains(string(rest), "[DONE]") {
		t.Fatalf("the stream after the reload: %v\n%s", err, rest)
	}
	if code, body, err := post(h.url, "/p/second/v1/chat/completions", tok, miniChat); err != nil || code != http.StatusOK {
		t.Fatalf("the added provider: %d %v %s", code, err, body)
	}
	if code, body, err := post(h.url, "/v1/chat/completions", tok, miniChat); err != nil || code != http.StatusOK {
		t.Fatalf("after the reload: %d %v %s", code, err, body)
	}

	var recs []budget.Record
	waitFor(t, "23 usage records", func() bool { recs = h.records(t); return len(recs) >= 23 })
	count := map[string]int{}
	var lastOpenAI *budget.Record
	for i := range recs {
		rec := &recs[i]
		count[rec.Provider]++
		old, next := charge(t, rec.Usage, "1", "2"), charge(t, rec.Usage, "100", "200")
		switch {
		case rec.Status != http.StatusOK:
			t.Fatalf("record %+v: not a success", rec)
		case rec.Provider == "streamer" && rec.Charged != old:
			t.Fatalf("the stream in flight was charged %s, want %s (the prices it started with)", rec.Charged, old)
		case rec.Provider == "second" && rec.Charged != next:
			t.Fatalf("the added provider's request was charged %s, want %s", rec.Charged, next)
		case rec.Charged != old && rec.Charged != next:
			t.Fatalf("a request during the reload was charged %s: neither %s nor %s", rec.Charged, old, next)
		}
		if rec.Provider == "openai" && (lastOpenAI == nil || rec.Time.After(lastOpenAI.Time)) {
			lastOpenAI = rec
		}
	}
	if count["streamer"] != 1 || count["second"] != 1 || count["openai"] != 21 {
		t.Fatalf("records by provider: %v, want the stream, 20 requests during the reload, one after it and one at the added provider", count)
	}
	if want := charge(t, lastOpenAI.Usage, "100", "200"); lastOpenAI.Charged != want {
		t.Fatalf("the request after the reload was charged %s, want %s", lastOpenAI.Charged, want)
	}
}

// TestReload_RemovedProvider: a provider the reload removes answers the
// unknown-provider refusal; the one left serves on.
func TestReload_RemovedProvider(t *testing.T) {
	up := fakeopenai.New(t, fakeopenai.Options{APIKey: fakeKey})
	extra := fmt.Sprintf("  extra:\n    base_url: %s\n    api_key: env:HARDCAP_TEST_FAKE_KEY\n    prices: openai\n", up.URL())
	h := startHup(t, hupConfig(up.URL(), "1", "2", extra, ""))
	tok := h.newToken("web")
	if code, body, err := post(h.url, "/p/extra/v1/chat/completions", tok, miniChat); err != nil || code != http.StatusOK {
		t.Fatalf("before: %d %v %s", code, err, body)
	}
	line := h.reload(t, hupConfig(up.URL(), "1", "2", "", ""))
	if !slices.Equal(names(line, "providers_removed"), []string{"extra"}) || len(names(line, "changed")) != 0 {
		t.Fatalf("the reload's line: %v", line)
	}
	code, body, err := post(h.url, "/p/extra/v1/chat/completions", tok, miniChat)
	if err != nil || code != http.StatusForbidden || !strings.Contains(body, `no provider named \"extra\"`) {
		t.Fatalf("the removed provider: %d %v %s", code, err, body)
	}
	if code, body, err := post(h.url, "/v1/chat/completions", tok, miniChat); err != nil || code != http.StatusOK {
		t.Fatalf("the provider left: %d %v %s", code, err, body)
	}
	// The key ledger keeps the removed provider's record, no longer
	// configured.
	var keys struct {
		Keys []struct {
			Provider   string
			Configured bool
		}
	}
	decodeJSON(t, h.mustCLI("keys", "--json"), &keys)
	configured := map[string]bool{}
	for _, k := range keys.Keys {
		configured[k.Provider] = k.Configured
	}
	if len(configured) != 2 || !configured["openai"] || configured["extra"] {
		t.Fatalf("the key ledger after the reload: %+v, want openai configured and extra not", keys)
	}
}

// TestReload_BadConfigRefused: a config with a YAML error, a bad provider
// kind or a bad alert threshold is refused whole: the error line says
// why, the keys are still re-read, and the old config (its prices
// included) keeps serving. A good config after them applies.
func TestReload_BadConfigRefused(t *testing.T) {
	up := fakeopenai.New(t, fakeopenai.Options{APIKey: fakeKey})
	good := hupConfig(up.URL(), "1", "2", "", "")
	h := startHup(t, good)
	tok := h.newToken("web")
	for _, tt := range []struct {
		name, config, why string
	}{
		{"yaml", hupConfig(up.URL(), "100", "200", "", "budget: [unclosed\n"), "invalid YAML"},
		{"provider kind", hupConfig(up.URL(), "100", "200", "  other:\n    kind: grpc\n    base_url: http://127.0.0.1:1\n    api_key: env:X\n", ""), "providers.other.kind"},
		{"threshold", hupConfig(up.URL(), "100", "200", "", "alerts:\n  thresholds: [12]\n"), "alerts.thresholds"},
		{"log level", strings.Replace(hupConfig(up.URL(), "100", "200", "", ""), "level: debug", "level: loud", 1), "log.level"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			line := h.reload(t, tt.config)
			if line["message"] != refusedMsg || line["level"] != "error" || !strings.Contains(fmt.Sprint(line["error"]), tt.why) {
				t.Fatalf("the reload's line: %v, want a refusal naming %q", line, tt.why)
			}
			code, body, err := post(h.url, "/v1/chat/completions", tok, miniChat)
			if err != nil || code != http.StatusOK {
				t.Fatalf("after the refusal: %d %v %s", code, err, body)
			}
			recs := h.records(t)
			if last := recs[len(recs)-1]; last.Charged != charge(t, last.Usage, "1", "2") {
				t.Fatalf("after the refusal a request was charged %s, not at the old prices", last.Charged)
			}
		})
	}
	if line := h.reload(t, hupConfig(up.URL(), "100", "200", "", "")); line["message"] != reloadedMsg {
		t.Fatalf("the good config after the refusals: %v", line)
	}
	if code, body, err := post(h.url, "/v1/chat/completions", tok, miniChat); err != nil || code != http.StatusOK {
		t.Fatalf("after the good reload: %d %v %s", code, err, body)
	}
	recs := h.records(t)
	if last := recs[len(recs)-1]; last.Charged != charge(t, last.Usage, "100", "200") {
		t.Fatalf("after the good reload a request was charged %s, not at the new prices", last.Charged)
	}
	if strings.Contains(h.logs.String(), fakeKey) {
		t.Fatal("the log holds the provider key")
	}
}

// TestReload_AlertsAndRestartKeys: a reload that adds a threshold and a
// webhook channel takes effect on the next request (its threshold alert is
// raised and delivered by the new deliverer); keys that need a restart
// are named in a warning and keep their running values; log.level
// changes at once.
func TestReload_AlertsAndRestartKeys(t *testing.T) {
	up := fakeopenai.New(t, fakeopenai.Options{APIKey: fakeKey})
	rcv := newHookReceiver(t)
	t.Setenv("HARDCAP_TEST_WEBHOOK_SECRET", hookSecret)
	h := startHup(t, hupConfig(up.URL(), "100", "200", "", "alerts:\n  thresholds: [1]\n"))
	tok := h.newToken("web")
	if _, err := h.cli("alerts", "test"); err == nil || !strings.Contains(err.Error(), "no alert channel is configured") {
		t.Fatalf("alerts test before the reload: %v", err)
	}
	// The threshold is a millionth of the project's 1 USD: one request
	// crosses it.
	next := strings.Replace(hupConfig(up.URL(), "100", "200", "", rcv.config("  thresholds: [0.000001]\n")), "level: debug", "level: info", 1)
	next += "max_connections: 7\nbudget:\n  on_low: reject\n"
	line := h.reload(t, next)
	if line["message"] != reloadedMsg || !slices.Contains(names(line, "changed"), "alerts") || !slices.Contains(names(line, "changed"), "log.level") {
		t.Fatalf("the reload's line: %v", line)
	}
	warn := logLines(h.logs.String(), "SIGHUP: these config keys change only with a restart; their running values are kept")
	if len(warn) != 1 || !slices.Equal(names(warn[0], "keys"), []string{"max_connections", "budget.on_low"}) {
		t.Fatalf("the restart warning: %v", warn)
	}
	if got := h.main.liveConfig(); got.MaxConnections != h.main.Config.MaxConnections || got.Budget.OnLow != "" {
		t.Fatalf("a restart key took the new value: max_connections %d, on_low %q", got.MaxConnections, got.Budget.OnLow)
	}
	if code, body, err := post(h.url, "/v1/chat/completions", tok, miniChat); err != nil || code != http.StatusOK {
		t.Fatalf("after the reload: %d %v %s", code, err, body)
	}
	waitFor(t, "the threshold alert at the new channel", func() bool {
		got, _ := rcv.ofType(alert.TypeThreshold)
		return len(got) > 0
	})
	if out := h.mustCLI("alerts", "test"); !strings.Contains(out, "ops: delivered") {
		t.Fatalf("alerts test after the reload: %q", out)
	}
	// log.level info: the debug lines stop.
	before := len(logLines(h.logs.String(), ""))
	h.main.log.Debug().Msg("a debug line after the reload")
	h.main.log.Info().Msg("an info line after the reload")
	lines := logLines(h.logs.String(), "")[before:]
	if len(logLines(h.logs.String(), "a debug line after the reload")) != 0 || len(logLines(h.logs.String(), "an info line after the reload")) != 1 {
		t.Fatalf("after log.level info: %v", lines)
	}
	if strings.Contains(h.logs.String(), hookSecret) {
		t.Fatal("the log holds the webhook secret")
	}
}

// TestSignals_HangupReloadsConfig: a real hardcap process reloads its
// config file at SIGHUP: a price change applies to the next request, and
// a broken file is refused with the running config kept.
func TestSignals_HangupReloadsConfig(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	up := fakeopenai.New(t, fakeopenai.Options{APIKey: fakeKey})
	t.Setenv("HARDCAP_TEST_FAKE_KEY", fakeKey)
	dir, dataDir := t.TempDir(), t.TempDir()
	cfgPath := filepath.Join(dir, "hardcap.yaml")
	write := func(cfg string) {
		t.Helper()
		if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(hupConfig(up.URL(), "1", "2", "", ""))
	c := startChild(t, cfgPath, dataDir)
	var tok struct {
		Token string `json:"token"`
	}
	c.post(t, "/admin/v1/projects", `{"name":"web"}`, &struct{}{})
	c.post(t, "/admin/v1/tokens", `{"project":"web"}`, &tok)
	spent := func() budget.Money {
		t.Helper()
		var u struct {
			Records []budget.Record `json:"records"`
		}
		c.admin(t, "/admin/v1/usage", &u)
		if len(u.Records) == 0 {
			t.Fatal("no usage record")
		}
		last := u.Records[len(u.Records)-1]
		return last.Charged - charge(t, last.Usage, "100", "200")
	}
	send := func() {
		t.Helper()
		if code, body, err := post(c.url, "/v1/chat/completions", tok.Token, miniChat); err != nil || code != http.StatusOK {
			t.Fatalf("chat: %d %v %s", code, err, body)
		}
	}

	write(hupConfig(up.URL(), "100", "200", "", ""))
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitLogLine(t, c, reloadedMsg, 1)
	send()
	// Settlements are written asynchronously: wait for this one.
	waitFor(t, "the request's record", func() bool {
		var u struct{ Records []budget.Record }
		c.admin(t, "/admin/v1/usage", &u)
		return len(u.Records) == 1
	})
	if d := spent(); d != 0 {
		t.Fatalf("after the reload the request was charged %s off the new prices", d)
	}

	write("providers: [\n")
	if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	line := waitLogLine(t, c, refusedMsg, 1)
	if !strings.Contains(fmt.Sprint(line["error"]), "YAML") {
		t.Fatalf("the refusal: %v", line)
	}
	waitLogLine(t, c, "SIGHUP: provider keys re-read", 2)
	send()
	waitFor(t, "the second record", func() bool {
		var u struct{ Records []budget.Record }
		c.admin(t, "/admin/v1/usage", &u)
		return len(u.Records) == 2
	})
	if d := spent(); d != 0 {
		t.Fatalf("after the refused reload the request was charged %s off the prices kept", d)
	}
}

// TestExamples_ContainerConfig: the container's config passes the checks
// a start runs.
func TestExamples_ContainerConfig(t *testing.T) {
	cfg, err := loadConfig(filepath.Join("..", "..", "examples", "container.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cfg.check(); err != nil {
		t.Fatal(err)
	}
	if _, err := parseLogLevel(cfg.Log); err != nil {
		t.Fatal(err)
	}
	if cfg.DataDir != "/data" || cfg.Listen != "0.0.0.0:8787" {
		t.Fatalf("data_dir %q, listen %q: want the Containerfile's volume and port", cfg.DataDir, cfg.Listen)
	}
}
