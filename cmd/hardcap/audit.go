package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/hardcap/hardcap/audit"
	"github.com/hardcap/hardcap/budget"
)

// auditScanMax is how much of a config or env file the audit reads: a file
// hardcap's own config could be is far smaller, and a large file in the
// data dir (a price download) is not read whole for it.
const auditScanMax = 1 << 20

// auditFacts is what the audit checks outside the database, gathered by the
// server (which runs as the user whose files they are): the admin token's
// and every file: key source's mode, the config file and the data dir's
// other files searched for keys in clear, the price data's dates, and the
// providers with a real account behind them.
func (m *Main) auditFacts(set settings) audit.Input {
	var in audit.Input
	// Paths are absolute: the CLI that prints them may run elsewhere.
	seen := map[string]bool{}
	addSecret := func(path, what string) {
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		seen[path] = true
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() {
			in.Files = append(in.Files, audit.File{Path: path, Kind: audit.SecretFile, What: what, Mode: fi.Mode()})
		}
	}
	addSecret(filepath.Join(m.DataDir, "admin.token"), "admin token")
	provs := m.liveConfig().Providers
	for _, name := range slices.Sorted(maps.Keys(provs)) {
		pc := provs[name]
		for field, spec := range map[string]string{"api_key": pc.APIKey, "admin_key": pc.AdminKey} {
			if path, ok := strings.CutPrefix(spec, "file:"); ok && strings.TrimSpace(path) != "" {
				addSecret(strings.TrimSpace(path), "providers."+name+"."+field)
			}
		}
	}
	slices.SortFunc(in.Files, func(a, b audit.File) int { return strings.Compare(a.Path, b.Path) })
	addConfig := func(path, what string) {
		if abs, err := filepath.Abs(path); err == nil {
			path = abs
		}
		if seen[path] {
			// A secret file holds its key by design; a config named
			// and found in the data dir is read once.
			return
		}
		seen[path] = true
		f, err := os.Open(path)
		if err != nil {
			return
		}
		defer f.Close()
		if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
			return
		}
		b, err := io.ReadAll(io.LimitReader(f, auditScanMax))
		if err != nil {
			return
		}
		in.Files = append(in.Files, audit.File{Path: path, Kind: audit.ConfigFile, What: what, Content: b})
	}
	if m.ConfigPath != "" {
		addConfig(m.ConfigPath, "config")
	}
	if entries, err := os.ReadDir(m.DataDir); err == nil {
		for _, e := range entries {
			name := e.Name()
			if !e.Type().IsRegular() || ownDataFile(name) {
				continue
			}
			what := "file in the data dir"
			if strings.Contains(strings.ToLower(name), "env") {
				what = "env file in the data dir"
			} else if ext := strings.ToLower(filepath.Ext(name)); ext == ".yaml" || ext == ".yml" || ext == ".toml" || ext == ".json" || ext == ".conf" || ext == ".ini" {
				what = "config file in the data dir"
			}
			addConfig(filepath.Join(m.DataDir, name), what)
		}
	}
	if c := m.liveCatalog(); c != nil {
		for _, s := range c.Sources() {
			in.Prices = append(in.Prices, audit.PriceSource{Name: s.Name, AsOf: s.AsOf})
		}
	}
	for _, p := range set.providers {
		if p.Key == nil || p.Key.String() == "static" {
			// The demo's simulators: no account, no top-up.
			continue
		}
		in.Providers = append(in.Providers, audit.Provider{Name: p.Name, Kind: string(p.Kind), BaseURL: p.BaseURL.String()})
	}
	return in
}

// ownDataFile reports whether name is a file hardcap itself keeps in the
// data dir, which holds no config: the database, its lock and pid files,
// backup copies and atomic writes in progress, the admin token (checked as a secret).
func ownDataFile(name string) bool {
	return name == "admin.token" || name == "hardcap.pid" || strings.HasPrefix(name, "hardcap.db") ||
		strings.HasPrefix(name, ".hardcap-backup-") || strings.HasSuffix(name, ".lock") || strings.Contains(name, ".tmp")
}

