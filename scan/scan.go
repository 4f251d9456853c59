// Package scan finds leaked secrets in files, in every commit of a git
// repository and in its staged changes: real provider keys by the gitleaks
// rule set (used as a library, so its rules are not rewritten here) and
// hardcap tokens by their form and checksum (tokens.Parse). A finding never
// carries a whole secret out of this package: only its redacted form, and
// for a hardcap token the SHA-256 the server looks tokens up by.
package scan

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/hardcap/hardcap/tokens"
	"github.com/rs/zerolog"
	"github.com/spf13/viper"
	"github.com/zricethezav/gitleaks/v8/config"
	"github.com/zricethezav/gitleaks/v8/detect"
	"github.com/zricethezav/gitleaks/v8/logging"
)

// DefaultMaxFileSize is the default of Options.MaxFileSize: 10 MiB, far
// above any source or config file, below the generated and data files a
// key is rarely pasted into.
const DefaultMaxFileSize = 10 << 20

// Options configures a Scanner.
type Options struct {
	// MaxFileSize is the largest file, in bytes, that is read; a larger
	// one is reported as a problem (ErrTooLarge) and not scanned. The
	// same bound applies to what one commit adds to one file. Default
	// DefaultMaxFileSize.
	MaxFileSize int64
}

// Kind is what a finding is.
type Kind string

// The kinds of finding.
const (
	// ProviderKey is a real key of a provider (OpenAI, Anthropic, and
	// every other issuer the gitleaks rules know).
	ProviderKey Kind = "provider_key"
	// HardcapToken is a hardcap token (hc_...) whose checksum matches.
	HardcapToken Kind = "hardcap_token"
)

// TokenRule is the Rule of a HardcapToken finding.
const TokenRule = "hardcap-token"

// Finding is one secret found.
type Finding struct {
	// File is the path of the file, as walked or as git names it
	// (relative to the repository's top).
	File string `json:"file"`
	// Line is the 1-based line of the secret in the file (in the commit's
	// version of it for a history scan).
	Line int `json:"line"`
	// Commit is the commit that added the secret; empty for a scan of
	// files or of staged changes.
	Commit string `json:"commit,omitempty"`
	// Rule is the gitleaks rule id that matched, or TokenRule.
	Rule string `json:"rule"`
	Kind Kind   `json:"kind"`
	// Provider is who issued a provider key (see ProviderOf); empty for a
	// hardcap token and for a key whose rule names no issuer.
	Provider string `json:"provider,omitempty"`
	// Revoke says where to revoke a provider key.
	Revoke string `json:"revoke,omitempty"`
	// Secret is the secret redacted (see Redact); never the whole secret.
	Secret string `json:"secret"`

	// hash is the SHA-256 of a hardcap token, what the server stores.
	hash tokens.Hash
}

// TokenHash returns the SHA-256 of a HardcapToken finding's token, which
// the server looks tokens up by; ok is false for other kinds.
func (f Finding) TokenHash() (h tokens.Hash, ok bool) {
	return f.hash, f.Kind == HardcapToken
}

// Problem is something a scan could not read; its content was not
// scanned, so a clean result does not cover it.
type Problem struct {
	// Path is the file or directory (or the repository, for git).
	Path string `json:"path"`
	// Commit is the commit whose change it was, in a history scan.
	Commit string `json:"commit,omitempty"`
	// Err is one of the package's errors, wrapped with the cause.
	Err error `json:"-"`
	// Message is Err's text, for JSON.
	Message string `json:"error"`
}

// Result is what one scan found.
type Result struct {
	Findings []Finding `json:"findings"`
	Problems []Problem `json:"problems"`
	// Files is how many files (or, for git, file changes) were scanned.
	Files int `json:"files"`
	// Commits is how many commits a history scan covered.
	Commits int `json:"commits,omitempty"`
	// Binary is how many binary files were skipped (a NUL byte in their
	// first 8000 bytes, git's own test).
	Binary int `json:"binary_skipped"`
}

func (r *Result) problem(path, commit string, err error) {
	r.Problems = append(r.Problems, Problem{Path: path, Commit: commit, Err: err, Message: err.Error()})
}

// Scanner scans content with the gitleaks default rules and for hardcap
// tokens. It is safe for use by one goroutine at a time.
type Scanner struct {
	opts Options
	det  *detect.Detector
	// open opens a file for reading; os.Open.
	open func(name string) (*os.File, error)
}

