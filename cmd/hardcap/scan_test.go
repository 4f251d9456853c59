package main

import (
	"bytes"
	"context"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/scan"
	"github.com/hardcap/hardcap/tokens"
)

// fakeOpenAIKey is a key in the shape the gitleaks OpenAI rule knows,
// built at run time so that no source file holds one.
func fakeOpenAIKey(seed uint64) string {
	const alnum = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
	r := rand.New(rand.NewPCG(seed, seed+1))
	part := func() string {
		b := make([]byte, 74)
		for i := range b {
			b[i] = alnum[r.IntN(len(alnum))]
		}
		return string(b)
	}
	return "sk-" + "proj-" + part() + "T3Blbk" + "FJ" + part()
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// runCLI runs a command line and returns its exit code and outputs.
func runCLI(args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// noLeak fails when any output holds one of the secrets.
func noLeak(t *testing.T, outputs []string, secrets ...string) {
	t.Helper()
	for _, o := range outputs {
		for _, s := range secrets {
			if strings.Contains(o, s) {
				t.Errorf("output holds a whole secret:\n%s", o)
			}
		}
	}
}

// TestScan_Tokens: each hardcap token found is named by the server (by
// hash), a provider key by its provider and where to revoke it, and no
// output, text or JSON, holds a secret.
func TestScan_Tokens(t *testing.T) {
	s := startServer(t, "")
	live, gone := s.newToken("web"), s.newToken("old")
	liveID, goneID := s.tokenID("web"), s.tokenID("old")
	s.mustCLI("token", "revoke", goneID)
	stranger, _ := tokens.NewSecret()
	key := fakeOpenAIKey(1)

	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "app", ".env"), "OPENAI_API_KEY="+key+"\nHARDCAP_TOKEN="+live+"\n")
	writeFile(t, filepath.Join(dir, "old.txt"), "token "+gone+"\nother "+stranger+"\n")
	writeFile(t, filepath.Join(dir, "clean.md"), "nothing\n")

	code, out, errOut := runCLI("scan", dir, "--server", s.url, "--data-dir", s.dataDir)
	noLeak(t, []string{out, errOut}, live, gone, stranger, key)
	if code != 1 {
		t.Fatalf("exit %d, want 1 on a finding\n%s%s", code, out, errOut)
	}
	for _, want := range []string{
		filepath.Join(dir, "app", ".env") + ":1: openai-api-key " + key[:6] + "..." + key[len(key)-4:],
		"OpenAI key: revoke it at https://platform.openai.com/api-keys",
		filepath.Join(dir, "app", ".env") + ":2: hardcap-token " + live[:6] + "..." + live[len(live)-4:],
		"hardcap token " + liveID + " (project web): live; revoke it: hardcap token revoke " + liveID,
		"hardcap token " + goneID + " (project old): revoked, no longer accepted",
		"hardcap token unknown to the server at " + s.url,
		"4 secret(s) found in 3 file(s)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}

	code, out, errOut = runCLI("scan", dir, "--json", "--server", s.url, "--data-dir", s.dataDir)
	noLeak(t, []string{out, errOut}, live, gone, stranger, key, tokens.HashOf(live).String())
	var got scanJSON
	decodeJSON(t, out, &got)
	if code != 1 || len(got.Findings) != 4 || got.Files != 3 {
		t.Fatalf("exit %d, %+v", code, got)
	}
	states := map[string]string{}
	for _, f := range got.Findings {
		switch {
		case f.Token != nil:
			states[f.Token.ID] = f.Token.State
		case f.Unknown:
			states["unknown"] = f.Secret
		case f.Kind == scan.ProviderKey:
			states["provider"] = f.Provider
		}
	}
	if states[liveID] != "active" || states[goneID] != "revoked" || states["unknown"] != stranger[:6]+"..."+stranger[len(stranger)-4:] || states["provider"] != "OpenAI" {
		t.Errorf("findings %+v", states)
	}
}

// tokenID returns the id of the only token of a project.
func (s *server) tokenID(project string) string {
	s.t.Helper()
	var list struct{ Tokens []struct{ ID string } }
	decodeJSON(s.t, s.mustCLI("token", "list", "--project", project, "--json"), &list)
	if len(list.Tokens) != 1 {
		s.t.Fatalf("project %s has %d tokens, want 1", project, len(list.Tokens))
	}
	return list.Tokens[0].ID
}

func TestScan_Revoke(t *testing.T) {
	s := startServer(t, "")
	live := s.newToken("web")
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "leak.sh"), "curl -H 'Authorization: Bearer "+live+"'\n")
	flags := []string{"--server", s.url, "--data-dir", s.dataDir}
	oldIn, oldTerm := scanStdin, stdinIsTerminal
	t.Cleanup(func() { scanStdin, stdinIsTerminal = oldIn, oldTerm })

	// Not a terminal and no --yes: refused before anything is done.
	stdinIsTerminal = func() bool { return false }
	if code, _, errOut := runCLI(append([]string{"scan", dir, "--revoke"}, flags...)...); code != 2 || !strings.Contains(errOut, "add --yes") {
		t.Errorf("--revoke off a terminal: exit %d, %s", code, errOut)
	}
	// A terminal answering no: nothing revoked.
	stdinIsTerminal = func() bool { return true }
	scanStdin = strings.NewReader("no\n")
	code, out, errOut := runCLI(append([]string{"scan", dir, "--revoke"}, flags...)...)
	if code != 1 || !strings.Contains(errOut, "Type yes to revoke") || !strings.Contains(errOut, "nothing revoked") || !strings.Contains(out, "live; revoke it") {
		t.Errorf("answered no: exit %d\n%s%s", code, out, errOut)
	}
	if status, _ := chat(t, s.url, live, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`); status != 200 {
		t.Fatalf("after no, the token is refused: %d", status)
	}
	// yes: revoked, and the app's next request is refused.
	scanStdin = strings.NewReader("yes\n")
	code, out, errOut = runCLI(append([]string{"scan", dir, "--revoke"}, flags...)...)
	noLeak(t, []string{out, errOut}, live)
	if code != 1 || !strings.Contains(out, "revoked now") {
		t.Errorf("answered yes: exit %d\n%s%s", code, out, errOut)
	}
	if status, _ := chat(t, s.url, live, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5}`); status != 401 {
		t.Errorf("after --revoke the token still works: %d", status)
	}
	// Again with --yes: nothing live is left to revoke.
	stdinIsTerminal = func() bool { return false }
	code, out, errOut = runCLI(append([]string{"scan", dir, "--revoke", "--yes", "--json"}, flags...)...)
	var got scanJSON
	decodeJSON(t, out, &got)
	if code != 1 || len(got.Revoked) != 0 || got.Findings[0].Token.State != "revoked" || !strings.Contains(errOut, "none is revoked") {
		t.Errorf("second --revoke: exit %d, %+v, %s", code, got, errOut)
	}
}

