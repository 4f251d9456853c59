package scan

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
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
	// Every change but a deletion: a type change (a link replaced by a
	// file) adds the file's lines as much as a new file does.
	"--diff-filter=d",
	// The content of every file, whatever .gitattributes (-diff, binary)
	// or core.bigFileThreshold say: the scanner applies its own size
	// bound and binary test to what a change adds.
	"--text",
}

// historyArgs make git log show every commit's change: the root commit's
// even when log.showRoot is false, and what a merge commit adds beyond
// the merge git would have made (remerge: a line a merge slips in, or a
// conflict resolved with a key, is shown; what a parent brought is not,
// as its own commit shows it).
var historyArgs = []string{"--root", "--diff-merges=remerge"}

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
	args := append([]string{"log", "--full-history", "--all", "--pretty=medium", "--no-show-signature"}, historyArgs...)
	if err := s.diff(ctx, dir, append(args, diffArgs...), res); err != nil {
		return res, err
	}
	return res, s.messages(ctx, dir, res)
}

// MessageFile is the File of a finding in a commit's message.
const MessageFile = "(commit message)"

// messages scans the message of every commit of a history scan; a
// finding's line is the line in the message (1 is its subject).
func (s *Scanner) messages(ctx context.Context, dir string, res *Result) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// -z ends each commit's record with a NUL, which a message cannot
	// hold; the record is the commit's id, a newline, the raw message.
	cmd := exec.CommandContext(ctx, "git", "-C", dir, "-c", "core.quotePath=false",
		"log", "--full-history", "--all", "--no-show-signature", "--no-color", "-z", "--format=%H%n%B")
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
	r := bufio.NewReader(stdout)
	var rerr error
	for {
		rec, tooLong, err := readRecord(r, s.opts.MaxFileSize)
		if len(rec) > 0 || tooLong {
			commit, msg, _ := strings.Cut(string(rec), "\n")
			if tooLong {
				res.problem(MessageFile, commit, fmt.Errorf("%w: the message of commit %s is over %d bytes", ErrTooLarge, Printable(commit), s.opts.MaxFileSize))
			} else {
				s.text(MessageFile, commit, 1, []byte(msg), res)
			}
		}
		if err != nil {
			if err != io.EOF {
				rerr = err
			}
			break
		}
	}
	if rerr != nil {
		cancel()
	}
	werr := cmd.Wait()
	switch {
	case ctx.Err() != nil && rerr == nil:
		return ctx.Err()
	case rerr != nil:
		return fmt.Errorf("%w: reading git log: %w", ErrGit, rerr)
	case werr != nil:
		return fmt.Errorf("%w: git log: %s", ErrGit, gitMessage(werr, stderr.String()))
	}
	return nil
}

// readRecord reads up to the next NUL (dropped). A record over max bytes
// is read to its end but not kept: only its first 40 bytes (the commit id)
// are returned, with tooLong set.
func readRecord(r *bufio.Reader, max int64) (rec []byte, tooLong bool, err error) {
	for {
		part, err := r.ReadSlice(0)
		if !tooLong {
			rec = append(rec, part...)
			if int64(len(rec)) > max {
				tooLong, rec = true, rec[:min(len(rec), 40)]
			}
		}
		if err == bufio.ErrBufferFull {
			continue
		}
		if err == nil && !tooLong {
			rec = rec[:len(rec)-1]
		}
		return rec, tooLong, err
	}
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
		// git is asked for text (--text); a patch without it was not
		// read, so it is not called clean.
		res.problem(f.NewName, commit, fmt.Errorf("%w %s: git gave no content for the change", ErrUnreadable, Printable(f.NewName)))
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
	sub := &Result{}
	for _, frag := range f.TextFragments {
		s.text(f.NewName, commit, int(frag.NewPosition), []byte(frag.Raw(gitdiff.OpAdd)), sub)
	}
	res.Findings = append(res.Findings, sub.Findings...)
	res.Problems = append(res.Problems, sub.Problems...)
	// One file change counts once, as text or as binary.
	if sub.Binary > 0 {
		res.Binary++
	} else {
		res.Files++
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
