package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/hardcap/hardcap/proxy/admin"
	"github.com/hardcap/hardcap/scan"
)

// scanStdin is where --revoke reads its confirmation; tests replace it and
// stdinIsTerminal.
var scanStdin io.Reader = os.Stdin

// stdinIsTerminal (audit.go) says whether --revoke may ask before
// revoking.

// scanTokenJSON is what the server said of a hardcap token found: never
// its secret or hash.
type scanTokenJSON struct {
	ID             string    `json:"id"`
	Project        string    `json:"project"`
	Name           string    `json:"name,omitempty"`
	State          string    `json:"state"`
	PreviousSecret bool      `json:"previous_secret,omitempty"`
	ValidUntil     time.Time `json:"valid_until,omitzero"`
}

// scanFindingJSON is one finding of `hardcap scan --json`.
type scanFindingJSON struct {
	scan.Finding
	// Token is the server's answer for a hardcap token it knows; Unknown
	// is set for one it does not, LookupError when it could not be asked.
	Token       *scanTokenJSON `json:"token,omitempty"`
	Unknown     bool           `json:"unknown_token,omitempty"`
	LookupError string         `json:"lookup_error,omitempty"`
}

// scanJSON is the output of `hardcap scan --json`.
type scanJSON struct {
	Findings []scanFindingJSON `json:"findings"`
	Problems []scan.Problem    `json:"problems"`
	Files    int               `json:"files"`
	Commits  int               `json:"commits,omitempty"`
	Binary   int               `json:"binary_tokens_only"`
	Revoked  []string          `json:"revoked,omitempty"`
	// RevokeErrors are the revocations asked for that failed, by id.
	RevokeErrors map[string]string `json:"revoke_errors,omitempty"`
}

// errFindings is returned when a scan found a secret: exit status 1,
// which stops a commit from the pre-commit hook.
type errFindings int

func (e errFindings) Error() string {
	return fmt.Sprintf("%d secret(s) found; revoke each as shown, then remove it from the files (and from git history with --git)", int(e))
}

func scanCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("scan")
	history := fs.Bool("git", false, "scan every commit of the git repository at each PATH instead of the files")
	staged := fs.Bool("staged", false, "scan only what is staged for the next commit (git diff --cached), as the pre-commit hook does")
	revoke := fs.Bool("revoke", false, "revoke the live hardcap tokens found, through the running server (asks first on a terminal)")
	yes := fs.Bool("yes", false, "with --revoke, revoke without asking")
	hook := fs.Bool("install-hook", false, "install a git pre-commit hook in the repository here that runs hardcap scan --staged")
	prepare := clientFlags(fs, stdout)
	fs.Lookup("json").Usage = "print the findings, problems and counts as JSON (never a whole secret)"
	fs.Lookup("server").Usage = "server to look found hardcap tokens up on, URL or host:port (default $HARDCAP_SERVER or http://127.0.0.1:8787)"
	paths, c, err := prepare(args, -1)
	if err != nil {
		return err
	}
	switch {
	case *hook && (len(paths) > 0 || *history || *staged || *revoke):
		return usageError("scan: --install-hook takes no PATH and no other mode (see hardcap help scan)")
	case *history && *staged:
		return usageError("scan: --git and --staged are two modes; choose one (see hardcap help scan)")
	case *yes && !*revoke:
		return usageError("scan: --yes only goes with --revoke")
	case *revoke && !*yes && !stdinIsTerminal():
		return usageError("scan: --revoke asks before revoking, and standard input is not a terminal; add --yes to revoke without asking")
	}
	if *hook {
		path, installed, err := scan.InstallHook(ctx, ".")
		if err != nil {
			return scanError(err)
		}
		if installed {
			fmt.Fprintf(stdout, "installed %s: each commit now runs hardcap scan --staged and is refused on a finding (skip once: git commit --no-verify)\n", scan.Printable(path))
		} else {
			fmt.Fprintf(stdout, "%s is already hardcap's hook; nothing changed\n", scan.Printable(path))
		}
		return nil
	}
	if len(paths) == 0 {
		paths = []string{"."}
	}
	s, err := scan.New(scan.Options{})
	if err != nil {
		return err
	}
	res := &scan.Result{}
	switch {
	case *history || *staged:
		for _, p := range paths {
			var r *scan.Result
			if *history {
				r, err = s.History(ctx, p)
			} else {
				r, err = s.Staged(ctx, p)
			}
			if r != nil {
				merge(res, r)
			}
			if err != nil {
				return scanError(err)
			}
		}
	default:
		r, err := s.Files(ctx, paths)
		if r != nil {
			merge(res, r)
		}
		if err != nil {
			return scanError(err)
		}
	}

	out := scanJSON{Problems: res.Problems, Files: res.Files, Commits: res.Commits, Binary: res.Binary}
	if out.Problems == nil {
		out.Problems = []scan.Problem{}
	}
	out.Findings = lookUp(ctx, c, res.Findings)
	if *revoke {
		ids := revocable(out.Findings)
		switch {
		case len(ids) == 0:
			fmt.Fprintln(stderr, "hardcap: --revoke: no live hardcap token of this server was found, so none is revoked")
		case *yes || confirm(stderr, ids, out.Findings):
			out.Revoked, out.RevokeErrors = revokeAll(ctx, c, ids)
		default:
			fmt.Fprintln(stderr, "hardcap: nothing revoked")
		}
	}
	if c.json {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return err
		}
	} else {
		printScan(stdout, stderr, c.server, out)
	}
	switch {
	case len(out.Findings) > 0:
		return errFindings(len(out.Findings))
	case len(out.Problems) > 0:
		return fmt.Errorf("%d path(s) could not be scanned (listed above), so the scan is incomplete", len(out.Problems))
	case len(out.RevokeErrors) > 0:
		return fmt.Errorf("%d revocation(s) failed", len(out.RevokeErrors))
	}
	return nil
}

