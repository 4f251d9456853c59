// Package fakecosts is test support: a fake of the providers' cost reports
// that hardcap reconcile reads with an admin key. It serves OpenAI's
// GET /v1/organization/costs and Anthropic's
// GET /v1/organizations/cost_report in their documented wire formats, with
// one bucket per UTC day of the requested window (empty days included, as
// the real APIs answer), checks the admin key (401 otherwise) and the
// query, pages the buckets (Options.PageSize per page, so clients must
// follow next_page), and can be told to fail with a status and a body that
// echoes the key it was sent.
package fakecosts

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/internal/fakeserver"
)

// Paths served, relative to URL.
const (
	// OpenAIPath is OpenAI's organization costs route; an OpenAI base_url
	// is URL()+"/v1".
	OpenAIPath = "/v1/organization/costs"
	// AnthropicPath is Anthropic's cost report route; an Anthropic
	// base_url is URL().
	AnthropicPath = "/v1/organizations/cost_report"
)

// AnthropicVersion is the anthropic-version header the Anthropic route
// requires.
const AnthropicVersion = "2023-06-01"

// Most buckets a page may ask for with bucket_width=1d, as the APIs document.
const (
	OpenAIMaxLimit    = 180
	AnthropicMaxLimit = 31
)

// Options configures New.
type Options struct {
	// OpenAIKey is the admin key the OpenAI route expects as
	// "Authorization: Bearer <key>". Required.
	OpenAIKey string
	// AnthropicKey is the admin key the Anthropic route expects as
	// "x-api-key: <key>". Required.
	AnthropicKey string
	// PageSize is the most buckets one page holds, when the request's limit
	// is larger; default 2, so that any window of three days or more pages.
	PageSize int
}

// OpenAICost is one result of an OpenAI cost bucket.
type OpenAICost struct {
	// Day is any time in the UTC day whose bucket holds the result.
	Day time.Time
	// LineItem is the line item, as in "gpt-4o-2024-08-06, input".
	LineItem string
	// USD is amount.value exactly as it is written on the wire: a JSON
	// number in US dollars, such as "0.06" or "1.5e-7".
	USD string
	// ProjectID is project_id; empty is null.
	ProjectID string
}

// AnthropicCost is one result of an Anthropic cost report bucket.
type AnthropicCost struct {
	// Day is any time in the UTC day whose bucket holds the result.
	Day time.Time
	// Model is the model; empty is null, as for web search and code
	// execution.
	Model string
	// CostType is cost_type: tokens (default), web_search or
	// code_execution.
	CostType string
	// TokenType is token_type, such as "output_tokens"; empty is null.
	TokenType string
	// Description is the description; default built from the model and
	// token type.
	Description string
	// Cents is amount exactly as it is written on the wire: a decimal
	// string in cents (the lowest currency unit), "123.45" is USD 1.2345.
	Cents string
}

// Failure makes every request answer an error instead of the report. The
// zero value does not fail.
type Failure struct {
	// Status is the error status, such as 500 or 403; 0 does not fail.
	Status int
	// EchoKey puts the admin key the request carried into the error body,
	// as a careless server or gateway might: the client must not repeat
	// it.
	EchoKey bool
	// AfterPages lets this many pages through before failing.
	AfterPages int
}

// Call records one request the server received.
type Call struct {
	// Path is the request path.
	Path string
	// Query is the parsed query string.
	Query url.Values
	// Status is the HTTP status answered.
	Status int
}

// Server is a running fake. Its methods are safe for concurrent use.
type Server struct {
	base *fakeserver.Server[Failure, Call]
	opts Options

	mu        sync.Mutex
	openai    []OpenAICost
	anthropic []AnthropicCost
	pages     int // pages answered 200, for Failure.AfterPages
}