// TestScan_NoServer: without a server the findings stand, each token
// saying it could not be looked up.
func TestScan_NoServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	t.Setenv("HARDCAP_ADMIN_TOKEN", "x")
	secret, _ := tokens.NewSecret()
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "a.txt"), secret)
	code, out, errOut := runCLI("scan", dir, "--server", closed, "--timeout", "2s")
	noLeak(t, []string{out, errOut}, secret)
	if code != 1 || !strings.Contains(out, "hardcap token; could not look it up: cannot reach hardcap at http://"+closed) {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
}

func TestScan_ExitCodes(t *testing.T) {
	clean := t.TempDir()
	writeFile(t, filepath.Join(clean, "a.go"), "package a\n")
	odd := t.TempDir()
	writeFile(t, filepath.Join(odd, "blob.bin"), "\x00\x01")
	if err := os.Symlink("nowhere", filepath.Join(odd, "dangling")); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		args []string
		code int
		want string
	}{
		{"clean", []string{"scan", clean}, 0, "no secrets found in 1 file(s)"},
		{"missing path", []string{"scan", clean, filepath.Join(clean, "nope")}, 2, "no such file or directory"},
		{"dangling link", []string{"scan", clean, filepath.Join(odd, "dangling")}, 2, "a symbolic link to a path that does not exist"},
		{"binary", []string{"scan", filepath.Join(odd, "blob.bin")}, 0, "no secrets found in 0 file(s), 1 binary file(s) scanned for hardcap tokens only"},
		{"hook with a path", []string{"scan", "--install-hook", clean}, 2, "--install-hook takes no PATH"},
		{"git and staged", []string{"scan", "--git", "--staged"}, 2, "choose one"},
		{"yes alone", []string{"scan", "--yes", clean}, 2, "--yes only goes with --revoke"},
		{"unknown flag", []string{"scan", "--nope"}, 2, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, out, errOut := runCLI(tt.args...)
			if code != tt.code || !strings.Contains(out+errOut, tt.want) {
				t.Errorf("exit %d, want %d saying %q\n%s%s", code, tt.code, tt.want, out, errOut)
			}
		})
	}
}

