package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/cluster"
	"github.com/hardcap/hardcap/proxy/admin"
	"github.com/hardcap/hardcap/tokens"
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
	// timeout bounds connecting and waiting for the answer's headers.
	timeout time.Duration
	// tokenSource says where the admin token came from, for a 401.
	tokenSource string
}

// defaultTimeout is how long a client command waits for a server that does
// not answer.
const defaultTimeout = 5 * time.Second

// serverURL turns --server into a base URL: a URL as it is, host:port as
// http://host:port.
func serverURL(s string) (string, error) {
	s = strings.TrimSuffix(strings.TrimSpace(s), "/")
	if !strings.Contains(s, "://") {
		s = "http://" + s
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", usageError(fmt.Sprintf("--server %q is neither a URL (http://127.0.0.1:8787) nor host:port (127.0.0.1:8787)", budget.Clip(s)))
	}
	return s, nil
}

// clientFlags adds the flags every client command takes to fs and returns
// prepare, which parses the command line (want positional arguments) and
// builds the client.
func clientFlags(fs *flag.FlagSet, stdout io.Writer) (prepare func(args []string, want int) ([]string, *client, error)) {
	server := fs.String("server", "", "server URL or host:port (default $HARDCAP_SERVER or http://127.0.0.1:8787)")
	timeout := fs.Duration("timeout", defaultTimeout, "give up on a server that does not answer after this long")
	jsonOut := fs.Bool("json", false, "print the API's JSON")
	data := fs.String("data-dir", "", "data directory holding admin.token")
	config := fs.String("config", "", "config file naming the data directory")
	return func(args []string, want int) ([]string, *client, error) {
		pos, err := parseFlags(fs, args, want)
		if err != nil {
			return nil, nil, err
		}
		c := &client{server: *server, json: *jsonOut, out: stdout, dataDir: *data, config: *config, timeout: *timeout}
		if c.server == "" {
			c.server = os.Getenv("HARDCAP_SERVER")
		}
		if c.server == "" {
			c.server = "http://127.0.0.1:8787"
		}
		if c.server, err = serverURL(c.server); err != nil {
			return nil, nil, err
		}
		if c.timeout <= 0 {
			return nil, nil, usageError("--timeout must be positive, e.g. 5s or 1m")
		}
		return pos, c, nil
	}
}

// adminToken is $HARDCAP_ADMIN_TOKEN, else the server's admin.token.
func (c *client) adminToken() (string, error) {
	if t := strings.TrimSpace(os.Getenv("HARDCAP_ADMIN_TOKEN")); t != "" {
		c.tokenSource = "$HARDCAP_ADMIN_TOKEN"
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
	path := filepath.Join(dir, "admin.token")
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("no admin token: set $HARDCAP_ADMIN_TOKEN or point --data-dir at the server's data directory (%v)", err)
	}
	c.tokenSource = path
	return strings.TrimSpace(string(b)), nil
}

// send sends one admin request and returns the answer once its headers
// have come, after what every command shares: the admin token, --timeout
// for connecting and for the headers, and clear messages for a server that
// does not answer, refuses the admin token or finds the request too large.
// The caller closes the body.
func (c *client) send(ctx context.Context, method, path string, body any) (*http.Response, error) {
	token, err := c.adminToken()
	if err != nil {
		return nil, err
	}
	var raw []byte
	if body != nil {
		if raw, err = json.Marshal(body); err != nil {
			return nil, err
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.server+path, bytes.NewReader(raw))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := c.httpClient().Do(req)
	if err != nil {
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			return nil, fmt.Errorf("hardcap at %s did not answer within %s: is it stopped or overloaded? (--timeout waits longer)", c.server, c.timeout)
		case (errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)) && len(path)+len(raw) > largeRequest:
			// The server cuts a request whose headers are over its limit
			// while the client is still sending them.
			return nil, fmt.Errorf("hardcap at %s closed the connection: the request was too large for the server (%d bytes); shorten the values given", c.server, len(path)+len(raw))
		}
		// The error names the URL, which may hold a long value given on
		// the command line.
		return nil, fmt.Errorf("cannot reach hardcap at %s: is `hardcap serve` running? (%s)", c.server, budget.ClipTo(err.Error(), 300))
	}
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		// Only the admin API's own "unauthorized" is a refusal of the
		// admin token; any other 401 (a domain error answered
		// invalid_api_key, say) is handed on for the caller to report.
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		resp.Body.Close()
		if apiErrorCode(raw) == "unauthorized" {
			return nil, fmt.Errorf("hardcap at %s refused the admin token from %s (401): use the token of that server's data dir (--data-dir) or set $HARDCAP_ADMIN_TOKEN", c.server, c.tokenSource)
		}
		resp.Body = io.NopCloser(bytes.NewReader(raw))
	case http.StatusRequestHeaderFieldsTooLarge:
		resp.Body.Close()
		return nil, fmt.Errorf("hardcap at %s answered %s: the request was too large for the server (%d bytes); shorten the values given", c.server, resp.Status, len(path)+len(raw))
	}
	return resp, nil
}

