package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/proxy/admin"
	"github.com/hardcap/hardcap/storage"
)

// Limits of one call to a provider's cost report.
const (
	// costCallTimeout bounds one page, request sent to body read.
	costCallTimeout = 30 * time.Second
	// costMaxBody bounds one page's body.
	costMaxBody = 16 << 20
	// costMaxPages bounds how many pages one report may take: a provider
	// that keeps saying has_more must not keep hardcap looping.
	costMaxPages = 1000
	// costExcerpt is how much of an error body an error repeats, after the
	// key is scrubbed from it.
	costExcerpt = 300
)

// Page sizes: the most daily buckets each API serves per page.
const (
	openAICostLimit    = 180
	anthropicCostLimit = 31
)

// driftFloor is the least excess, in nano-USD, that counts as drift: USD
// 0.01. The excess must also be above 1 % of hardcap's books.
const driftFloor budget.Money = budget.NanoPerUSD / 100

// errDrift is returned, after the report is printed, when a provider bills
// more than hardcap's books: the command then exits 1.
var errDrift = errors.New("reconcile: a provider's cost report is above hardcap's books (see the note above)")

// reconcileReport is what `hardcap reconcile --json` prints.
type reconcileReport struct {
	// Start and End bound the window: whole UTC days, End exclusive (the
	// start of tomorrow, so today so far is included).
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	// Drift is set when any provider's Drift is.
	Drift     bool                `json:"drift"`
	Providers []reconcileProvider `json:"providers"`
}

// reconcileProvider is one provider's comparison.
type reconcileProvider struct {
	// Provider is the hardcap provider name; Kind its API; Prices its id
	// in the price data, which groups model names.
	Provider string `json:"provider"`
	Kind     string `json:"kind"`
	Prices   string `json:"prices"`
	// Skipped says why the provider was not compared (no admin_key).
	Skipped string `json:"skipped,omitempty"`
	// Error is why the comparison failed.
	Error string `json:"error,omitempty"`
	// Rows are sorted by day, then model.
	Rows  []reconcileRow  `json:"rows,omitempty"`
	Total *reconcileTotal `json:"total,omitempty"`
	// Drift is set when a row or the total drifts.
	Drift bool `json:"drift"`
}

// reconcileTotal is a sum of both sides. Money is in nano-USD and shows as
// decimal USD strings.
type reconcileTotal struct {
	// Provider is what the provider's cost report says.
	Provider budget.Money `json:"provider_usd"`
	// Hardcap is what hardcap's books charged.
	Hardcap budget.Money `json:"hardcap_usd"`
	// Difference is Provider minus Hardcap.
	Difference budget.Money `json:"difference_usd"`
	// Requests counts hardcap's usage records.
	Requests int64 `json:"requests"`
	// Drift is set when Difference is above USD 0.01 and above 1 % of
	// Hardcap.
	Drift bool `json:"drift"`
}

// reconcileRow is one UTC day and model group.
type reconcileRow struct {
	// Day is the UTC date.
	Day string `json:"day"`
	// Model is the group: the price data's model id when a name resolves,
	// else the name itself.
	Model string `json:"model"`
	// ProviderNames and HardcapNames are the names grouped under Model:
	// the provider reports snapshot names ("gpt-4o-2024-08-06"), hardcap
	// the names clients asked for ("gpt-4o").
	ProviderNames []string `json:"provider_names"`
	HardcapNames  []string `json:"hardcap_names"`
	reconcileTotal
}

// providerCost is one amount from a provider's cost report.
type providerCost struct {
	day    string // UTC date
	name   string // model, or the line item or cost type without one
	amount budget.Money
}

// reconciler compares cost reports with the books.
type reconciler struct {
	cfg     Config
	client  *client
	catalog *pricing.Catalog
	http    *http.Client
	now     func() time.Time
}

