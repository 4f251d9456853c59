package admin

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/testlog"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
	"github.com/rs/zerolog"
)

// adminEnv is the admin API over a fresh database, with its log.
type adminEnv struct {
	t   *testing.T
	db  *storage.DB
	srv *httptest.Server
	log *testlog.Buffer
	now time.Time
}

func newAdminEnv(t *testing.T) *adminEnv {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "hardcap.db"), storage.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &adminEnv{t: t, db: db, log: &testlog.Buffer{}, now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	h := New(Options{
		DB: db, Proxy: proxy.New(proxy.Options{Tokens: db, Ledger: db}), AdminToken: testAdminToken,
		Log: zerolog.New(e.log), Now: func() time.Time { return e.now },
	})
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

// do sends an admin request and returns the status and the body.
func (e *adminEnv) do(method, path, body string) (int, string) {
	e.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, _ := http.NewRequest(method, e.srv.URL+path, rd)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// field reads a dotted path of a JSON answer, e.g. "budget.limit_usd".
func field(t *testing.T, body, path string) any {
	t.Helper()
	var v any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("not JSON: %s", body)
	}
	for _, k := range strings.Split(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s: no %s in %s", path, k, body)
		}
		v = m[k]
	}
	return v
}

func TestAdmin_ProjectSetAndDelete(t *testing.T) {
	e := newAdminEnv(t)
	steps := []struct {
		method, path, body string
		status             int
		check              string // dotted field
		want               any
	}{
		{"POST", "/admin/v1/projects", `{"name":"web"}`, 201, "budget.limit_usd", nil},
		{"POST", "/admin/v1/projects", `{"name":"zero","budget_usd":"0"}`, 201, "budget.limit_usd", "0.000000"},
		{"POST", "/admin/v1/projects", `{"name":"unl","budget_usd":"unlimited"}`, 201, "budget.limit_usd", nil},
		{"PATCH", "/admin/v1/projects/web", `{"budget_usd":"5","period":"day"}`, 200, "budget.limit_usd", "5.000000"},
		{"PATCH", "/admin/v1/projects/web", `{"period":"month"}`, 200, "budget.limit_usd", "5.000000"},
		{"PATCH", "/admin/v1/projects/web", `{}`, 200, "budget.period", "month"},
		{"PATCH", "/admin/v1/projects/web", `{"budget_usd":"unlimited"}`, 200, "budget.limit_usd", nil},
		{"PATCH", "/admin/v1/projects/web", `{"budget_usd":"-1"}`, 400, "error.code", "invalid_request"},
		{"PATCH", "/admin/v1/projects/web", `{"budget_usd":"3"}`, 200, "budget.limit_usd", "3.000000"},
		{"PATCH", "/admin/v1/projects/web", `{"budget_usd":""}`, 400, "error.code", "invalid_request"}, // not "unlimited"
		{"PATCH", "/admin/v1/projects/web", `{"budget_usd":" "}`, 400, "error.code", "invalid_request"},
		{"PATCH", "/admin/v1/projects/web", `{"period":""}`, 400, "error.code", "invalid_request"}, // not "total"
		{"PATCH", "/admin/v1/projects/web", `{}`, 200, "budget.limit_usd", "3.000000"},
		{"PATCH", "/admin/v1/projects/web", `{"budget_usd":"unlimited"}`, 200, "budget.limit_usd", nil},
		{"PATCH", "/admin/v1/projects/web", `{"period":"fortnight"}`, 400, "error.code", "invalid_request"},
		{"PATCH", "/admin/v1/projects/web", `{"limit":"5"}`, 400, "error.code", "invalid_request"},
		{"PATCH", "/admin/v1/projects/nope", `{"budget_usd":"5"}`, 404, "error.code", "not_found"},
		{"POST", "/admin/v1/tokens", `{"project":"web","name":"ci"}`, 201, "budget.limit_usd", nil},
		{"DELETE", "/admin/v1/projects/web", ``, 409, "error.code", "has_tokens"},
		{"DELETE", "/admin/v1/projects/web?revoke_tokens=maybe", ``, 400, "error.code", "invalid_request"},
		{"DELETE", "/admin/v1/projects/web?revoke_tokens=true", ``, 200, "deleted", true},
		{"DELETE", "/admin/v1/projects/web", ``, 404, "error.code", "not_found"},
		{"GET", "/admin/v1/usage?project=web", ``, 404, "error.code", "not_found"}, // deleted, and no records
		{"GET", "/admin/v1/usage?project=never", ``, 404, "error.code", "not_found"},
		{"GET", "/admin/v1/usage?limit=-1", ``, 400, "error.code", "invalid_request"},
	}
	for _, s := range steps {
		status, body := e.do(s.method, s.path, s.body)
		if status != s.status {
			t.Fatalf("%s %s %s: got %d %s, want %d", s.method, s.path, s.body, status, body, s.status)
		}
		if got := field(t, body, s.check); got != s.want {
			t.Fatalf("%s %s %s: %s is %v, want %v (%s)", s.method, s.path, s.body, s.check, got, s.want, body)
		}
	}
	// The deleted project's token was revoked with it.
	_, body := e.do("GET", "/admin/v1/tokens", "")
	if !strings.Contains(body, `"state": "revoked"`) {
		t.Fatalf("token after project delete: %s", body)
	}
	// An error about a 100 kB name does not echo it whole.
	status, body := e.do("PATCH", "/admin/v1/projects/"+strings.Repeat("x", 100_000), `{"budget_usd":"5"}`)
	if status != 404 || len(body) > 400 {
		t.Fatalf("a 100 kB name: got %d and %d bytes", status, len(body))
	}
}

