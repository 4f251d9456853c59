package main

import (
	"flag"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/hardcap/hardcap/tokens"
)

// tokenLedgerFlags are the key-ledger flags of token create and token set:
// the entry's owner and purpose, the scopes and the rotation period.
type tokenLedgerFlags struct {
	owner, purpose, routes, ips, maxRequest, rotateEvery *string
	maxConcurrent                                        *int
}

// ledgerFlags adds them to fs; set says the command changes a token (an
// empty list then clears a scope).
func ledgerFlags(fs *flag.FlagSet, set bool) *tokenLedgerFlags {
	word := func(create, change string) string {
		if set {
			return change
		}
		return create
	}
	return &tokenLedgerFlags{
		owner:         fs.String("owner", "", word("person or team answerable for the token", "new owner")),
		purpose:       fs.String("purpose", "", word("what the token is for, in free text (at most 256 characters)", "new purpose")),
		routes:        fs.String("routes", "", word("comma-separated routes the token may call: "+strings.Join(tokens.RouteNames, ", ")+" (default all)", "new route list; \"\" allows every route")),
		ips:           fs.String("ips", "", word("comma-separated client CIDRs (IPv4 or IPv6) the token may be used from (default any)", "new address list; \"\" allows any address")),
		maxConcurrent: fs.Int("max-concurrent", 0, word("most requests in flight at once (default no limit)", "new in-flight limit; 0 is no limit")),
		maxRequest:    fs.String("max-request-usd", "", word("most one request's worst case may cost, in USD (default no limit)", "new per-request limit in USD; unlimited removes it")),
		rotateEvery:   fs.String("rotate-every", "", word("how often the secret is due for rotation, e.g. 90d, or never (default the server's tokens.rotate_every, 90d)", "new rotation period, e.g. 30d, or never")),
	}
}

// check refuses, before anything is sent, what the server would refuse.
func (lf *tokenLedgerFlags) check(cmd string) error {
	if err := tokens.CheckText("owner", *lf.owner, tokens.MaxOwner); err != nil {
		return usageError(err.Error() + " (invalid_request)")
	}
	if err := tokens.CheckText("purpose", *lf.purpose, tokens.MaxPurpose); err != nil {
		return usageError(err.Error() + " (invalid_request)")
	}
	if *lf.maxConcurrent < 0 {
		return usageError(cmd + ": --max-concurrent must not be negative")
	}
	return nil
}

// split is a comma-separated list; "" is the empty list.
func split(s string) []string {
	if strings.TrimSpace(s) == "" {
		return []string{}
	}
	out := strings.Split(s, ",")
	for i := range out {
		out[i] = strings.TrimSpace(out[i])
	}
	return out
}

// into adds the flags the command line gave to body.
func (lf *tokenLedgerFlags) into(fs *flag.FlagSet, body map[string]any) {
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "owner":
			body["owner"] = *lf.owner
		case "purpose":
			body["purpose"] = *lf.purpose
		case "routes":
			body["routes"] = split(*lf.routes)
		case "ips":
			body["ips"] = split(*lf.ips)
		case "max-concurrent":
			body["max_concurrent"] = *lf.maxConcurrent
		case "max-request-usd":
			body["max_request_usd"] = *lf.maxRequest
		case "rotate-every":
			body["rotate_every"] = *lf.rotateEvery
		}
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// shortTime is a time for a table: local, to the minute; "-" for none.
func shortTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04")
}

// lastUsed is a token's last use for a table.
func (t tokenJSON) lastUsed() string {
	if t.LastUsed == nil {
		return "never"
	}
	return shortTime(t.LastUsed.Time) + " " + t.LastUsed.IP
}

// due is what is due for a token, for a table.
func (t tokenJSON) due() string {
	switch {
	case t.Due != "" && t.Due != "expired" && t.Due != "expires soon":
		return t.Due + " (" + shortTime(t.RotateBy) + ")"
	case t.Due != "":
		return t.Due + " (" + shortTime(t.Expires) + ")"
	case !t.RotatingUntil.IsZero():
		return "old secret in grace until " + shortTime(t.RotatingUntil)
	}
	return "-"
}

