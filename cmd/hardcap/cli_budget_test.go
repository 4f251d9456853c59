package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
)

func TestCLI_ZeroBudgetAndChanges(t *testing.T) {
	s := startServer(t, "")
	if out := s.mustCLI("project", "create", "zero", "--budget", "0"); !strings.Contains(out, "budget 0.000000 USD/total") {
		t.Fatalf("project create --budget 0 printed %q", out)
	}
	if out := s.mustCLI("project", "create", "web", "--budget", "unlimited"); !strings.Contains(out, "budget unlimited") {
		t.Fatalf("project create --budget unlimited printed %q", out)
	}
	var tok struct{ ID, Token string }
	decodeJSON(t, s.mustCLI("token", "create", "--project", "zero", "--json"), &tok)
	code, body := chat(t, s.url, tok.Token, hello)
	if code != 402 || !strings.Contains(body, "hardcap project set zero --budget USD") {
		t.Fatalf("under a zero budget got %d %s", code, body)
	}
	s.mustCLI("project", "set", "zero", "--budget", "1")
	if code, body := chat(t, s.url, tok.Token, hello); code != 200 {
		t.Fatalf("after project set got %d %s", code, body)
	}
	if out := s.mustCLI("project", "set", "zero", "--period", "day"); !strings.Contains(out, "budget 1.000000 USD/day") {
		t.Fatalf("project set --period printed %q", out)
	}
	if _, err := s.cli("project", "set", "zero"); err == nil {
		t.Fatal("project set with no flag succeeded")
	}
	out := s.mustCLI("token", "set", tok.ID, "--rpm", "7", "--budget", "0.5", "--expires", "100y")
	if !strings.Contains(out, "budget 0.500000 USD/total") {
		t.Fatalf("token set printed %q", out)
	}
	var shown struct {
		RPM     int    `json:"rpm"`
		Expires string `json:"expires"`
	}
	decodeJSON(t, s.mustCLI("token", "set", tok.ID, "--name", "ci", "--json"), &shown)
	if shown.RPM != 7 || !strings.HasPrefix(shown.Expires, "21") {
		t.Fatalf("token set changed what it was not given: %+v", shown)
	}
	if _, err := s.cli("token", "set", tok.ID, "--expires", "101y"); err == nil || !strings.Contains(err.Error(), "longer than 100 years") {
		t.Fatalf("--expires 101y: %v", err)
	}
	if _, err := s.cli("project", "delete", "zero"); err == nil || !strings.Contains(err.Error(), "has_tokens") {
		t.Fatalf("deleting a project with a live token: %v", err)
	}
	if out := s.mustCLI("project", "delete", "zero", "--revoke-tokens"); !strings.Contains(out, "1 token(s) revoked") {
		t.Fatalf("project delete --revoke-tokens printed %q", out)
	}
	if code, _ := chat(t, s.url, tok.Token, hello); code != 401 {
		t.Fatalf("a token of a deleted project got %d", code)
	}
	if out := s.mustCLI("usage", "--project", "zero"); !strings.Contains(out, "1 requests") {
		t.Fatalf("the deleted project's records: %q", out)
	}
	if _, err := s.cli("usage", "--project", "never-was"); err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Fatalf("usage --project for an unknown project: %v", err)
	}
	var st struct {
		Global struct {
			Limit *string `json:"limit_usd"`
		} `json:"global"`
	}
	decodeJSON(t, s.mustCLI("status", "--json"), &st)
	if st.Global.Limit != nil {
		t.Fatalf("an unlimited global budget shows as %q, want null", *st.Global.Limit)
	}
}

func TestCLI_GlobalBudgetZeroIsZero(t *testing.T) {
	s := startServer(t, "budget:\n  global: {limit_usd: \"0\"}\n")
	s.mustCLI("project", "create", "web")
	var tok struct{ Token string }
	decodeJSON(t, s.mustCLI("token", "create", "--project", "web", "--json"), &tok)
	if code, body := chat(t, s.url, tok.Token, hello); code != 402 || !strings.Contains(body, "global budget") {
		t.Fatalf("under a zero global budget got %d %s", code, body)
	}
	if out := s.mustCLI("status"); !strings.Contains(out, "global budget: 0.000000 USD/total") {
		t.Fatalf("status printed %q", out)
	}
}

