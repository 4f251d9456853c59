package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/url"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/proxy/admin"
)

// alertMessageWidth is how many characters of an alert's message the
// table shows; --json has it whole.
const alertMessageWidth = 80

// alertsCommand serves `hardcap alerts [--limit N] [--type T] [--since D]`
// (recent alerts and where their delivery stands) and `hardcap alerts
// test [--channel NAME]` (send a test alert now).
func alertsCommand(ctx context.Context, args []string, stdout io.Writer) error {
	sub := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		sub, args = args[0], args[1:]
	}
	switch sub {
	case "":
		return alertsList(ctx, args, stdout)
	case "test":
		return alertsTest(ctx, args, stdout)
	}
	return usageError(fmt.Sprintf("alerts: unknown subcommand %q (see hardcap help alerts)", budget.Clip(sub)))
}

func alertsList(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("alerts")
	prepare := clientFlags(fs, stdout)
	limit := fs.Int("limit", 0, "show only the newest N alerts (default 100, at most 1000)")
	typ := fs.String("type", "", "only alerts of this type, e.g. budget.threshold or anomaly.new_ip")
	since := fs.String("since", "", "only alerts raised in the last DURATION (e.g. 24h or 7d) or since a time (2026-11-30T14:00:00Z)")
	_, c, err := prepare(args, 0)
	if err != nil {
		return err
	}
	if *limit < 0 {
		return usageError("alerts: --limit must not be negative")
	}
	q := url.Values{}
	if *limit > 0 {
		q.Set("limit", strconv.Itoa(*limit))
	}
	if *typ != "" {
		q.Set("type", *typ)
	}
	if *since != "" {
		q.Set("since", *since)
	}
	path := "/admin/v1/alerts"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out admin.AlertsView
	if err := c.call(ctx, "GET", path, nil, &out); err != nil || c.json {
		return err
	}
	return printAlerts(stdout, out.Alerts)
}

// printAlerts writes alerts as a table, newest first.
func printAlerts(w io.Writer, entries []alert.Entry) error {
	if len(entries) == 0 {
		_, err := fmt.Fprintln(w, "no alerts")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tID\tTYPE\tSCOPE\tACTION\tDELIVERY\tMESSAGE")
	for _, e := range entries {
		a := e.Alert
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Time.Local().Format("2006-01-02 15:04:05"), a.ID, a.Type,
			oneLine(scopeText(a.Scope)), orDash(string(a.Action)), deliveryText(e), budget.ClipTo(oneLine(a.Message), alertMessageWidth))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "\n%d alert(s); --json shows each whole, with its details\n", len(entries))
	return err
}

// scopeText is what an alert is about, for a table.
func scopeText(s alert.Scope) string {
	switch s.Kind {
	case "project":
		return "project " + s.Project
	case "token":
		return "token " + s.TokenID
	case "provider":
		return "provider " + s.Provider
	case "":
		return "global"
	}
	return s.Kind
}

// deliveryText is each channel's delivery of an alert:
// "ops:delivered,slack-1:pending(3)"; "-" before the first attempt.
func deliveryText(e alert.Entry) string {
	if len(e.Deliveries) == 0 {
		return "-"
	}
	parts := make([]string, 0, len(e.Deliveries))
	for _, d := range e.Deliveries {
		state := string(d.State)
		if d.State == alert.Pending {
			state += "(" + strconv.Itoa(d.Attempts) + ")"
		}
		parts = append(parts, oneLine(d.Channel)+":"+state)
	}
	return strings.Join(parts, ",")
}

// oneLine keeps text on one table row: control characters and runs of
// space become one space, so a message cannot break the table or drive the
// terminal.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }), " ")
}

// alertsTestTimeout is how long alerts test waits for the server by
// default: longer than one attempt on the slowest channel.
const alertsTestTimeout = 30 * time.Second