// TestScan_Unreadable: a directory the walk cannot open (its path is over
// the system's limit, which stops root too) is reported, the rest is
// scanned, and the exit status says the scan is incomplete.
func TestScan_Unreadable(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, filepath.Join(dir, "ok.txt"), "fine\n")
	root, err := os.OpenRoot(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer root.Close()
	rel := "deep"
	for range 25 {
		rel = filepath.Join(rel, strings.Repeat("d", 200))
	}
	if err := root.MkdirAll(rel, 0o755); err != nil {
		t.Fatal(err)
	}
	code, out, errOut := runCLI("scan", dir)
	if code != 1 || !strings.Contains(errOut, "not scanned: cannot read") || !strings.Contains(errOut, "could not be scanned") || !strings.Contains(out, "no secrets found in 1 file(s)") {
		t.Errorf("exit %d\n%s%s", code, out, errOut)
	}
}

// gitEnv isolates git from the machine's config, or skips without git.
func gitEnv(t *testing.T) func(dir string, args ...string) string {
	t.Helper()
	if !scan.GitInstalled() {
		t.Skip("git is not installed; install git (e.g. apt-get install git) to run the git scans' tests")
	}
	for k, v := range map[string]string{
		"GIT_CONFIG_GLOBAL": os.DevNull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "t",
		"GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t", "GIT_COMMITTER_EMAIL": "t@example.com",
	} {
		t.Setenv(k, v)
	}
	return func(dir string, args ...string) string {
		t.Helper()
		out, err := exec.Command("git", append([]string{"-C", dir}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
}

func TestScan_Git(t *testing.T) {
	git := gitEnv(t)
	dir := t.TempDir()
	git(dir, "init", "-q")
	key := fakeOpenAIKey(9)
	writeFile(t, filepath.Join(dir, "cfg.py"), "KEY = '"+key+"'\n")
	git(dir, "add", "-A")
	git(dir, "commit", "-qm", "leak")
	sha := git(dir, "rev-parse", "HEAD")
	writeFile(t, filepath.Join(dir, "cfg.py"), "KEY = os.environ['KEY']\n")
	git(dir, "commit", "-qam", "fix")
	// The files are clean now; the history is not.
	if code, out, _ := runCLI("scan", dir); code != 0 {
		t.Errorf("files: exit %d\n%s", code, out)
	}
	code, out, errOut := runCLI("scan", "--git", dir)
	noLeak(t, []string{out, errOut}, key)
	if code != 1 || !strings.Contains(out, "cfg.py:1 (commit "+sha[:12]+"): openai-api-key") || !strings.Contains(out, "in 2 commit(s)") {
		t.Errorf("--git: exit %d\n%s%s", code, out, errOut)
	}
	code, out, _ = runCLI("scan", "--git", "--json", dir)
	var got scanJSON
	decodeJSON(t, out, &got)
	if code != 1 || len(got.Findings) != 1 || got.Findings[0].Commit != sha || got.Commits != 2 {
		t.Errorf("--git --json: exit %d, %+v", code, got)
	}
	t.Setenv("GIT_CEILING_DIRECTORIES", os.TempDir())
	if code, _, errOut := runCLI("scan", "--git", t.TempDir()); code != 2 || !strings.Contains(errOut, "not a git repository") {
		t.Errorf("--git outside a repository: exit %d, %s", code, errOut)
	}
}

// TestScan_Hook installs the pre-commit hook and commits through it, with
// this test binary standing in for hardcap on PATH: a commit adding a key
// is refused, a clean one goes through, another hook is left alone.
func TestScan_Hook(t *testing.T) {
	git := gitEnv(t)
	dir := t.TempDir()
	git(dir, "init", "-q")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	shim := "#!/bin/sh\nHARDCAP_TEST_RUN_MAIN=1 exec '" + self + "' \"$@\"\n"
	if err := os.WriteFile(filepath.Join(bin, "hardcap"), []byte(shim), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("HARDCAP_ADMIN_TOKEN", "")
	t.Setenv("HARDCAP_DATA_DIR", t.TempDir())
	t.Chdir(dir)

	code, out, errOut := runCLI("scan", "--install-hook")
	if code != 0 || !strings.Contains(out, "installed .git/hooks/pre-commit") {
		t.Fatalf("install: exit %d\n%s%s", code, out, errOut)
	}
	if code, out, _ := runCLI("scan", "--install-hook"); code != 0 || !strings.Contains(out, "already hardcap's hook") {
		t.Errorf("second install: exit %d, %s", code, out)
	}

	key := fakeOpenAIKey(3)
	writeFile(t, filepath.Join(dir, "ok.txt"), "fine\n")
	git(dir, "add", "ok.txt")
	git(dir, "commit", "-qm", "clean")
	writeFile(t, filepath.Join(dir, "settings.env"), "OPENAI_API_KEY="+key+"\n")
	git(dir, "add", "settings.env")
	cmd := exec.Command("git", "-C", dir, "commit", "-qm", "leak")
	combined, err := cmd.CombinedOutput()
	noLeak(t, []string{string(combined)}, key)
	if err == nil || !strings.Contains(string(combined), "settings.env:1: openai-api-key") {
		t.Fatalf("a commit adding a key went through the hook: %v\n%s", err, combined)
	}
	if n := git(dir, "rev-list", "--count", "HEAD"); n != "1" {
		t.Errorf("%s commits, want 1", n)
	}

	hook := filepath.Join(dir, ".git", "hooks", "pre-commit")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\nexit 0\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCLI("scan", "--install-hook"); code != 1 || !strings.Contains(errOut, "a different pre-commit hook exists") {
		t.Errorf("over another hook: exit %d, %s", code, errOut)
	}
	if b, _ := os.ReadFile(hook); string(b) != "#!/bin/sh\nexit 0\n" {
		t.Errorf("the other hook became %q", b)
	}
}

// TestScanAdvice covers the states a token's lookup can report.
func TestScanAdvice(t *testing.T) {
	until := time.Date(2026, 12, 2, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		tok  scanTokenJSON
		want string
	}{
		{scanTokenJSON{ID: "tok_a", Project: "p", Name: "ci", State: "active"}, "hardcap token tok_a (project p, name ci): live; revoke it: hardcap token revoke tok_a"},
		{scanTokenJSON{ID: "tok_a", Project: "p", State: "killed"}, "kill switch on, but a resume brings it back"},
		{scanTokenJSON{ID: "tok_a", Project: "p", State: "expired"}, "expired, no longer accepted"},
		{scanTokenJSON{ID: "tok_a", Project: "p", State: "rotated", PreviousSecret: true}, "a secret its rotation replaced; no longer accepted"},
		{scanTokenJSON{ID: "tok_a", Project: "p", State: "active", PreviousSecret: true, ValidUntil: until}, "still accepted until 2026-12-02T00:00:00Z (grace)"},
	}
	for _, tt := range tests {
		tok := tt.tok
		got := advice(scanFindingJSON{Finding: scan.Finding{Kind: scan.HardcapToken}, Token: &tok}, "http://x", nil)
		if !strings.Contains(got, tt.want) {
			t.Errorf("advice for %+v = %q, want %q", tt.tok, got, tt.want)
		}
	}
}
