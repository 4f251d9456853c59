package ui

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/proxy/admin"
)

// createToken makes project (budget 10 a day) and a token in it through
// the pages, and returns the token's id and the once-shown secret.
func (b *browser) createToken(project string, pairs ...string) (id, secret string) {
	t := b.e.t
	t.Helper()
	if !strings.Contains(b.e.adminGet("/admin/v1/projects"), `"name": "`+project+`"`) {
		if a := b.post("/ui/projects", b.form("name", project, "budget", "10", "period", "day")); a.status != http.StatusSeeOther {
			t.Fatalf("create project: %d %s", a.status, clipBody(a.body))
		}
	}
	a := b.post("/ui/projects/"+project+"/tokens", b.form(pairs...))
	if a.status != http.StatusOK {
		t.Fatalf("create token: %d %s", a.status, clipBody(a.body))
	}
	m := regexp.MustCompile(`<code id="secret">(hc_[0-9A-Za-z]+)</code>`).FindStringSubmatch(a.body)
	n := regexp.MustCompile(`Token <code>(tok_[0-9A-Za-z]+)</code>`).FindStringSubmatch(a.body)
	if m == nil || n == nil {
		t.Fatalf("the answer to a token's creation shows no secret or id:\n%s", clipBody(a.body))
	}
	mustContain(t, "creation answer", a.body, "not again")
	return n[1], m[1]
}

func TestCSRF_Refused(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login()
	id, _ := b.createToken("web", "name", "ci")
	good := b.csrf
	tests := []struct {
		name   string
		form   url.Values
		header []string
	}{
		{"missing", url.Values{"name": {"forged"}, "confirm": {"yes"}}, nil},
		{"wrong", url.Values{"csrf": {strings.Repeat("0", 64)}, "name": {"forged"}, "confirm": {"yes"}}, nil},
		{"short", url.Values{"csrf": {good[:10]}, "name": {"forged"}, "confirm": {"yes"}}, nil},
		{"other origin", url.Values{"csrf": {good}, "name": {"forged"}, "confirm": {"yes"}}, []string{"Origin", "https://evil.example"}},
		{"bad origin", url.Values{"csrf": {good}, "name": {"forged"}, "confirm": {"yes"}}, []string{"Origin", "null"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, path := range []string{"/ui/projects", "/ui/tokens/" + id + "/kill", "/ui/tokens/" + id + "/revoke", "/ui/projects/web/delete", "/ui/logout"} {
				if a := b.post(path, tt.form, tt.header...); a.status != http.StatusForbidden {
					t.Errorf("POST %s: %d, want 403", path, a.status)
				}
			}
		})
	}
	b.csrf = good
	// Nothing changed: no project "forged", the token neither killed nor
	// revoked, the project there, the session alive.
	if strings.Contains(e.adminGet("/admin/v1/projects"), "forged") {
		t.Fatal("a forged post created a project")
	}
	var tok admin.TokenView
	if err := json.Unmarshal([]byte(e.adminGet("/admin/v1/tokens/"+id)), &tok); err != nil {
		t.Fatal(err)
	}
	if tok.Killed || !tok.Revoked.IsZero() {
		t.Fatalf("a forged post changed the token: killed %v, revoked %v", tok.Killed, tok.Revoked)
	}
	if a := b.get("/ui/projects/web"); a.status != http.StatusOK {
		t.Fatalf("the project or the session is gone after forged posts: %d", a.status)
	}
	// The same origin is let through.
	if a := b.post("/ui/projects", b.form("name", "same"), "Origin", e.srv.URL); a.status != http.StatusSeeOther {
		t.Fatalf("a post from the dashboard's own origin: %d, want 303", a.status)
	}
}

