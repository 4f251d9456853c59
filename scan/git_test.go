package scan

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// gitRepo makes an empty repository in a temporary directory, with git
// isolated from the machine's and the user's config. It skips the test
// where git is not installed.
func gitRepo(t *testing.T) (dir string, run func(args ...string) string) {
	t.Helper()
	if !GitInstalled() {
		t.Skip("git is not installed; install git (e.g. apt-get install git) to run the git scans' tests")
	}
	t.Setenv("GIT_CONFIG_GLOBAL", os.DevNull)
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_AUTHOR_NAME", "t")
	t.Setenv("GIT_AUTHOR_EMAIL", "t@example.com")
	t.Setenv("GIT_COMMITTER_NAME", "t")
	t.Setenv("GIT_COMMITTER_EMAIL", "t@example.com")
	dir = t.TempDir()
	run = func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("init", "-q", "-b", "main")
	return dir, run
}

func TestHistory(t *testing.T) {
	dir, git := gitRepo(t)
	hc, oa, an := newToken(t), fakeOpenAI(21), fakeAnthropic(22)
	write(t, filepath.Join(dir, "README.md"), "# app\n\nhello\n")
	git("add", "-A")
	git("commit", "-qm", "first")
	write(t, filepath.Join(dir, "README.md"), "# app\n\nhello\n\nexport OPENAI_API_KEY="+oa+"\n")
	write(t, filepath.Join(dir, "bin.dat"), "\x00\x00"+an)
	git("add", "-A")
	git("commit", "-qm", "oops")
	leaked := git("rev-parse", "HEAD")
	write(t, filepath.Join(dir, "README.md"), "# app\n\nhello\n")
	git("add", "-A")
	git("commit", "-qm", "remove the key")
	// A secret on another branch only.
	git("checkout", "-qb", "side")
	write(t, filepath.Join(dir, "cfg", "side.env"), "X=1\nHC="+hc+"\n")
	git("add", "-A")
	git("commit", "-qm", "side")
	side := git("rev-parse", "HEAD")
	git("checkout", "-q", "main")

	s := newScanner(t)
	res, err := s.History(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	noSecret(t, res.Findings, hc, oa, an)
	type where struct {
		file, commit string
		line         int
	}
	got := map[string]where{}
	for _, f := range res.Findings {
		got[f.Rule] = where{f.File, f.Commit, f.Line}
	}
	want := map[string]where{
		"openai-api-key": {"README.md", leaked, 5},
		TokenRule:        {"cfg/side.env", side, 2},
	}
	if len(got) != len(want) || got["openai-api-key"] != want["openai-api-key"] || got[TokenRule] != want[TokenRule] {
		t.Errorf("findings %+v, want %+v", got, want)
	}
	if res.Commits != 4 || res.Binary != 1 {
		t.Errorf("commits %d, binary %d; want 4 and 1", res.Commits, res.Binary)
	}
}

// TestHistory_RepoConfig: a repository's own settings do not change the
// patches read (no prefixes, colors, another log format).
func TestHistory_RepoConfig(t *testing.T) {
	dir, git := gitRepo(t)
	for _, kv := range [][2]string{{"diff.noprefix", "true"}, {"color.ui", "always"}, {"format.pretty", "oneline"}, {"diff.mnemonicPrefix", "true"}} {
		git("config", kv[0], kv[1])
	}
	hc := newToken(t)
	write(t, filepath.Join(dir, "a b", "é.txt"), "line\n"+hc+"\n")
	git("add", "-A")
	git("commit", "-qm", "one")
	res, err := newScanner(t).History(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 1 || res.Findings[0].File != "a b/é.txt" || res.Findings[0].Line != 2 {
		t.Errorf("findings %+v, want the token in a b/é.txt line 2", res.Findings)
	}
}

func TestStaged(t *testing.T) {
	dir, git := gitRepo(t)
	hc, oa := newToken(t), fakeOpenAI(31)
	write(t, filepath.Join(dir, "committed.txt"), hc+"\n")
	git("add", "-A")
	git("commit", "-qm", "an old leak, not staged now")
	write(t, filepath.Join(dir, "staged.py"), "a = 1\nkey = '"+oa+"'\n")
	write(t, filepath.Join(dir, "unstaged.txt"), newToken(t))
	git("add", "staged.py")
	res, err := newScanner(t).Staged(context.Background(), filepath.Join(dir))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Findings) != 1 || res.Findings[0].File != "staged.py" || res.Findings[0].Line != 2 || res.Findings[0].Commit != "" {
		t.Errorf("findings %+v, want only the staged key, staged.py line 2", res.Findings)
	}
	// Nothing staged: nothing found.
	git("commit", "-qm", "x")
	if res, err := newScanner(t).Staged(context.Background(), dir); err != nil || len(res.Findings) != 0 {
		t.Errorf("nothing staged: %+v, %v", res, err)
	}
}

func TestGit_NotRepo(t *testing.T) {
	if !GitInstalled() {
		t.Skip("git is not installed; install git (e.g. apt-get install git) to run the git scans' tests")
	}
	t.Setenv("GIT_CEILING_DIRECTORIES", os.TempDir())
	dir := t.TempDir()
	s := newScanner(t)
	if _, err := s.History(context.Background(), dir); !errors.Is(err, ErrNotRepo) {
		t.Errorf("History outside a repository: %v, want ErrNotRepo", err)
	}
	if _, err := s.Staged(context.Background(), filepath.Join(dir, "missing")); !errors.Is(err, ErrNoPath) {
		t.Errorf("Staged of a missing directory: %v, want ErrNoPath", err)
	}
	if _, _, err := InstallHook(context.Background(), dir); !errors.Is(err, ErrNotRepo) {
		t.Errorf("InstallHook outside a repository: %v, want ErrNotRepo", err)
	}
}

func TestInstallHook(t *testing.T) {
	dir, git := gitRepo(t)
	ctx := context.Background()
	path, installed, err := InstallHook(ctx, dir)
	if err != nil || !installed || path != filepath.Join(dir, ".git", "hooks", "pre-commit") {
		t.Fatalf("InstallHook: %q, %v, %v", path, installed, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm()&0o100 == 0 {
		t.Fatalf("hook %v, %v: want an executable file", st, err)
	}
	if b, _ := os.ReadFile(path); string(b) != HookScript {
		t.Errorf("hook is %q", b)
	}
	if _, installed, err := InstallHook(ctx, dir); err != nil || installed {
		t.Errorf("second install: %v, %v; want nothing to do", installed, err)
	}
	mine := "#!/bin/sh\nmake lint\n"
	if err := os.WriteFile(path, []byte(mine), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := InstallHook(ctx, dir); !errors.Is(err, ErrHookExists) {
		t.Errorf("over another hook: %v, want ErrHookExists", err)
	}
	if b, _ := os.ReadFile(path); string(b) != mine {
		t.Errorf("the other hook was changed to %q", b)
	}
	// core.hooksPath is where git looks, so the hook goes there.
	git("config", "core.hooksPath", "githooks")
	path, installed, err = InstallHook(ctx, filepath.Join(dir))
	if err != nil || !installed || path != filepath.Join(dir, "githooks", "pre-commit") {
		t.Errorf("with core.hooksPath: %q, %v, %v", path, installed, err)
	}
}
