package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/hardcap/hardcap/internal/browsertest"
)

// The dashboard in Chromium, against the page contract its builder and
// these tests share: a real hardcap in front of the fake OpenAI, driven
// the way an operator would, each page checked and shot at 1280 and 390 px.

const uiChatBody = `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"hi"}]}`

// uiAdminToken reads the admin token that the server wrote on its first
// start.
func uiAdminToken(t *testing.T, s *server) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// uiConfirm confirms an action of the token page: the button leads to the
// confirmation page, which changes nothing until its button is pressed.
// It returns after the redirect back to the token page.
func uiConfirm(t *testing.T, tab *browsertest.Tab, button, shot string, unchanged func()) {
	t.Helper()
	if got := tab.ClickAndWait(button); got != http.StatusOK {
		t.Fatalf("%s: status %d, want the confirmation page's 200", button, got)
	}
	if !tab.Has("form#confirm-form") || !tab.Has("a#cancel") {
		t.Fatalf("%s: no confirmation form at %s", button, tab.Location())
	}
	if shot != "" {
		tab.Shoot(shot)
	} else {
		tab.CheckWidths("confirm " + button)
	}
	unchanged()
	if got := tab.ClickAndWait("button#confirm"); got != http.StatusOK {
		t.Fatalf("%s confirmed: status %d, want 200 after the redirect", button, got)
	}
}