// reconcileCommand runs `hardcap reconcile`: it prints the comparison of
// each provider's cost report with hardcap's books, and fails (exit 1) when
// a provider bills more than the books say or a report cannot be read.
func reconcileCommand(ctx context.Context, args []string, stdout io.Writer) error {
	fs := newFlagSet("reconcile")
	prepare := clientFlags(fs, stdout)
	only := fs.String("provider", "", "only this provider (default every provider with an admin_key)")
	sinceFlag := fs.String("since", "30d", "compare the last DURATION, in whole UTC days, e.g. 30d or 720h")
	_, c, err := prepare(args, 0)
	if err != nil {
		return err
	}
	since, err := admin.ParseDuration(*sinceFlag)
	if err != nil || since <= 0 {
		return usageError(fmt.Sprintf("reconcile: --since %q is not a positive duration such as 30d or 720h", *sinceFlag))
	}
	cfg, err := loadConfig(c.config)
	if err != nil {
		return err
	}
	if *only != "" {
		if _, ok := cfg.Providers[*only]; !ok {
			return usageError(fmt.Sprintf("reconcile: the config has no provider %q", *only))
		}
	}
	catalog, err := loadPrices(cfg.Prices)
	if err != nil {
		return err
	}
	jsonOut := c.json
	// The books are read as JSON and printed by this command, not echoed.
	c.json = false
	r := &reconciler{cfg: cfg, client: c, catalog: catalog, http: costHTTPClient(), now: time.Now}
	rep, err := r.run(ctx, *only, since)
	if err != nil {
		return err
	}
	if jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return err
		}
	} else if err := printReconcile(stdout, rep); err != nil {
		return err
	}
	var errs []error
	for _, p := range rep.Providers {
		if p.Error != "" {
			errs = append(errs, fmt.Errorf("reconcile: %s: %s", p.Provider, p.Error))
		}
	}
	if rep.Drift {
		errs = append(errs, errDrift)
	}
	return errors.Join(errs...)
}

// costHTTPClient is the client for cost reports. It follows no redirect:
// Go forwards custom headers such as x-api-key to wherever a redirect
// points.
func costHTTPClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	return &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// run compares every provider with an admin_key (or only the one named)
// over the last since, widened to whole UTC days.
func (r *reconciler) run(ctx context.Context, only string, since time.Duration) (reconcileReport, error) {
	now := r.now().UTC()
	rep := reconcileReport{
		Start:     now.Add(-since).Truncate(24 * time.Hour),
		End:       now.Truncate(24 * time.Hour).Add(24 * time.Hour),
		Providers: []reconcileProvider{},
	}
	names := make([]string, 0, len(r.cfg.Providers))
	for name := range r.cfg.Providers {
		if only == "" || name == only {
			names = append(names, name)
		}
	}
	slices.Sort(names)
	compared := 0
	for _, name := range names {
		pc := r.cfg.Providers[name]
		p := reconcileProvider{Provider: name, Kind: pc.kind(name), Prices: cmp.Or(pc.Prices, name)}
		if pc.AdminKey == "" {
			if only != "" {
				return rep, fmt.Errorf("reconcile: providers.%s.admin_key is not set: add the provider's admin key source (env:, file: or cmd:) to read its cost report", name)
			}
			p.Skipped = fmt.Sprintf("no providers.%s.admin_key in the config", name)
			rep.Providers = append(rep.Providers, p)
			continue
		}
		compared++
		if err := r.compare(ctx, pc, &p, rep.Start, rep.End); err != nil {
			p.Error = err.Error()
		}
		rep.Drift = rep.Drift || p.Drift
		rep.Providers = append(rep.Providers, p)
	}
	if compared == 0 {
		return rep, errors.New("reconcile: no provider has an admin_key: set providers.NAME.admin_key (env:, file: or cmd:) to read a provider's cost report")
	}
	return rep, nil
}

// compare fills p with the provider's report and hardcap's books.
func (r *reconciler) compare(ctx context.Context, pc ProviderConfig, p *reconcileProvider, start, end time.Time) error {
	if err := checkCostSource(p.Provider, pc); err != nil {
		return err
	}
	// The books first: when the server is not running, the admin key is
	// not read at all.
	var books admin.DailyView
	q := url.Values{"provider": {p.Provider}, "since": {start.Format(time.RFC3339)}}
	if err := r.client.call(ctx, "GET", "/admin/v1/usage/daily?"+q.Encode(), nil, &books); err != nil {
		return fmt.Errorf("hardcap's books: %w", err)
	}
	costs, err := fetchCosts(ctx, r.http, p.Provider, pc, start, end)
	if err != nil {
		return err
	}
	return r.fill(p, costs, books.Days)
}

// checkCostSource checks what reading the provider's cost report needs
// of its config, without reading the admin key.
func checkCostSource(name string, pc ProviderConfig) error {
	if _, err := pc.provider(name); err != nil {
		return err
	}
	base, err := url.Parse(pc.BaseURL)
	if err != nil {
		return fmt.Errorf("config: providers.%s.base_url must be an http(s) URL", name)
	}
	if base.Scheme != "https" && !loopbackHost(base.Hostname()) {
		return fmt.Errorf("providers.%s.base_url is plain http to a host other than loopback: the admin key is only sent over https", name)
	}
	return nil
}