// New starts a fake for t, closed by t.Cleanup. It calls t.Fatal when a key
// is missing or contains "hc_".
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	if opts.AnthropicKey == "" || strings.Contains(opts.AnthropicKey, "hc_") {
		t.Fatal(`fakecosts: Options.AnthropicKey is required and must not contain "hc_"`)
	}
	if opts.PageSize <= 0 {
		opts.PageSize = 2
	}
	s := &Server{opts: opts}
	s.base = fakeserver.Start[Failure, Call](t, "fakecosts", opts.OpenAIKey, http.HandlerFunc(s.serve))
	return s
}

// URL returns the server's root URL, of the form http://127.0.0.1:port: an
// Anthropic base_url. OpenAI's base_url is OpenAIBaseURL.
func (s *Server) URL() string { return s.base.URL() }

// OpenAIBaseURL returns URL()+"/v1", an OpenAI base_url.
func (s *Server) OpenAIBaseURL() string { return s.base.URL() + "/v1" }

// AddOpenAI adds results to the OpenAI report.
func (s *Server) AddOpenAI(costs ...OpenAICost) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.openai = append(s.openai, costs...)
}

// AddAnthropic adds results to the Anthropic report.
func (s *Server) AddAnthropic(costs ...AnthropicCost) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.anthropic = append(s.anthropic, costs...)
}

// Reset empties both reports and stops failing.
func (s *Server) Reset() {
	s.mu.Lock()
	s.openai, s.anthropic, s.pages = nil, nil, 0
	s.mu.Unlock()
	s.base.SetBehavior(Failure{})
}

// SetFailure makes the next requests fail as f says; Failure{} stops
// failing. AfterPages counts from this call.
func (s *Server) SetFailure(f Failure) {
	s.mu.Lock()
	s.pages = 0
	s.mu.Unlock()
	s.base.SetBehavior(f)
}

// Calls returns a copy of the calls received so far, in arrival order.
func (s *Server) Calls() []Call { return s.base.Calls() }

// day is one bucket of the window.
type day struct{ start, end time.Time }

// window lists the UTC days whose bucket starts at or after start and
// ends at or before end (OpenAI: starts before end).
func window(start, end time.Time, endInclusive bool) []day {
	var out []day
	d := start.UTC().Truncate(24 * time.Hour)
	if d.Before(start) {
		d = d.Add(24 * time.Hour)
	}
	for ; ; d = d.Add(24 * time.Hour) {
		next := d.Add(24 * time.Hour)
		if endInclusive && next.After(end) || !endInclusive && !d.Before(end) {
			break
		}
		out = append(out, day{d, next})
		if len(out) > 100000 {
			break
		}
	}
	return out
}

func sameDay(a time.Time, d day) bool {
	return !a.Before(d.start) && a.Before(d.end)
}

