package main

import (
	"bufio"
	"errors"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/hardcap/hardcap/internal/fakeopenai"
)

// TestSignals_SecondSignalExitsAtOnce: SIGTERM starts a graceful stop that
// waits for a stuck stream; a second SIGTERM exits at once, and the next
// start charges the cut request in full.
func TestSignals_SecondSignalExitsAtOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	up := fakeopenai.New(t, fakeopenai.Options{APIKey: fakeKey})
	dataDir := t.TempDir()
	cfgPath := writeConfig(t, t.TempDir(), up.URL(), "shutdown_grace: 60s\n")
	c := startChild(t, cfgPath, dataDir)
	var tok struct {
		Token string `json:"token"`
	}
	c.post(t, "/admin/v1/projects", `{"name":"web"}`, &struct{}{})
	c.post(t, "/admin/v1/tokens", `{"project":"web"}`, &tok)
	up.SetBehavior(fakeopenai.Behavior{StallAfterEvents: 2})
	req, _ := http.NewRequest("POST", c.url+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"x"}]}`))
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if _, err := bufio.NewReader(resp.Body).ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- c.cmd.Wait() }()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-exited:
		t.Fatal("the first signal did not wait for the request in flight")
	case <-time.After(500 * time.Millisecond):
	}
	start := time.Now()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 130 {
			t.Fatalf("exit: %v, want code 130", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the second signal did not exit at once")
	}
	t.Logf("exited %s after the second signal", time.Since(start).Round(time.Millisecond))
	up.SetBehavior(fakeopenai.Behavior{})
	c2 := startChild(t, cfgPath, dataDir)
	var st struct {
		Open int `json:"open_reservations"`
	}
	c2.admin(t, "/admin/v1/status", &st)
	if st.Open != 0 || !strings.Contains(c2.logs.String(), "charged in full a reservation the last run left unsettled") {
		t.Fatalf("after restart: %d open, recovery logged = %v", st.Open, strings.Contains(c2.logs.String(), "charged in full"))
	}
}