// auditStdin is where --fix reads its confirmation; stdinIsTerminal says
// whether it is a terminal. Tests replace both.
var (
	auditStdin      io.Reader = os.Stdin
	stdinIsTerminal           = func() bool {
		st, err := os.Stdin.Stat()
		return err == nil && st.Mode()&os.ModeCharDevice != 0
	}
)

// auditFailed is the error of an audit with findings at or above --fail-on:
// exit 1, after the findings were printed.
type auditFailed struct {
	n      int
	failOn audit.Severity
}

func (e auditFailed) Error() string {
	return fmt.Sprintf("audit: %d finding(s) at or above %s (--fail-on %s)", e.n, e.failOn, e.failOn)
}

func auditCommand(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("audit")
	prepare := clientFlags(fs, stdout)
	failOn := fs.String("fail-on", "high", "exit 1 when a finding is at or above this severity: low, medium, high or critical")
	fix := fs.Bool("fix", false, "revoke the zombie tokens found, after asking (y/N)")
	yes := fs.Bool("yes", false, "with --fix: revoke without asking")
	ack := fs.String("ack", "", "acknowledge (dismiss for good) the finding KIND:TARGET, e.g. auto-topup:openai")
	_, c, err := prepare(args, 0)
	if err != nil {
		return err
	}
	threshold, err := audit.ParseSeverity(*failOn)
	if err != nil {
		return usageError("audit: --fail-on: " + err.Error())
	}
	switch {
	case *yes && !*fix:
		return usageError("audit: --yes only goes with --fix")
	case *ack != "" && *fix:
		return usageError("audit: --ack and --fix are separate runs")
	case *fix && !*yes && c.json:
		return usageError("audit: --fix --json cannot ask on the terminal; add --yes")
	case *fix && !*yes && !stdinIsTerminal():
		return usageError("audit: --fix asks before revoking and stdin is not a terminal; add --yes to revoke without asking")
	}
	if *ack != "" {
		if _, _, err := audit.ParseAck(*ack); err != nil {
			return usageError("audit: --ack: " + err.Error())
		}
		var out struct {
			Finding audit.Finding `json:"finding"`
			Created bool          `json:"created"`
		}
		if err := c.call(ctx, "POST", "/admin/v1/audit/acks", map[string]string{"ack": *ack}, &out); err != nil || c.json {
			return err
		}
		f := out.Finding
		if out.Created {
			fmt.Fprintf(stdout, "acknowledged %s; hardcap audit lists it as acknowledged from now on\n", f.Key())
		} else {
			fmt.Fprintf(stdout, "%s was already acknowledged by %s on %s\n", f.Key(), f.AckedBy, f.AckedAt.Local().Format("2006-01-02 15:04"))
		}
		return nil
	}
	asJSON := c.json
	c.json = false // the answer is printed below, after it is read
	rep, raw, err := fetchAudit(ctx, c)
	if err != nil {
		return err
	}
	if *fix {
		var zombies []string
		for _, f := range rep.Findings {
			if f.Kind == audit.KindZombie {
				zombies = append(zombies, f.Target)
			}
		}
		if !asJSON {
			printAudit(stdout, rep)
			fmt.Fprintln(stdout)
		}
		revoke := len(zombies) > 0
		switch {
		case !revoke:
			if !asJSON {
				fmt.Fprintln(stdout, "--fix: no zombie tokens to revoke")
			}
		case !*yes:
			fmt.Fprintf(stdout, "Revoke %d zombie token(s): %s? [y/N] ", len(zombies), strings.Join(zombies, ", "))
			line, _ := bufio.NewReader(auditStdin).ReadString('\n')
			if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
				fmt.Fprintln(stdout, "nothing revoked")
				revoke = false
			}
		}
		if revoke {
			for _, id := range zombies {
				// The prompt may have stayed open a while: a token used
				// (or revoked) since the audit listed it is not revoked.
				why, err := noLongerZombie(ctx, c, id, rep.Time)
				if err != nil {
					return fmt.Errorf("audit --fix: rereading %s: %w", id, err)
				}
				if why != "" {
					if !asJSON {
						fmt.Fprintf(stdout, "token %s skipped, not revoked: %s\n", id, why)
					}
					continue
				}
				// The normal revoke route: it cuts the token's requests in
				// flight and writes the audit log entry.
				if err := c.call(ctx, "DELETE", "/admin/v1/tokens/"+url.PathEscape(id), nil, nil); err != nil {
					return fmt.Errorf("audit --fix: revoking %s: %w", id, err)
				}
				if !asJSON {
					fmt.Fprintf(stdout, "token %s revoked\n", id)
				}
			}
			if rep, raw, err = fetchAudit(ctx, c); err != nil {
				return err
			}
			if !asJSON {
				fmt.Fprintln(stdout)
				printSummary(stdout, rep)
			}
		}
		if asJSON {
			if _, err := stdout.Write(raw); err != nil {
				return err
			}
		}
	} else if asJSON {
		if _, err := stdout.Write(raw); err != nil {
			return err
		}
	} else {
		printAudit(stdout, rep)
	}
	if n := rep.AtOrAbove(threshold); n > 0 {
		return auditFailed{n: n, failOn: threshold}
	}
	return nil
}