// largeRequest is the size, in bytes of path and body, past which a reset
// connection is taken for the server's refusal of a request too large
// (net/http allows 64 kB of headers by default, hardcap's admin API 1 MB of
// body); a small request cut off is reported as the network error it is.
const largeRequest = 16 << 10

// apiError is the API's error in an answer that is not a success, as its
// message and code; nil when the body is not the API's error shape.
func apiError(raw []byte) error {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if json.Unmarshal(raw, &e) != nil || e.Error.Message == "" {
		return nil
	}
	return fmt.Errorf("%s (%s)", e.Error.Message, e.Error.Code)
}

// apiErrorCode is the code of the API's error in raw, "" when raw is not
// the API's error shape.
func apiErrorCode(raw []byte) string {
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if json.Unmarshal(raw, &e) != nil {
		return ""
	}
	return e.Error.Code
}

// call sends one admin request and decodes the JSON answer into v (when v
// is not nil). With --json it also prints the answer as it came.
func (c *client) call(ctx context.Context, method, path string, body any, v any) error {
	resp, err := c.send(ctx, method, path, body)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 256<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode >= 300 {
		if err := apiError(raw); err != nil {
			if c.json {
				c.out.Write(raw)
			}
			return err
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

// stream copies the body of a GET to w as it arrives, for answers too long
// to hold (a usage export); an error answer is reported as call reports it.
func (c *client) stream(ctx context.Context, path string, w io.Writer) error {
	resp, err := c.send(ctx, "GET", path, nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode >= 300 {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
		if err := apiError(raw); err != nil {
			if c.json {
				c.out.Write(raw)
			}
			return err
		}
		return fmt.Errorf("server answered %s", resp.Status)
	}
	if _, err := io.Copy(w, resp.Body); err != nil {
		return fmt.Errorf("the answer was cut short: %w", err)
	}
	return nil
}

// httpClient waits at most c.timeout to connect and for the answer's
// headers; the body (a long CSV export, a backup) may take longer.
func (c *client) httpClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{Timeout: c.timeout}).DialContext
	tr.TLSHandshakeTimeout = c.timeout
	tr.ResponseHeaderTimeout = c.timeout
	return &http.Client{Transport: tr}
}

// checkProject refuses, before anything is sent, a project name the server
// would refuse, with the server's message: a long name would otherwise be
// cut off by the server's header limit with a bare socket error.
func checkProject(name string) error {
	if err := tokens.CheckName(name); err != nil {
		return usageError(err.Error() + " (invalid_request)")
	}
	return nil
}

// checkTokenID refuses, before anything is sent, a token id no token can
// have (ids are "tok_" and 12 letters or digits, which fit the rule for
// names), with the server's message for an unknown id.
func checkTokenID(id string) error {
	if tokens.Parse(id) == nil || strings.HasPrefix(id, tokens.Prefix) {
		// A leaked secret pasted where an id belongs must not travel in a
		// URL (proxies log paths) nor come back in a message.
		return usageError("that is a token's secret, not its id (tok_...): find which token it is with `hardcap scan FILE` (it looks the token up by hash) and never pass a secret on a command line")
	}
	if tokens.CheckName(id) != nil {
		return usageError(fmt.Sprintf("%v: %s (not_found)", tokens.ErrTokenNotFound, budget.Clip(id)))
	}
	return nil
}

// checkLabel refuses a token name the server would refuse.
func checkLabel(label string) error {
	if err := tokens.CheckLabel(label); err != nil {
		return usageError(err.Error() + " (invalid_request)")
	}
	return nil
}

// checkScope checks --project and --token where a command takes them; an
// empty flag is not given.
func checkScope(project, token string) error {
	if project != "" {
		if err := checkProject(project); err != nil {
			return err
		}
	}
	if token != "" {
		return checkTokenID(token)
	}
	return nil
}

// stdoutIsTerminal reports whether w is a terminal; tests replace it.
var stdoutIsTerminal = func(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// terminalUsageLimit is how many usage records a terminal shows without
// --limit.
const terminalUsageLimit = 100

func clientCommand(ctx context.Context, args []string, stdout io.Writer) error {
	name := args[0]
	args = args[1:]
	sub := ""
	if name == "project" || name == "token" {
		if len(args) == 0 {
			return usageError(name + ": want a subcommand (see hardcap help " + name + ")")
		}
		sub, args = args[0], args[1:]
		if sub == "-h" || sub == "--help" || sub == "help" {
			fmt.Fprint(stdout, groupHelp(name))
			return nil
		}
	}
	fs := newFlagSet(strings.TrimSpace(name + " " + sub))
	prepare := clientFlags(fs, stdout)
	switch name + " " + sub {
	case "project create":
		budgetUSD := fs.String("budget", "", "budget in USD; 0 is zero, unlimited (the default) is no limit")
		period := fs.String("period", "", "day, week, month or total (default total)")
		alertAt := alertAtFlag(fs, false)
		pos, c, err := prepare(args, 1)
		if err != nil {
			return err
		}
		if err := checkProject(pos[0]); err != nil {
			return err
		}
		body := map[string]any{"name": pos[0], "budget_usd": *budgetUSD, "period": *period}
		if err := alertAt.into(fs, body); err != nil {
			return err
		}
		var p projectJSON
		if err := c.call(ctx, "POST", "/admin/v1/projects", body, &p); err != nil || c.json {
			return err
		}
		fmt.Fprintf(stdout, "project %s created (budget %s, %s)\n", p.Name, p.Budget.describe(), alertAtText(p.AlertAt))
		return nil
	case "project set":
		budgetUSD := fs.String("budget", "", "new budget in USD; 0 is zero, unlimited is no limit")
		period := fs.String("period", "", "new period: day, week, month or total")
		alertAt := alertAtFlag(fs, true)
		pos, c, err := prepare(args, 1)
		if err != nil {
			return err
		}
		if err := checkProject(pos[0]); err != nil {
			return err
		}
		body := setFlags(fs, map[string]string{"budget": "budget_usd", "period": "period"}, map[string]any{"budget": *budgetUSD, "period": *period})
		if err := alertAt.into(fs, body); err != nil {
			return err
		}
		if len(body) == 0 {
			return usageError("project set: give --budget, --period or --alert-at (see hardcap help project set)")
		}
		var p projectJSON
		if err := c.call(ctx, "PATCH", "/admin/v1/projects/"+url.PathEscape(pos[0]), body, &p); err != nil || c.json {
			return err
		}
		fmt.Fprintf(stdout, "project %s: budget %s; spent %s, reserved %s (%s); %s\n", p.Name, p.Budget.describe(), p.Budget.Spent, p.Budget.Reserved, p.Budget.Window, alertAtText(p.AlertAt))
		return nil
	case "project delete":
		revoke := fs.Bool("revoke-tokens", false, "revoke the project's live tokens (and cut their requests) instead of refusing")
		pos, c, err := prepare(args, 1)
		if err != nil {
			return err
		}
		if err := checkProject(pos[0]); err != nil {
			return err
		}
		path := "/admin/v1/projects/" + url.PathEscape(pos[0])
		if *revoke {
			path += "?revoke_tokens=true"
		}
		var out struct {
			Project string   `json:"project"`
			Revoked []string `json:"revoked"`
			Cut     int      `json:"cut"`
		}
		if err := c.call(ctx, "DELETE", path, nil, &out); err != nil || c.json {
			return err
		}
		fmt.Fprintf(stdout, "project %s deleted; %d token(s) revoked, %d in-flight request(s) cut; its usage records stay\n", out.Project, len(out.Revoked), out.Cut)
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
		fmt.Fprintln(tw, "PROJECT\tBUDGET\tSPENT\tRESERVED\tKILLED\tALERT AT")
		for _, p := range out.Projects {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%v\t%s\n", p.Name, p.Budget.describe(), p.Budget.Spent, p.Budget.Reserved, p.Killed, alertAtList(p.AlertAt))
		}
		return tw.Flush()
	case "token create":
		project := fs.String("project", "", "project the token spends from (required)")
		label := fs.String("name", "", "label for the token (at most 128 characters)")
		budgetUSD := fs.String("budget", "", "budget in USD; 0 is zero, unlimited (the default) is no limit")
		period := fs.String("period", "", "day, week, month or total (default total)")
		models := fs.String("models", "", "comma-separated models the token may use (default any)")
		expires := fs.String("expires", "", "lifetime, e.g. 720h, 30d or 1y, at most 100 years (default never)")
		rpm := fs.Int("rpm", 0, "requests per minute (default no limit)")
		lf := ledgerFlags(fs, false)
		alertAt := alertAtFlag(fs, false)
		_, c, err := prepare(args, 0)
		if err != nil {
			return err
		}
		if *project == "" {
			return usageError("token create: --project is required")
		}
		if err := checkProject(*project); err != nil {
			return err
		}
		if err := checkLabel(*label); err != nil {
			return err
		}
		body := map[string]any{"project": *project, "name": *label, "budget_usd": *budgetUSD, "period": *period, "expires": *expires, "rpm": *rpm}
		if *models != "" {
			body["models"] = strings.Split(*models, ",")
		}
		if err := lf.check("token create"); err != nil {
			return err
		}
		lf.into(fs, body)
		if err := alertAt.into(fs, body); err != nil {
			return err
		}
		var t tokenJSON
		if err := c.call(ctx, "POST", "/admin/v1/tokens", body, &t); err != nil || c.json {
			return err
		}
		fmt.Fprintf(stdout, "%s\n\ntoken %s for project %s (budget %s, %s, owner %s, rotate by %s). The token is shown once; store it now.\n",
			t.Token, t.ID, t.Project, t.Budget.describe(), alertAtText(t.AlertAt), orDash(t.Owner), shortTime(t.RotateBy))
		return nil
	case "token set":
		label := fs.String("name", "", "new label")
		budgetUSD := fs.String("budget", "", "new budget in USD; 0 is zero, unlimited is no limit")
		period := fs.String("period", "", "new period: day, week, month or total")
		models := fs.String("models", "", "new comma-separated model list; \"\" allows every priced model")
		expires := fs.String("expires", "", "new lifetime from now, e.g. 30d or 1y, or never")
		rpm := fs.Int("rpm", 0, "new requests per minute; 0 is no limit")
		lf := ledgerFlags(fs, true)
		alertAt := alertAtFlag(fs, true)
		pos, c, err := prepare(args, 1)
		if err != nil {
			return err
		}
		if err := checkTokenID(pos[0]); err != nil {
			return err
		}
		if err := checkLabel(*label); err != nil {
			return err
		}
		modelList := []string{}
		if *models != "" {
			modelList = strings.Split(*models, ",")
		}
		body := setFlags(fs,
			map[string]string{"name": "name", "budget": "budget_usd", "period": "period", "models": "models", "expires": "expires", "rpm": "rpm"},
			map[string]any{"name": *label, "budget": *budgetUSD, "period": *period, "models": modelList, "expires": *expires, "rpm": *rpm})
		if err := lf.check("token set"); err != nil {
			return err
		}
		lf.into(fs, body)
		if err := alertAt.into(fs, body); err != nil {
			return err
		}
		if len(body) == 0 {
			return usageError("token set: give at least one of --name, --owner, --purpose, --budget, --period, --models, --routes, --ips, --expires, --rpm, --max-concurrent, --max-request-usd, --rotate-every, --alert-at (see hardcap help token set)")
		}
		var t tokenJSON
		if err := c.call(ctx, "PATCH", "/admin/v1/tokens/"+url.PathEscape(pos[0]), body, &t); err != nil || c.json {
			return err
		}
		fmt.Fprintf(stdout, "token %s (project %s, %s): budget %s; spent %s, reserved %s; %s\n", t.ID, t.Project, t.State, t.Budget.describe(), t.Budget.Spent, t.Budget.Reserved, alertAtText(t.AlertAt))
		return nil
	case "token list":
		project := fs.String("project", "", "only this project's tokens")
		_, c, err := prepare(args, 0)
		if err != nil {
			return err
		}
		if err := checkScope(*project, ""); err != nil {
			return err
		}
		var out struct{ Tokens []tokenJSON }
		if err := c.call(ctx, "GET", "/admin/v1/tokens?project="+url.QueryEscape(*project), nil, &out); err != nil || c.json {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tPROJECT\tOWNER\tPURPOSE\tSTATE\tBUDGET\tSPENT\tRESERVED\tLAST USED\tDUE")
		for _, t := range out.Tokens {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, t.Name, t.Project, orDash(t.Owner), orDash(budget.ClipTo(t.Purpose, 40)),
				t.State, t.Budget.describe(), t.Budget.Spent, t.Budget.Reserved, t.lastUsed(), t.due())
		}
		return tw.Flush()
	case "token show":
		pos, c, err := prepare(args, 1)
		if err != nil {
			return err
		}
		if err := checkTokenID(pos[0]); err != nil {
			return err
		}
		var t tokenJSON
		if err := c.call(ctx, "GET", "/admin/v1/tokens/"+url.PathEscape(pos[0]), nil, &t); err != nil || c.json {
			return err
		}
		return printToken(stdout, t)
	case "token rotate":
		grace := fs.String("grace", "24h", "how long the old secret keeps working, e.g. 24h or 7d; 0 refuses it at once")
		pos, c, err := prepare(args, 1)
		if err != nil {
			return err
		}
		if err := checkTokenID(pos[0]); err != nil {
			return err
		}
		var t tokenJSON
		if err := c.call(ctx, "POST", "/admin/v1/tokens/"+url.PathEscape(pos[0])+"/rotate", map[string]any{"grace": *grace}, &t); err != nil || c.json {
			return err
		}
		old := "the old secret is refused from now on"
		if !t.RotatingUntil.IsZero() {
			old = "the old secret keeps working until " + shortTime(t.RotatingUntil) + "; requests made with it are marked in hardcap usage"
		}
		next := "Next rotation due " + shortTime(t.RotateBy) + "."
		if t.RotateBy.IsZero() {
			next = "No rotation date is set (--rotate-every never)."
		}
		if t.Cut > 0 {
			old += fmt.Sprintf("; %d request(s) still running on a secret this rotation ended were cut", t.Cut)
		}
		fmt.Fprintf(stdout, "%s\n\ntoken %s rotated: %s. %s The new secret is shown once; store it now.\n", t.Token, t.ID, old, next)
		return nil
	case "token revoke":
		pos, c, err := prepare(args, 1)
		if err != nil {
			return err
		}
		if err := checkTokenID(pos[0]); err != nil {
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
		cursor := fs.String("cursor", "", "only records older than the page that printed this cursor (next_cursor)")
		limit := fs.Int("limit", 0, "show only the newest N records (default 100 on a terminal, all with --json or --csv; 0 is all)")
		_, c, err := prepare(args, 0)
		if err != nil {
			return err
		}
		if err := checkScope(*project, *token); err != nil {
			return err
		}
		if *limit < 0 {
			return usageError("usage: --limit must not be negative")
		}
		q := url.Values{}
		for k, v := range map[string]string{"project": *project, "token": *token, "since": *since, "cursor": *cursor} {
			if v != "" {
				q.Set(k, v)
			}
		}
		n := *limit
		if !flagSet(fs, "limit") && !c.json && !*csvOut && stdoutIsTerminal(stdout) {
			n = terminalUsageLimit
		}
		if n > 0 {
			q.Set("limit", strconv.Itoa(n))
		}
		if *csvOut || c.json {
			// Copied through as the server writes it: an export of every
			// record is never held whole, here or there.
			if *csvOut {
				q.Set("format", "csv")
			}
			return c.stream(ctx, "/admin/v1/usage?"+q.Encode(), stdout)
		}
		var u usageJSON
		if err := c.call(ctx, "GET", "/admin/v1/usage?"+q.Encode(), nil, &u); err != nil || c.json {
			return err
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "TIME\tTOKEN\tPROJECT\tMODEL\tCLIENT\tSTATUS\tIN\tOUT\tRESERVED\tCHARGED\tOUTCOME")
		old := 0
		for _, r := range u.Records {
			outcome := r.Outcome
			if r.OldSecret {
				outcome += " (old secret)"
				old++
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%d\t%d\t%d\t%s\t%s\t%s\n", r.Time.Local().Format("01-02 15:04:05"), r.TokenID, r.Project, r.Model, r.ClientIP, r.Status,
				r.Usage.InputTokens, r.Usage.OutputTokens, r.Reserved, r.Charged, outcome)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		shown := ""
		if len(u.Records) < u.Matched {
			shown = fmt.Sprintf(" (newest %d shown; --limit 0 shows all)", len(u.Records))
		}
		fmt.Fprintf(stdout, "\n%d requests%s, spent %s USD, %s USD reserved in flight\n", u.Matched, shown, u.Spent, u.Reserved)
		if old > 0 {
			fmt.Fprintf(stdout, "%d of those shown used a rotated token's previous secret: the apps at their CLIENT addresses still need the new one\n", old)
		}
		if u.NextCursor != "" {
			fmt.Fprintf(stdout, "older: --cursor %s\n", u.NextCursor)
		}
		return nil
	case "kill ", "resume ":
		project := fs.String("project", "", "only this project")
		token := fs.String("token", "", "only this token id")
		_, c, err := prepare(args, 0)
		if err != nil {
			return err
		}
		if err := checkScope(*project, *token); err != nil {
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
	case "log ":
		return logCommand(ctx, fs, prepare, args, stdout)
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
		if wr := st.Writer; wr.Commits > 0 {
			fmt.Fprintf(stdout, "ledger writer: %d commits carrying %d operations (%.1f per commit); commit time mean %s, p50 <= %s, p99 <= %s, max %s\n",
				wr.Commits, wr.Ops, float64(wr.Ops)/float64(wr.Commits), micros(wr.CommitMeanUS), micros(wr.CommitP50US), micros(wr.CommitP99US), micros(wr.CommitMaxUS))
		}
		fmt.Fprintln(stdout, alertsStatusLine(st.Alerts))
		if cs := st.Cluster; cs != nil {
			reach := "reachable"
			if !cs.Reachable {
				reach = "NOT reachable: serving from the slices held until the lease ends"
			}
			fmt.Fprintf(stdout, "cluster: replica %s; store %s; lease %s left; %d budget windows with slices; %d store round trips; %d usage records to ship\n",
				cs.Replica, reach, (time.Duration(cs.LeaseLeftMS) * time.Millisecond).Round(100*time.Millisecond), cs.Windows, cs.RoundTrips, cs.RecordsToShip)
		}
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
	return usageError(fmt.Sprintf("unknown command %q (see hardcap help)", budget.Clip(strings.TrimSpace(name+" "+sub))))
}

// flagSet reports whether the command line gave flag name.
func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// setFlags builds a PATCH body from the flags the command line gave: keys
// maps a flag to its JSON field, values holds each flag's parsed value.
// Flags not given are left out, so they keep their value.
func setFlags(fs *flag.FlagSet, keys map[string]string, values map[string]any) map[string]any {
	body := map[string]any{}
	fs.Visit(func(f *flag.Flag) {
		if k, ok := keys[f.Name]; ok {
			body[k] = values[f.Name]
		}
	})
	return body
}

// groupHelp lists the subcommands of project or token, from usage.
func groupHelp(name string) string {
	var b strings.Builder
	b.WriteString("Usage:\n")
	inGroup := false
	for _, line := range strings.Split(usage, "\n") {
		switch {
		case strings.HasPrefix(line, "  hardcap "+name+" "):
			inGroup = true
		case inGroup && strings.HasPrefix(line, "    "):
			// A continuation of the line before.
		default:
			inGroup = false
		}
		if inGroup {
			b.WriteString(line + "\n")
		}
	}
	fmt.Fprintf(&b, "\nSee hardcap help %s SUBCOMMAND for its flags and an example.\n", name)
	return b.String()
}

// The JSON shapes the CLI prints from. Money stays a decimal string.
type budgetJSON struct {
	// Limit is "" when the API sent null: no limit.
	Limit    string `json:"limit_usd"`
	Period   string `json:"period"`
	Window   string `json:"window"`
	Spent    string `json:"spent_usd"`
	Reserved string `json:"reserved_usd"`
}

func (b budgetJSON) describe() string {
	if b.Limit == "" {
		return "unlimited"
	}
	return b.Limit + " USD/" + b.Period
}

type projectJSON struct {
	Name   string `json:"name"`
	Killed bool   `json:"killed"`
	// AlertAt are the project's own alert thresholds; empty is the
	// config's.
	AlertAt []string   `json:"alert_at"`
	Budget  budgetJSON `json:"budget"`
}

type tokenJSON struct {
	ID        string    `json:"id"`
	Token     string    `json:"token"`
	Name      string    `json:"name"`
	Project   string    `json:"project"`
	Owner     string    `json:"owner"`
	Purpose   string    `json:"purpose"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by"`
	LastUsed  *struct {
		Time      time.Time `json:"time"`
		IP        string    `json:"ip"`
		UserAgent string    `json:"user_agent"`
	} `json:"last_used"`
	Requests      int64     `json:"requests"`
	RotateEvery   string    `json:"rotate_every"`
	RotateBy      time.Time `json:"rotate_by"`
	Rotated       time.Time `json:"rotated"`
	RotatingUntil time.Time `json:"rotating_until"`
	// Cut is set on a rotation's answer: requests cut because they ran on
	// a secret the rotation ended.
	Cut           int        `json:"cut"`
	Expires       time.Time  `json:"expires"`
	Models        []string   `json:"models"`
	Routes        []string   `json:"routes"`
	IPs           []string   `json:"ips"`
	RPM           int        `json:"rpm"`
	MaxConcurrent int        `json:"max_concurrent"`
	MaxRequest    string     `json:"max_request_usd"`
	Revoked       time.Time  `json:"revoked"`
	Killed        bool       `json:"killed"`
	State         string     `json:"state"`
	Due           string     `json:"due"`
	AlertAt       []string   `json:"alert_at"`
	Budget        budgetJSON `json:"budget"`
	ClientIPs     []struct {
		IP       string    `json:"ip"`
		First    time.Time `json:"first"`
		Last     time.Time `json:"last"`
		Requests int64     `json:"requests"`
	} `json:"client_ips"`
	Refusals *refusalsJSON `json:"refusals"`
}

type usageJSON struct {
	Matched    int    `json:"matched"`
	NextCursor string `json:"next_cursor"`
	Spent      string `json:"spent_usd"`
	Reserved   string `json:"reserved_usd"`
	Records    []struct {
		Time    time.Time `json:"time"`
		TokenID string    `json:"token_id"`
		Project string    `json:"project"`
		Model   string    `json:"model"`
		Status  int       `json:"status"`
		Outcome string    `json:"outcome"`
		// ClientIP and OldSecret say which app made it: a request with a
		// rotated token's previous secret is one still to be moved.
		ClientIP  string `json:"client_ip"`
		OldSecret bool   `json:"old_secret"`
		Usage     struct {
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
	SettlementsWaiting    int                `json:"settlements_waiting"`
	SettlementsWaitingUSD string             `json:"settlements_waiting_usd"`
	Alerts                admin.AlertsStatus `json:"alerts"`
	Cluster               *cluster.State     `json:"cluster"`
	Writer                struct {
		Commits      uint64 `json:"commits"`
		Ops          uint64 `json:"ops"`
		CommitMeanUS int64  `json:"commit_mean_us"`
		CommitP50US  int64  `json:"commit_p50_us"`
		CommitP99US  int64  `json:"commit_p99_us"`
		CommitMaxUS  int64  `json:"commit_max_us"`
	} `json:"writer"`
}

// micros formats a duration given in microseconds for the status line.
func micros(us int64) string {
	return (time.Duration(us) * time.Microsecond).String()
}
