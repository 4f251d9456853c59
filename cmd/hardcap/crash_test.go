package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/hardcap/hardcap/internal/testlog"
)

// child is a hardcap server running as a separate process.
type child struct {
	cmd  *exec.Cmd
	url  string
	logs *testlog.Buffer
}

const crashAdminToken = "hcadmin_crash_test_token"

// startChild runs `hardcap serve` from this test binary (see TestMain) and
// waits until it listens.
func startChild(t *testing.T, cfgPath, dataDir string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "serve", "--config", cfgPath, "--data-dir", dataDir)
	cmd.Env = append(os.Environ(), "HARDCAP_TEST_RUN_MAIN=1", "HARDCAP_ADMIN_TOKEN="+crashAdminToken, "HARDCAP_TEST_FAKE_KEY="+fakeKey)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{cmd: cmd, logs: &testlog.Buffer{}}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			c.logs.Write([]byte(line + "\n"))
			var l struct{ Message, Listen string }
			if json.Unmarshal([]byte(line), &l) == nil && l.Message == "hardcap serving" {
				ready <- l.Listen
			}
		}
	}()
	select {
	case u := <-ready:
		c.url = u
	case <-time.After(20 * time.Second):
		t.Fatalf("the child did not start: %s", c.logs.String())
	}
	return c
}

func (c *child) admin(t *testing.T, path string, v any) {
	t.Helper()
	req, _ := http.NewRequest("GET", c.url+path, nil)
	req.Header.Set("Authorization", "Bearer "+crashAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
	}
	decodeJSON(t, string(b), v)
}

func (c *child) post(t *testing.T, path, body string, v any) {
	t.Helper()
	req, _ := http.NewRequest("POST", c.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+crashAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s: %d %s", path, resp.StatusCode, b)
	}
	decodeJSON(t, string(b), v)
}

// TestCrash_KillNineMidStream kills the server with SIGKILL while streams
// are in flight and restarts it on the same data directory. No reservation
// may dangle, and every request the upstream saw must be charged at least
// what it could bill.
func TestCrash_KillNineMidStream(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	up := fakeopenai.New(t, fakeopenai.Options{APIKey: fakeKey})
	dataDir := t.TempDir()
	cfgPath := writeConfig(t, t.TempDir(), up.URL(), "")
	c := startChild(t, cfgPath, dataDir)

	var proj, tok struct {
		Token string `json:"token"`
	}
	c.post(t, "/admin/v1/projects", `{"name":"web","budget_usd":"1"}`, &proj)
	c.post(t, "/admin/v1/tokens", `{"project":"web"}`, &tok)

	const done, inFlight = 5, 8
	up.SetBehavior(fakeopenai.Behavior{BillAtCap: true})
	for i := 0; i < done; i++ {
		if code, body := chat(t, c.url, tok.Token, `{"model":"gpt-4o-mini","max_tokens":40,"messages":[{"role":"user","content":"finished"}]}`); code != 200 {
			t.Fatalf("got %d: %s", code, body)
		}
	}
	up.SetBehavior(fakeopenai.Behavior{BillAtCap: true, StallAfterEvents: 2})
	var started sync.WaitGroup
	for i := 0; i < inFlight; i++ {
		started.Add(1)
		go func() {
			req, _ := http.NewRequest("POST", c.url+"/v1/chat/completions",
				strings.NewReader(fmt.Sprintf(`{"model":"gpt-4o-mini","stream":true,"max_tokens":%d,"messages":[{"role":"user","content":"in flight"}]}`, 100+i)))
			req.Header.Set("Authorization", "Bearer "+tok.Token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				started.Done()
				return
			}
			defer resp.Body.Close()
			rd := bufio.NewReader(resp.Body)
			_, _ = rd.ReadString('\n') // the first event has arrived
			started.Done()
			_, _ = io.Copy(io.Discard, rd)
		}()
	}
	started.Wait()
	var st struct {
		Open int `json:"open_reservations"`
	}
	c.admin(t, "/admin/v1/status", &st)
	if st.Open != inFlight {
		t.Fatalf("got %d open reservations before the crash, want %d", st.Open, inFlight)
	}

	if err := c.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = c.cmd.Wait()
	waitFor(t, "the upstream to see the streams end", func() bool { return len(up.Calls()) == done+inFlight })

	c2 := startChild(t, cfgPath, dataDir)
	c2.admin(t, "/admin/v1/status", &st)
	if st.Open != 0 {
		t.Fatalf("got %d reservations dangling after restart", st.Open)
	}
	var usage struct {
		Spent   budget.Money `json:"spent_usd"`
		Records []struct {
			ID       string         `json:"id"`
			Outcome  budget.Outcome `json:"outcome"`
			Reserved budget.Money   `json:"reserved_usd"`
			Charged  budget.Money   `json:"charged_usd"`
		} `json:"records"`
	}
	c2.admin(t, "/admin/v1/usage", &usage)
	var billed budget.Money
	for _, call := range up.Calls() {
		// gpt-4o-mini: 150 nano-USD a prompt token, 600 a completion token.
		billed += budget.Money(call.Usage.PromptTokens*150 + call.Usage.CompletionTokens*600)
	}
	seen := map[string]bool{}
	recovered := 0
	for _, r := range usage.Records {
		if seen[r.ID] {
			t.Fatalf("reservation %s charged twice", r.ID)
		}
		seen[r.ID] = true
		if r.Outcome == budget.Recovered {
			recovered++
			if r.Charged != r.Reserved {
				t.Fatalf("recovered %s charged %s of %s, want all of it", r.ID, r.Charged, r.Reserved)
			}
		}
	}
	t.Logf("%d records (%d recovered), charged %s USD, upstream could bill %s USD", len(usage.Records), recovered, usage.Spent, billed)
	if len(usage.Records) != done+inFlight || recovered != inFlight {
		t.Fatalf("got %d records with %d recovered, want %d with %d", len(usage.Records), recovered, done+inFlight, inFlight)
	}
	if usage.Spent < billed {
		t.Fatalf("charged %s, but the upstream could bill %s", usage.Spent, billed)
	}
	if !strings.Contains(c2.logs.String(), "charged in full a reservation the last run left unsettled") {
		t.Fatal("the restart did not log its recovery")
	}
	// The restarted server serves.
	up.SetBehavior(fakeopenai.Behavior{})
	if code, body := chat(t, c2.url, tok.Token, hello); code != 200 {
		t.Fatalf("after restart got %d: %s", code, body)
	}
	if b, _ := os.ReadFile(filepath.Join(dataDir, "hardcap.db")); strings.Contains(string(b), fakeKey) || strings.Contains(string(b), tok.Token) {
		t.Fatal("the database file carries a secret")
	}
}