// fetchCosts reads the admin key of the provider name and its cost report
// for the UTC days from start to end (exclusive). Both hardcap reconcile
// and the server's scheduled reconcile use it. No error carries the key.
func fetchCosts(ctx context.Context, hc *http.Client, name string, pc ProviderConfig, start, end time.Time) ([]providerCost, error) {
	if err := checkCostSource(name, pc); err != nil {
		return nil, err
	}
	base, _ := url.Parse(pc.BaseURL)
	src, err := proxy.ParseKeySource(pc.AdminKey)
	if err != nil {
		return nil, fmt.Errorf("config: providers.%s.admin_key: %w", name, err)
	}
	key, err := src.Key(ctx)
	if err != nil {
		return nil, fmt.Errorf("providers.%s.admin_key: %w", name, err)
	}
	api := costAPI{http: hc, base: strings.TrimSuffix(base.String(), "/"), key: key, timeout: costCallTimeout, project: pc.Project}
	switch kind := pc.kind(name); proxy.Kind(kind) {
	case proxy.KindOpenAI:
		return api.openAI(ctx, start, end)
	case proxy.KindAnthropic:
		return api.anthropic(ctx, start, end)
	default:
		return nil, fmt.Errorf("kind %q has no cost report hardcap can read", kind)
	}
}

// loopbackHost reports whether host is localhost or a loopback address.
func loopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// groupKey is one row: a UTC day and a model group.
type groupKey struct{ day, model string }

// fill groups both sides by day and catalog model id, and checks drift.
func (r *reconciler) fill(p *reconcileProvider, costs []providerCost, books []storage.DailyUsage) error {
	rows := map[groupKey]*reconcileRow{}
	ids := map[groupKey]string{}
	row := func(day, name string) *reconcileRow {
		id, ok := ids[groupKey{day, name}]
		if !ok {
			id = name
			if t, err := time.Parse(storage.DayLayout, day); err == nil {
				if m, err := r.catalog.Lookup(p.Prices, name, t); err == nil && m.ID != "" {
					id = m.ID
				}
			}
			ids[groupKey{day, name}] = id
		}
		k := groupKey{day, id}
		if rows[k] == nil {
			rows[k] = &reconcileRow{Day: day, Model: id, ProviderNames: []string{}, HardcapNames: []string{}}
		}
		return rows[k]
	}
	addName := func(names []string, n string) []string {
		if !slices.Contains(names, n) {
			names = append(names, n)
			slices.Sort(names)
		}
		return names
	}
	for _, c := range costs {
		rw := row(c.day, c.name)
		sum, err := rw.Provider.Add(c.amount)
		if err != nil {
			return fmt.Errorf("the cost report's sum for %s on %s: %w", rw.Model, rw.Day, err)
		}
		rw.Provider = sum
		rw.ProviderNames = addName(rw.ProviderNames, c.name)
	}
	for _, d := range books {
		rw := row(d.Day, d.Model)
		sum, err := rw.Hardcap.Add(d.Charged)
		if err != nil {
			return fmt.Errorf("hardcap's sum for %s on %s: %w", rw.Model, rw.Day, err)
		}
		rw.Hardcap = sum
		rw.Requests += d.Requests
		rw.HardcapNames = addName(rw.HardcapNames, d.Model)
	}
	p.Rows = make([]reconcileRow, 0, len(rows))
	for _, rw := range rows {
		p.Rows = append(p.Rows, *rw)
	}
	slices.SortFunc(p.Rows, func(a, b reconcileRow) int {
		return cmp.Or(cmp.Compare(a.Day, b.Day), cmp.Compare(a.Model, b.Model))
	})
	total := reconcileTotal{}
	for i := range p.Rows {
		rw := &p.Rows[i]
		var err error
		if err = rw.settle(); err != nil {
			return err
		}
		if total.Provider, err = total.Provider.Add(rw.Provider); err != nil {
			return err
		}
		if total.Hardcap, err = total.Hardcap.Add(rw.Hardcap); err != nil {
			return err
		}
		total.Requests += rw.Requests
		p.Drift = p.Drift || rw.Drift
	}
	if err := total.settle(); err != nil {
		return err
	}
	p.Total = &total
	p.Drift = p.Drift || total.Drift
	return nil
}

