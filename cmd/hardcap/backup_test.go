package main

import (
	"bytes"
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
)

// TestDBBackup_RefusesALiveDatabase is the trial's data loss: a backup
// renamed over the running server's database. Every spelling of that file,
// and the database of another running hardcap, is refused with nothing
// written, and the server's data survives a restart.
func TestDBBackup_RefusesALiveDatabase(t *testing.T) {
	s := startServer(t, "")
	other := startServer(t, "")
	s.mustCLI("project", "create", "before")
	live := filepath.Join(s.dataDir, "hardcap.db")
	link := filepath.Join(t.TempDir(), "link.db")
	if err := os.Symlink(live, link); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, file, says string
	}{
		{"the data dir's database", live, "is the database of the data dir itself"},
		{"through ./", filepath.Join(s.dataDir, ".", "hardcap.db"), "is the database of the data dir itself"},
		{"through a symlink", link, "is the database of the data dir itself"},
		{"another server's database", filepath.Join(other.dataDir, "hardcap.db"), "is the database of a running hardcap"},
		{"the admin token", filepath.Join(s.dataDir, "admin.token"), "one of hardcap's own files"},
		{"the pid file", filepath.Join(s.dataDir, "hardcap.pid"), "one of hardcap's own files"},
		{"another server's admin token", filepath.Join(other.dataDir, "admin.token"), "one of hardcap's own files"},
		{"a directory", s.dataDir, "is a directory"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := os.Stat(tt.file)
			if err != nil {
				t.Fatal(err)
			}
			out, err := s.cli("db", "backup", tt.file)
			if err == nil || !strings.Contains(err.Error(), "exit 2") || !strings.Contains(err.Error(), tt.says) {
				t.Fatalf("db backup %s: %q, %v; want exit 2 saying %q", tt.file, out, err, tt.says)
			}
			after, err := os.Stat(tt.file)
			if err != nil || !os.SameFile(before, after) {
				t.Fatalf("%s was replaced (%v)", tt.file, err)
			}
			for _, dir := range []string{s.dataDir, other.dataDir, filepath.Dir(link)} {
				entries, _ := os.ReadDir(dir)
				for _, e := range entries {
					if strings.Contains(e.Name(), ".tmp") {
						t.Fatalf("%s left in %s", e.Name(), dir)
					}
				}
			}
		})
	}
	// The server still writes to the file it opened, and a restart finds it.
	s.mustCLI("project", "create", "after")
	s.stop()
	other.stop()
	m := &Main{Config: s.main.Config, DataDir: s.dataDir, LogOutput: io.Discard}
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	ps, err := m.db.Projects()
	m.Close()
	if err != nil || len(ps) != 2 {
		t.Fatalf("after a restart: %d projects (%v), want before and after", len(ps), err)
	}
	// A stopped server's database may still not be the target: it is the
	// live file of the data dir the command names.
	if code, _, stderr := runCmd(t, "db", "backup", live, "--server", s.url, "--data-dir", s.dataDir); code != 2 || !strings.Contains(stderr, "is the database of the data dir itself") {
		t.Fatalf("db backup onto a stopped server's database: exit %d, %q", code, stderr)
	}
}