func TestTokenActions_Confirm(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login()
	id, first := b.createToken("web", "name", "ci", "owner", "alice", "purpose", "nightly tests", "budget", "2", "period", "day")
	page := "/ui/tokens/" + id
	status := func() string {
		t.Helper()
		a := b.get(page)
		m := regexp.MustCompile(`id="status">([^<]*)<`).FindStringSubmatch(a.body)
		if a.status != http.StatusOK || m == nil {
			t.Fatalf("token page: %d %s", a.status, clipBody(a.body))
		}
		return m[1]
	}
	a := b.get(page)
	mustContain(t, "token page", a.body, "alice", "nightly tests", `id="kill"`, `id="resume"`, `id="rotate"`, `id="revoke"`, "every 90d", "never")
	if got := status(); got != "active" {
		t.Fatalf("status %q, want active", got)
	}

	steps := []struct {
		action, want string
	}{
		{"kill", "killed"},
		{"resume", "active"},
		{"revoke", "revoked"},
	}
	for _, s := range steps {
		// Without confirm=yes: a confirmation page, nothing changed.
		before := status()
		a := b.post(page+"/"+s.action, b.form())
		if a.status != http.StatusOK {
			t.Fatalf("%s unconfirmed: %d", s.action, a.status)
		}
		mustContain(t, s.action+" confirmation", a.body, `id="confirm-form"`, `id="confirm"`, `name="confirm" value="yes"`,
			`action="`+page+"/"+s.action+`"`, `id="cancel" href="`+page+`"`)
		if got := status(); got != before {
			t.Fatalf("%s unconfirmed changed the status from %q to %q", s.action, before, got)
		}
		a = b.post(page+"/"+s.action, b.form("confirm", "yes"))
		if a.status != http.StatusSeeOther || a.location() != page {
			t.Fatalf("%s confirmed: %d to %q, want 303 to %s", s.action, a.status, a.location(), page)
		}
		a = b.get(page)
		mustContain(t, "after "+s.action, a.body, `class="flash"`)
		if got := status(); got != s.want {
			t.Fatalf("after %s: status %q, want %q", s.action, got, s.want)
		}
		if s.action == "resume" {
			// The flash is shown once.
			if strings.Contains(b.get(page).body, `class="flash"`) {
				t.Fatal("the flash is shown twice")
			}
		}
	}
	// A revoked token cannot be rotated: the admin API's message shows.
	a = b.post(page+"/rotate", b.form("confirm", "yes"))
	if a.status < 400 || !strings.Contains(a.body, `class="error"`) {
		t.Fatalf("rotating a revoked token: %d %s", a.status, clipBody(a.body))
	}
	if strings.Contains(b.get(page).body, first) {
		t.Fatal("the token page shows the secret")
	}
}

func TestRotate_SecretShownOnce(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login()
	id, first := b.createToken("web", "name", "ci")
	page := "/ui/tokens/" + id
	// Unconfirmed, the grace is carried to the confirmation.
	a := b.post(page+"/rotate", b.form("grace", "0"))
	mustContain(t, "rotate confirmation", a.body, `id="confirm-form"`, `name="grace" value="0"`)
	a = b.post(page+"/rotate", b.form("grace", "0", "confirm", "yes"))
	if a.status != http.StatusOK {
		t.Fatalf("rotate: %d, want 200 (a page showing the secret)", a.status)
	}
	m := regexp.MustCompile(`<code id="secret">(hc_[0-9A-Za-z]+)</code>`).FindStringSubmatch(a.body)
	if m == nil || m[1] == first {
		t.Fatalf("the rotation's answer shows no new secret:\n%s", clipBody(a.body))
	}
	second := m[1]
	// No later page, nor the live answer, holds either secret or the
	// admin token.
	e.record(id, "gpt-4o-mini", 1000, -time.Minute)
	for _, path := range []string{"/ui/", "/ui/live", "/ui/projects", "/ui/projects/web", page, "/ui/usage", "/ui/usage.csv", "/ui/alerts", "/ui/audit", "/ui/login"} {
		a := b.get(path)
		if a.status != http.StatusOK && a.status != http.StatusSeeOther {
			t.Errorf("GET %s: %d", path, a.status)
		}
		for _, secret := range []string{first, second, testAdminToken} {
			if strings.Contains(a.body, secret) {
				t.Errorf("GET %s shows a secret", path)
			}
		}
	}
}

