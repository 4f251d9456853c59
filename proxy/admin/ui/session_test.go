package ui

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestLogin(t *testing.T) {
	e := newEnv(t)
	b := e.browser()

	// Without a session: a page is a redirect to the login, a post a 403.
	if a := b.get("/ui/"); a.status != http.StatusSeeOther || a.location() != "/ui/login" {
		t.Fatalf("GET /ui/ without a session: %d to %q, want 303 to /ui/login", a.status, a.location())
	}
	if a := b.get("/ui/projects"); a.status != http.StatusSeeOther || a.location() != "/ui/login" {
		t.Fatalf("GET /ui/projects without a session: %d to %q, want 303 to /ui/login", a.status, a.location())
	}
	if a := b.post("/ui/projects", url.Values{"name": {"web"}}); a.status != http.StatusForbidden {
		t.Fatalf("POST without a session: %d, want 403", a.status)
	}
	a := b.get("/ui/login")
	mustContain(t, "login page", a.body, `id="login-form"`, `type="password"`, `id="token"`, `name="token"`, `id="login"`)

	// A wrong token: the login page again, 401, with an error.
	a = b.post("/ui/login", url.Values{"token": {"hcadmin_wrong"}})
	if a.status != http.StatusUnauthorized {
		t.Fatalf("wrong token: %d, want 401", a.status)
	}
	mustContain(t, "wrong token", a.body, `class="error"`, `id="login-form"`)
	if got := a.header.Get("Set-Cookie"); got != "" {
		t.Fatalf("wrong token set a cookie: %q", got)
	}

	// The right one: a session cookie, HttpOnly, SameSite=Strict, under
	// /ui/, holding neither the token nor its hash.
	a = b.post("/ui/login", url.Values{"token": {testAdminToken}})
	if a.status != http.StatusSeeOther || a.location() != "/ui/" {
		t.Fatalf("login: %d to %q, want 303 to /ui/", a.status, a.location())
	}
	resp := &http.Response{Header: a.header}
	cs := resp.Cookies()
	if len(cs) != 1 {
		t.Fatalf("cookies %v, want one", cs)
	}
	c := cs[0]
	if c.Name != CookieName || !c.HttpOnly || c.SameSite != http.SameSiteStrictMode || c.Path != "/ui/" || c.Secure || len(c.Value) != 64 {
		t.Fatalf("cookie %+v, want %s HttpOnly SameSite=Strict Path=/ui/, not Secure without TLS, a 64-digit id", c, CookieName)
	}
	if strings.Contains(c.Value, testAdminToken) {
		t.Fatal("the cookie holds the admin token")
	}
	if a := b.get("/ui/"); a.status != http.StatusOK {
		t.Fatalf("overview after login: %d", a.status)
	}
	// A logged-in browser at the login page goes to the overview.
	if a := b.get("/ui/login"); a.status != http.StatusSeeOther || a.location() != "/ui/" {
		t.Fatalf("login page with a session: %d to %q", a.status, a.location())
	}
	if strings.Contains(e.log.String(), testAdminToken) {
		t.Fatal("the log holds the admin token")
	}
}

func TestLogin_RateLimited(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	for i := range LoginBurst {
		if a := b.post("/ui/login", url.Values{"token": {"wrong"}}); a.status != http.StatusUnauthorized {
			t.Fatalf("attempt %d: %d, want 401", i+1, a.status)
		}
	}
	// The allowance is spent: even the right token waits.
	if a := b.post("/ui/login", url.Values{"token": {testAdminToken}}); a.status != http.StatusTooManyRequests {
		t.Fatalf("attempt %d: %d, want 429", LoginBurst+1, a.status)
	}
	e.advance(LoginEvery)
	if a := b.post("/ui/login", url.Values{"token": {testAdminToken}}); a.status != http.StatusSeeOther {
		t.Fatalf("after %v: %d, want 303", LoginEvery, a.status)
	}
}

func TestLogin_OtherOrigin(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	a := b.post("/ui/login", url.Values{"token": {testAdminToken}}, "Origin", "https://evil.example")
	if a.status != http.StatusForbidden {
		t.Fatalf("login from another origin: %d, want 403", a.status)
	}
}

