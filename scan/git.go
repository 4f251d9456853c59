package scan

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"

	"github.com/gitleaks/go-gitdiff/gitdiff"
)

// diffArgs fix the patch format against the repository's own settings
// (diff.noprefix, color.ui, log.showSignature, format.pretty, external
// diff and textconv drivers), so that the parser reads what git writes. -U0
// leaves only the lines a change adds, each hunk's added lines contiguous
// from its new start line.
var diffArgs = []string{
	"-p", "-U0", "--no-color", "--no-ext-diff", "--no-textconv",
	"--src-prefix=a/", "--dst-prefix=b/",
	// Deletions (d) and the rest left out (t, u, x, b) add no line.
	"--diff-filter=tuxdb",
}

// History scans every commit of the git repository holding dir, on every
// branch and tag (git log -p --all --full-history): a secret added in any
// commit is found, even if a later one removed it. Each finding names its
// commit. It returns ErrNoGit or ErrNotRepo before scanning, and ErrGit
// when git fails midway (the findings so far are returned with it).
func (s *Scanner) History(ctx context.Context, dir string) (*Result, error) {
	if err := checkRepo(ctx, dir); err != nil {
		return nil, err
	}
	res := &Result{}
	out, err := git(ctx, dir, "rev-list", "--all", "--count")
	if err != nil {
		return nil, err
	}
	res.Commits, _ = strconv.Atoi(strings.TrimSpace(out))
	args := append([]string{"log", "--full-history", "--all", "--pretty=medium", "--no-show-signature"}, diffArgs...)
	return res, s.diff(ctx, dir, args, res)
}

// Staged scans what is staged for the next commit in the git repository
// holding dir (git diff --cached): the lines the commit would add. It is
// what the pre-commit hook runs. Paths are relative to the repository's
// top.
func (s *Scanner) Staged(ctx context.Context, dir string) (*Result, error) {
	if err := checkRepo(ctx, dir); err != nil {
		return nil, err
	}
	res := &Result{}
	return res, s.diff(ctx, dir, append([]string{"diff", "--cached"}, diffArgs...), res)
}

// checkRepo tells a missing git or a directory outside any repository
// apart from a failing git.
func checkRepo(ctx context.Context, dir string) error {
	if _, err := exec.LookPath("git"); err != nil {
		return ErrNoGit
	}
	if st, err := os.Stat(dir); err != nil || !st.IsDir() {
		return fmt.Errorf("%w: %s", ErrNoPath, Printable(dir))
	}
	if _, err := git(ctx, dir, "rev-parse", "--git-dir"); err != nil {
		return fmt.Errorf("%w: %s", ErrNotRepo, Printable(dir))
	}
	return nil
}

// gitStderr bounds how much of git's error output is kept for a message.
const gitStderr = 4 << 10

// git runs one short git command in dir and returns its output.
func git(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir, "-c", "core.quotePath=false"}, args...)...)
	var stderr limitedBuffer
	stderr.max = gitStderr
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("%w: git %s: %s", ErrGit, args[0], gitMessage(err, stderr.String()))
	}
	return string(out), nil
}

func gitMessage(err error, stderr string) string {
	if msg := strings.TrimSpace(stderr); msg != "" {
		return Printable(strings.ReplaceAll(msg, "\n", "; "))
	}
	return err.Error()
}

// diff runs a git command printing patches and scans what they add.
func (s *Scanner) diff(ctx context.Context, dir string, args []string, res *Result) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", append([]string{"-C", dir, "-c", "core.quotePath=false"}, args...)...)
	var stderr limitedBuffer
	stderr.max = gitStderr
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%w: %w", ErrGit, err)
	}
	files, perr := gitdiff.Parse(stdout)
	for f := range files {
		if ctx.Err() == nil {
			s.diffFile(f, res)
		}
	}
	if perr != nil {
		cancel()
	}
	werr := cmd.Wait()
	switch {
	case ctx.Err() != nil && perr == nil:
		return ctx.Err()
	case perr != nil:
		return fmt.Errorf("%w: reading git %s: %w", ErrGit, args[0], perr)
	case werr != nil:
		return fmt.Errorf("%w: git %s: %s", ErrGit, args[0], gitMessage(werr, stderr.String()))
	}
	return nil
}

// diffFile scans the lines one file's change adds.
func (s *Scanner) diffFile(f *gitdiff.File, res *Result) {
	if f.IsDelete {
		return
	}
	commit := ""
	if f.PatchHeader != nil {
		commit = f.PatchHeader.SHA
	}
	if f.IsBinary {
		res.Binary++
		return
	}
	var size int64
	for _, frag := range f.TextFragments {
		size += frag.NewLines
		for _, l := range frag.Lines {
			size += int64(len(l.Line))
		}
	}
	if size > s.opts.MaxFileSize {
		res.problem(f.NewName, commit, fmt.Errorf("%w: the change to %s adds over %d bytes", ErrTooLarge, Printable(f.NewName), s.opts.MaxFileSize))
		return
	}
	res.Files++
	for _, frag := range f.TextFragments {
		found, err := s.Content(f.NewName, commit, int(frag.NewPosition), frag.Raw(gitdiff.OpAdd))
		if err != nil {
			res.problem(f.NewName, commit, err)
			continue
		}
		res.Findings = append(res.Findings, found...)
	}
}

// limitedBuffer keeps the first max bytes written to it and discards the
// rest, so a chatty git cannot fill memory.
type limitedBuffer struct {
	bytes.Buffer
	max int
}

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := b.max - b.Len(); room > 0 {
		b.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

// GitInstalled reports whether the git command can be run.
func GitInstalled() bool {
	_, err := exec.LookPath("git")
	return err == nil
}
