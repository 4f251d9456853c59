package ui

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"slices"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/audit"
	"github.com/hardcap/hardcap/proxy/admin"
)

// loginPage serves GET /ui/login; a logged-in browser goes to the
// overview.
func (h *Handler) loginPage(w http.ResponseWriter, r *http.Request) {
	if _, ok := h.sessions.get(r); ok {
		http.Redirect(w, r, "/ui/", http.StatusSeeOther)
		return
	}
	h.render(w, http.StatusOK, "login.html", page{Title: "Log in"})
}

// login serves POST /ui/login: the admin token, compared in constant time,
// starts a session. Attempts are limited per client address.
func (h *Handler) login(w http.ResponseWriter, r *http.Request) {
	if !sameOrigin(r) {
		h.forbidden(w, r, "This login came from another site and was refused.")
		return
	}
	if !h.sessions.allowLogin(r) {
		h.opts.Log.Warn().Str("client_ip", clientIP(r)).Msg("dashboard: too many login attempts")
		h.render(w, http.StatusTooManyRequests, "login.html", page{Title: "Log in",
			Error: "Too many login attempts from your address; wait a minute and try again."})
		return
	}
	if err := r.ParseForm(); err != nil || !tokenMatches(r.PostForm.Get("token"), h.opts.AdminToken) {
		h.opts.Log.Warn().Str("client_ip", clientIP(r)).Msg("dashboard: a login with a wrong admin token was refused")
		h.render(w, http.StatusUnauthorized, "login.html", page{Title: "Log in",
			Error: "That is not the admin token. It is in <data_dir>/admin.token, or $HARDCAP_ADMIN_TOKEN."})
		return
	}
	se := h.sessions.create()
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: se.id, Path: "/ui/", HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode,
	})
	h.opts.Log.Info().Str("client_ip", clientIP(r)).Msg("dashboard: logged in")
	http.Redirect(w, r, "/ui/", http.StatusSeeOther)
}