// noLongerZombie rereads token id right before --fix revokes it and says
// why it must not be, "" when it still must: it was used at or after the
// audit that listed it (time listed, the server's clock, as the last use
// is), or it is revoked or expired by now.
func noLongerZombie(ctx context.Context, c *client, id string, listed time.Time) (string, error) {
	var t tokenJSON
	if err := c.call(ctx, "GET", "/admin/v1/tokens/"+url.PathEscape(id), nil, &t); err != nil {
		return "", err
	}
	switch {
	case t.State == "revoked" || t.State == "expired":
		return "it is " + t.State + " already", nil
	case t.LastUsed != nil && !t.LastUsed.Time.Before(listed):
		return fmt.Sprintf("it was used at %s from %s after the audit listed it", t.LastUsed.Time.Local().Format("2006-01-02 15:04:05"), orDash(t.LastUsed.IP)), nil
	}
	return "", nil
}

// fetchAudit gets the audit report and the JSON it came as.
func fetchAudit(ctx context.Context, c *client) (audit.Report, []byte, error) {
	var buf bytes.Buffer
	if err := c.call(ctx, "GET", "/admin/v1/audit", nil, &buf); err != nil {
		return audit.Report{}, nil, err
	}
	var rep audit.Report
	if err := json.Unmarshal(buf.Bytes(), &rep); err != nil {
		return audit.Report{}, nil, fmt.Errorf("the server's audit answer does not decode: %s", budget.ClipTo(err.Error(), 200))
	}
	return rep, buf.Bytes(), nil
}

// printAudit prints the findings for a terminal, most urgent first, each
// with its fix, then the acknowledged ones by key.
func printAudit(w io.Writer, rep audit.Report) {
	for _, f := range rep.Findings {
		fmt.Fprintf(w, "%-8s  %s  %s\n  %s\n  fix: %s\n", strings.ToUpper(f.Severity.String()), f.Kind, f.Target, f.Message, f.Fix)
	}
	if len(rep.Findings) > 0 {
		fmt.Fprintln(w)
	}
	printSummary(w, rep)
}

func printSummary(w io.Writer, rep audit.Report) {
	var parts []string
	for _, s := range []audit.Severity{audit.Critical, audit.High, audit.Medium, audit.Low} {
		if n := rep.Counts[s.String()]; n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, s))
		}
	}
	line := "no findings"
	if len(parts) > 0 {
		line = fmt.Sprintf("%d finding(s): %s", len(rep.Findings), strings.Join(parts, ", "))
	}
	if n := len(rep.Acknowledged); n > 0 {
		keys := make([]string, 0, n)
		for _, f := range rep.Acknowledged {
			keys = append(keys, f.Key())
		}
		line += fmt.Sprintf("; %d acknowledged (%s)", n, strings.Join(keys, ", "))
	}
	fmt.Fprintln(w, line)
}
