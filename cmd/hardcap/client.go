package main

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

// client talks to a running server's admin API.
type client struct {
	server string
	json   bool
	out    io.Writer
	// dataDir and config say where to find admin.token when
	// $HARDCAP_ADMIN_TOKEN is unset; it is read on the first call, after the
	// command line has been checked.
	dataDir, config string
}

// clientFlags adds the flags every client command takes to fs and returns
// prepare, which parses the command line (want positional arguments) and
// builds the client.
func clientFlags(fs *flag.FlagSet, stdout io.Writer) (prepare func(args []string, want int) ([]string, *client, error)) {
	server := fs.String("server", "", "server URL (default $HARDCAP_SERVER or http://127.0.0.1:8787)")
	jsonOut := fs.Bool("json", false, "print the API's JSON")
	data := fs.String("data-dir", "", "data directory holding admin.token")
	config := fs.String("config", "", "config file naming the data directory")
	return func(args []string, want int) ([]string, *client, error) {
		pos, err := parseFlags(fs, args, want)
		if err != nil {
			return nil, nil, err
		}
		c := &client{server: *server, json: *jsonOut, out: stdout, dataDir: *data, config: *config}
		if c.server == "" {
			c.server = os.Getenv("HARDCAP_SERVER")
		}
		if c.server == "" {
			c.server = "http://127.0.0.1:8787"
		}
		c.server = strings.TrimSuffix(c.server, "/")
		return pos, c, nil
	}
}