func TestCLI_Help(t *testing.T) {
	tests := []struct {
		args []string
		want []string
	}{
		{[]string{"--help"}, []string{"project set NAME", "project delete NAME [--revoke-tokens]", "token set ID", "db check|recover", "db backup FILE", "--version"}},
		{[]string{"help", "token", "set"}, []string{"-budget", "-models", "-rpm", "-expires", "-name", "-period", "-server", "-timeout", "-json", "Example:\n  hardcap token set"}},
		{[]string{"token", "set", "--help"}, []string{"-budget", "Example:"}},
		{[]string{"project", "create", "-h"}, []string{"-budget", "-period", "Example:\n  hardcap project create"}},
		{[]string{"help", "usage"}, []string{"-limit", "-csv", "-since", "Example:"}},
		{[]string{"serve", "--help"}, []string{"-demo", "-listen", "Example:\n  hardcap serve"}},
		{[]string{"help", "token"}, []string{"hardcap token create", "hardcap token revoke ID"}},
		{[]string{"prices", "--help"}, []string{"hardcap prices check", "hardcap prices update"}},
		{[]string{"help", "db"}, []string{"hardcap db check|recover", "hardcap db backup FILE"}},
		{[]string{"help", "prices", "update"}, []string{"-accept-drops", "Example:"}},
		{[]string{"--version"}, []string{"hardcap ", "commit: ", "price data (embedded): genai-prices as of 2026-08-21, litellm as of 2026-07-24"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out, errOut bytes.Buffer
			if code := run(context.Background(), tt.args, &out, &errOut); code != 0 {
				t.Fatalf("exit %d: %s", code, errOut.String())
			}
			for _, w := range tt.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("output lacks %q:\n%s", w, out.String())
				}
			}
		})
	}
}

func TestCLI_ServerHostPortAndAuthSource(t *testing.T) {
	s := startServer(t, "")
	var out, errOut bytes.Buffer
	hostPort := strings.TrimPrefix(s.url, "http://")
	if code := run(context.Background(), []string{"project", "list", "--server", hostPort, "--data-dir", s.dataDir}, &out, &errOut); code != 0 {
		t.Fatalf("--server host:port: exit %d: %s", code, errOut.String())
	}
	wrong := t.TempDir()
	tokenFile := filepath.Join(wrong, "admin.token")
	if err := os.WriteFile(tokenFile, []byte("hcadmin_wrong\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	errOut.Reset()
	if code := run(context.Background(), []string{"status", "--server", hostPort, "--data-dir", wrong}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), tokenFile) || !strings.Contains(errOut.String(), "401") {
		t.Fatalf("a wrong admin token file: exit %d: %s", code, errOut.String())
	}
	t.Setenv("HARDCAP_ADMIN_TOKEN", "hcadmin_wrong")
	errOut.Reset()
	if code := run(context.Background(), []string{"status", "--server", hostPort}, &out, &errOut); code != 1 || !strings.Contains(errOut.String(), "$HARDCAP_ADMIN_TOKEN") {
		t.Fatalf("a wrong $HARDCAP_ADMIN_TOKEN: exit %d: %s", code, errOut.String())
	}
}

// TestCLI_GivesUpOnASilentServer: a server that accepts the connection and
// never answers is given up on after --timeout, with a message naming it.
func TestCLI_GivesUpOnASilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	done := make(chan struct{})
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() { defer conns.Done(); <-done; c.Close() }()
		}
	}()
	t.Cleanup(func() { ln.Close(); close(done); conns.Wait() })
	t.Setenv("HARDCAP_ADMIN_TOKEN", "hcadmin_x")
	var out, errOut bytes.Buffer
	code := run(context.Background(), []string{"status", "--server", ln.Addr().String(), "--timeout", "300ms"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "did not answer within 300ms") || !strings.Contains(errOut.String(), ln.Addr().String()) {
		t.Fatalf("got exit %d: %s", code, errOut.String())
	}
}

// TestCLI_UsageLimit: the CLI asks for the newest 100 records on a
// terminal, and for all of them with --json or --csv, unless --limit says.
func TestCLI_UsageLimit(t *testing.T) {
	var mu sync.Mutex
	var queries []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		queries = append(queries, r.URL.Query().Get("limit"))
		mu.Unlock()
		io.WriteString(w, `{"matched":0,"spent_usd":"0","reserved_usd":"0","records":[]}`)
	}))
	t.Cleanup(srv.Close)
	t.Setenv("HARDCAP_ADMIN_TOKEN", "hcadmin_x")
	terminal := false
	old := stdoutIsTerminal
	stdoutIsTerminal = func(io.Writer) bool { return terminal }
	t.Cleanup(func() { stdoutIsTerminal = old })
	tests := []struct {
		terminal bool
		args     []string
		want     string
	}{
		{true, nil, "100"},
		{true, []string{"--json"}, ""},
		{true, []string{"--csv"}, ""},
		{true, []string{"--limit", "0"}, ""},
		{true, []string{"--limit", "7"}, "7"},
		{false, nil, ""},
		{false, []string{"--json", "--limit", "3"}, "3"},
	}
	for _, tt := range tests {
		terminal = tt.terminal
		var out, errOut bytes.Buffer
		args := append([]string{"usage", "--server", srv.URL}, tt.args...)
		if code := run(context.Background(), args, &out, &errOut); code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, errOut.String())
		}
		mu.Lock()
		got := queries[len(queries)-1]
		mu.Unlock()
		if got != tt.want {
			t.Errorf("%v on a terminal %v: asked for limit %q, want %q", tt.args, tt.terminal, got, tt.want)
		}
	}
}