// TestDBBackup_Stdout: "-" writes the checked copy to stdout and nothing
// else, and creates no file named "-"; a terminal is refused.
func TestDBBackup_Stdout(t *testing.T) {
	s := startServer(t, "")
	s.mustCLI("project", "create", "web")
	t.Chdir(t.TempDir())
	out := s.mustCLI("db", "backup", "-")
	if _, err := os.Stat("-"); !os.IsNotExist(err) {
		t.Fatalf("a file named - was written (%v)", err)
	}
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(copyPath, []byte(out), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := storage.Check(copyPath)
	if err != nil || !rep.OK() || rep.Entries["projects"] != 1 {
		t.Fatalf("stdout is not the database: %+v, %v (%d bytes)", rep, err, len(out))
	}

	old := stdoutIsTerminal
	stdoutIsTerminal = func(io.Writer) bool { return true }
	t.Cleanup(func() { stdoutIsTerminal = old })
	out, err = s.cli("db", "backup", "-")
	if err == nil || !strings.Contains(err.Error(), "stdout is a terminal") || out != "" {
		t.Fatalf("db backup - on a terminal: %q, %v; want a refusal", out, err)
	}
}

// silentServer accepts connections and never answers.
func silentServer(t *testing.T) string {
	t.Helper()
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
	return ln.Addr().String()
}

// TestDBBackup_GivesUpOnASilentServer: like every admin command, backup
// gives up after --timeout on a server that accepts and never answers.
func TestDBBackup_GivesUpOnASilentServer(t *testing.T) {
	addr := silentServer(t)
	t.Setenv("HARDCAP_ADMIN_TOKEN", "hcadmin_x")
	file := filepath.Join(t.TempDir(), "backup.db")
	// The context only keeps a failure from hanging the test run; the
	// command must give up on its own, long before it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var out, errOut bytes.Buffer
	code := run(ctx, []string{"db", "backup", file, "--server", addr, "--timeout", "300ms", "--data-dir", t.TempDir()}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "did not answer within 300ms") || !strings.Contains(errOut.String(), addr) {
		t.Fatalf("got exit %d: %s", code, errOut.String())
	}
	if _, err := os.Stat(file); !os.IsNotExist(err) {
		t.Fatalf("%s was written (%v)", file, err)
	}
}

// TestCLI_NamesCheckedBeforeSending: names and ids no project or token can
// have are refused by the CLI with the server's message, short, before
// anything is sent (here nothing listens at all).
func TestCLI_NamesCheckedBeforeSending(t *testing.T) {
	t.Setenv("HARDCAP_ADMIN_TOKEN", "hcadmin_x")
	long := strings.Repeat("p", 100_000)
	const tooLongProject = "a project name has at most 64 characters, this one has 100000 (invalid_request)"
	const unknownToken = "token not found: ppp"
	tests := []struct {
		args []string
		says string
	}{
		{[]string{"usage", "--project", long}, tooLongProject},
		{[]string{"usage", "--token", long}, unknownToken},
		{[]string{"kill", "--project", long}, tooLongProject},
		{[]string{"resume", "--token", long}, unknownToken},
		{[]string{"project", "create", long}, tooLongProject},
		{[]string{"project", "create", "no spaces"}, `"no spaces" (1-64 letters`},
		{[]string{"project", "set", long, "--budget", "5"}, tooLongProject},
		{[]string{"project", "delete", long}, tooLongProject},
		{[]string{"token", "create", "--project", long}, tooLongProject},
		{[]string{"token", "create", "--project", "web", "--name", strings.Repeat("n", tokens.MaxTokenName+1)}, "a token name has at most 128 characters, this one has 129"},
		{[]string{"token", "list", "--project", long}, tooLongProject},
		{[]string{"token", "set", long, "--rpm", "5"}, unknownToken},
		{[]string{"token", "set", "tok_123456789012", "--name", "a\x01b"}, "control characters"},
		{[]string{"token", "revoke", long}, unknownToken},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args[:2], " "), func(t *testing.T) {
			args := append(tt.args, "--server", "127.0.0.1:1", "--timeout", "1s")
			code, out, stderr := runCmd(t, args...)
			if code != 2 || !strings.Contains(stderr, tt.says) || len(stderr) > 300 || out != "" {
				t.Fatalf("exit %d, %d bytes: %.300q; want exit 2 saying %q, short", code, len(stderr), stderr, tt.says)
			}
		})
	}
}

// TestCLI_TooLargeForTheServer: a request over the server's header limit
// (net/http answers 431 or resets the connection) says so, not a raw
// socket error.
func TestCLI_TooLargeForTheServer(t *testing.T) {
	s := startServer(t, "")
	_, err := s.cli("usage", "--since", strings.Repeat("9", 100_000))
	if err == nil || !strings.Contains(err.Error(), "the request was too large for the server") || len(err.Error()) > 300 {
		t.Fatalf("got %.300v; want: the request was too large for the server", err)
	}
}

// TestCLI_ServeHelp: serve's help names every flag in its usage line and
// says the demo simulates both providers.
func TestCLI_ServeHelp(t *testing.T) {
	for _, args := range [][]string{{"help", "serve"}, {"serve", "--help"}} {
		code, out, _ := runCmd(t, args...)
		usageLine, _, _ := strings.Cut(strings.TrimPrefix(out, "Usage:\n"), "\n")
		if code != 0 || !strings.Contains(usageLine, "[--allow-insecure-listen]") {
			t.Errorf("hardcap %v: usage line %q lacks --allow-insecure-listen", args, usageLine)
		}
		if strings.Contains(out, "simulated OpenAI provider") || !strings.Contains(out, "simulated OpenAI and Anthropic providers") {
			t.Errorf("hardcap %v: the demo is described as OpenAI only:\n%s", args, out)
		}
	}
}