func TestSession_Expiry(t *testing.T) {
	e := newEnv(t)

	// Idle past the TTL: the session is gone.
	b := e.browser()
	b.login()
	e.advance(DefaultSessionTTL - time.Minute)
	if a := b.get("/ui/"); a.status != http.StatusOK {
		t.Fatalf("within the TTL: %d, want 200", a.status)
	}
	e.advance(DefaultSessionTTL + time.Second)
	if a := b.get("/ui/"); a.status != http.StatusSeeOther || a.location() != "/ui/login" {
		t.Fatalf("idle past the TTL: %d to %q, want 303 to /ui/login", a.status, a.location())
	}
	if a := b.post("/ui/projects", b.form("name", "web")); a.status != http.StatusForbidden {
		t.Fatalf("a post with an expired session: %d, want 403", a.status)
	}

	// In use all along: still gone after MaxSessionAge.
	b = e.browser()
	b.login()
	for h := range int(MaxSessionAge / time.Hour) {
		e.advance(time.Hour)
		if a := b.get("/ui/projects"); a.status != http.StatusOK {
			t.Fatalf("in use, %d hours after the login: %d, want 200", h+1, a.status)
		}
	}
	e.advance(time.Hour)
	if a := b.get("/ui/projects"); a.status != http.StatusSeeOther {
		t.Fatalf("past the session's absolute age: %d, want 303", a.status)
	}
	if strings.Contains(e.adminGet("/admin/v1/projects"), `"web"`) {
		t.Fatal("a post with an expired session created the project")
	}
}

func TestSession_Logout(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login()
	// Logging out is a change: it needs the csrf token too.
	if a := b.post("/ui/logout", url.Values{}); a.status != http.StatusForbidden {
		t.Fatalf("logout without csrf: %d, want 403", a.status)
	}
	old := b.c.Jar.Cookies(mustURL(t, e.srv.URL+"/ui/"))
	a := b.post("/ui/logout", b.form())
	if a.status != http.StatusSeeOther || a.location() != "/ui/login" {
		t.Fatalf("logout: %d to %q, want 303 to /ui/login", a.status, a.location())
	}
	if a := b.get("/ui/"); a.status != http.StatusSeeOther {
		t.Fatalf("after logout: %d, want 303", a.status)
	}
	// The old cookie, replayed, is no session either.
	replay := e.browser()
	replay.c.Jar.SetCookies(mustURL(t, e.srv.URL+"/ui/"), old)
	if a := replay.get("/ui/"); a.status != http.StatusSeeOther {
		t.Fatalf("the logged-out cookie replayed: %d, want 303", a.status)
	}
}

func TestSessions_Bounded(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	s := newSessions(func() time.Time { return now }, time.Hour)
	first := s.create()
	for range MaxSessions {
		now = now.Add(time.Millisecond)
		s.create()
	}
	if len(s.byID) != MaxSessions {
		t.Fatalf("%d sessions held, want %d", len(s.byID), MaxSessions)
	}
	if _, ok := s.byID[first.id]; ok {
		t.Fatal("the oldest session was kept past MaxSessions")
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestLogin_SecureCookieUnderTLS: served over TLS, the cookie is Secure.
func TestLogin_SecureCookieUnderTLS(t *testing.T) {
	h := New(Options{AdminToken: testAdminToken})
	req := httptest.NewRequest("POST", "https://hardcap.example/ui/login", strings.NewReader(url.Values{"token": {testAdminToken}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.TLS = &tls.ConnectionState{}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	cs := rec.Result().Cookies()
	if rec.Code != http.StatusSeeOther || len(cs) != 1 || !cs[0].Secure || !cs[0].HttpOnly || cs[0].SameSite != http.SameSiteStrictMode {
		t.Fatalf("login over TLS: %d, cookies %+v; want one Secure HttpOnly SameSite=Strict cookie", rec.Code, cs)
	}
}

// TestBearerIsNoSession: a request with an Authorization header, the data
// plane's token or even the admin token, is no session: the login page.
func TestBearerIsNoSession(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	for _, auth := range []string{"Bearer hc_0123456789abcdefghijABCDEFGHIJ", "Bearer " + testAdminToken} {
		req, _ := http.NewRequest("GET", e.srv.URL+"/ui/", nil)
		req.Header.Set("Authorization", auth)
		if a := b.do(req); a.status != http.StatusSeeOther || a.location() != "/ui/login" {
			t.Errorf("GET /ui/ with %.12s...: %d to %q, want 303 to /ui/login", auth, a.status, a.location())
		}
	}
}