// rules is the gitleaks default configuration, built once: it compiles a
// few hundred regular expressions.
var rules = sync.OnceValues(func() (config.Config, error) {
	// gitleaks logs through its own global logger, at trace level with
	// the secret in the line; nothing of it may reach hardcap's output.
	logging.Logger = zerolog.Nop()
	v := viper.New()
	v.SetConfigType("toml")
	if err := v.ReadConfig(strings.NewReader(config.DefaultConfig)); err != nil {
		return config.Config{}, err
	}
	var vc config.ViperConfig
	if err := v.Unmarshal(&vc); err != nil {
		return config.Config{}, err
	}
	return vc.Translate()
})

// maxDecodeDepth is how many times an encoded segment (base64, hex,
// percent) is decoded and scanned again, gitleaks' own default.
const maxDecodeDepth = 5

// New returns a Scanner.
func New(opts Options) (*Scanner, error) {
	if opts.MaxFileSize <= 0 {
		opts.MaxFileSize = DefaultMaxFileSize
	}
	cfg, err := rules()
	if err != nil {
		return nil, fmt.Errorf("scan: loading the gitleaks rules: %w", err)
	}
	det := detect.NewDetector(cfg)
	det.MaxDecodeDepth = maxDecodeDepth
	return &Scanner{opts: opts, det: det, open: os.Open}, nil
}

// Content returns the findings in content, the text of file as of commit
// (empty outside git) whose first line is line startLine. It returns
// ErrDetector, and no findings, when the rule engine fails on it.
func (s *Scanner) Content(file, commit string, startLine int, content string) ([]Finding, error) {
	found, _, err := s.content(file, commit, startLine, content)
	return found, err
}

// content is Content that also returns each finding's whole secret, in
// the same order, for the fuzz test to check the redaction against; it
// is kept apart from Finding so that no print of a finding can hold it.
func (s *Scanner) content(file, commit string, startLine int, content string) (found []Finding, secrets []string, err error) {
	if startLine < 1 {
		startLine = 1
	}
	hcs := findTokens(content)
	for _, t := range hcs {
		found = append(found, Finding{
			File: file, Line: startLine + strings.Count(content[:t.at], "\n"), Commit: commit,
			Rule: TokenRule, Kind: HardcapToken, Secret: Redact(t.secret), hash: tokens.HashOf(t.secret),
		})
		secrets = append(secrets, t.secret)
	}
	leaks, err := s.detect(file, commit, startLine, content)
	if err != nil {
		return nil, nil, err
	}
	seen := map[string]bool{}
	for _, l := range leaks {
		secret := l.Secret
		if secret != "" && holdsToken(secret, hcs) {
			// A generic rule matched a hardcap token already reported
			// as one.
			continue
		}
		key := fmt.Sprintf("%d\x00%s\x00%s", l.StartLine, l.RuleID, secret)
		if seen[key] {
			continue
		}
		seen[key] = true
		p := ProviderOf(l.RuleID)
		f := Finding{
			File: file, Line: l.StartLine, Commit: commit, Rule: l.RuleID, Kind: ProviderKey,
			Provider: p.Name, Revoke: p.Revoke, Secret: Redact(secret),
		}
		if secret == "" {
			// A rule on the path alone (a key store such as a .p12):
			// the file is the secret.
			f.Secret = "(the whole file)"
		}
		found = append(found, f)
		secrets = append(secrets, secret)
	}
	// In line order, hardcap tokens first on a line; secrets moves
	// with its finding.
	idx := make([]int, len(found))
	for i := range idx {
		idx[i] = i
	}
	sort.SliceStable(idx, func(a, b int) bool { return found[idx[a]].Line < found[idx[b]].Line })
	sf, ss := make([]Finding, len(found)), make([]string, len(found))
	for i, j := range idx {
		sf[i], ss[i] = found[j], secrets[j]
	}
	return sf, ss, nil
}

// detect runs the gitleaks rules over content. The rule engine is a
// dependency reading untrusted bytes: a panic in it is turned into
// ErrDetector for this content, which is then reported unscanned.
func (s *Scanner) detect(file, commit string, startLine int, content string) (leaks []leak, err error) {
	defer func() {
		if r := recover(); r != nil {
			leaks, err = nil, fmt.Errorf("%w on %s", ErrDetector, Printable(file))
		}
	}()
	for _, f := range s.det.Detect(detect.Fragment{
		Raw: content, FilePath: filepath.ToSlash(file), CommitSHA: commit, StartLine: startLine,
	}) {
		leaks = append(leaks, leak{RuleID: f.RuleID, StartLine: f.StartLine, Secret: f.Secret, Match: f.Match})
	}
	return leaks, nil
}

