package ui

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/testlog"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/proxy/admin"
	"github.com/hardcap/hardcap/storage"
	"github.com/rs/zerolog"
)

const testAdminToken = "hcadmin_dashboardtesttoken"

// env is the dashboard in front of a real admin API over a fresh
// database, served as serve.go mounts them, with a clock the test moves.
type env struct {
	t   *testing.T
	db  *storage.DB
	srv *httptest.Server
	log *testlog.Buffer

	mu  sync.Mutex
	now time.Time
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, log: &testlog.Buffer{}, now: time.Date(2026, 12, 1, 12, 30, 0, 0, time.UTC)}
	db, err := storage.Open(filepath.Join(t.TempDir(), "hardcap.db"), storage.Options{NoSync: true, Now: e.clock, Alerts: alert.DefaultPolicy()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	adm := admin.New(admin.Options{
		DB: db, Proxy: proxy.New(proxy.Options{Tokens: db, Ledger: db}), AdminToken: testAdminToken,
		Log: zerolog.New(e.log), Now: e.clock,
	})
	mux := http.NewServeMux()
	mux.Handle("/admin/", adm)
	mux.Handle("/ui/", New(Options{Admin: adm, AdminToken: testAdminToken, Now: e.clock, Log: zerolog.New(e.log)}))
	e.srv = httptest.NewServer(mux)
	t.Cleanup(e.srv.Close)
	return e
}

func (e *env) clock() time.Time {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.now
}

func (e *env) advance(d time.Duration) {
	e.mu.Lock()
	e.now = e.now.Add(d)
	e.mu.Unlock()
}

// browser is one browser's cookies; it follows no redirect, so tests see
// each answer.
type browser struct {
	e    *env
	c    *http.Client
	csrf string
}

func (e *env) browser() *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

// answer is a response read whole.
type answer struct {
	status int
	header http.Header
	body   string
}

func (a answer) location() string { return a.header.Get("Location") }

func (b *browser) do(req *http.Request) answer {
	b.e.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, body: string(raw)}
	if m := csrfField.FindStringSubmatch(a.body); m != nil {
		b.csrf = m[1]
	}
	return a
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]{64})"`)

func (b *browser) get(path string) answer {
	b.e.t.Helper()
	req, _ := http.NewRequest("GET", b.e.srv.URL+path, nil)
	return b.do(req)
}

// post sends a form; header adds request headers (name, value pairs).
func (b *browser) post(path string, form url.Values, header ...string) answer {
	b.e.t.Helper()
	req, _ := http.NewRequest("POST", b.e.srv.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	return b.do(req)
}

// form is a form with the browser's csrf token and the given pairs.
func (b *browser) form(pairs ...string) url.Values {
	v := url.Values{"csrf": {b.csrf}}
	for i := 0; i+1 < len(pairs); i += 2 {
		v.Set(pairs[i], pairs[i+1])
	}
	return v
}

// login logs the browser in and reads its csrf token from the overview.
func (b *browser) login() {
	b.e.t.Helper()
	a := b.post("/ui/login", url.Values{"token": {testAdminToken}})
	if a.status != http.StatusSeeOther || a.location() != "/ui/" {
		b.e.t.Fatalf("login: %d to %q, want 303 to /ui/: %s", a.status, a.location(), a.body)
	}
	if a := b.get("/ui/"); a.status != http.StatusOK || b.csrf == "" {
		b.e.t.Fatalf("overview after login: %d, csrf %q", a.status, b.csrf)
	}
}

// adminGet reads the admin API directly, to check what a page changed.
func (e *env) adminGet(path string) string {
	e.t.Helper()
	return e.adminDo("GET", path, "")
}

// adminDo sends a request to the admin API directly and returns the
// answer's body; an answer other than 2xx fails the test.
func (e *env) adminDo(method, path, body string) string {
	e.t.Helper()
	req, _ := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		e.t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, raw)
	}
	return string(raw)
}

// record settles one request of token charged c, ended at the clock's
// time plus ago (negative: in the past).
func (e *env) record(tokenID, model string, c budget.Money, ago time.Duration) budget.Record {
	e.t.Helper()
	ctx := context.Background()
	res, err := e.db.Reserve(ctx, budget.Request{TokenID: tokenID, Provider: "openai", Model: model, Route: "POST /v1/chat/completions", ClientIP: "192.0.2.7"},
		budget.Quote{MaxOutput: 1000, OutputRate: 1000})
	if err != nil {
		e.t.Fatal(err)
	}
	rec, err := e.db.Settle(ctx, res.ID, budget.Settlement{Charged: c, Status: 200, Outcome: budget.Complete, Ended: e.clock().Add(ago)})
	if err != nil {
		e.t.Fatal(err)
	}
	return rec
}

// mustContain fails unless body holds every want.
func mustContain(t *testing.T, what, body string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(body, w) {
			t.Errorf("%s: no %q in\n%s", what, w, clipBody(body))
		}
	}
}

func clipBody(s string) string {
	if len(s) > 3000 {
		return s[:3000] + "..."
	}
	return s
}
