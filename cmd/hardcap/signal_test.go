package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
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

// TestSignals_HangupReloadsKeys: SIGHUP does not end the server; it
// re-reads the provider key sources as hardcap keys reload does (a changed
// key file is a rotation by the actor "signal") and logs one info line with
// what changed. A source that fails keeps the key read before. SIGTERM
// still stops the server cleanly, pid file removed.
func TestSignals_HangupReloadsKeys(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	up := fakeopenai.New(t, fakeopenai.Options{APIKey: fakeKey})
	dir, dataDir := t.TempDir(), t.TempDir()
	keyFile := filepath.Join(dir, "openai.key")
	writeKey := func(key string) {
		t.Helper()
		if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	writeKey(fakeKey)
	cfgPath := filepath.Join(dir, "hardcap.yaml")
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\nproviders:\n  openai:\n    base_url: %s\n    api_key: file:%s\nlog:\n  level: debug\n  format: json\n", up.URL(), keyFile)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c := startChild(t, cfgPath, dataDir)
	// The first read (at the start) is recorded before the key changes.
	waitLogLine(t, c, "provider key recorded in the key ledger", 1)

	type keysView struct {
		Keys []struct {
			Fingerprint string
			ReadError   string `json:"read_error"`
			History     []struct{ Fingerprint string }
		}
	}
	var before keysView
	c.admin(t, "/admin/v1/keys", &before)
	const hup = "SIGHUP: provider keys re-read"
	steps := []struct {
		name   string
		change func()
		field  string // the log line's field that names openai
		failed bool
	}{
		{"unchanged", func() {}, "unchanged", false},
		{"new key", func() { writeKey(newFakeKey) }, "changed", false},
		{"unreadable", func() { _ = os.Remove(keyFile) }, "failed", true},
	}
	for i, st := range steps {
		st.change()
		if err := c.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		line := waitLogLine(t, c, hup, i+1)
		names, _ := line[st.field].([]any)
		if line["level"] != "info" || len(names) != 1 || !strings.HasPrefix(names[0].(string), "openai") {
			t.Fatalf("%s: the SIGHUP line is %v, want openai in %q", st.name, line, st.field)
		}
		if st.failed && !strings.Contains(names[0].(string), "file:"+keyFile) {
			t.Fatalf("%s: the failure does not name the source: %v", st.name, line)
		}
	}
	// Still serving: the new key is current, the old one replaced, the
	// failed read reported and the key read before kept.
	var after keysView
	c.admin(t, "/admin/v1/keys", &after)
	if len(after.Keys) != 1 || after.Keys[0].Fingerprint == before.Keys[0].Fingerprint || len(after.Keys[0].History) != 1 ||
		after.Keys[0].History[0].Fingerprint != before.Keys[0].Fingerprint || after.Keys[0].ReadError == "" {
		t.Fatalf("keys after the SIGHUPs: %+v (before %+v)", after, before)
	}
	var log struct {
		Entries []struct{ Actor, Action, Kind string }
	}
	c.admin(t, "/admin/v1/log", &log)
	rotations := 0
	for _, e := range log.Entries {
		if e.Kind == "provider_key" && e.Action == "rotate" {
			rotations++
			if e.Actor != hangupActor {
				t.Fatalf("the rotation's actor is %q, want %q", e.Actor, hangupActor)
			}
		}
	}
	if rotations != 1 {
		t.Fatalf("audit log %+v: want one rotation", log.Entries)
	}
	for _, key := range []string{fakeKey, newFakeKey} {
		if strings.Contains(c.logs.String(), key) {
			t.Fatal("the log holds a provider key")
		}
	}

	exited := make(chan error, 1)
	go func() { exited <- c.cmd.Wait() }()
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, c.logs.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the server did not stop")
	}
	if _, err := os.Stat(filepath.Join(dataDir, pidFile)); !os.IsNotExist(err) {
		t.Fatalf("the pid file is left: %v", err)
	}
}

// waitLogLine waits until the child has logged the n-th line with message
// msg and returns it. The deadline only guards against a hang.
func waitLogLine(t *testing.T, c *child, msg string, n int) map[string]any {
	t.Helper()
	guard := time.Now().Add(20 * time.Second)
	for {
		seen := 0
		for _, l := range strings.Split(c.logs.String(), "\n") {
			var line map[string]any
			if json.Unmarshal([]byte(l), &line) == nil && line["message"] == msg {
				if seen++; seen == n {
					return line
				}
			}
		}
		if time.Now().After(guard) {
			t.Fatalf("no log line %d %q:\n%s", n, msg, c.logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
}