// list shows a scope list; empty means no restriction.
func list(s []string, none string) string {
	if len(s) == 0 {
		return none
	}
	return strings.Join(s, ", ")
}

// refusalsJSON is token show's "refusals": the requests refused before any
// money was reserved, by code and by client address.
type refusalsJSON struct {
	Codes []struct {
		Code   string    `json:"code"`
		Count  int64     `json:"count"`
		First  time.Time `json:"first"`
		Last   time.Time `json:"last"`
		LastIP string    `json:"last_ip"`
	} `json:"codes"`
	IPs []struct {
		IP       string    `json:"ip"`
		First    time.Time `json:"first"`
		Last     time.Time `json:"last"`
		Requests int64     `json:"requests"`
	} `json:"ips"`
}

// printRefusals prints token show's refusals part.
func printRefusals(w io.Writer, r *refusalsJSON) error {
	if r == nil || len(r.Codes) == 0 {
		_, err := fmt.Fprintln(w, "\nrefusals: none")
		return err
	}
	fmt.Fprintln(w, "\nrefusals (refused before any money was reserved):")
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "CODE\tCOUNT\tFIRST\tLAST\tLAST IP")
	for _, c := range r.Codes {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%s\n", c.Code, c.Count, shortTime(c.First), shortTime(c.Last), orDash(c.LastIP))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.IPs) == 0 {
		return nil
	}
	fmt.Fprintln(w, "\nrefused client addresses:")
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "IP\tFIRST\tLAST\tREFUSALS")
	for _, e := range r.IPs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", e.IP, shortTime(e.First), shortTime(e.Last), e.Requests)
	}
	return tw.Flush()
}

// printToken prints token show's answer: the whole ledger entry.
func printToken(w io.Writer, t tokenJSON) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	row := func(k, v string) { fmt.Fprintf(tw, "%s\t%s\n", k, v) }
	row("id", t.ID)
	row("project", t.Project)
	row("name", orDash(t.Name))
	row("owner", orDash(t.Owner))
	row("purpose", orDash(t.Purpose))
	row("state", t.State)
	row("created", shortTime(t.Created)+" by "+orDash(t.CreatedBy))
	row("last used", t.lastUsed())
	if t.LastUsed != nil && t.LastUsed.UserAgent != "" {
		row("user agent", t.LastUsed.UserAgent)
	}
	row("requests", fmt.Sprint(t.Requests))
	row("rotate every", t.RotateEvery)
	row("rotate by", shortTime(t.RotateBy))
	if !t.Rotated.IsZero() {
		row("rotated", shortTime(t.Rotated))
	}
	if !t.RotatingUntil.IsZero() {
		row("old secret valid until", shortTime(t.RotatingUntil))
	}
	row("due", t.due())
	row("expires", shortTime(t.Expires))
	row("budget", fmt.Sprintf("%s; spent %s, reserved %s", t.Budget.describe(), t.Budget.Spent, t.Budget.Reserved))
	row("alert at", alertAtList(t.AlertAt))
	row("models", list(t.Models, "any priced model"))
	row("routes", list(t.Routes, "all"))
	row("ips", list(t.IPs, "any"))
	limit := func(n int) string {
		if n == 0 {
			return "no limit"
		}
		return fmt.Sprint(n)
	}
	row("rpm", limit(t.RPM))
	row("max concurrent", limit(t.MaxConcurrent))
	mr := t.MaxRequest
	if mr == "" {
		mr = "no limit"
	} else {
		mr += " USD"
	}
	row("max request", mr)
	if !t.Revoked.IsZero() {
		row("revoked", shortTime(t.Revoked))
	}
	row("killed", fmt.Sprint(t.Killed))
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(t.ClientIPs) > 0 {
		fmt.Fprintln(w, "\nclient addresses:")
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "IP\tFIRST\tLAST\tREQUESTS")
		for _, e := range t.ClientIPs {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d\n", e.IP, shortTime(e.First), shortTime(e.Last), e.Requests)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	return printRefusals(w, t.Refusals)
}
