package ui

import (
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/proxy/admin"
)

// clip shortens text from a request for a message.
func clip(s string) string { return budget.Clip(s) }

func asAPIError(err error, ae **APIError) bool { return errors.As(err, ae) }

// field is a form value without surrounding spaces.
func field(r *http.Request, name string) string { return strings.TrimSpace(r.PostForm.Get(name)) }

// list is a comma-separated form value as a list; nil when empty.
func list(r *http.Request, name string) []string {
	var out []string
	for _, s := range strings.Split(field(r, name), ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	return out
}

// done ends a change: a flash for the next page and 303 to it.
func (h *Handler) done(w http.ResponseWriter, r *http.Request, se *session, to, msg string) {
	h.sessions.setFlash(se, msg)
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// createProject serves POST /ui/projects.
func (h *Handler) createProject(w http.ResponseWriter, r *http.Request, se *session) {
	body := map[string]any{"name": field(r, "name"), "budget_usd": field(r, "budget"), "period": field(r, "period")}
	var p admin.ProjectView
	if err := h.admin.call(r.Context(), "POST", "/admin/v1/projects", body, &p); err != nil {
		h.fail(w, se, err)
		return
	}
	h.done(w, r, se, "/ui/projects/"+url.PathEscape(p.Name), fmt.Sprintf("Project %s created with budget %s (%s).", p.Name, usdPtr(p.Budget.Limit), p.Budget.Period))
}

// createToken serves POST /ui/projects/{name}/tokens. Its answer shows the
// new secret, once: it is a page, not a redirect, and the secret is kept
// nowhere.
func (h *Handler) createToken(w http.ResponseWriter, r *http.Request, se *session) {
	body := map[string]any{"project": r.PathValue("name")}
	for form, key := range map[string]string{"name": "name", "owner": "owner", "purpose": "purpose", "budget": "budget_usd",
		"period": "period", "expires": "expires", "rotate_every": "rotate_every", "max_request": "max_request_usd"} {
		if v := field(r, form); v != "" {
			body[key] = v
		}
	}
	for _, k := range []string{"models", "ips", "routes"} {
		if l := list(r, k); l != nil {
			body[k] = l
		}
	}
	var t admin.TokenView
	if err := h.admin.call(r.Context(), "POST", "/admin/v1/tokens", body, &t); err != nil {
		h.fail(w, se, err)
		return
	}
	secret := t.Secret
	t.Secret = ""
	h.opts.Log.Info().Str("token", t.ID).Str("project", t.Project).Msg("dashboard: token created")
	p := h.newPage(se, "Token created", "projects", tokenData{Token: t, Status: tokenStatus(t), Secret: secret})
	p.Flash = "Token " + t.ID + " created in project " + t.Project + "."
	h.render(w, http.StatusOK, "secret.html", p)
}

// budgetChange is the body of a budget change: budget_usd always (an
// amount, 0 or "unlimited"), period when given.
func budgetChange(r *http.Request) (map[string]any, error) {
	b := field(r, "budget")
	if b == "" {
		return nil, &APIError{Status: http.StatusBadRequest, Code: "invalid_request",
			Message: "Give the new budget: an amount in USD, 0, or unlimited."}
	}
	body := map[string]any{"budget_usd": b}
	if p := field(r, "period"); p != "" {
		body["period"] = p
	}
	return body, nil
}

// setProjectBudget serves POST /ui/projects/{name}/budget.
func (h *Handler) setProjectBudget(w http.ResponseWriter, r *http.Request, se *session) {
	var p admin.ProjectView
	h.setBudget(w, r, se, "project", r.PathValue("name"), &p, &p.Budget)
}

// setTokenBudget serves POST /ui/tokens/{id}/budget.
func (h *Handler) setTokenBudget(w http.ResponseWriter, r *http.Request, se *session) {
	var t admin.TokenView
	h.setBudget(w, r, se, "token", r.PathValue("id"), &t, &t.Budget)
}

// setBudget changes the budget of a project or token (kind) by PATCH,
// decoding the answer into out, whose budget is b, and goes back to its
// page.
func (h *Handler) setBudget(w http.ResponseWriter, r *http.Request, se *session, kind, name string, out any, b *admin.BudgetView) {
	body, err := budgetChange(r)
	if err == nil {
		err = h.admin.call(r.Context(), "PATCH", "/admin/v1/"+kind+"s/"+url.PathEscape(name), body, out)
	}
	if err != nil {
		h.fail(w, se, err)
		return
	}
	h.done(w, r, se, "/ui/"+kind+"s/"+url.PathEscape(name), fmt.Sprintf("Budget of %s %s set to %s (%s).", kind, name, usdPtr(b.Limit), b.Period))
}

// confirmData is the confirmation page's content: the action's question,
// the same action to post with confirm=yes and its fields, where cancel
// goes back.
type confirmData struct {
	Question string
	Detail   string
	Action   string
	Button   string
	Fields   []formField
	Cancel   string
}

type formField struct{ Name, Value string }

// confirmed reports whether the post carries confirm=yes; without it the
// answer is the confirmation page and nothing changes.
func (h *Handler) confirmed(w http.ResponseWriter, r *http.Request, se *session, c confirmData, keep ...string) bool {
	if r.PostForm.Get("confirm") == "yes" {
		return true
	}
	c.Action = r.URL.Path
	for _, k := range keep {
		if v := field(r, k); v != "" {
			c.Fields = append(c.Fields, formField{k, v})
		}
	}
	h.render(w, http.StatusOK, "confirm.html", h.newPage(se, "Confirm", "", c))
	return false
}

// killAnswer is the admin API's answer to a kill or resume.
type killAnswer struct {
	Scope  string `json:"scope"`
	Killed bool   `json:"killed"`
	Cut    int    `json:"cut"`
}

// kill turns the kill switch of a project or token (kind, named name) on
// (action kill) or off (resume), and goes back to its page.
func (h *Handler) kill(w http.ResponseWriter, r *http.Request, se *session, action, kind, name, page string) {
	var k killAnswer
	if err := h.admin.call(r.Context(), "POST", "/admin/v1/"+action, map[string]string{kind: name}, &k); err != nil {
		h.fail(w, se, err)
		return
	}
	msg := fmt.Sprintf("The %s %s is resumed.", kind, name)
	if k.Killed {
		msg = fmt.Sprintf("The %s %s is killed; %d requests in flight were cut.", kind, name, k.Cut)
	}
	h.done(w, r, se, page, msg)
}

// projectAction serves POST /ui/projects/{name}/{kill|resume|delete}.
func (h *Handler) projectAction(w http.ResponseWriter, r *http.Request, se *session) {
	name, action := r.PathValue("name"), r.PathValue("action")
	page := "/ui/projects/" + url.PathEscape(name)
	switch action {
	case "kill", "resume":
		c := confirmData{Question: "Kill project " + name + "?", Button: "Kill project", Cancel: page,
			Detail: "Every request of its tokens is refused from now on, and those in flight are cut, until you resume it."}
		if action == "resume" {
			c = confirmData{Question: "Resume project " + name + "?", Button: "Resume project", Cancel: page,
				Detail: "Its tokens may spend again, within their budgets."}
		}
		if !h.confirmed(w, r, se, c) {
			return
		}
		h.kill(w, r, se, action, "project", name, page)
	case "delete":
		c := confirmData{Question: "Delete project " + name + "?", Button: "Delete project", Cancel: page,
			Detail: "A project with tokens is refused unless its tokens are revoked with it."}
		if field(r, "revoke_tokens") == "true" {
			c.Detail = "Its tokens are revoked with it: their secrets stop working now, and requests in flight are cut."
		}
		if !h.confirmed(w, r, se, c, "revoke_tokens") {
			return
		}
		path := "/admin/v1/projects/" + url.PathEscape(name)
		if field(r, "revoke_tokens") == "true" {
			path += "?revoke_tokens=true"
		}
		var d admin.DeleteProjectView
		if err := h.admin.call(r.Context(), "DELETE", path, nil, &d); err != nil {
			h.fail(w, se, err)
			return
		}
		h.done(w, r, se, "/ui/projects", fmt.Sprintf("Project %s deleted; %d tokens revoked.", name, len(d.Revoked)))
	default:
		h.notFound(w, r, se)
	}
}

// tokenAction serves POST /ui/tokens/{id}/{kill|resume|rotate|revoke}.
func (h *Handler) tokenAction(w http.ResponseWriter, r *http.Request, se *session) {
	id, action := r.PathValue("id"), r.PathValue("action")
	page := "/ui/tokens/" + url.PathEscape(id)
	var c confirmData
	switch action {
	case "kill":
		c = confirmData{Question: "Kill token " + id + "?", Button: "Kill token",
			Detail: "Its requests are refused from now on, and those in flight are cut, until you resume it."}
	case "resume":
		c = confirmData{Question: "Resume token " + id + "?", Button: "Resume token", Detail: "It may spend again, within its budgets."}
	case "rotate":
		grace := field(r, "grace")
		if grace == "" {
			grace = admin.DefaultGrace
		}
		c = confirmData{Question: "Rotate token " + id + "?", Button: "Rotate token",
			Detail: "A new secret is made and shown once. The old one keeps working for " + grace + " (0: it stops now)."}
	case "revoke":
		c = confirmData{Question: "Revoke token " + id + "?", Button: "Revoke token",
			Detail: "Its secret stops working for good, and its requests in flight are cut. This cannot be undone."}
	default:
		h.notFound(w, r, se)
		return
	}
	c.Cancel = page
	if !h.confirmed(w, r, se, c, "grace") {
		return
	}
	ctx := r.Context()
	switch action {
	case "kill", "resume":
		h.kill(w, r, se, action, "token", id, page)
	case "revoke":
		if err := h.admin.call(ctx, "DELETE", "/admin/v1/tokens/"+url.PathEscape(id), nil, nil); err != nil {
			h.fail(w, se, err)
			return
		}
		h.done(w, r, se, page, "Token "+id+" revoked.")
	case "rotate":
		var body any // no body: the API's default grace
		if g := field(r, "grace"); g != "" {
			body = map[string]string{"grace": g}
		}
		var t struct {
			admin.TokenView
			Cut int `json:"cut"`
		}
		if err := h.admin.call(ctx, "POST", "/admin/v1/tokens/"+url.PathEscape(id)+"/rotate", body, &t); err != nil {
			h.fail(w, se, err)
			return
		}
		secret := t.Secret
		t.Secret = ""
		h.opts.Log.Info().Str("token", t.ID).Msg("dashboard: token rotated")
		p := h.newPage(se, "Token rotated", "projects", tokenData{Token: t.TokenView, Status: tokenStatus(t.TokenView), Secret: secret})
		p.Flash = fmt.Sprintf("Token %s rotated; %d requests in flight were cut.", t.ID, t.Cut)
		if !t.RotatingUntil.IsZero() {
			p.Flash += " The old secret works until " + when(t.RotatingUntil) + "."
		}
		h.render(w, http.StatusOK, "secret.html", p)
	}
}