// scanError makes a wrong PATH or a directory outside git a usage error
// (exit 2); the rest stay failures (exit 1).
func scanError(err error) error {
	if errors.Is(err, scan.ErrNoPath) || errors.Is(err, scan.ErrNotRegular) || errors.Is(err, scan.ErrNotRepo) {
		return usageError("scan: " + err.Error())
	}
	return fmt.Errorf("scan: %w", err)
}

func merge(into, r *scan.Result) {
	into.Findings = append(into.Findings, r.Findings...)
	into.Problems = append(into.Problems, r.Problems...)
	into.Files += r.Files
	into.Commits += r.Commits
	into.Binary += r.Binary
}

// lookUp asks the server which token each hardcap token found is, by hash
// only. Without a server (or an admin token) the findings stand, each
// saying why it could not be looked up.
func lookUp(ctx context.Context, c *client, found []scan.Finding) []scanFindingJSON {
	out := make([]scanFindingJSON, len(found))
	var hashes []string
	index := map[string]bool{}
	for i, f := range found {
		out[i].Finding = f
		if h, ok := f.TokenHash(); ok && !index[h.String()] {
			index[h.String()] = true
			hashes = append(hashes, h.String())
		}
	}
	if len(hashes) == 0 {
		return out
	}
	quiet := *c
	quiet.json = false
	matches := map[string]admin.LookupMatch{}
	var lookupErr error
	for start := 0; start < len(hashes) && lookupErr == nil; start += admin.MaxLookupHashes {
		var resp admin.LookupResponse
		batch := hashes[start:min(len(hashes), start+admin.MaxLookupHashes)]
		lookupErr = quiet.call(ctx, "POST", "/admin/v1/tokens/lookup", admin.LookupRequest{Hashes: batch}, &resp)
		for _, m := range resp.Tokens {
			matches[m.Hash] = m
		}
	}
	for i, f := range found {
		h, ok := f.TokenHash()
		if !ok {
			continue
		}
		m, asked := matches[h.String()]
		switch {
		case !asked && lookupErr != nil:
			out[i].LookupError = lookupErr.Error()
		case !asked || !m.Found:
			out[i].Unknown = true
		default:
			out[i].Token = &scanTokenJSON{ID: m.ID, Project: m.Project, Name: m.Name, State: m.State, PreviousSecret: m.PreviousSecret, ValidUntil: m.ValidUntil}
		}
	}
	return out
}

// revocable lists, once each, the tokens found whose leaked secret still
// works.
func revocable(found []scanFindingJSON) []string {
	var ids []string
	seen := map[string]bool{}
	for _, f := range found {
		t := f.Token
		if t == nil || seen[t.ID] || (t.State != "active" && t.State != "killed") {
			continue
		}
		seen[t.ID] = true
		ids = append(ids, t.ID)
	}
	return ids
}

