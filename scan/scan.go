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
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"unicode/utf16"

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
	// Binary is how many binary files (a NUL byte in their first 8000
	// bytes, git's own test) were scanned for hardcap tokens only: the
	// gitleaks rules are for text, a token's checksum rules out a false
	// match anywhere. They are not counted in Files.
	Binary int `json:"binary_tokens_only"`
}

func (r *Result) problem(path, commit string, err error) {
	r.Problems = append(r.Problems, Problem{Path: path, Commit: commit, Err: err, Message: err.Error()})
}

// Scanner scans content with the gitleaks default rules and for hardcap
// tokens. It is safe for use by one goroutine at a time.
type Scanner struct {
	opts Options
	det  *detect.Detector
	// open opens a file for reading; openFile.
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
	return &Scanner{opts: opts, det: det, open: openFile}, nil
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
	tokenAt := map[string]bool{} // line and token of each reported
	for _, t := range hcs {
		line := startLine + strings.Count(content[:t.at], "\n")
		tokenAt[fmt.Sprint(line, t.secret)] = true
		found = append(found, tokenFinding(file, commit, line, t.secret))
		secrets = append(secrets, t.secret)
	}
	var leaks []leak
	for _, fr := range fragments(content) {
		l, err := s.detect(file, commit, startLine+fr.line, fr.text)
		if err != nil {
			return nil, nil, err
		}
		leaks = append(leaks, l...)
	}
	seen := map[string]bool{}
	for _, l := range leaks {
		secret := l.Secret
		if secret != "" && holdsToken(secret, hcs) {
			// A generic rule matched a hardcap token already reported
			// as one.
			continue
		}
		if in := findTokens(secret); len(in) > 0 {
			// A rule matched a hardcap token the engine decoded
			// (base64 in a Kubernetes Secret, hex in a header): it is
			// reported as the token, which the server can name.
			for _, t := range in {
				if k := fmt.Sprint(l.StartLine, t.secret); !tokenAt[k] {
					tokenAt[k] = true
					found = append(found, tokenFinding(file, commit, l.StartLine, t.secret))
					secrets = append(secrets, t.secret)
				}
			}
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

// The rule engine runs each rule whose keyword occurs in a fragment over
// the whole fragment, and random text (a base64 blob) holds most short
// keywords: its time grows with the fragment's size times the rules it
// wakes, seconds per megabyte for one large fragment. Content of more than
// fragSmall bytes is therefore scanned in fragments of about fragNew new
// bytes, each starting fragOverlap bytes before the previous one ended, so
// that a secret (or an encoded segment) of up to fragOverlap bytes is
// whole in at least one fragment; a fragment ends and starts at a line's
// end where the line is shorter than fragNew, so a multi-line secret (a
// PEM block) is cut only if it is longer than the overlap. A finding seen
// in two fragments is reported once.
const (
	fragSmall   = 32 << 10
	fragNew     = 12 << 10
	fragOverlap = 4 << 10
)

// fragment is a part of a content, at byte offset at; line is how many
// lines of the content precede it.
type fragment struct {
	text     string
	at, line int
}

// fragments cuts content as described at fragSmall.
func fragments(content string) []fragment {
	if len(content) <= fragSmall {
		return []fragment{{text: content}}
	}
	var out []fragment
	lines, counted := 0, 0 // lines in content[:counted]
	for pos := 0; pos < len(content); {
		end := min(len(content), pos+fragNew)
		if end < len(content) {
			if nl := strings.LastIndexByte(content[pos:end], '\n'); nl >= 0 {
				end = pos + nl + 1
			}
		}
		start := max(0, pos-fragOverlap)
		if start > 0 {
			if nl := strings.IndexByte(content[start:pos], '\n'); nl >= 0 {
				start += nl + 1
			}
		}
		lines += strings.Count(content[counted:start], "\n")
		counted = start
		out = append(out, fragment{text: content[start:end], at: start, line: lines})
		pos = end
	}
	return out
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
	// Every path is checked before anything is scanned: a wrong one
	// changes nothing and is the caller's mistake to fix.
	for _, p := range paths {
		if err := checkPath(p); err != nil {
			return nil, err
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

// checkPath returns ErrNoPath for a path that does not exist, a symbolic
// link to nothing or a loop of links, and ErrNotRegular for one (or a link
// to one) that is neither a directory nor a regular file: a FIFO, which
// would block the scan, a device, a socket.
func checkPath(p string) error {
	if _, err := os.Lstat(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("%w: %s", ErrNoPath, Printable(p))
		}
		return nil // unreadable: the walk reports it as a Problem
	}
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s is a symbolic link to a path that does not exist", ErrNoPath, Printable(p))
	case errors.Is(err, syscall.ELOOP):
		return fmt.Errorf("%w: %s is a loop of symbolic links", ErrNoPath, Printable(p))
	case err != nil:
		return nil // unreadable: the walk reports it as a Problem
	case !st.IsDir() && !st.Mode().IsRegular():
		return fmt.Errorf("%w: %s is a %s", ErrNotRegular, Printable(p), kindOf(st.Mode()))
	}
	return nil
}

func kindOf(m fs.FileMode) string {
	switch {
	case m&fs.ModeNamedPipe != 0:
		return "named pipe (FIFO)"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "character device"
	case m&fs.ModeDevice != 0:
		return "device"
	}
	return "special file"
}

// openFile opens a file to scan without blocking: O_NONBLOCK keeps a FIFO
// put in a regular file's place since the check from stalling the open;
// file refuses it after, by its own stat.
func openFile(name string) (*os.File, error) {
	return os.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
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
	st, err := f.Stat()
	if err == nil && !st.Mode().IsRegular() {
		res.problem(path, "", fmt.Errorf("%w: %s is a %s", ErrNotRegular, Printable(path), kindOf(st.Mode())))
		return
	}
	if err == nil && st.Size() > s.opts.MaxFileSize {
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
	}
	s.text(path, "", 1, b, res)
}

// text scans b, the content of file (or what a change adds to it, from
// line startLine), into res, counting it in Files or in Binary. UTF-16
// with a byte order mark (a PowerShell redirect writes it) is decoded
// first. A binary content is searched for hardcap tokens only, both as it
// is and with its NUL bytes dropped (a token in UTF-16 without a mark).
func (s *Scanner) text(file, commit string, startLine int, b []byte, res *Result) {
	if startLine <= 1 {
		if u, ok := decodeUTF16(b); ok {
			b = u
		}
	}
	if isBinary(b) {
		res.Binary++
		seen := map[string]bool{}
		for _, c := range []string{string(b), strings.ReplaceAll(string(b), "\x00", "")} {
			for _, t := range findTokens(c) {
				if seen[t.secret] {
					continue
				}
				seen[t.secret] = true
				res.Findings = append(res.Findings, tokenFinding(file, commit, startLine+strings.Count(c[:t.at], "\n"), t.secret))
			}
		}
		return
	}
	res.Files++
	found, err := s.Content(file, commit, startLine, string(b))
	if err != nil {
		res.problem(file, commit, err)
		return
	}
	res.Findings = append(res.Findings, found...)
}

// decodeUTF16 decodes b to UTF-8 when it starts with a UTF-16 byte order
// mark; ok is false otherwise.
func decodeUTF16(b []byte) (out []byte, ok bool) {
	var order binary.ByteOrder
	switch {
	case len(b) >= 2 && b[0] == 0xFF && b[1] == 0xFE:
		order = binary.LittleEndian
	case len(b) >= 2 && b[0] == 0xFE && b[1] == 0xFF:
		order = binary.BigEndian
	default:
		return nil, false
	}
	if len(b) >= 4 && order == binary.LittleEndian && b[2] == 0 && b[3] == 0 {
		// FF FE 00 00 is UTF-32's mark, not UTF-16's.
		return nil, false
	}
	b = b[2:]
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = order.Uint16(b[2*i:])
	}
	return []byte(string(utf16.Decode(u))), true
}

func tokenFinding(file, commit string, line int, secret string) Finding {
	return Finding{
		File: file, Line: line, Commit: commit,
		Rule: TokenRule, Kind: HardcapToken, Secret: Redact(secret), hash: tokens.HashOf(secret),
	}
}