func TestProjectPages(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login()
	a := b.post("/ui/projects", b.form("name", "web", "budget", "5", "period", "month"))
	if a.status != http.StatusSeeOther || a.location() != "/ui/projects/web" {
		t.Fatalf("create project: %d to %q", a.status, a.location())
	}
	a = b.get("/ui/projects")
	mustContain(t, "projects", a.body, `id="projects"`, `<tr data-project="web">`, `href="/ui/projects/web"`, "$5.00", `id="create-project"`)
	// A refusal of the admin API is shown with its status and message.
	a = b.post("/ui/projects", b.form("name", "web"))
	if a.status != http.StatusConflict || !strings.Contains(a.body, `class="error"`) {
		t.Fatalf("a second project web: %d %s", a.status, clipBody(a.body))
	}
	a = b.post("/ui/projects", b.form("name", "bad", "budget", "-1"))
	if a.status != http.StatusBadRequest {
		t.Fatalf("a negative budget: %d, want 400", a.status)
	}
	id, _ := b.createToken("web", "name", "ci")
	a = b.get("/ui/projects/web")
	mustContain(t, "project", a.body, `id="tokens"`, `<tr data-token="`+id+`">`, `href="/ui/tokens/`+id+`"`, `id="create-token"`, `id="set-budget"`)

	// Change the budget.
	a = b.post("/ui/projects/web/budget", b.form("budget", "7.5", "period", "day"))
	if a.status != http.StatusSeeOther {
		t.Fatalf("set budget: %d %s", a.status, clipBody(a.body))
	}
	mustContain(t, "after set budget", b.get("/ui/projects/web").body, "$7.50 per day", `class="flash"`)
	if a := b.post("/ui/projects/web/budget", b.form("budget", "")); a.status != http.StatusBadRequest {
		t.Fatalf("an empty budget: %d, want 400", a.status)
	}
	// Kill and resume the project, confirmed.
	a = b.post("/ui/projects/web/kill", b.form())
	mustContain(t, "kill confirmation", a.body, `id="confirm-form"`)
	if strings.Contains(e.adminGet("/admin/v1/projects"), `"killed": true`) {
		t.Fatal("an unconfirmed kill killed the project")
	}
	if a := b.post("/ui/projects/web/kill", b.form("confirm", "yes")); a.status != http.StatusSeeOther {
		t.Fatalf("kill: %d", a.status)
	}
	if !strings.Contains(e.adminGet("/admin/v1/projects"), `"killed": true`) {
		t.Fatal("the confirmed kill did not kill the project")
	}
	mustContain(t, "killed project", b.get("/ui/projects/web").body, `id="status">killed<`)
	if a := b.post("/ui/projects/web/resume", b.form("confirm", "yes")); a.status != http.StatusSeeOther {
		t.Fatalf("resume: %d", a.status)
	}
	// Delete: refused while it has tokens, done with revoke_tokens.
	a = b.post("/ui/projects/web/delete", b.form("revoke_tokens", "true"))
	mustContain(t, "delete confirmation", a.body, `name="revoke_tokens" value="true"`)
	if a := b.post("/ui/projects/web/delete", b.form("confirm", "yes")); a.status != http.StatusConflict {
		t.Fatalf("delete with tokens: %d, want 409", a.status)
	}
	if a := b.post("/ui/projects/web/delete", b.form("confirm", "yes", "revoke_tokens", "true")); a.status != http.StatusSeeOther || a.location() != "/ui/projects" {
		t.Fatalf("delete: %d to %q", a.status, a.location())
	}
	if a := b.get("/ui/projects/web"); a.status != http.StatusNotFound {
		t.Fatalf("deleted project's page: %d, want 404", a.status)
	}
}

func TestHeaders(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login()
	for _, path := range []string{"/ui/login", "/ui/", "/ui/projects", "/ui/usage", "/ui/live", "/ui/nope", "/ui/static/app.js"} {
		a := b.get(path)
		if got := a.header.Get("Content-Security-Policy"); got != ContentSecurityPolicy {
			t.Errorf("%s: CSP %q, want %q", path, got, ContentSecurityPolicy)
		}
		if a.header.Get("X-Content-Type-Options") != "nosniff" || a.header.Get("Referrer-Policy") != "same-origin" {
			t.Errorf("%s: headers %v", path, a.header)
		}
		if !strings.HasPrefix(path, "/ui/static/") && a.header.Get("Cache-Control") != "no-store" {
			t.Errorf("%s: Cache-Control %q, want no-store", path, a.header.Get("Cache-Control"))
		}
	}
	if a := b.get("/ui/nope"); a.status != http.StatusNotFound {
		t.Fatalf("an unknown page: %d, want 404", a.status)
	}
	// No inline script or style anywhere: the CSP would block it.
	for _, path := range []string{"/ui/login", "/ui/", "/ui/projects"} {
		body := b.get(path).body
		if regexp.MustCompile(`<script>|<script [^s]|<style|style="|javascript:| on[a-z]+="`).MatchString(body) {
			t.Errorf("%s has inline script or style", path)
		}
	}
	if a := b.get("/ui/static/"); a.status != http.StatusNotFound {
		t.Fatalf("the static directory: %d, want 404 (no listing)", a.status)
	}
	js := b.get("/ui/static/app.js")
	if js.status != http.StatusOK || !strings.Contains(js.header.Get("Content-Type"), "javascript") {
		t.Fatalf("app.js: %d %s", js.status, js.header.Get("Content-Type"))
	}
	if n := strings.Count(js.body, "\n"); n >= 300 {
		t.Fatalf("app.js has %d lines; it is meant to stay small", n)
	}
}

func TestAuditPage(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login()
	a := b.get("/ui/audit")
	mustContain(t, "empty audit", a.body, `id="findings"`)
	// A token with no budget of its own and a rotation never due is a
	// finding or two.
	id, _ := b.createToken("web", "name", "ci", "rotate_every", "never")
	a = b.get("/ui/audit")
	if a.status != http.StatusOK || !strings.Contains(a.body, `class="finding severity-`) || !strings.Contains(a.body, id) {
		t.Fatalf("audit page: %d\n%s", a.status, clipBody(a.body))
	}
}