// confirm asks on the terminal before revoking.
func confirm(stderr io.Writer, ids []string, found []scanFindingJSON) bool {
	fmt.Fprintf(stderr, "Revoke %d token(s)? Their apps' requests are refused from now on.\n", len(ids))
	for _, id := range ids {
		for _, f := range found {
			if f.Token != nil && f.Token.ID == id {
				fmt.Fprintf(stderr, "  %s (project %s%s)\n", id, scan.Printable(f.Token.Project), nameSuffix(f.Token.Name))
				break
			}
		}
	}
	fmt.Fprint(stderr, "Type yes to revoke: ")
	line, _ := bufio.NewReader(scanStdin).ReadString('\n')
	answer := strings.ToLower(strings.TrimSpace(line))
	return answer == "yes" || answer == "y"
}

func nameSuffix(name string) string {
	if name == "" {
		return ""
	}
	return ", name " + scan.Printable(name)
}

// revokeAll revokes each token through the admin API.
func revokeAll(ctx context.Context, c *client, ids []string) (done []string, failed map[string]string) {
	quiet := *c
	quiet.json = false
	for _, id := range ids {
		var t tokenJSON
		if err := quiet.call(ctx, "DELETE", "/admin/v1/tokens/"+url.PathEscape(id), nil, &t); err != nil {
			if failed == nil {
				failed = map[string]string{}
			}
			failed[id] = err.Error()
			continue
		}
		done = append(done, id)
	}
	return done, failed
}

// printScan prints findings to stdout and the paths not scanned to stderr.
func printScan(stdout, stderr io.Writer, server string, out scanJSON) {
	for _, p := range out.Problems {
		fmt.Fprintf(stderr, "hardcap: not scanned: %s\n", scan.Printable(p.Message))
	}
	revoked := map[string]bool{}
	for _, id := range out.Revoked {
		revoked[id] = true
	}
	for _, f := range out.Findings {
		where := fmt.Sprintf("%s:%d", scan.Printable(f.File), f.Line)
		if f.Commit != "" {
			where += " (commit " + f.Commit[:min(12, len(f.Commit))] + ")"
		}
		fmt.Fprintf(stdout, "%s: %s %s\n", where, f.Rule, f.Secret)
		fmt.Fprintf(stdout, "    %s\n", advice(f, server, revoked))
	}
	for id, msg := range out.RevokeErrors {
		fmt.Fprintf(stderr, "hardcap: revoking %s failed: %s\n", id, msg)
	}
	scanned := fmt.Sprintf("%d file(s)", out.Files)
	if out.Commits > 0 {
		scanned = fmt.Sprintf("%d file change(s) in %d commit(s)", out.Files, out.Commits)
	}
	if out.Binary > 0 {
		scanned += fmt.Sprintf(", %d binary file(s) scanned for hardcap tokens only", out.Binary)
	}
	switch len(out.Findings) {
	case 0:
		fmt.Fprintf(stdout, "no secrets found in %s\n", scanned)
	default:
		fmt.Fprintf(stdout, "%d secret(s) found in %s\n", len(out.Findings), scanned)
	}
}

// advice says what a finding is and what to do about it.
func advice(f scanFindingJSON, server string, revoked map[string]bool) string {
	if f.Kind == scan.ProviderKey {
		who := "a key (its issuer is unknown)"
		if f.Provider != "" {
			who = f.Provider + " key"
		}
		if strings.HasPrefix(f.Revoke, "https://") {
			return who + ": revoke it at " + f.Revoke + " and replace it"
		}
		return who + ": " + f.Revoke
	}
	switch {
	case f.LookupError != "":
		return "hardcap token; could not look it up: " + f.LookupError
	case f.Unknown:
		return "hardcap token unknown to the server at " + server + ": another server's (--server), or from a deleted database"
	}
	t := f.Token
	name := fmt.Sprintf("hardcap token %s (project %s%s)", t.ID, scan.Printable(t.Project), nameSuffix(t.Name))
	switch {
	case revoked[t.ID]:
		return name + ": revoked now"
	case t.State == "rotated":
		return name + ": a secret its rotation replaced; no longer accepted"
	case t.State == "revoked" || t.State == "expired":
		return name + ": " + t.State + ", no longer accepted"
	case t.PreviousSecret:
		return fmt.Sprintf("%s: a secret its rotation replaced, still accepted until %s (grace); revoke the token: hardcap token revoke %s, or hardcap scan --revoke", name, t.ValidUntil.UTC().Format(time.RFC3339), t.ID)
	case t.State == "killed":
		return fmt.Sprintf("%s: kill switch on, but a resume brings it back; revoke it: hardcap token revoke %s, or hardcap scan --revoke", name, t.ID)
	}
	return fmt.Sprintf("%s: live; revoke it: hardcap token revoke %s, or hardcap scan --revoke", name, t.ID)
}
