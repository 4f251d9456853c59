package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/proxy/admin"
)

// The keys commands' help, kept here so that help.go's tables stay as
// they are.
func init() {
	commandGroups["keys"] = true
	commandDocs["keys"] = commandDoc{"keys [--provider NAME]",
		"Lists each provider's real key as the key ledger knows it: the source (never the value), the first\n8 hex digits of its fingerprint (a keyed hash), its age, its due date (first seen + the provider's\nrotate_every, default 90d), upstream 401 answers to it, and the keys it replaced.",
		"hardcap keys --provider openai"}
	commandDocs["keys reload"] = commandDoc{"keys reload [--provider NAME]",
		"Re-reads the key sources now (they are re-read every 5 minutes and on SIGHUP anyway) and says what changed; a\nchanged key is recorded as a rotation. A source that fails keeps the key read before.",
		"hardcap keys reload"}
}

// keysCommand serves `hardcap keys [--provider NAME]` (the key ledger of
// the real provider keys) and `hardcap keys reload [--provider NAME]`
// (re-read the key sources now).
func keysCommand(ctx context.Context, args []string, stdout io.Writer) error {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "":
		fs := newFlagSet("keys")
		prepare := clientFlags(fs, stdout)
		provider := fs.String("provider", "", "only this provider")
		_, c, err := prepare(args, 0)
		if err != nil {
			return err
		}
		path := "/admin/v1/keys"
		if *provider != "" {
			path += "?provider=" + url.QueryEscape(*provider)
		}
		var out admin.KeysView
		if err := c.call(ctx, "GET", path, nil, &out); err != nil || c.json {
			return err
		}
		printKeys(stdout, out.Keys)
		return nil
	case "reload":
		fs := newFlagSet("keys reload")
		prepare := clientFlags(fs, stdout)
		provider := fs.String("provider", "", "only this provider (default every provider)")
		_, c, err := prepare(args, 0)
		if err != nil {
			return err
		}
		var out admin.KeysReloadView
		// With --json the answer is printed as it came, and per-provider
		// failures are in its "error" fields.
		if err := c.call(ctx, "POST", "/admin/v1/keys/reload", admin.KeysReloadRequest{Provider: *provider}, &out); err != nil || c.json {
			return err
		}
		return printReload(stdout, out.Reloaded)
	case "help":
		fmt.Fprint(stdout, groupHelp("keys"))
		return nil
	}
	return usageError(fmt.Sprintf("keys: unknown subcommand %q (see hardcap help keys)", budget.Clip(sub)))
}

// printKeys writes the ledger as a table, then per provider what needs a
// word: a failed read, upstream 401s, the keys it replaced.
func printKeys(w io.Writer, keys []admin.KeyView) {
	if len(keys) == 0 {
		fmt.Fprintln(w, "no provider keys: no provider is configured and none was recorded")
		return
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROVIDER\tSOURCE\tFINGERPRINT\tAGE\tROTATE EVERY\tDUE\tSTATE\t401s")
	for _, k := range keys {
		fp, age, due := "-", "-", "-"
		if k.Fingerprint != "" {
			fp, age = k.Fingerprint, fmt.Sprintf("%dd", k.AgeDays)
		}
		if !k.RotateBy.IsZero() {
			due = k.RotateBy.UTC().Format(time.DateOnly)
		}
		state := k.State
		switch k.State {
		case admin.KeyNotRead:
			state = "not read yet"
		case admin.KeyRejected:
			state = fmt.Sprintf("rejected (%d, last %s)", k.Unauthorized, k.LastUnauthorized.UTC().Format(time.RFC3339))
		case admin.KeyOverdue:
			state = "OVERDUE"
		case admin.KeyDueSoon:
			state = "due soon"
		case "":
			state = "-"
		}
		if !k.Configured {
			state += " (not configured)"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%d\n", k.Provider, k.Source, fp, age, k.RotateEvery, due, state, k.Unauthorized)
	}
	_ = tw.Flush()
	for _, k := range keys {
		if k.ReadError != "" {
			fmt.Fprintf(w, "\n%s: the last read of %s failed (%s); the key read before is still used\n", k.Provider, k.Source, k.ReadError)
		}
		if k.Unauthorized > 0 {
			fmt.Fprintf(w, "\n%s: the provider answered 401 to %d request(s) with key %s, last at %s: revoked or expired? Put a valid key in %s, then run hardcap keys reload\n",
				k.Provider, k.Unauthorized, k.Fingerprint, k.LastUnauthorized.UTC().Format(time.RFC3339), k.Source)
		}
		if k.Reused {
			fmt.Fprintf(w, "\n%s: key %s is a replaced key in use again (since %s); it keeps its first-seen time and due date. If it may have leaked, create a new key at the provider, put it in %s and run hardcap keys reload\n",
				k.Provider, k.Fingerprint, k.ReusedAt.UTC().Format(time.RFC3339), k.Source)
		}
		if k.Overdue {
			fmt.Fprintf(w, "\n%s: key %s is past its rotation date (%s): create a new key at the provider, put it in %s, run hardcap keys reload, then revoke the old one\n",
				k.Provider, k.Fingerprint, k.RotateBy.UTC().Format(time.DateOnly), k.Source)
		}
		if len(k.History) > 0 {
			fmt.Fprintf(w, "\n%s: replaced keys, oldest first:\n", k.Provider)
			for _, h := range k.History {
				line := fmt.Sprintf("  %s  seen %s .. %s", h.Fingerprint, h.FirstSeen.UTC().Format(time.DateTime), h.LastSeen.UTC().Format(time.DateTime))
				if h.Unauthorized > 0 {
					line += fmt.Sprintf(", %d upstream 401s", h.Unauthorized)
				}
				fmt.Fprintln(w, line)
			}
		}
	}
}

// printReload says per provider what the reload found, and fails when a
// source could not be read.
func printReload(w io.Writer, got []admin.KeyReloadView) error {
	failed := 0
	for _, k := range got {
		switch {
		case k.Error != "":
			failed++
			fmt.Fprintf(w, "%s: not reloaded: %s\n", k.Provider, k.Error)
		case k.Reused:
			fmt.Fprintf(w, "%s: key changed %s -> %s (%s): a replaced key is in use again; recorded as a rotation, it keeps its first-seen time and due date\n", k.Provider, k.Previous, k.Fingerprint, k.Source)
		case k.Changed:
			fmt.Fprintf(w, "%s: key changed %s -> %s (%s), recorded as a rotation\n", k.Provider, k.Previous, k.Fingerprint, k.Source)
		case k.First:
			fmt.Fprintf(w, "%s: key %s recorded (%s)\n", k.Provider, k.Fingerprint, k.Source)
		default:
			fmt.Fprintf(w, "%s: unchanged, key %s (%s)\n", k.Provider, k.Fingerprint, k.Source)
		}
	}
	if failed > 0 {
		return errors.New("keys reload: " + fmt.Sprint(failed) + " source(s) could not be read; their keys read before are kept")
	}
	return nil
}