// adminToken is $HARDCAP_ADMIN_TOKEN, else the server's admin.token.
func (c *client) adminToken() (string, error) {
	if t := strings.TrimSpace(os.Getenv("HARDCAP_ADMIN_TOKEN")); t != "" {
		return t, nil
	}
	cfg, err := loadConfig(c.config)
	if err != nil {
		return "", err
	}
	dir, err := dataDir(c.dataDir, cfg.DataDir)
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(filepath.Join(dir, "admin.token"))
	if err != nil {
		return "", fmt.Errorf("no admin token: set $HARDCAP_ADMIN_TOKEN or point --data-dir at the server's data directory (%v)", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// call sends one admin request and decodes the JSON answer into v (when v
// is not nil). With --json it also prints the answer as it came.
func (c *client) call(ctx context.Context, method, path string, body any, v any) error {
	token, err := c.adminToken()
	if err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("cannot reach hardcap at %s: is `hardcap serve` running? (%v)", c.server, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Error struct{ Code, Message string } `json:"error"`
		}
		if json.Unmarshal(raw, &e) == nil && e.Error.Message != "" {
			if c.json {
				c.out.Write(raw)
			}
			return fmt.Errorf("%s (%s)", e.Error.Message, e.Error.Code)
		}
		return fmt.Errorf("server answered %s", resp.Status)
	}
	if c.json {
		_, err := c.out.Write(raw)
		return err
	}
	if v != nil {
		if w, ok := v.(io.Writer); ok {
			_, err := w.Write(raw)
			return err
		}
		return json.Unmarshal(raw, v)
	}
	return nil
}

func clientCommand(ctx context.Context, args []string, stdout io.Writer) error {
	name := args[0]
	args = args[1:]
	sub := ""
	if name == "project" || name == "token" {
		if len(args) == 0 {
			return usageError(name + ": want a subcommand (see hardcap help)")
		}
		sub, args = args[0], args[1:]
	}
	fs := newFlagSet(strings.TrimSpace(name + " " + sub))
	prepare := clientFlags(fs, stdout)
	switch name + " " + sub {
	case "project create":
		budgetUSD := fs.String("budget", "", "budget in USD")
		period := fs.String("period", "", "day, week, month or total (default total)")
		pos, c, err := prepare(args, 1)
		if err != nil {
			return err
		}
		var p projectJSON
		if err := c.call(ctx, "POST", "/admin/v1/projects", map[string]any{"name": pos[0], "budget_usd": *budgetUSD, "period": *period}, &p); err != nil || c.json {
			return err
		}
		fmt.Fprintf(stdout, "project %s created (budget %s)\n", p.Name, p.Budget.describe())
		return nil
	case "project list":
		_, c, err := prepare(args, 0)
		if err != nil {
			return err
		}
		var out struct{ Projects []projectJSON }
		if err := c.call(ctx, "GET", "/admin/v1/projects", nil, &out); err != nil || c.json {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PROJECT\tBUDGET\tSPENT\tRESERVED\tKILLED")
		for _, p := range out.Projects {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\n", p.Name, p.Budget.describe(), p.Budget.Spent, p.Budget.Reserved, p.Killed)
		}
		return tw.Flush()
	case "token create":
		project := fs.String("project", "", "project the token spends from (required)")
		label := fs.String("name", "", "label for the token")
		budgetUSD := fs.String("budget", "", "budget in USD")
		period := fs.String("period", "", "day, week, month or total (default total)")
		models := fs.String("models", "", "comma-separated models the token may use (default any)")
		expires := fs.String("expires", "", "lifetime, e.g. 720h or 30d (default never)")
		rpm := fs.Int("rpm", 0, "requests per minute (default no limit)")
		_, c, err := prepare(args, 0)
		if err != nil {
			return err
		}
		if *project == "" {
			return usageError("token create: --project is required")
		}
		body := map[string]any{"project": *project, "name": *label, "budget_usd": *budgetUSD, "period": *period, "expires": *expires, "rpm": *rpm}
		if *models != "" {
			body["models"] = strings.Split(*models, ",")
		}
		var t tokenJSON
		if err := c.call(ctx, "POST", "/admin/v1/tokens", body, &t); err != nil || c.json {
			return err
		}
		fmt.Fprintf(stdout, "%s\n\ntoken %s for project %s (budget %s). The token is shown once; store it now.\n", t.Token, t.ID, t.Project, t.Budget.describe())
		return nil
	case "token list":
		project := fs.String("project", "", "only this project's tokens")
		_, c, err := prepare(args, 0)
		if err != nil {
			return err
		}
		var out struct{ Tokens []tokenJSON }
		if err := c.call(ctx, "GET", "/admin/v1/tokens?project="+url.QueryEscape(*project), nil, &out); err != nil || c.json {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tPROJECT\tSTATE\tBUDGET\tSPENT\tRESERVED")
		for _, t := range out.Tokens {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Project, t.State, t.Budget.describe(), t.Budget.Spent, t.Budget.Reserved)
		}
		return tw.Flush()
	case "token revoke":
		pos, c, err := prepare(args, 1)
		if err != nil {
			return err
		}
		var t tokenJSON
		if err := c.call(ctx, "DELETE", "/admin/v1/tokens/"+url.PathEscape(pos[0]), nil, &t); err != nil || c.json {
			return err
		}
		fmt.Fprintf(stdout, "token %s revoked\n", t.ID)
		return nil
	case "usage ":
		project := fs.String("project", "", "only this project")
		token := fs.String("token", "", "only this token id")
		since := fs.String("since", "", "only the last DURATION, e.g. 24h or 7d")
		csvOut := fs.Bool("csv", false, "print CSV")
		_, c, err := prepare(args, 0)
		if err != nil {
			return err
		}
		q := url.Values{}
		for k, v := range map[string]string{"project": *project, "token": *token, "since": *since} {
			if v != "" {
				q.Set(k, v)
			}
		}
		if *csvOut {
			q.Set("format", "csv")
			c.json = false
			return c.call(ctx, "GET", "/admin/v1/usage?"+q.Encode(), nil, stdout)
		}
		var u usageJSON
		if err := c.call(ctx, "GET", "/admin/v1/usage?"+q.Encode(), nil, &u); err != nil || c.json {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tTOKEN\tPROJECT\tMODEL\tSTATUS\tIN\tOUT\tRESERVED\tCHARGED\tOUTCOME")
		for _, r := range u.Records {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", r.Time.Local().Format("01-02 15:04:05"), r.TokenID, r.Project, r.Model, r.Status,
				r.Usage.InputTokens, r.Usage.OutputTokens, r.Reserved, r.Charged, r.Outcome)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\n%d requests, spent %s USD, %s USD reserved in flight\n", len(u.Records), u.Spent, u.Reserved)
		return nil
	case "kill ", "resume ":
		project := fs.String("project", "", "only this project")
		token := fs.String("token", "", "only this token id")
		_, c, err := prepare(args, 0)
		if err != nil {
			return err
		}
		if *project != "" && *token != "" {
			return usageError(name + ": name --project or --token, not both")
		}
		var out struct {
			Scope  string
			Killed bool
			Cut    int
		}
		if err := c.call(ctx, "POST", "/admin/v1/"+name, map[string]any{"project": *project, "token": *token}, &out); err != nil || c.json {
			return err
		}
		if out.Killed {
			fmt.Fprintf(stdout, "kill switch on for %s; %d in-flight request(s) cut\n", out.Scope, out.Cut)
		} else {
			fmt.Fprintf(stdout, "kill switch off for %s\n", out.Scope)
		}
		return nil
	case "status ":
		_, c, err := prepare(args, 0)
		if err != nil {
			return err
		}
		var st statusJSON
		if err := c.call(ctx, "GET", "/admin/v1/status", nil, &st); err != nil || c.json {
			return err
		}
		fmt.Fprintf(stdout, "hardcap %s on %s (demo: %v)\n", st.Version, st.Listen, st.Demo)
		fmt.Fprintf(stdout, "global budget: %s; spent %s, reserved %s (%s)\n", st.Global.describe(), st.Global.Spent, st.Global.Reserved, st.Global.Window)
		fmt.Fprintf(stdout, "kill switch (all): %v; in flight: %d; open reservations: %d; overshoots: %d (%s USD)\n", st.KillAll, st.InFlight, st.OpenReservations, st.Overshoots, st.OvershootUSD)
		line := fmt.Sprintf("settlements waiting to be written: %d (%s USD held)", st.SettlementsWaiting, st.SettlementsWaitingUSD)
		if st.SettlementsWaiting > 0 {
			line += ": the ledger could not write them (full disk?); they are retried until they land"
		}
		fmt.Fprintln(stdout, line)
		for _, p := range st.Prices {
			line := fmt.Sprintf("prices: %s from %s", p.Name, p.Origin)
			if p.AsOf != "" {
				line += fmt.Sprintf(", as of %s (%d days old)", p.AsOf, p.AgeDays)
			}
			if p.Stale {
				line += ": older than 90 days, run hardcap prices update"
			}
			fmt.Fprintln(stdout, line)
		}
		return nil
	}
	return usageError(fmt.Sprintf("unknown command %q", strings.TrimSpace(name+" "+sub)))
}

// The JSON shapes the CLI prints from. Money stays a decimal string.
type budgetJSON struct {
	Limit    string `json:"limit_usd"`
	Period   string `json:"period"`
	Window   string `json:"window"`
	Spent    string `json:"spent_usd"`
	Reserved string `json:"reserved_usd"`
}

func (b budgetJSON) describe() string {
	if b.Limit == "" || strings.Trim(b.Limit, "0.") == "" {
		return "unlimited"
	}
	return b.Limit + " USD/" + b.Period
}

type projectJSON struct {
	Name   string     `json:"name"`
	Killed bool       `json:"killed"`
	Budget budgetJSON `json:"budget"`
}

type tokenJSON struct {
	ID      string     `json:"id"`
	Token   string     `json:"token"`
	Name    string     `json:"name"`
	Project string     `json:"project"`
	State   string     `json:"state"`
	Budget  budgetJSON `json:"budget"`
}

type usageJSON struct {
	Spent    string `json:"spent_usd"`
	Reserved string `json:"reserved_usd"`
	Records  []struct {
		Time    time.Time `json:"time"`
		TokenID string    `json:"token_id"`
		Project string    `json:"project"`
		Model   string    `json:"model"`
		Status  int       `json:"status"`
		Outcome string    `json:"outcome"`
		Usage   struct {
			InputTokens  int64 `json:"input_tokens"`
			OutputTokens int64 `json:"output_tokens"`
		} `json:"usage"`
		Reserved string `json:"reserved_usd"`
		Charged  string `json:"charged_usd"`
	} `json:"records"`
}

type statusJSON struct {
	Version          string     `json:"version"`
	Listen           string     `json:"listen"`
	Demo             bool       `json:"demo"`
	KillAll          bool       `json:"kill_all"`
	InFlight         int        `json:"in_flight"`
	OpenReservations int        `json:"open_reservations"`
	Overshoots       uint64     `json:"overshoots"`
	OvershootUSD     string     `json:"overshoot_usd"`
	Global           budgetJSON `json:"global"`
	Prices           []struct {
		Name    string `json:"name"`
		Origin  string `json:"origin"`
		AsOf    string `json:"as_of"`
		AgeDays int    `json:"age_days"`
		Stale   bool   `json:"stale"`
	} `json:"prices"`
	// SettlementsWaiting counts settlements the ledger failed to write,
	// retried until they land; SettlementsWaitingUSD is what their
	// reservations hold meanwhile.
	SettlementsWaiting    int    `json:"settlements_waiting"`
	SettlementsWaitingUSD string `json:"settlements_waiting_usd"`
}
