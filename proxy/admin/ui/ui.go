// Package ui is hardcap's web dashboard under /ui/: html/template pages,
// one small hand-written script and one style sheet, all embedded in the
// binary, so the dashboard needs no network at run time and a strict
// Content-Security-Policy holds. It is a client of the admin API in
// process: every page calls the admin handler with the admin token, so the
// dashboard never bypasses the API's checks, audit log or error table.
//
// A browser logs in with the admin token into a session held in memory (a
// restart logs everyone out); the cookie carries only a random session id.
// Every change is a POST carrying the session's CSRF token.
package ui

import (
	"bytes"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/rs/zerolog"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// ContentSecurityPolicy is the policy every answer of the dashboard
// carries: only the dashboard's own script and style, no inline code, no
// framing, forms posting only to the dashboard.
const ContentSecurityPolicy = "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'"

// Options configures the dashboard.
type Options struct {
	// Admin is the admin API handler (admin.New) the dashboard calls.
	Admin http.Handler
	// AdminToken is the admin token: a login presents it, and the
	// dashboard's calls to Admin carry it.
	AdminToken string
	// Now returns the current time; default time.Now.
	Now func() time.Time
	// Log receives logins, refused logins and forged posts.
	Log zerolog.Logger
	// SessionTTL is how long a session lives without a request; default
	// DefaultSessionTTL (12h). A session ends MaxSessionAge after its
	// login whatever its use.
	SessionTTL time.Duration
	// Thresholds are the config's alerts.thresholds, the shares of a
	// budget that colour its bar where the budget has no alert_at of its
	// own; nil means alert.DefaultThresholds.
	Thresholds []budget.Fraction
}

// Handler serves /ui/.
type Handler struct {
	opts     Options
	admin    adminClient
	sessions *sessions
	pages    map[string]*template.Template
	mux      *http.ServeMux
	static   http.Handler
}

var _ http.Handler = (*Handler)(nil)

// New returns the dashboard's handler, to be mounted at /ui/.
func New(opts Options) *Handler {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.SessionTTL <= 0 {
		opts.SessionTTL = DefaultSessionTTL
	}
	if opts.Thresholds == nil {
		opts.Thresholds = defaultThresholds()
	}
	sub, _ := fs.Sub(staticFS, "static")
	h := &Handler{
		opts:     opts,
		admin:    adminClient{h: opts.Admin, token: opts.AdminToken},
		sessions: newSessions(opts.Now, opts.SessionTTL),
		pages:    parsePages(),
		mux:      http.NewServeMux(),
		static:   http.StripPrefix("/ui/static/", http.FileServerFS(sub)),
	}
	h.routes()
	return h
}

func (h *Handler) routes() {
	m := h.mux
	m.HandleFunc("GET /ui/static/", func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/") {
			http.NotFound(w, r) // no directory listing
			return
		}
		h.static.ServeHTTP(w, r)
	})
	m.HandleFunc("GET /ui/login", h.loginPage)
	m.HandleFunc("POST /ui/login", h.login)
	m.HandleFunc("POST /ui/logout", h.withSession(h.logout))
	m.HandleFunc("GET /ui/{$}", h.withSession(h.overviewPage))
	m.HandleFunc("GET /ui/live", h.withSession(h.live))
	m.HandleFunc("GET /ui/projects", h.withSession(h.projectsPage))
	m.HandleFunc("POST /ui/projects", h.withSession(h.createProject))
	m.HandleFunc("GET /ui/projects/{name}", h.withSession(h.projectPage))
	m.HandleFunc("POST /ui/projects/{name}/budget", h.withSession(h.setProjectBudget))
	m.HandleFunc("POST /ui/projects/{name}/tokens", h.withSession(h.createToken))
	m.HandleFunc("POST /ui/projects/{name}/{action}", h.withSession(h.projectAction))
	m.HandleFunc("GET /ui/tokens/{id}", h.withSession(h.tokenPage))
	m.HandleFunc("POST /ui/tokens/{id}/budget", h.withSession(h.setTokenBudget))
	m.HandleFunc("POST /ui/tokens/{id}/{action}", h.withSession(h.tokenAction))
	m.HandleFunc("GET /ui/usage", h.withSession(h.usagePage))
	m.HandleFunc("GET /ui/usage.csv", h.withSession(h.usageCSV))
	m.HandleFunc("GET /ui/usage/{id}", h.withSession(h.recordPage))
	m.HandleFunc("GET /ui/alerts", h.withSession(h.alertsPage))
	m.HandleFunc("GET /ui/audit", h.withSession(h.auditPage))
	m.HandleFunc("/ui/", h.withSession(h.notFound))
}