func alertsTest(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("alerts test")
	prepare := clientFlags(fs, stdout)
	channel := fs.String("channel", "", "send to this channel only (default every channel)")
	_, c, err := prepare(args, 0)
	if err != nil {
		return err
	}
	timeoutSet := false
	fs.Visit(func(f *flag.Flag) { timeoutSet = timeoutSet || f.Name == "timeout" })
	if !timeoutSet {
		// One attempt may take a channel's whole 10 s timeout, and the
		// server answers after the slowest.
		c.timeout = alertsTestTimeout
	}
	// The answer is read here even with --json: the exit code says
	// whether every channel took the test.
	jsonOut := c.json
	c.json = false
	var raw bytes.Buffer
	if err := c.call(ctx, "POST", "/admin/v1/alerts/test", admin.AlertTestRequest{Channel: *channel}, &raw); err != nil {
		return err
	}
	var out admin.AlertTestView
	if err := json.Unmarshal(raw.Bytes(), &out); err != nil {
		return fmt.Errorf("the server's answer is not a test result: %w", err)
	}
	if jsonOut {
		if _, err := stdout.Write(raw.Bytes()); err != nil {
			return err
		}
	}
	failed := 0
	for _, r := range out.Results {
		line := oneLine(r.Channel) + ": "
		switch {
		case r.OK && r.Status != 0:
			line += fmt.Sprintf("delivered (%d)", r.Status)
		case r.OK:
			line += "delivered"
		default:
			failed++
			why := r.Error
			if why == "" && r.Status != 0 {
				why = fmt.Sprintf("status %d", r.Status)
			}
			line += "failed: " + oneLine(orDash(why))
		}
		if !jsonOut {
			fmt.Fprintln(stdout, line)
		}
	}
	if len(out.Results) == 0 {
		return fmt.Errorf("alerts test: alert %s was recorded but no channel was tried", out.Alert.ID)
	}
	if failed > 0 {
		return fmt.Errorf("alerts test: %d of %d channel(s) failed; see the server log, fix the channel in the config and retry", failed, len(out.Results))
	}
	return nil
}

// alertAtFlags is the --alert-at flag of project and token create and set.
type alertAtFlags struct{ value *string }

// alertAtFlag adds --alert-at to fs; set says the command changes a
// project or token.
func alertAtFlag(fs *flag.FlagSet, set bool) alertAtFlags {
	usage := "shares of the budget that fire an alert, e.g. 0.5,0.9 (default the config's alerts.thresholds)"
	if set {
		usage = "new alert shares of the budget, e.g. 0.5,0.9; default goes back to the config's alerts.thresholds"
	}
	return alertAtFlags{fs.String("alert-at", "", usage)}
}

// into adds alert_at to body when the command line gave --alert-at: the
// shares as decimal strings, or [] for "default" (and "").
func (f alertAtFlags) into(fs *flag.FlagSet, body map[string]any) error {
	if !flagSet(fs, "alert-at") {
		return nil
	}
	s := strings.TrimSpace(*f.value)
	if s == "" || s == "default" {
		body["alert_at"] = []string{}
		return nil
	}
	parsed, err := budget.ParseFractions(s)
	if err != nil {
		return usageError(fmt.Sprintf("--alert-at: %v: give shares of the budget such as 0.5,0.9 (above 0, at most 10), or default", err))
	}
	shares := make([]string, len(parsed))
	for i, x := range parsed {
		shares[i] = x.String()
	}
	body["alert_at"] = shares
	return nil
}

// alertAtList is a project's or token's thresholds for a table: "0.5,0.9",
// or "default" for the config's.
func alertAtList(shares []string) string {
	if len(shares) == 0 {
		return "default"
	}
	return strings.Join(shares, ",")
}

// alertAtText is the thresholds for a sentence.
func alertAtText(shares []string) string {
	if len(shares) == 0 {
		return "alerts at the config's thresholds"
	}
	return "alerts at " + strings.Join(shares, ", ")
}

// alertsStatusLine is the status answer's alerts as one line: the
// channels by name and kind, and what waits or failed.
func alertsStatusLine(s admin.AlertsStatus) string {
	line := "alerts: no channel configured (alerts.webhooks, alerts.email)"
	if len(s.Channels) > 0 {
		names := make([]string, len(s.Channels))
		for i, c := range s.Channels {
			kind := c.Kind
			if c.Signed {
				kind += ", signed"
			}
			names[i] = fmt.Sprintf("%s (%s)", c.Name, kind)
		}
		line = "alerts: channels " + strings.Join(names, ", ")
	}
	if len(s.Channels) == 0 {
		// Nothing delivers them: they are kept for hardcap alerts, and a
		// channel added later gets those younger than a day.
		line += fmt.Sprintf("; %d recorded and not sent, %d with a failed channel", s.Waiting, s.Failed)
	} else {
		line += fmt.Sprintf("; %d waiting for delivery, %d with a failed channel", s.Waiting, s.Failed)
	}
	if s.Failed > 0 {
		line += " (hardcap alerts shows them)"
	}
	return line
}
