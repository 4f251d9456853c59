package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/hardcap/hardcap/internal/testlog"
)

// TestMain lets a test run this binary as the hardcap server in a child
// process (for kill -9 tests): HARDCAP_TEST_RUN_MAIN=1 makes it run main's
// command line instead of the tests.
func TestMain(m *testing.M) {
	if os.Getenv("HARDCAP_TEST_RUN_MAIN") == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

const fakeKey = "sk-proj-FAKEKEYforhardcapcmdtests0123456789abcdef"

// server is a hardcap Main in this process, in front of a fake OpenAI.
type server struct {
	t       *testing.T
	main    *Main
	up      *fakeopenai.Server
	url     string
	dataDir string
	logs    *testlog.Buffer
	cancel  context.CancelFunc
	done    chan error
}

func writeConfig(t *testing.T, dir, upstream, extra string) string {
	t.Helper()
	path := filepath.Join(dir, "hardcap.yaml")
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
providers:
  openai:
    base_url: %s
    api_key: env:HARDCAP_TEST_FAKE_KEY
log:
  level: debug
  format: json
%s`, upstream, extra)
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func startServer(t *testing.T, extraConfig string) *server {
	t.Helper()
	t.Setenv("HARDCAP_TEST_FAKE_KEY", fakeKey)
	t.Setenv("HARDCAP_ADMIN_TOKEN", "")
	s := &server{t: t, up: fakeopenai.New(t, fakeopenai.Options{APIKey: fakeKey}), dataDir: t.TempDir(), logs: &testlog.Buffer{}}
	cfg, err := loadConfig(writeConfig(t, t.TempDir(), s.up.URL(), extraConfig))
	if err != nil {
		t.Fatal(err)
	}
	s.main = &Main{Config: cfg, DataDir: s.dataDir, LogOutput: s.logs}
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

func (s *server) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	if err := <-s.done; err != nil {
		s.t.Errorf("Run: %v", err)
	}
	s.cancel = nil
}

// cli runs a hardcap command against the server and returns its output.
func (s *server) cli(args ...string) (string, error) {
	s.t.Helper()
	var out, errOut bytes.Buffer
	args = append(args, "--server", s.url, "--data-dir", s.dataDir)
	code := run(context.Background(), args, &out, &errOut)
	if code != 0 {
		return out.String(), fmt.Errorf("exit %d: %s", code, errOut.String())
	}
	return out.String(), nil
}

func (s *server) mustCLI(args ...string) string {
	s.t.Helper()
	out, err := s.cli(args...)
	if err != nil {
		s.t.Fatalf("hardcap %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// chat sends a chat completion with a hardcap token.
func chat(t *testing.T, base, token, body string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func decodeJSON(t *testing.T, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, s)
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func httpGet(url string) (int, error) {
	resp, err := http.Get(url)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