// leak is the part of a gitleaks finding used here; the rest (the whole
// line, the match) holds the secret in clear.
type leak struct {
	RuleID        string
	StartLine     int
	Secret, Match string
}

// tokenHit is a hardcap token in a text, at byte offset at.
type tokenHit struct {
	at     int
	secret string
}

// findTokens returns every hardcap token in s: the prefix, then the
// token's length of base62 whose checksum matches. The checksum, not the
// surroundings, decides, so a token glued to other text is found too and a
// look-alike is not (a random string passes one time in 2^32).
func findTokens(s string) []tokenHit {
	var out []tokenHit
	for i := 0; i < len(s); {
		j := strings.Index(s[i:], tokens.Prefix)
		if j < 0 {
			break
		}
		at := i + j
		if at+tokens.SecretLen <= len(s) && tokens.Parse(s[at:at+tokens.SecretLen]) == nil {
			out = append(out, tokenHit{at: at, secret: s[at : at+tokens.SecretLen]})
			i = at + tokens.SecretLen
			continue
		}
		i = at + 1
	}
	return out
}

func holdsToken(secret string, hits []tokenHit) bool {
	for _, h := range hits {
		if strings.Contains(secret, h.secret) || strings.Contains(h.secret, secret) {
			return true
		}
	}
	return false
}

// binaryProbe is how much of a file is searched for a NUL byte to call it
// binary, as git does.
const binaryProbe = 8000

func isBinary(b []byte) bool {
	return bytes.IndexByte(b[:min(len(b), binaryProbe)], 0) >= 0
}

// Files scans every path: a file, or a directory walked recursively. It
// skips .git directories and binary files, and does not follow symbolic
// links met in a walk (one named as a path is followed). A path that does
// not exist is an error (ErrNoPath) before anything is scanned; a file or
// directory that cannot be read during the walk is a Problem and the walk
// goes on.
func (s *Scanner) Files(ctx context.Context, paths []string) (*Result, error) {
	for _, p := range paths {
		if _, err := os.Lstat(p); errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w: %s", ErrNoPath, Printable(p))
		}
	}
	res := &Result{}
	for _, root := range paths {
		if fi, err := os.Lstat(root); err == nil && fi.Mode()&fs.ModeSymlink != 0 {
			if st, err := os.Stat(root); err == nil && st.IsDir() {
				// WalkDir does not follow a symbolic link even at its
				// root; with a trailing separator the system does.
				root += string(filepath.Separator)
			} else if err == nil {
				s.file(root, res)
				continue
			}
		}
		err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			if err != nil {
				res.problem(path, "", fmt.Errorf("%w %s: %w", ErrUnreadable, Printable(path), unwrapPath(err)))
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				if d.Name() == ".git" && path != root {
					return fs.SkipDir
				}
				return nil
			}
			if d.Name() == ".git" || !d.Type().IsRegular() {
				// A worktree's .git file, a link, a device, a socket.
				return nil
			}
			s.file(path, res)
			return nil
		})
		if err != nil {
			return res, err
		}
	}
	return res, nil
}

// unwrapPath drops the path from a *fs.PathError, which the caller names
// already.
func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// file scans one regular file into res.
func (s *Scanner) file(path string, res *Result) {
	f, err := s.open(path)
	if err != nil {
		res.problem(path, "", fmt.Errorf("%w %s: %w", ErrUnreadable, Printable(path), unwrapPath(err)))
		return
	}
	defer f.Close()
	if st, err := f.Stat(); err == nil && st.Size() > s.opts.MaxFileSize {
		res.problem(path, "", fmt.Errorf("%w: %s is %d bytes, over the bound of %d", ErrTooLarge, Printable(path), st.Size(), s.opts.MaxFileSize))
		return
	}
	// The size is read again: a file may grow between stat and read.
	b, err := io.ReadAll(io.LimitReader(f, s.opts.MaxFileSize+1))
	switch {
	case err != nil:
		res.problem(path, "", fmt.Errorf("%w %s: %w", ErrUnreadable, Printable(path), unwrapPath(err)))
		return
	case int64(len(b)) > s.opts.MaxFileSize:
		res.problem(path, "", fmt.Errorf("%w: %s is over the bound of %d bytes", ErrTooLarge, Printable(path), s.opts.MaxFileSize))
		return
	case isBinary(b):
		res.Binary++
		return
	}
	res.Files++
	found, err := s.Content(path, "", 1, string(b))
	if err != nil {
		res.problem(path, "", err)
		return
	}
	res.Findings = append(res.Findings, found...)
}
