package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/audit"
	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/hardcap/hardcap/internal/testlog"
)

// auditClock is the server's clock in the audit tests, moved by hand.
type auditClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *auditClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *auditClock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// startAuditServer is startServer on a clock, with the config file given
// (its text: %s is the fake upstream's URL) and known to the server as its
// config path.
func startAuditServer(t *testing.T, clock *auditClock, config string) *server {
	t.Helper()
	t.Setenv("HARDCAP_TEST_FAKE_KEY", fakeKey)
	t.Setenv("HARDCAP_ADMIN_TOKEN", "")
	s := &server{t: t, up: fakeopenai.New(t, fakeopenai.Options{APIKey: fakeKey}), dataDir: t.TempDir(), logs: &testlog.Buffer{}}
	path := filepath.Join(t.TempDir(), "hardcap.yaml")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(config, s.up.URL())), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := loadConfig(path)
	if err != nil {
		t.Fatal(err)
	}
	s.main = &Main{Config: cfg, DataDir: s.dataDir, LogOutput: s.logs, Now: clock.Now, ConfigPath: path}
	if err := s.main.Open(); err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + s.main.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() { s.done <- s.main.Run(ctx) }()
	t.Cleanup(s.stop)
	return s
}

const auditConfig = `listen: 127.0.0.1:0
providers:
  openai:
    base_url: %s
    api_key: env:HARDCAP_TEST_FAKE_KEY
log:
  level: debug
  format: json
`

// auditRun runs a hardcap audit command line against s with stdin, and
// returns its exit code, stdout and stderr.
func auditRun(s *server, stdin string, terminal bool, args ...string) (int, string, string) {
	s.t.Helper()
	oldIn, oldTerm := auditStdin, stdinIsTerminal
	auditStdin, stdinIsTerminal = strings.NewReader(stdin), func() bool { return terminal }
	defer func() { auditStdin, stdinIsTerminal = oldIn, oldTerm }()
	return runCmd(s.t, append(append([]string{"audit"}, args...), "--server", s.url, "--data-dir", s.dataDir)...)
}

// auditJSON runs audit --json and decodes the report.
func auditJSON(s *server, args ...string) (int, audit.Report) {
	s.t.Helper()
	code, out, errOut := auditRun(s, "", false, append(args, "--json")...)
	var rep audit.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		s.t.Fatalf("audit --json: exit %d, not a report (%v): %s %s", code, err, out, errOut)
	}
	return code, rep
}

func openKeys(rep audit.Report) string {
	var out []string
	for _, f := range rep.Findings {
		out = append(out, f.Severity.String()+" "+f.Key())
	}
	return strings.Join(out, ",")
}

// createToken creates a token of project web and returns its id and
// secret.
func createToken(t *testing.T, s *server, args ...string) (id, secret string) {
	t.Helper()
	var tok struct{ ID, Token string }
	decodeJSON(t, s.mustCLI(append([]string{"token", "create", "--project", "web", "--json"}, args...)...), &tok)
	return tok.ID, tok.Token
}