// ServeHTTP sets the security headers every answer carries, then serves
// the route.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("X-Frame-Options", "DENY")
	if !strings.HasPrefix(r.URL.Path, "/ui/static/") {
		hd.Set("Cache-Control", "no-store")
	}
	r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
	h.mux.ServeHTTP(w, r)
}

// sessionHandler is a route that needs a logged-in session.
type sessionHandler func(w http.ResponseWriter, r *http.Request, se *session)

// withSession lets a request through with a live session: a GET without
// one is sent to the login page, any other method refused 403. A POST must
// carry the session's CSRF token, and its Origin, when sent, must be this
// host: a forged one is refused 403 and changes nothing.
func (h *Handler) withSession(next sessionHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		se, ok := h.sessions.get(r)
		if !ok {
			if r.Method == http.MethodGet || r.Method == http.MethodHead {
				http.Redirect(w, r, "/ui/login", http.StatusSeeOther)
				return
			}
			h.forbidden(w, r, "You are not logged in, or your session has ended. Log in again.")
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			if !sameOrigin(r) {
				h.opts.Log.Warn().Str("client_ip", clientIP(r)).Str("path", r.URL.Path).Msg("dashboard: a post from another origin was refused")
				h.forbidden(w, r, "This change came from another site and was refused; nothing was changed.")
				return
			}
			if err := r.ParseForm(); err != nil || !csrfOK(se, r.PostForm.Get("csrf")) {
				h.opts.Log.Warn().Str("client_ip", clientIP(r)).Str("path", r.URL.Path).Msg("dashboard: a post without the session's csrf token was refused")
				h.forbidden(w, r, "This form is out of date or was not sent by the dashboard (its CSRF token does not match); nothing was changed. Reload the page and try again.")
				return
			}
		}
		next(w, r, se)
	}
}

// sameOrigin reports whether a request's Origin header, when it has one,
// names the host it was sent to.
func sameOrigin(r *http.Request) bool {
	o := r.Header.Get("Origin")
	if o == "" {
		return true
	}
	u, err := url.Parse(o)
	if err != nil || u.Host == "" {
		return false
	}
	return strings.EqualFold(u.Host, r.Host)
}

// page is what every template gets.
type page struct {
	Title    string
	Nav      string
	LoggedIn bool
	CSRF     string
	Flash    string
	Error    string
	Data     any
}

// newPage is a page of a logged-in session, with its flash message taken.
func (h *Handler) newPage(se *session, title, nav string, data any) page {
	return page{Title: title, Nav: nav, LoggedIn: true, CSRF: se.csrf, Flash: h.sessions.takeFlash(se), Data: data}
}

// render writes a page; it is rendered whole first, so a template error
// is a 500 rather than half a page.
func (h *Handler) render(w http.ResponseWriter, status int, name string, p page) {
	var buf bytes.Buffer
	t, ok := h.pages[name]
	if !ok {
		h.opts.Log.Error().Str("page", name).Msg("dashboard: no such page template")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		h.opts.Log.Error().Err(err).Str("page", name).Msg("dashboard: rendering a page failed")
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// forbidden answers 403 with a page saying why.
func (h *Handler) forbidden(w http.ResponseWriter, r *http.Request, msg string) {
	h.render(w, http.StatusForbidden, "error.html", page{Title: "Refused", Error: msg})
}

// fail answers a page whose admin call failed: an admin refusal with its
// status and public message, anything else 502 with a public message only.
func (h *Handler) fail(w http.ResponseWriter, se *session, err error) {
	p := h.newPage(se, "Error", "", nil)
	var ae *APIError
	if errors.As(err, &ae) {
		p.Error = ae.Message
		h.render(w, ae.Status, "error.html", p)
		return
	}
	h.opts.Log.Error().Err(err).Msg("dashboard: admin API call failed")
	p.Error = "The dashboard could not read the admin API's answer; see the server log."
	h.render(w, http.StatusBadGateway, "error.html", p)
}

func (h *Handler) notFound(w http.ResponseWriter, r *http.Request, se *session) {
	p := h.newPage(se, "Not found", "", nil)
	p.Error = "There is no dashboard page here."
	h.render(w, http.StatusNotFound, "error.html", p)
}