func TestAdmin_TokenSet(t *testing.T) {
	e := newAdminEnv(t)
	e.do("POST", "/admin/v1/projects", `{"name":"web"}`)
	_, body := e.do("POST", "/admin/v1/tokens", `{"project":"web","name":"ci","budget_usd":"2","period":"week","rpm":10}`)
	id := field(t, body, "id").(string)
	path := "/admin/v1/tokens/" + id
	steps := []struct {
		body   string
		status int
		check  string
		want   any
	}{
		{`{"rpm":60}`, 200, "rpm", float64(60)},
		{`{"rpm":60}`, 200, "budget.limit_usd", "2.000000"},
		{`{"budget_usd":"0"}`, 200, "budget.limit_usd", "0.000000"},
		{`{"budget_usd":"0"}`, 200, "budget.period", "week"},
		{`{"name":"deploy"}`, 200, "name", "deploy"},
		{`{"models":["gpt-4o"]}`, 200, "rpm", float64(60)},
		{`{"expires":"100y"}`, 200, "expires", "2126-11-07T00:00:00Z"},
		{`{"expires":"36525d"}`, 200, "expires", "2126-12-02T00:00:00Z"},
		{`{"expires":"never"}`, 200, "expires", nil},
		{`{"expires":"101y"}`, 400, "error.code", "invalid_request"},
		{`{"expires":"1000000h"}`, 400, "error.code", "invalid_request"},
		{`{"expires":"0d"}`, 400, "error.code", "invalid_request"},
		{`{"rpm":-1}`, 400, "error.code", "invalid_request"},
		{`{"name":"` + strings.Repeat("n", 129) + `"}`, 400, "error.code", "invalid_request"},
	}
	for _, s := range steps {
		status, body := e.do("PATCH", path, s.body)
		if status != s.status {
			t.Fatalf("PATCH %s: got %d %s, want %d", s.body, status, body, s.status)
		}
		if got := field(t, body, s.check); got != s.want {
			t.Fatalf("PATCH %s: %s is %v, want %v (%s)", s.body, s.check, got, s.want, body)
		}
	}
	if status, _ := e.do("PATCH", "/admin/v1/tokens/tok_nope", `{"rpm":1}`); status != 404 {
		t.Fatalf("unknown token: got %d", status)
	}
	e.do("DELETE", path, "")
	if status, body := e.do("PATCH", path, `{"rpm":1}`); status != 401 && status != 409 && status != 400 {
		t.Fatalf("changing a revoked token: got %d %s", status, body)
	}
}