func TestAudit_ExitCodesFixAndAck(t *testing.T) {
	clock := &auditClock{t: time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)}
	s := startAuditServer(t, clock, auditConfig)
	s.mustCLI("project", "create", "web")
	idle, _ := createToken(t, s)
	// A second token, six days younger: not yet a zombie when the first is
	// (whether or not its use is recorded, so no request is made with it).
	clock.Add(6 * 24 * time.Hour)
	used, _ := createToken(t, s, "--budget", "5")

	code, out, _ := auditRun(s, "", false)
	if code != 0 || !strings.Contains(out, "MEDIUM    token-unbounded  "+idle) || !strings.Contains(out, "fix: hardcap token set "+idle) {
		t.Fatalf("audit: exit %d, %s; want 0 and the unbounded token with its fix", code, out)
	}
	tests := []struct {
		name string
		args []string
		code int
	}{
		{"medium fails --fail-on medium", []string{"--fail-on", "medium"}, 1},
		{"low fails --fail-on low", []string{"--fail-on", "low"}, 1},
		{"nothing critical", []string{"--fail-on", "critical"}, 0},
		{"bad severity", []string{"--fail-on", "urgent"}, 2},
		{"a positional", []string{"now"}, 2},
		{"--yes without --fix", []string{"--yes"}, 2},
		{"--fix without a terminal", []string{"--fix"}, 2},
		{"--ack and --fix", []string{"--ack", "auto-topup:openai", "--fix", "--yes"}, 2},
		{"--ack not a key", []string{"--ack", "openai"}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if code, out, errOut := auditRun(s, "", false, tt.args...); code != tt.code {
				t.Fatalf("exit %d, want %d: %s %s", code, tt.code, out, errOut)
			}
		})
	}

	// Eight days after its creation, the first token, never used, is a
	// zombie: high, exit 1.
	clock.Add(2 * 24 * time.Hour)
	code, rep := auditJSON(s)
	if code != 1 || !strings.HasPrefix(openKeys(rep), "high zombie-token:"+idle) || strings.Contains(openKeys(rep), "zombie-token:"+used) {
		t.Fatalf("after 8 days: exit %d, %s; want 1 with the first token a zombie and the second not", code, openKeys(rep))
	}
	code, out, _ = auditRun(s, "n\n", true, "--fix")
	if code != 1 || !strings.Contains(out, "Revoke 1 zombie token(s): "+idle+"? [y/N] ") || !strings.Contains(out, "nothing revoked") {
		t.Fatalf("--fix answered n: exit %d, %s", code, out)
	}
	if out := s.mustCLI("token", "list"); !strings.Contains(out, idle) || strings.Contains(out, "revoked") {
		t.Fatalf("after n, token list: %s", out)
	}
	code, out, errOut := auditRun(s, "y\n", true, "--fix")
	if code != 0 || !strings.Contains(out, "token "+idle+" revoked") {
		t.Fatalf("--fix answered y: exit %d, %s %s", code, out, errOut)
	}
	var list struct{ Tokens []struct{ ID, State string } }
	decodeJSON(t, s.mustCLI("token", "list", "--json"), &list)
	for _, tok := range list.Tokens {
		if want := map[bool]string{true: "revoked", false: "active"}[tok.ID == idle]; tok.State != want {
			t.Fatalf("token %s is %s after --fix, want %s", tok.ID, tok.State, want)
		}
	}
	if code, rep := auditJSON(s); code != 0 || strings.Contains(openKeys(rep), idle) {
		t.Fatalf("after --fix: exit %d, %s", code, openKeys(rep))
	}

	// --yes revokes without asking: the second token, now a zombie too.
	clock.Add(31 * 24 * time.Hour)
	code, out, _ = auditRun(s, "", false, "--fix", "--yes")
	if code != 0 || strings.Contains(out, "[y/N]") || !strings.Contains(out, "token "+used+" revoked") {
		t.Fatalf("--fix --yes: exit %d, %s", code, out)
	}

	// The auto top-up reminder, dismissed once for good.
	if !strings.Contains(openKeys(rep), "low auto-topup:openai") {
		t.Fatalf("no auto-topup reminder: %s", openKeys(rep))
	}
	if code, out, errOut := auditRun(s, "", false, "--ack", "auto-topup:openai"); code != 0 || !strings.Contains(out, "acknowledged auto-topup:openai") {
		t.Fatalf("--ack: exit %d, %s %s", code, out, errOut)
	}
	if code, out, _ := auditRun(s, "", false, "--ack", "auto-topup:openai"); code != 0 || !strings.Contains(out, "already acknowledged") {
		t.Fatalf("--ack again: exit %d, %s", code, out)
	}
	if code, _, errOut := auditRun(s, "", false, "--ack", "zombie-token:"+idle); code != 1 || !strings.Contains(errOut, "cannot be acknowledged") {
		t.Fatalf("--ack of a zombie: exit %d, %s", code, errOut)
	}
	_, rep = auditJSON(s)
	if strings.Contains(openKeys(rep), "auto-topup") || len(rep.Acknowledged) != 1 || rep.Acknowledged[0].Key() != "auto-topup:openai" {
		t.Fatalf("after --ack: open %s, acknowledged %+v", openKeys(rep), rep.Acknowledged)
	}

	// The embedded price data, 90 days on, is stale.
	clock.Add(200 * 24 * time.Hour)
	if _, rep := auditJSON(s); !strings.Contains(openKeys(rep), "medium prices-stale:") {
		t.Fatalf("200 days on: %s, want stale prices", openKeys(rep))
	}
}

func TestAudit_KeyFilesAndKeysInClear(t *testing.T) {
	const (
		oldKey = "sk-ant-api03-OLDKEYwrittenintheconfig0123456789"
		envKey = "sk-proj-ENVKEYinthedatadir0123456789abcdef"
	)
	keyFile := filepath.Join(t.TempDir(), "groq.key")
	if err := os.WriteFile(keyFile, []byte("gsk_FAKEgroqkeyforthetest\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	config := `listen: 127.0.0.1:0
providers:
  openai:
    base_url: %[1]s
    api_key: env:HARDCAP_TEST_FAKE_KEY
  groq:
    kind: openai
    base_url: %[1]s
    api_key: file:` + keyFile + `
# the key before: ` + oldKey + `
`
	clock := &auditClock{t: time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)}
	s := startAuditServer(t, clock, config)
	adminToken := filepath.Join(s.dataDir, "admin.token")
	envFile := filepath.Join(s.dataDir, ".env")
	if err := os.WriteFile(envFile, []byte("OPENAI_API_KEY="+envKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for path, mode := range map[string]os.FileMode{keyFile: 0o640, adminToken: 0o644} {
		if err := os.Chmod(path, mode); err != nil {
			t.Fatal(err)
		}
	}
	code, out, _ := auditRun(s, "", false)
	for _, want := range []string{
		"CRITICAL  key-file-mode  " + adminToken, "fix: chmod 600 " + adminToken,
		"CRITICAL  literal-key  " + envFile, "CRITICAL  literal-key  " + s.main.ConfigPath, "line 10",
		"HIGH      key-file-mode  " + keyFile, "providers.groq.api_key",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("audit output lacks %q", want)
		}
	}
	if code != 1 || t.Failed() {
		t.Fatalf("exit %d: %s", code, out)
	}
	_, raw, _ := auditRun(s, "", false, "--json")
	for _, secret := range []string{oldKey, envKey, "gsk_FAKE", "hcadmin_"} {
		if strings.Contains(out+raw, secret) {
			t.Fatalf("the audit printed the secret %q", secret)
		}
	}

	for _, path := range []string{keyFile, adminToken} {
		if err := os.Chmod(path, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Remove(envFile); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.main.ConfigPath, []byte(strings.Replace(fmt.Sprintf(config, s.up.URL()), oldKey, "(rotated)", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, rep := auditJSON(s, "--fail-on", "high"); code != 0 || strings.Contains(openKeys(rep), "critical") {
		t.Fatalf("after the fixes: exit %d, %s", code, openKeys(rep))
	}
}