func TestUI_Browser(t *testing.T) {
	s := startServer(t, "budget:\n  global: {limit_usd: \"0.01\", period: day}\n")
	tab := browsertest.Start(t) // after the server: its cleanup runs first
	adminToken := uiAdminToken(t, s)
	ui := s.url + "/ui"

	// Without a session every page leads to the login page.
	if got := tab.Navigate(ui + "/projects"); got != http.StatusOK || !strings.HasSuffix(tab.Location(), "/ui/login") {
		t.Fatalf("/ui/projects without a session: status %d at %s, want the login page", got, tab.Location())
	}
	tab.Shoot("login")
	tab.SetValue("input#token[type=password]", "hcadmin_not-the-token-at-all")
	if got := tab.ClickAndWait("button#login"); got != http.StatusUnauthorized {
		t.Errorf("a wrong token: status %d, want 401", got)
	}
	if !tab.Has(".error") || tab.Has("nav") {
		t.Errorf("a wrong token: no .error, or logged in anyway: %s", tab.HTML())
	}
	tab.CheckWidths("login-refused")

	tab.SetValue("input#token", adminToken)
	if got := tab.ClickAndWait("button#login"); got != http.StatusOK || !strings.HasSuffix(tab.Location(), "/ui/") {
		t.Fatalf("login: status %d at %s, want the overview", got, tab.Location())
	}
	for _, id := range []string{"nav-overview", "nav-projects", "nav-usage", "nav-alerts", "nav-audit", "logout"} {
		if !tab.Has("#" + id) {
			t.Errorf("the overview lacks #%s", id)
		}
	}
	tab.CheckWidths("overview-empty")

	// A project and a token, made with the dashboard's forms.
	tab.Navigate(ui + "/projects")
	tab.CheckWidths("projects-empty")
	tab.SetValue("#create-project input[name=name]", "web")
	tab.SetValue("#create-project input[name=budget]", "0.0005")
	tab.SetValue("#create-project select[name=period]", "month")
	if got := tab.ClickAndWait("#create-project button[type=submit]"); got != http.StatusOK || !strings.HasSuffix(tab.Location(), "/ui/projects/web") {
		t.Fatalf("create project: status %d at %s", got, tab.Location())
	}
	if !tab.Has(".flash") {
		t.Errorf("no .flash after creating the project")
	}
	tab.SetValue("#create-token input[name=name]", "app")
	tab.SetValue("#create-token input[name=purpose]", "browser test")
	tab.SetValue("#create-token input[name=owner]", "ana")
	tab.SetValue("#create-token input[name=budget]", "0.0003")
	if got := tab.ClickAndWait("#create-token button[type=submit]"); got != http.StatusOK {
		t.Fatalf("create token: status %d", got)
	}
	secret := tab.Text("code#secret")
	if !strings.HasPrefix(secret, "hc") || len(secret) < 20 {
		t.Fatalf("the new token's secret %q does not look like one", secret)
	}
	tokenID := tab.Text("h1 code")
	tab.Shoot("token-created")
	tokenPage := ui + "/tokens/" + tokenID

	tab.Navigate(ui + "/projects")
	if !tab.Has(`#projects tr[data-project="web"] a[href="/ui/projects/web"]`) {
		t.Errorf("the projects table lacks web: %s", tab.HTML())
	}
	tab.Shoot("projects")
	tab.Navigate(ui + "/projects/web")
	if !tab.Has(fmt.Sprintf(`#tokens tr[data-token=%q] a[href="/ui/tokens/%s"]`, tokenID, tokenID)) {
		t.Errorf("the tokens table lacks %s: %s", tokenID, tab.HTML())
	}
	if strings.Contains(tab.HTML(), secret) {
		t.Errorf("the project page shows the token's secret")
	}
	tab.Shoot("project")

	// The overview's bars move as requests are made, without a reload.
	tab.Navigate(ui + "/")
	projectBar := `.budget[data-scope="project:web"]`
	tokenBar := fmt.Sprintf(`.budget[data-scope="token:%s"]`, tokenID)
	for _, bar := range []string{`#budgets .budget[data-scope="global:day"]`, projectBar, tokenBar} {
		if !tab.Has(bar+" .bar") || tab.Attr(bar, "data-limit-usd") == "" {
			t.Fatalf("no %s with a .bar and a limit: %s", bar, tab.HTML())
		}
	}
	if got := tab.Attr(projectBar, "data-limit-usd"); !strings.HasPrefix(got, "0.0005") {
		t.Errorf("project bar's limit %q, want 0.0005", got)
	}
	before := tab.Attr(projectBar, "data-committed-usd")
	tab.Do(chromedp.Evaluate[chromedp.Void](`window.hardcapNoReload = true`))
	for range 3 {
		if code, body := chat(t, s.url, secret, uiChatBody); code != http.StatusOK {
			t.Fatalf("a request with the new token: %d %s", code, body)
		}
	}
	grown := fmt.Sprintf(`(() => {
		const p = document.querySelector(%q), k = document.querySelector(%q);
		return !!p && !!k && Number(p.dataset.committedUsd) > Number(%q) && Number(k.dataset.committedUsd) > 0;
	})()`, projectBar, tokenBar, before)
	tab.WaitJS("the project's and the token's bars to grow", grown)
	if !browsertest.Run(tab, chromedp.Evaluate[bool](`window.hardcapNoReload === true`)) {
		t.Errorf("the overview reloaded to update its bars")
	}
	if !tab.Has("#spend-chart") || !tab.Has("#open-reservations") || !tab.Has("#recent-alerts") {
		t.Errorf("the overview lacks its chart, open reservations or alerts: %s", tab.HTML())
	}
	tab.Shoot("overview")

	// The token page: kill (after the confirmation) and the next request is
	// refused; resume and it passes.
	tab.Navigate(tokenPage)
	if got := tab.Text("#status"); !strings.Contains(got, "active") {
		t.Errorf("status %q, want active", got)
	}
	for _, want := range []string{"ana", "browser test"} {
		if !strings.Contains(tab.Text("main"), want) {
			t.Errorf("the token page lacks %q", want)
		}
	}
	tab.Shoot("token")
	uiConfirm(t, tab, "button#kill", "confirm-kill", func() {
		if code, body := chat(t, s.url, secret, uiChatBody); code != http.StatusOK {
			t.Errorf("before the kill is confirmed: %d %s, want 200", code, body)
		}
	})
	if got := tab.Text("#status"); !strings.Contains(got, "killed") || !tab.Has(".flash") {
		t.Errorf("after the kill: status %q, flash %v", got, tab.Has(".flash"))
	}
	tab.Shoot("token-killed")
	if code, body := chat(t, s.url, secret, uiChatBody); code != http.StatusForbidden || !strings.Contains(body, "kill_switch") {
		t.Errorf("a request of a killed token: %d %s, want 403 kill_switch", code, body)
	}
	uiConfirm(t, tab, "button#resume", "", func() {})
	if got := tab.Text("#status"); !strings.Contains(got, "active") {
		t.Errorf("after the resume: status %q", got)
	}
	if code, body := chat(t, s.url, secret, uiChatBody); code != http.StatusOK {
		t.Errorf("a request after the resume: %d %s", code, body)
	}

	// Forged posts change nothing: a form on another origin that submits
	// itself to the kill URL (the browser sends the session cookie, since
	// another port of the same host is the same site), and a form of the
	// dashboard's own origin without the session's CSRF token.
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s/kill">
<input type="hidden" name="confirm" value="yes"><input type="hidden" name="csrf" value="guessed"></form>
<script>window.onload = () => document.getElementById("f").submit()</script>`, tokenPage)
	}))
	t.Cleanup(evil.Close)
	if code, url := tab.NextDocument(tokenPage+"/kill", chromedp.Navigate(evil.URL)); code != http.StatusForbidden {
		t.Errorf("a forged post from %s: %d at %s, want 403", evil.URL, code, url)
	}
	tab.WaitJS("the refusal page", `location.pathname.endsWith("/kill") && document.readyState === "complete"`)
	if got := tab.Text("main"); !strings.Contains(got, "another site") {
		t.Errorf("the refusal of the forged post does not say why: %q", got)
	}
	tab.Shoot("forged-refused")
	tab.Navigate(tokenPage)
	forge := fmt.Sprintf(`(() => {
		const f = document.createElement("form");
		f.method = "post"; f.action = %q;
		for (const [k, v] of [["confirm", "yes"], ["csrf", "not-the-session-token"]]) {
			const i = document.createElement("input"); i.type = "hidden"; i.name = k; i.value = v; f.appendChild(i);
		}
		document.body.appendChild(f);
		f.submit();
	})()`, tokenPage+"/kill")
	if code, url := tab.NextDocument(tokenPage+"/kill", chromedp.Evaluate[chromedp.Void](forge)); code != http.StatusForbidden {
		t.Errorf("a post without the session's CSRF token: %d at %s, want 403", code, url)
	}
	tab.WaitJS("the refusal page", `location.pathname.endsWith("/kill") && document.readyState === "complete"`)
	if got := tab.Text("main"); !strings.Contains(got, "CSRF") {
		t.Errorf("the refusal does not say why: %q", got)
	}
	if code, body := chat(t, s.url, secret, uiChatBody); code != http.StatusOK {
		t.Errorf("after the forged posts the token is refused: %d %s", code, body)
	}
	tab.Navigate(tokenPage)
	if got := tab.Text("#status"); !strings.Contains(got, "active") {
		t.Errorf("after the forged posts: status %q, want active", got)
	}

	// Rotate with no grace: the new secret is shown once, the old one is
	// refused at once, the new one works.
	tab.SetValue("input#grace", "0")
	uiConfirm(t, tab, "button#rotate", "", func() {
		if code, body := chat(t, s.url, secret, uiChatBody); code != http.StatusOK {
			t.Errorf("before the rotation is confirmed: %d %s, want 200", code, body)
		}
	})
	newSecret := tab.Text("code#secret")
	if newSecret == "" || newSecret == secret {
		t.Fatalf("after the rotation the secret page shows %q", newSecret)
	}
	tab.Shoot("token-rotated")
	if code, body := chat(t, s.url, secret, uiChatBody); code != http.StatusUnauthorized || !strings.Contains(body, "rotated") {
		t.Errorf("the old secret after a rotation with no grace: %d %s, want 401 rotated", code, body)
	}
	if code, body := chat(t, s.url, newSecret, uiChatBody); code != http.StatusOK {
		t.Errorf("the new secret: %d %s", code, body)
	}
	for _, page := range []string{tokenPage, ui + "/", ui + "/projects/web", ui + "/usage", ui + "/live"} {
		tab.Navigate(page)
		if html := tab.HTML(); strings.Contains(html, newSecret) || strings.Contains(html, secret) || strings.Contains(html, adminToken) {
			t.Errorf("%s shows a secret", page)
		}
	}

	// Usage: the requests, a request's detail, the CSV link.
	tab.Navigate(ui + "/usage?token=" + tokenID)
	if n := tab.Count("#usage tr.record"); n < 5 {
		t.Errorf("%d usage rows for the token, want at least 5 (3 + 1 + 1 passed requests)", n)
	}
	if href := tab.Attr("a#csv", "href"); !strings.Contains(href, "/ui/usage.csv") || !strings.Contains(href, "token="+tokenID) {
		t.Errorf("the CSV link %q does not keep the filter", href)
	}
	tab.Shoot("usage")
	if got := tab.ClickAndWait("#usage tr.record a"); got != http.StatusOK || !tab.Has("#record") {
		t.Errorf("a request's detail: status %d, #record %v", got, tab.Has("#record"))
	}
	tab.Shoot("record")

	tab.Navigate(ui + "/alerts")
	if !tab.Has("#alerts") {
		t.Errorf("the alerts page lacks #alerts")
	}
	tab.Shoot("alerts")
	tab.Navigate(ui + "/audit")
	if !tab.Has("#findings") {
		t.Errorf("the audit page lacks #findings")
	}
	tab.Shoot("audit")

	// Revoke: the secret stops working.
	tab.Navigate(tokenPage)
	uiConfirm(t, tab, "button#revoke", "", func() {})
	if got := tab.Text("#status"); !strings.Contains(got, "revoked") {
		t.Errorf("after the revoke: status %q", got)
	}
	tab.CheckWidths("token-revoked")
	if code, body := chat(t, s.url, newSecret, uiChatBody); code != http.StatusUnauthorized {
		t.Errorf("a revoked token's request: %d %s, want 401", code, body)
	}

	// A browser without the session is sent to the login page.
	fresh := tab.NewSession()
	for _, page := range []string{"/projects", "/", "/tokens/" + tokenID, "/usage"} {
		if fresh.Navigate(ui + page); !strings.HasSuffix(fresh.Location(), "/ui/login") {
			t.Errorf("%s without a session: at %s, want the login page", page, fresh.Location())
		}
	}

	// A post without a session is refused, even from the dashboard's origin
	// and with confirm=yes.
	fresh.Navigate(ui + "/login")
	if code, url := fresh.NextDocument(tokenPage+"/kill", chromedp.Evaluate[chromedp.Void](forge)); code != http.StatusForbidden {
		t.Errorf("a post without a session: %d at %s, want 403", code, url)
	}

	// Logout ends the session.
	tab.Navigate(ui + "/")
	tab.ClickAndWait("button#logout")
	if got := tab.Navigate(ui + "/projects"); got != http.StatusOK || !strings.HasSuffix(tab.Location(), "/ui/login") {
		t.Errorf("after logout /ui/projects: status %d at %s, want the login page", got, tab.Location())
	}

	if errs := append(tab.JSErrors(), fresh.JSErrors()...); len(errs) > 0 {
		t.Errorf("the pages' JavaScript or policy errors:\n%s", strings.Join(errs, "\n"))
	}
}