// logout serves POST /ui/logout: the session is deleted.
func (h *Handler) logout(w http.ResponseWriter, r *http.Request, se *session) {
	h.sessions.delete(se)
	http.SetCookie(w, &http.Cookie{Name: CookieName, Value: "", Path: "/ui/", MaxAge: -1, HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
}

// overviewData is the overview page's and the live answer's content.
type overviewData struct {
	Bars             []barView
	Global           admin.BudgetView
	GlobalLimit      string
	KillAll          bool
	OpenReservations int
	InFlight         int
	Chart            chartView
	Alerts           []alertRow
	Updated          string
}

// alertRow is an alert as the pages list it.
type alertRow struct {
	ID, Time, Type, Scope, Message, Action, Delivery string
	Href                                             string
}

func newAlertRow(e alert.Entry) alertRow {
	a := e.Alert
	row := alertRow{ID: a.ID, Time: when(a.Time), Type: string(a.Type), Message: a.Message, Action: string(a.Action)}
	switch {
	case a.Scope.TokenID != "":
		row.Scope, row.Href = "token "+a.Scope.TokenID, "/ui/tokens/"+a.Scope.TokenID
	case a.Scope.Project != "":
		row.Scope, row.Href = "project "+a.Scope.Project, "/ui/projects/"+a.Scope.Project
	case a.Scope.Provider != "":
		row.Scope = "provider " + a.Scope.Provider
	default:
		row.Scope = a.Scope.Kind
	}
	if len(e.Deliveries) == 0 {
		row.Delivery = "not sent (no channel yet)"
	}
	for i, d := range e.Deliveries {
		if i > 0 {
			row.Delivery += ", "
		}
		row.Delivery += d.Channel + ": " + string(d.State)
	}
	return row
}

// overviewData gathers the overview from the admin API.
func (h *Handler) overviewData(r *http.Request) (overviewData, error) {
	var ov admin.OverviewView
	if err := h.admin.call(r.Context(), "GET", "/admin/v1/overview?hours=24", nil, &ov); err != nil {
		return overviewData{}, err
	}
	var al admin.AlertsView
	if err := h.admin.call(r.Context(), "GET", "/admin/v1/alerts?limit=10", nil, &al); err != nil {
		return overviewData{}, err
	}
	d := overviewData{Global: ov.Global, GlobalLimit: usdPtr(ov.Global.Limit), KillAll: ov.KillAll, OpenReservations: ov.OpenReservations,
		InFlight: ov.InFlight, Chart: newChart(ov.Hours), Updated: when(ov.Time)}
	for _, b := range ov.Budgets {
		d.Bars = append(d.Bars, h.newBar(b))
	}
	for _, e := range al.Alerts {
		d.Alerts = append(d.Alerts, newAlertRow(e))
	}
	return d, nil
}

// overviewPage serves GET /ui/.
func (h *Handler) overviewPage(w http.ResponseWriter, r *http.Request, se *session) {
	d, err := h.overviewData(r)
	if err != nil {
		h.fail(w, se, err)
		return
	}
	h.render(w, http.StatusOK, "overview.html", h.newPage(se, "Overview", "overview", d))
}

// LiveView is the answer of GET /ui/live, which the overview's script
// polls: the budgets, the chart and the recent alerts as HTML fragments
// rendered by the same templates as the page, and the counts.
type LiveView struct {
	Time             string `json:"time"`
	Budgets          string `json:"budgets_html"`
	Chart            string `json:"chart_html"`
	Alerts           string `json:"alerts_html"`
	OpenReservations int    `json:"open_reservations"`
	InFlight         int    `json:"in_flight"`
	KillAll          bool   `json:"kill_all"`
}

// live serves GET /ui/live.
func (h *Handler) live(w http.ResponseWriter, r *http.Request, se *session) {
	d, err := h.overviewData(r)
	if err != nil {
		var ae *APIError
		status := http.StatusBadGateway
		if asAPIError(err, &ae) {
			status = ae.Status
		}
		http.Error(w, "the overview could not be read", status)
		return
	}
	t := h.pages["overview.html"]
	frag := func(name string) (string, error) {
		var b bytes.Buffer
		err := t.ExecuteTemplate(&b, name, d)
		return b.String(), err
	}
	out := LiveView{Time: d.Updated, OpenReservations: d.OpenReservations, InFlight: d.InFlight, KillAll: d.KillAll}
	for _, f := range []struct {
		name string
		to   *string
	}{{"budgets", &out.Budgets}, {"chart", &out.Chart}, {"alerts", &out.Alerts}} {
		if *f.to, err = frag(f.name); err != nil {
			h.opts.Log.Error().Err(err).Msg("dashboard: rendering the live overview failed")
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

// projectsPage serves GET /ui/projects.
func (h *Handler) projectsPage(w http.ResponseWriter, r *http.Request, se *session) {
	var ps struct {
		Projects []admin.ProjectView `json:"projects"`
	}
	if err := h.admin.call(r.Context(), "GET", "/admin/v1/projects", nil, &ps); err != nil {
		h.fail(w, se, err)
		return
	}
	var ts struct {
		Tokens []admin.TokenView `json:"tokens"`
	}
	if err := h.admin.call(r.Context(), "GET", "/admin/v1/tokens", nil, &ts); err != nil {
		h.fail(w, se, err)
		return
	}
	count := map[string]int{}
	for _, t := range ts.Tokens {
		if t.Revoked.IsZero() {
			count[t.Project]++
		}
	}
	type row struct {
		admin.ProjectView
		Tokens int
	}
	rows := make([]row, 0, len(ps.Projects))
	for _, p := range ps.Projects {
		rows = append(rows, row{p, count[p.Name]})
	}
	h.render(w, http.StatusOK, "projects.html", h.newPage(se, "Projects", "projects", rows))
}

// project reads one project from the admin API's list.
func (h *Handler) project(r *http.Request, name string) (admin.ProjectView, error) {
	var ps struct {
		Projects []admin.ProjectView `json:"projects"`
	}
	if err := h.admin.call(r.Context(), "GET", "/admin/v1/projects", nil, &ps); err != nil {
		return admin.ProjectView{}, err
	}
	i := slices.IndexFunc(ps.Projects, func(p admin.ProjectView) bool { return p.Name == name })
	if i < 0 {
		return admin.ProjectView{}, &APIError{Status: http.StatusNotFound, Code: "not_found", Message: "There is no project named " + clip(name) + "."}
	}
	return ps.Projects[i], nil
}

// projectPage serves GET /ui/projects/{name}.
func (h *Handler) projectPage(w http.ResponseWriter, r *http.Request, se *session) {
	p, err := h.project(r, r.PathValue("name"))
	if err != nil {
		h.fail(w, se, err)
		return
	}
	var ts struct {
		Tokens []admin.TokenView `json:"tokens"`
	}
	if err := h.admin.call(r.Context(), "GET", "/admin/v1/tokens?project="+url.QueryEscape(p.Name), nil, &ts); err != nil {
		h.fail(w, se, err)
		return
	}
	data := struct {
		Project admin.ProjectView
		Tokens  []admin.TokenView
	}{p, ts.Tokens}
	h.render(w, http.StatusOK, "project.html", h.newPage(se, "Project "+p.Name, "projects", data))
}

// tokenPage serves GET /ui/tokens/{id}.
func (h *Handler) tokenPage(w http.ResponseWriter, r *http.Request, se *session) {
	var t admin.TokenView
	if err := h.admin.call(r.Context(), "GET", "/admin/v1/tokens/"+url.PathEscape(r.PathValue("id")), nil, &t); err != nil {
		h.fail(w, se, err)
		return
	}
	t.Secret = "" // a show never carries it; a page never shows it twice
	h.render(w, http.StatusOK, "token.html", h.newPage(se, "Token "+t.ID, "projects", tokenData{Token: t, Status: tokenStatus(t)}))
}

// tokenData is the token page's content.
type tokenData struct {
	Token  admin.TokenView
	Status string
	// Secret is the new secret, on the answer to a creation or rotation
	// only.
	Secret string
}

// tokenStatus is the word the token page shows: revoked, killed, expired
// or active.
func tokenStatus(t admin.TokenView) string {
	switch {
	case !t.Revoked.IsZero():
		return "revoked"
	case t.Killed:
		return "killed"
	case t.State != "" && t.State != "active":
		return t.State
	}
	return "active"
}

// alertsPage serves GET /ui/alerts[?type=T].
func (h *Handler) alertsPage(w http.ResponseWriter, r *http.Request, se *session) {
	q := url.Values{"limit": {"100"}}
	typ := r.URL.Query().Get("type")
	if typ != "" {
		q.Set("type", typ)
	}
	var al admin.AlertsView
	if err := h.admin.call(r.Context(), "GET", "/admin/v1/alerts?"+q.Encode(), nil, &al); err != nil {
		h.fail(w, se, err)
		return
	}
	rows := make([]alertRow, 0, len(al.Alerts))
	for _, e := range al.Alerts {
		rows = append(rows, newAlertRow(e))
	}
	types := make([]string, len(alert.Types))
	for i, t := range alert.Types {
		types[i] = string(t)
	}
	data := struct {
		Rows  []alertRow
		Type  string
		Types []string
	}{rows, typ, types}
	h.render(w, http.StatusOK, "alerts.html", h.newPage(se, "Alerts", "alerts", data))
}

// auditPage serves GET /ui/audit.
func (h *Handler) auditPage(w http.ResponseWriter, r *http.Request, se *session) {
	var rep audit.Report
	if err := h.admin.call(r.Context(), "GET", "/admin/v1/audit", nil, &rep); err != nil {
		h.fail(w, se, err)
		return
	}
	h.render(w, http.StatusOK, "audit.html", h.newPage(se, "Audit", "audit", rep))
}