// settle sets Difference and Drift from Provider and Hardcap.
func (t *reconcileTotal) settle() error {
	diff, err := t.Provider.Add(-t.Hardcap)
	if err != nil {
		return fmt.Errorf("difference: %w", err)
	}
	t.Difference = diff
	t.Drift = drifts(t.Provider, t.Hardcap)
	return nil
}

// drifts reports whether the provider's cost is above hardcap's books by
// more than 1 % and more than USD 0.01. hardcap never charges less than a
// provider can bill, so only this direction means something is wrong; the
// other is the report's lag (today's costs show late) or rounding up.
func drifts(provider, hardcap budget.Money) bool {
	diff, err := provider.Add(-hardcap)
	if err != nil {
		return true
	}
	// diff*100 > hardcap, without the overflow: for whole numbers and
	// hardcap >= 0 it is diff > floor(hardcap/100).
	return diff > driftFloor && diff > max(hardcap, 0)/100
}

func printReconcile(w io.Writer, rep reconcileReport) error {
	last := rep.End.Add(-24 * time.Hour)
	printed := false
	for _, p := range rep.Providers {
		if p.Total == nil && p.Skipped == "" {
			// Failed: the error goes to stderr.
			continue
		}
		if printed {
			fmt.Fprintln(w)
		}
		printed = true
		if p.Skipped != "" {
			fmt.Fprintf(w, "%s: skipped, %s\n", p.Provider, p.Skipped)
			continue
		}
		fmt.Fprintf(w, "%s: the provider's cost report and hardcap's books, %s to %s (UTC)\n", p.Provider,
			rep.Start.Format(storage.DayLayout), last.Format(storage.DayLayout))
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "DAY\tMODEL\tPROVIDER USD\tHARDCAP USD\tDIFFERENCE")
		diff := func(t reconcileTotal) string {
			if t.Drift {
				return t.Difference.String() + " !"
			}
			return t.Difference.String()
		}
		for _, r := range p.Rows {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Day, r.Model, r.Provider, r.Hardcap, diff(r.reconcileTotal))
		}
		t := p.Total
		fmt.Fprintf(tw, "TOTAL\t\t%s\t%s\t%s\n", t.Provider, t.Hardcap, diff(*t))
		if err := tw.Flush(); err != nil {
			return err
		}
		if p.Drift {
			fmt.Fprintf(w, "\nNOTE: %s's cost report is above hardcap's books (lines marked !: by more than 1 %% and more\n"+
				"than USD 0.01). Either\n"+
				"  - hardcap's price data is below the provider's bill: `hardcap prices check` lists disagreements,\n"+
				"    and prices.overrides or prices.file can raise a price; or\n"+
				"  - the real key is being used outside hardcap: rotate it at the provider now, and give apps\n"+
				"    hardcap tokens only.\n", p.Provider)
		}
	}
	return nil
}

// costAPI reads one provider's cost report.
type costAPI struct {
	http *http.Client
	base string // base_url without a trailing slash
	key  string // the admin key: never printed, logged or put in an error
	// timeout bounds one page; costCallTimeout in use.
	timeout time.Duration
	// project, when set, limits an OpenAI report to the project hardcap
	// bills (providers.NAME.project), so other projects' use is not drift.
	project string
}

// openAI reads GET {base_url}/organization/costs, one bucket per UTC day,
// grouped by line item; the model is the line item's part before ", ".
func (a costAPI) openAI(ctx context.Context, start, end time.Time) ([]providerCost, error) {
	var out []providerCost
	q := url.Values{
		"start_time":   {strconv.FormatInt(start.Unix(), 10)},
		"end_time":     {strconv.FormatInt(end.Unix(), 10)},
		"bucket_width": {"1d"},
		"group_by":     {"line_item"},
		"limit":        {strconv.Itoa(openAICostLimit)},
	}
	if a.project != "" {
		q.Set("project_ids", a.project)
	}
	err := a.pages(ctx, "/organization/costs", q, func(body []byte) (bool, string, error) {
		var page struct {
			Data []struct {
				StartTime int64 `json:"start_time"`
				Results   []struct {
					Amount struct {
						Value    json.Number `json:"value"`
						Currency string      `json:"currency"`
					} `json:"amount"`
					LineItem *string `json:"line_item"`
				} `json:"results"`
			} `json:"data"`
			HasMore  bool    `json:"has_more"`
			NextPage *string `json:"next_page"`
		}
		if err := decodeCosts(body, &page); err != nil {
			return false, "", err
		}
		for _, b := range page.Data {
			day := time.Unix(b.StartTime, 0).UTC().Format(storage.DayLayout)
			for _, res := range b.Results {
				name := "(no line item)"
				if res.LineItem != nil && *res.LineItem != "" {
					name, _, _ = strings.Cut(*res.LineItem, ", ")
				}
				c, err := a.cost(day, name, res.Amount.Currency, res.Amount.Value.String(), 1)
				if err != nil {
					return false, "", err
				}
				out = append(out, c)
			}
		}
		return page.HasMore, deref(page.NextPage), nil
	}, func(h http.Header) { h.Set("Authorization", "Bearer "+a.key) })
	return out, err
}