// page parses the page cursor ("page_<offset>", as next_page gives it).
func page(q url.Values, n int) (int, bool) {
	p := q.Get("page")
	if p == "" {
		return 0, true
	}
	off, err := strconv.Atoi(strings.TrimPrefix(p, "page_"))
	if !strings.HasPrefix(p, "page_") || err != nil || off < 0 || off > n {
		return 0, false
	}
	return off, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	idx := s.base.Record(Call{Path: r.URL.Path, Query: q})
	status := http.StatusOK
	defer func() { s.base.Update(idx, func(c *Call) { c.Status = status }) }()
	var openai bool
	var key string
	switch r.URL.Path {
	case OpenAIPath:
		openai = true
		key = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	case AnthropicPath:
		key = r.Header.Get("X-Api-Key")
	default:
		status = http.StatusNotFound
		writeJSON(w, status, map[string]any{"error": map[string]any{"message": "unknown path " + r.URL.Path, "type": "invalid_request_error"}})
		return
	}
	fail := func(st int, typ, msg string) {
		status = st
		if openai {
			writeJSON(w, st, map[string]any{"error": map[string]any{"message": msg, "type": typ, "param": nil, "code": nil}})
			return
		}
		writeJSON(w, st, map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": msg}})
	}
	if r.Method != http.MethodGet {
		fail(http.StatusMethodNotAllowed, "invalid_request_error", "method not allowed")
		return
	}
	if f := s.base.Behavior(); f.Status != 0 {
		s.mu.Lock()
		through := s.pages < f.AfterPages
		s.mu.Unlock()
		if !through {
			msg := "the cost report is unavailable"
			if f.EchoKey {
				msg = fmt.Sprintf("request with key %s refused; key was %q", key, key)
			}
			fail(f.Status, "api_error", msg)
			return
		}
	}
	want := s.opts.OpenAIKey
	if !openai {
		want = s.opts.AnthropicKey
	}
	if key != want || (openai && !strings.HasPrefix(r.Header.Get("Authorization"), "Bearer ")) {
		fail(http.StatusUnauthorized, "authentication_error", "invalid admin key")
		return
	}
	if openai {
		s.serveOpenAI(q, fail, func(v any) { writeJSON(w, status, v) })
	} else {
		if v := r.Header.Get("Anthropic-Version"); v != AnthropicVersion {
			fail(http.StatusBadRequest, "invalid_request_error", "anthropic-version: want "+AnthropicVersion)
			return
		}
		s.serveAnthropic(q, fail, func(v any) { writeJSON(w, status, v) })
	}
}

// limit reads the limit parameter: default def, at most max.
func limit(q url.Values, def, max int) (int, bool) {
	if q.Get("limit") == "" {
		return def, true
	}
	n, err := strconv.Atoi(q.Get("limit"))
	return n, err == nil && n >= 1 && n <= max
}

type openaiAmount struct {
	Value    json.Number `json:"value"`
	Currency string      `json:"currency"`
}

type openaiResult struct {
	Object    string       `json:"object"`
	Amount    openaiAmount `json:"amount"`
	LineItem  *string      `json:"line_item"`
	ProjectID *string      `json:"project_id"`
}

type openaiBucket struct {
	Object    string         `json:"object"`
	StartTime int64          `json:"start_time"`
	EndTime   int64          `json:"end_time"`
	Results   []openaiResult `json:"results"`
}

type openaiPage struct {
	Object   string         `json:"object"`
	Data     []openaiBucket `json:"data"`
	HasMore  bool           `json:"has_more"`
	NextPage *string        `json:"next_page"`
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func (s *Server) serveOpenAI(q url.Values, fail func(int, string, string), ok func(any)) {
	bad := func(msg string) { fail(http.StatusBadRequest, "invalid_request_error", msg) }
	start, err := strconv.ParseInt(q.Get("start_time"), 10, 64)
	if err != nil {
		bad("start_time is required, in Unix seconds")
		return
	}
	end := time.Now().Add(24 * time.Hour).Unix()
	if v := q.Get("end_time"); v != "" {
		if end, err = strconv.ParseInt(v, 10, 64); err != nil || end <= start {
			bad("end_time must be Unix seconds after start_time")
			return
		}
	}
	if bw := q.Get("bucket_width"); bw != "" && bw != "1d" {
		bad("this fake only serves bucket_width=1d")
		return
	}
	if gb := q["group_by"]; !slices.Equal(gb, []string{"line_item"}) {
		bad("this fake only serves group_by=line_item")
		return
	}
	lim, valid := limit(q, 7, OpenAIMaxLimit)
	if !valid {
		bad(fmt.Sprintf("limit must be 1 to %d", OpenAIMaxLimit))
		return
	}
	days := window(time.Unix(start, 0), time.Unix(end, 0), false)
	off, valid := page(q, len(days))
	if !valid {
		bad("invalid page cursor")
		return
	}
	n := min(lim, s.opts.PageSize, len(days)-off)
	s.mu.Lock()
	costs := slices.Clone(s.openai)
	s.pages++
	s.mu.Unlock()
	out := openaiPage{Object: "page", Data: []openaiBucket{}}
	for _, d := range days[off : off+n] {
		b := openaiBucket{Object: "bucket", StartTime: d.start.Unix(), EndTime: d.end.Unix(), Results: []openaiResult{}}
		for _, c := range costs {
			if sameDay(c.Day, d) {
				b.Results = append(b.Results, openaiResult{
					Object: "organization.costs.result", Amount: openaiAmount{Value: json.Number(c.USD), Currency: "usd"},
					LineItem: optional(c.LineItem), ProjectID: optional(c.ProjectID),
				})
			}
		}
		out.Data = append(out.Data, b)
	}
	if off+n < len(days) {
		out.HasMore, out.NextPage = true, optional("page_"+strconv.Itoa(off+n))
	}
	ok(out)
}

type anthropicResult struct {
	Currency      string  `json:"currency"`
	Amount        string  `json:"amount"`
	WorkspaceID   *string `json:"workspace_id"`
	Description   *string `json:"description"`
	CostType      *string `json:"cost_type"`
	ContextWindow *string `json:"context_window"`
	Model         *string `json:"model"`
	ServiceTier   *string `json:"service_tier"`
	TokenType     *string `json:"token_type"`
}

type anthropicBucket struct {
	StartingAt string            `json:"starting_at"`
	EndingAt   string            `json:"ending_at"`
	Results    []anthropicResult `json:"results"`
}

type anthropicPage struct {
	Data     []anthropicBucket `json:"data"`
	HasMore  bool              `json:"has_more"`
	NextPage *string           `json:"next_page"`
}

func (s *Server) serveAnthropic(q url.Values, fail func(int, string, string), ok func(any)) {
	bad := func(msg string) { fail(http.StatusBadRequest, "invalid_request_error", msg) }
	start, err := time.Parse(time.RFC3339, q.Get("starting_at"))
	if err != nil {
		bad("starting_at is required, an RFC 3339 time")
		return
	}
	end := time.Now().Add(24 * time.Hour)
	if v := q.Get("ending_at"); v != "" {
		if end, err = time.Parse(time.RFC3339, v); err != nil || !end.After(start) {
			bad("ending_at must be an RFC 3339 time after starting_at")
			return
		}
	}
	if bw := q.Get("bucket_width"); bw != "" && bw != "1d" {
		bad("bucket_width must be 1d")
		return
	}
	if gb := q["group_by[]"]; !slices.Equal(gb, []string{"description"}) {
		bad("this fake only serves group_by[]=description")
		return
	}
	lim, valid := limit(q, 7, AnthropicMaxLimit)
	if !valid {
		bad(fmt.Sprintf("limit must be 1 to %d", AnthropicMaxLimit))
		return
	}
	days := window(start, end, true)
	off, valid := page(q, len(days))
	if !valid {
		bad("invalid page cursor")
		return
	}
	n := min(lim, s.opts.PageSize, len(days)-off)
	s.mu.Lock()
	costs := slices.Clone(s.anthropic)
	s.pages++
	s.mu.Unlock()
	out := anthropicPage{Data: []anthropicBucket{}}
	for _, d := range days[off : off+n] {
		b := anthropicBucket{StartingAt: d.start.Format(time.RFC3339), EndingAt: d.end.Format(time.RFC3339), Results: []anthropicResult{}}
		for _, c := range costs {
			if !sameDay(c.Day, d) {
				continue
			}
			ct := c.CostType
			if ct == "" {
				ct = "tokens"
			}
			desc := c.Description
			if desc == "" {
				desc = strings.TrimSpace(c.Model + " " + c.TokenType + " " + ct)
			}
			res := anthropicResult{Currency: "USD", Amount: c.Cents, Description: &desc, CostType: &ct,
				Model: optional(c.Model), TokenType: optional(c.TokenType)}
			if c.Model != "" {
				res.ServiceTier, res.ContextWindow = optional("standard"), optional("0-200k")
			}
			b.Results = append(b.Results, res)
		}
		out.Data = append(out.Data, b)
	}
	if off+n < len(days) {
		out.HasMore, out.NextPage = true, optional("page_"+strconv.Itoa(off+n))
	}
	ok(out)
}