// TestAdmin_StorageFailureIs503AndLogged: a write the database cannot take
// is answered 503 ledger_unavailable with a public message, and logged at
// error level with its cause.
func TestAdmin_StorageFailureIs503AndLogged(t *testing.T) {
	e := newAdminEnv(t)
	e.do("POST", "/admin/v1/projects", `{"name":"web"}`)
	e.db.Close()
	for _, r := range []struct{ method, path, body string }{
		{"POST", "/admin/v1/projects", `{"name":"api"}`},
		{"PATCH", "/admin/v1/projects/web", `{"budget_usd":"1"}`},
		{"DELETE", "/admin/v1/projects/web", ``},
		{"GET", "/admin/v1/projects", ``},
	} {
		status, body := e.do(r.method, r.path, r.body)
		if status != 503 || field(t, body, "error.code") != "ledger_unavailable" || strings.Contains(body, "ledger closed") {
			t.Fatalf("%s %s on a closed database: got %d %s, want 503 ledger_unavailable with a public message", r.method, r.path, status, body)
		}
	}
	logs := e.log.String()
	if !strings.Contains(logs, `"level":"error"`) || !strings.Contains(logs, "ledger closed") {
		t.Fatalf("the failure is not logged at error with its cause: %s", logs)
	}
}

// TestAdmin_StatusShowsUnlimitedAsNull: every budget view shows no limit
// as null, not "0.000000".
func TestAdmin_StatusShowsUnlimitedAsNull(t *testing.T) {
	e := newAdminEnv(t)
	_, body := e.do("GET", "/admin/v1/status", "")
	if v := field(t, body, "global.limit_usd"); v != nil {
		t.Fatalf("an unlimited global budget shows as %v", v)
	}
	if _, err := e.db.CreateProject(context.Background(), "p", budget.Ceiling(0, budget.Day)); err != nil {
		t.Fatal(err)
	}
	_, body = e.do("GET", "/admin/v1/projects", "")
	if !strings.Contains(body, `"limit_usd": "0.000000"`) {
		t.Fatalf("a zero budget: %s", body)
	}
}

// TestAdmin_ModelListsAreBounded: a token's model list is bounded in count
// and length and holds ids only, on create and on set; a 100 kB model id
// was stored whole and echoed back.
func TestAdmin_ModelListsAreBounded(t *testing.T) {
	e := newAdminEnv(t)
	e.do("POST", "/admin/v1/projects", `{"name":"web"}`)
	many := make([]string, tokens.MaxModels+1)
	for i := range many {
		many[i] = fmt.Sprintf(`"m%d"`, i)
	}
	bad := []string{
		`["` + strings.Repeat("m", 100_000) + `"]`,
		`[` + strings.Join(many, ",") + `]`,
		`["gpt-4o", " gpt-4o-mini"]`,
		`[""]`,
		`["a,b"]`,
	}
	_, body := e.do("POST", "/admin/v1/tokens", `{"project":"web","models":["gpt-4o","ft:gpt-4o-mini:org:x:1"]}`)
	id, _ := field(t, body, "id").(string)
	if id == "" {
		t.Fatalf("a plain model list was refused: %s", body)
	}
	for _, models := range bad {
		for _, req := range []struct{ method, path, body string }{
			{"POST", "/admin/v1/tokens", `{"project":"web","models":` + models + `}`},
			{"PATCH", "/admin/v1/tokens/" + id, `{"models":` + models + `}`},
		} {
			status, body := e.do(req.method, req.path, req.body)
			if status != 400 || field(t, body, "error.code") != "invalid_request" || len(body) > 400 {
				t.Fatalf("%s with models %.60s: got %d, %d bytes: %.300s", req.method, models, status, len(body), body)
			}
		}
	}
}