// cost is one result of a cost report: an amount in USD divided by unit
// (1 for dollars, 100 for cents), for a day and a model name. The name is
// printed, so it is scrubbed like an error body.
func (a costAPI) cost(day, name, currency, amount string, unit int64) (providerCost, error) {
	if err := checkUSD(currency); err != nil {
		return providerCost{}, err
	}
	m, err := decimalMoney(amount, unit)
	if err != nil {
		return providerCost{}, fmt.Errorf("the cost report's amount for %s: %w", day, err)
	}
	return providerCost{day: day, name: a.scrub(name), amount: m}, nil
}

// anthropic reads GET {base_url}/v1/organizations/cost_report, one bucket
// per UTC day, grouped by description. Amounts are decimal strings in
// cents; rows without a model (web search, code execution) are grouped
// under their cost type.
func (a costAPI) anthropic(ctx context.Context, start, end time.Time) ([]providerCost, error) {
	var out []providerCost
	q := url.Values{
		"starting_at":  {start.Format(time.RFC3339)},
		"ending_at":    {end.Format(time.RFC3339)},
		"bucket_width": {"1d"},
		"group_by[]":   {"description"},
		"limit":        {strconv.Itoa(anthropicCostLimit)},
	}
	err := a.pages(ctx, "/v1/organizations/cost_report", q, func(body []byte) (bool, string, error) {
		var page struct {
			Data []struct {
				StartingAt time.Time `json:"starting_at"`
				Results    []struct {
					Currency string  `json:"currency"`
					Amount   string  `json:"amount"`
					Model    *string `json:"model"`
					CostType *string `json:"cost_type"`
				} `json:"results"`
			} `json:"data"`
			HasMore  bool    `json:"has_more"`
			NextPage *string `json:"next_page"`
		}
		if err := decodeCosts(body, &page); err != nil {
			return false, "", err
		}
		for _, b := range page.Data {
			day := b.StartingAt.UTC().Format(storage.DayLayout)
			for _, res := range b.Results {
				c, err := a.cost(day, cmp.Or(deref(res.Model), deref(res.CostType), "(no model)"), res.Currency, res.Amount, 100)
				if err != nil {
					return false, "", err
				}
				out = append(out, c)
			}
		}
		return page.HasMore, deref(page.NextPage), nil
	}, func(h http.Header) {
		h.Set("x-api-key", a.key)
		h.Set("anthropic-version", "2023-06-01")
	})
	return out, err
}

// currencyCode is an ISO 4217 code, the only currency text an error repeats.
var currencyCode = regexp.MustCompile(`^[A-Za-z]{3}$`)

// checkUSD refuses amounts in another currency than US dollars.
func checkUSD(currency string) error {
	if strings.EqualFold(currency, "usd") {
		return nil
	}
	if !currencyCode.MatchString(currency) {
		currency = "an unknown currency"
	}
	return fmt.Errorf("cost report: an amount is in %s; hardcap compares US dollars only", currency)
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// pages GETs path with q and then with page=<next_page> while the page
// says has_more. read decodes one body and returns has_more and
// next_page.
func (a costAPI) pages(ctx context.Context, path string, q url.Values, read func([]byte) (bool, string, error), auth func(http.Header)) error {
	seen := map[string]bool{}
	for n := 0; ; n++ {
		if n == costMaxPages {
			return fmt.Errorf("the cost report did not end after %d pages", costMaxPages)
		}
		body, err := a.get(ctx, a.base+path+"?"+q.Encode(), auth)
		if err != nil {
			return err
		}
		more, next, err := read(body)
		if err != nil {
			return err
		}
		if !more {
			return nil
		}
		if next == "" || seen[next] {
			return errors.New("the cost report says has_more without a new next_page")
		}
		seen[next] = true
		q.Set("page", next)
	}
}

// get sends one GET with its own deadline and returns the body, bounded.
// No error it returns carries the key: a non-2xx answer is described by
// its status code and a scrubbed excerpt of its body.
func (a costAPI) get(ctx context.Context, u string, auth func(http.Header)) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, errors.New("cannot build the cost report request from base_url")
	}
	req.Header.Set("Accept", "application/json")
	auth(req.Header)
	resp, err := a.http.Do(req)
	if err != nil {
		// Not the URL: its page cursor is the provider's text.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("cost report: %s", a.scrub(err.Error()))
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, costMaxBody+1))
	if err != nil {
		return nil, fmt.Errorf("cost report: reading the answer: %s", a.scrub(err.Error()))
	}
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		// The status text is the server's word too: only the code is
		// repeated.
		status := strconv.Itoa(resp.StatusCode)
		if text := http.StatusText(resp.StatusCode); text != "" {
			status += " " + text
		}
		return nil, fmt.Errorf("cost report: the provider answered %s: %s", status, a.excerpt(body))
	}
	if len(body) > costMaxBody {
		return nil, fmt.Errorf("cost report: a page is larger than %d MiB", costMaxBody>>20)
	}
	return body, nil
}

// decodeCosts decodes a cost report page, numbers as json.Number so that
// no amount goes through a float.
func decodeCosts(body []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		// Type errors can quote a number, never a string; still, say only
		// what is wrong.
		var se *json.SyntaxError
		if errors.As(err, &se) {
			return fmt.Errorf("cost report: the answer is not JSON (offset %d)", se.Offset)
		}
		return errors.New("cost report: the answer is not in the documented shape")
	}
	return nil
}

// keyLike matches strings shaped like provider keys, so an excerpt drops
// other keys (a gateway echoing a different header) as well as this one.
var keyLike = regexp.MustCompile(`(?i)(sk|key|admin)[-_][A-Za-z0-9_\-]{12,}`)

// scrub removes the key, and anything shaped like a key, from s. The key's
// long runs of letters and digits go too, so that an echo that escaped or
// re-encoded its punctuation does not carry it either.
func (a costAPI) scrub(s string) string {
	if a.key != "" {
		s = strings.ReplaceAll(s, a.key, "[admin key]")
		for _, part := range strings.FieldsFunc(a.key, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) }) {
			if len(part) >= 8 {
				s = strings.ReplaceAll(s, part, "[admin key]")
			}
		}
	}
	return keyLike.ReplaceAllStringFunc(s, func(m string) string {
		// Keys carry digits; error codes such as admin_key_not_found do not.
		if strings.ContainsAny(m, "0123456789") {
			return "[redacted]"
		}
		return m
	})
}

// excerpt is the start of an error body, key scrubbed, on one line. The
// whole body is scrubbed before it is cut, so a key cannot survive in
// part.
func (a costAPI) excerpt(body []byte) string {
	s := a.scrub(string(bytes.ToValidUTF8(body, []byte("?"))))
	s = strings.Join(strings.FieldsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }), " ")
	if s == "" {
		return "(empty body)"
	}
	return clip(s, costExcerpt)
}

// clip cuts s to at most n bytes at a rune boundary.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// decimalPattern is a decimal number as JSON writes it; the exponent is
// bounded so that no amount can make math/big work hard.
var decimalPattern = regexp.MustCompile(`^-?[0-9]{1,40}(\.[0-9]{1,40})?([eE][-+]?[0-9]{1,3})?$`)

// decimalMoney converts a decimal amount in units of 1/perUSD USD (1 for
// dollars, 100 for cents) to nano-USD, rounding half up, with math/big:
// never through a float. Errors do not repeat the amount: it is the
// provider's text, and could be anything.
func decimalMoney(s string, perUSD int64) (budget.Money, error) {
	if !decimalPattern.MatchString(s) {
		return 0, errors.New("an amount is not a decimal number")
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return 0, errors.New("an amount is not a decimal number")
	}
	r.Mul(r, big.NewRat(budget.NanoPerUSD, perUSD))
	// floor(x + 1/2) = floor((2n + d) / 2d); the denominator is positive,
	// so Euclidean division is floor division.
	num := new(big.Int).Mul(r.Num(), big.NewInt(2))
	num.Add(num, r.Denom())
	den := new(big.Int).Mul(r.Denom(), big.NewInt(2))
	q := new(big.Int).Div(num, den)
	if !q.IsInt64() {
		return 0, errors.New("an amount is out of range")
	}
	return budget.Money(q.Int64()), nil
}
