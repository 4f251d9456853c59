// Package admin is hardcap's control plane: the JSON API under /admin/v1/
// that the CLI talks to, for projects, tokens, usage, the kill switch and
// status. Every route requires the admin token.
package admin

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/alert/webhook"
	"github.com/hardcap/hardcap/audit"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
	"github.com/rs/zerolog"
)

// Options configures the admin API.
type Options struct {
	// DB is the database.
	DB *storage.DB
	// Proxy is the data plane, whose in-flight requests kill cuts.
	Proxy *proxy.Proxy
	// AdminToken is the secret every admin request must present as a
	// Bearer token.
	AdminToken string
	// Status adds server facts (version, listen address, providers) to
	// GET /admin/v1/status.
	Status func() map[string]any
	// Log receives one line per admin change.
	Log zerolog.Logger
	// Now returns the current time; default time.Now.
	Now func() time.Time

	// AuditFacts returns what GET /admin/v1/audit checks outside the
	// database (the server's files, price data dates, providers); nil
	// means none. ProviderKeys, when set, replaces the provider keys the
	// audit checks; nil means those of the key ledger (as GET
	// /admin/v1/keys shows them).
	AuditFacts   func() audit.Input
	ProviderKeys func() []audit.ProviderKey
	// RotateEvery is how often a new token's secret is due for rotation
	// when its creation does not say (config tokens.rotate_every); 0 is
	// tokens.DefaultRotateEvery, a negative value never.
	RotateEvery time.Duration
	// DueSoon is how far ahead token list and show warn of a rotation or an
	// expiry; default 14 days.
	DueSoon time.Duration
	// Keys are the provider key sources GET /admin/v1/keys shows and POST
	// /admin/v1/keys/reload re-reads; nil lists the ledger only and
	// refuses a reload.
	Keys *proxy.Keys
	// Notifier delivers alerts (alert/webhook's Deliverer): GET
	// /admin/v1/status lists its channels and POST /admin/v1/alerts/test
	// sends through it; nil means no channel is configured.
	Notifier Notifier
}

// Notifier is what the admin API needs of alert delivery.
type Notifier interface {
	// Channels lists the channels, without URL or secret.
	Channels() []webhook.ChannelInfo
	// DeliverNow attempts the entry's delivery on each of its channels
	// now and records the outcome.
	DeliverNow(ctx context.Context, e alert.Entry) []webhook.Result
}

// Handler serves /admin/v1/.
type Handler struct {
	opts      Options
	tokenHash [sha256.Size]byte
	// actor names the admin credential in the audit log and a token's
	// created_by: "admin:" and the first 8 hex digits of its SHA-256,
	// stable across restarts and never the token.
	actor string
	mux   *http.ServeMux
	// rotateEvery is Options.RotateEvery, changed by SetRotateEvery.
	rotateEvery atomic.Int64
}

// New returns the admin API handler.
func New(opts Options) *Handler {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.RotateEvery == 0 {
		opts.RotateEvery = tokens.DefaultRotateEvery
	}
	if opts.DueSoon <= 0 {
		opts.DueSoon = 14 * 24 * time.Hour
	}
	h := &Handler{opts: opts, tokenHash: sha256.Sum256([]byte(opts.AdminToken)), mux: http.NewServeMux()}
	h.actor = "admin:" + hex.EncodeToString(h.tokenHash[:4])
	h.SetRotateEvery(opts.RotateEvery)
	h.mux.HandleFunc("POST /admin/v1/projects", h.createProject)
	h.mux.HandleFunc("GET /admin/v1/projects", h.listProjects)
	h.mux.HandleFunc("POST /admin/v1/tokens", h.createToken)
	h.mux.HandleFunc("GET /admin/v1/tokens", h.listTokens)
	h.mux.HandleFunc("DELETE /admin/v1/tokens/{id}", h.revokeToken)
	h.mux.HandleFunc("PATCH /admin/v1/projects/{name}", h.updateProject)
	h.mux.HandleFunc("DELETE /admin/v1/projects/{name}", h.deleteProject)
	h.mux.HandleFunc("PATCH /admin/v1/tokens/{id}", h.updateToken)
	h.mux.HandleFunc("GET /admin/v1/usage", h.usage)
	h.mux.HandleFunc("GET /admin/v1/usage/daily", h.daily)
	h.mux.HandleFunc("GET /admin/v1/overview", h.overview) // the dashboard's overview (overview.go)
	h.mux.HandleFunc("POST /admin/v1/kill", h.kill(true))
	h.mux.HandleFunc("POST /admin/v1/resume", h.kill(false))
	h.mux.HandleFunc("GET /admin/v1/status", h.status)
	h.mux.HandleFunc("GET /admin/v1/backup", h.backup)
	h.mux.HandleFunc("GET /admin/v1/incident", h.incident)
	h.mux.HandleFunc("GET /admin/v1/audit", h.auditGet)
	h.mux.HandleFunc("POST /admin/v1/audit/acks", h.auditAck)
	// The key ledger: one token in full, rotation, the admin audit log.
	h.mux.HandleFunc("GET /admin/v1/tokens/{id}", h.showToken)
	h.mux.HandleFunc("POST /admin/v1/tokens/{id}/rotate", h.rotateToken)
	h.mux.HandleFunc("GET /admin/v1/log", h.auditLog)
	h.mux.HandleFunc("POST /admin/v1/tokens/lookup", h.lookupTokens) // hardcap scan (lookup.go)
	// The provider key ledger (keys.go).
	h.mux.HandleFunc("GET /admin/v1/keys", h.listKeys)
	h.mux.HandleFunc("POST /admin/v1/keys/reload", h.reloadKeys)
	// Alerts (alerts.go).
	h.mux.HandleFunc("GET /admin/v1/alerts", h.listAlerts)
	h.mux.HandleFunc("POST /admin/v1/alerts/test", h.testAlert)
	return h
}

// ServeHTTP checks the admin token, then serves the route.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(r) {
		writeError(w, http.StatusUnauthorized, "unauthorized", "The admin API needs the admin token as `Authorization: Bearer <token>` (see <data_dir>/admin.token or $HARDCAP_ADMIN_TOKEN).")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	// Every change made through this request is written to the audit log
	// under the credential that made it.
	r = r.WithContext(storage.WithActor(r.Context(), h.actor))
	h.mux.ServeHTTP(w, r)
}

// authorized compares hashes of the presented and the real admin token in
// constant time, so neither the token's content nor its length leaks
// through timing.
func (h *Handler) authorized(r *http.Request) bool {
	scheme, got, ok := strings.Cut(r.Header.Get("Authorization"), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || h.opts.AdminToken == "" {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	return subtle.ConstantTimeCompare(sum[:], h.tokenHash[:]) == 1
}

// BudgetView is a budget's limit and current spend as the API shows it.
type BudgetView struct {
	// Limit is the ceiling in USD; null when the budget is unlimited.
	Limit    *budget.Money `json:"limit_usd"`
	Period   budget.Period `json:"period"`
	Window   string        `json:"window"`
	Spent    budget.Money  `json:"spent_usd"`
	Reserved budget.Money  `json:"reserved_usd"`
}

func budgetView(bs storage.BudgetStatus) BudgetView {
	p := bs.Limit.Period
	if p == "" {
		p = budget.Total
	}
	v := BudgetView{Period: p, Window: bs.Window, Spent: bs.Committed, Reserved: bs.Reserved}
	if c, ok := bs.Limit.Ceiling(); ok {
		v.Limit = &c
	}
	return v
}

// ProjectView is a project as the API shows it.
type ProjectView struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Killed is the project's kill switch.
	Killed bool `json:"killed"`
	// AlertAt are the shares of the project's budget that fire a
	// budget.threshold alert ("0.5"), ascending; [] means the config's
	// alerts.thresholds.
	AlertAt []string   `json:"alert_at"`
	Budget  BudgetView `json:"budget"`
}

func projectView(p tokens.Project, bs storage.BudgetStatus) ProjectView {
	return ProjectView{Name: p.Name, Created: p.Created, Killed: p.Killed, AlertAt: alertAtView(p.AlertAt), Budget: budgetView(bs)}
}

// TokenView is a token as the API shows it, its ledger entry (SPEC §6):
// never its hash or its previous hash, and its secret only in the answer to
// its creation or rotation. Lists are [] when empty (every model, route or
// address); zero limits are omitted (no limit).
type TokenView struct {
	ID      string    `json:"id"`
	Secret  string    `json:"token,omitempty"`
	Name    string    `json:"name,omitempty"`
	Project string    `json:"project"`
	Owner   string    `json:"owner"`
	Purpose string    `json:"purpose"`
	Created time.Time `json:"created"`
	// CreatedBy is the admin credential that created the token
	// ("admin:" and 8 hex digits of its hash) or "system".
	CreatedBy string `json:"created_by,omitempty"`
	// LastUsed is the token's last reserved request; absent before the
	// first. Requests counts them.
	LastUsed *tokens.Use `json:"last_used,omitempty"`
	Requests int64       `json:"requests"`
	// RotateEvery is the rotation period ("90d", "never"); RotateBy when
	// the secret is next due; Rotated when it last was.
	RotateEvery string    `json:"rotate_every"`
	RotateBy    time.Time `json:"rotate_by,omitzero"`
	Rotated     time.Time `json:"rotated,omitzero"`
	// RotatingUntil is when the previous secret stops working, while it is
	// in its grace.
	RotatingUntil time.Time `json:"rotating_until,omitzero"`
	Expires       time.Time `json:"expires,omitzero"`
	Models        []string  `json:"models"`
	Routes        []string  `json:"routes"`
	IPs           []string  `json:"ips"`
	RPM           int       `json:"rpm,omitempty"`
	MaxConcurrent int       `json:"max_concurrent,omitempty"`
	// MaxRequest is the most one request's worst case may cost, in USD.
	MaxRequest *budget.Money `json:"max_request_usd,omitempty"`
	Revoked    time.Time     `json:"revoked,omitzero"`
	Killed     bool          `json:"killed"`
	State      string        `json:"state"`
	// Due says what is due: "rotation overdue", "rotation due", "expires
	// soon", "expired"; absent when nothing is.
	Due string `json:"due,omitempty"`
	// AlertAt are the shares of the token's budget that fire a
	// budget.threshold alert ("0.5"), ascending; [] means the config's
	// alerts.thresholds.
	AlertAt []string   `json:"alert_at"`
	Budget  BudgetView `json:"budget"`
	// ClientIPs lists the distinct client addresses the token was used
	// from, most recent first (token show only).
	ClientIPs []tokens.ClientIP `json:"client_ips,omitempty"`
	// Refusals are the token's requests refused before any money was
	// reserved, by code and by client address (token show only).
	Refusals *storage.TokenRefusals `json:"refusals,omitempty"`
}

// FormatEvery shows a rotation period: whole days as "90d", 0 as "never".
func FormatEvery(d time.Duration) string {
	switch {
	case d <= 0:
		return NeverExpires
	case d%(24*time.Hour) == 0:
		return strconv.FormatInt(int64(d/(24*time.Hour)), 10) + "d"
	}
	return d.String()
}

func (h *Handler) tokenView(t tokens.Token) (TokenView, error) {
	bs, err := h.opts.DB.BudgetStatus(budget.TokenScope(t.ID))
	if err != nil {
		return TokenView{}, err
	}
	now := h.opts.Now()
	state := tokenState(t, now)
	v := TokenView{
		ID: t.ID, Name: t.Name, Project: t.Project, Owner: t.Owner, Purpose: t.Purpose,
		Created: t.Created, CreatedBy: t.CreatedBy, Requests: t.Requests,
		RotateEvery: FormatEvery(t.RotateEvery), RotateBy: t.RotateBy, Rotated: t.Rotated,
		Expires: t.Expires, Models: orEmpty(t.Models), Routes: orEmpty(t.Routes), IPs: orEmpty(t.IPs),
		RPM: t.RPM, MaxConcurrent: t.MaxConcurrent,
		Revoked: t.Revoked, Killed: t.Killed, State: state, Due: t.Due(now, h.opts.DueSoon), AlertAt: alertAtView(t.AlertAt),
		Budget: budgetView(bs),
	}
	if !t.LastUsed.Time.IsZero() {
		u := t.LastUsed
		v.LastUsed = &u
	}
	if now.Before(t.RotatingUntil) && t.Revoked.IsZero() {
		// A revoked token has no secret in grace, old or new.
		v.RotatingUntil = t.RotatingUntil
	}
	if t.MaxRequest > 0 {
		m := budget.Money(t.MaxRequest)
		v.MaxRequest = &m
	}
	return v, nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// limitFrom parses an optional budget in USD and period: "" or
// "unlimited" is no limit, "0" a ceiling of zero.
func limitFrom(usd, period string) (budget.Limit, error) {
	return budget.ParseLimit(usd, period)
}

type createProjectRequest struct {
	Name   string `json:"name"`
	Budget string `json:"budget_usd"`
	Period string `json:"period"`
	// AlertAt are the shares of the budget that fire a threshold alert
	// ("0.5", "0.9"); absent or [] uses the config's.
	AlertAt []string `json:"alert_at"`
}

func (h *Handler) createProject(w http.ResponseWriter, r *http.Request) {
	var req createProjectRequest
	if !decode(w, r, &req) {
		return
	}
	limit, err := limitFrom(req.Budget, req.Period)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	// The thresholds are checked before the project is created, so a
	// mistake in them leaves nothing behind.
	alertAt, err := alertAtFrom(req.AlertAt)
	if err != nil {
		writeBadAlertAt(w, err)
		return
	}
	p, err := h.opts.DB.CreateProject(r.Context(), req.Name, limit)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	if len(alertAt) > 0 {
		if p, _, err = h.opts.DB.UpdateProject(r.Context(), p.Name, storage.LimitChange{AlertAt: &alertAt}); err != nil {
			h.writeDomainError(w, err)
			return
		}
	}
	h.opts.Log.Info().Str("project", p.Name).Str("limit_usd", describeLimit(limit)).Str("period", string(limit.Period)).Msg("project created")
	h.writeProject(w, http.StatusCreated, p)
}

func (h *Handler) listProjects(w http.ResponseWriter, r *http.Request) {
	if !h.flushed(w, r) {
		return
	}
	ps, err := h.opts.DB.Projects()
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	out := make([]ProjectView, 0, len(ps))
	for _, p := range ps {
		bs, err := h.opts.DB.BudgetStatus(budget.ProjectScope(p.Name))
		if err != nil {
			h.writeDomainError(w, err)
			return
		}
		out = append(out, projectView(p, bs))
	}
	writeJSON(w, http.StatusOK, map[string]any{"projects": out})
}

type createTokenRequest struct {
	Project string   `json:"project"`
	Name    string   `json:"name"`
	Owner   string   `json:"owner"`
	Purpose string   `json:"purpose"`
	Budget  string   `json:"budget_usd"`
	Period  string   `json:"period"`
	Models  []string `json:"models"`
	Routes  []string `json:"routes"`
	IPs     []string `json:"ips"`
	// Expires is a duration from now such as "720h" or "30d".
	Expires string `json:"expires"`
	RPM     int    `json:"rpm"`
	// MaxConcurrent is the most requests in flight; 0 is no limit.
	MaxConcurrent int `json:"max_concurrent"`
	// MaxRequest is the most one request's worst case may cost, in USD
	// (a decimal string, > 0); "" is no limit.
	MaxRequest string `json:"max_request_usd"`
	// RotateEvery is the rotation period ("90d", "never"); "" is the
	// server's default (tokens.rotate_every).
	RotateEvery string `json:"rotate_every"`
	// AlertAt are the shares of the budget that fire a threshold alert
	// ("0.5", "0.9"); absent or [] uses the config's.
	AlertAt []string `json:"alert_at"`
}

func (h *Handler) createToken(w http.ResponseWriter, r *http.Request) {
	var req createTokenRequest
	if !decode(w, r, &req) {
		return
	}
	limit, err := limitFrom(req.Budget, req.Period)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if err := tokens.CheckModels(req.Models); err != nil {
		h.writeDomainError(w, err)
		return
	}
	spec := storage.TokenSpec{Project: req.Project, Name: req.Name, Owner: req.Owner, Purpose: req.Purpose, Limit: limit,
		Models: req.Models, Routes: req.Routes, IPs: req.IPs, RPM: req.RPM, MaxConcurrent: req.MaxConcurrent}
	if req.RPM < 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", "rpm must not be negative")
		return
	}
	if spec.MaxRequest, err = maxRequestFrom(req.MaxRequest); err != nil {
		h.writeDomainError(w, err)
		return
	}
	if spec.AlertAt, err = alertAtFrom(req.AlertAt); err != nil {
		writeBadAlertAt(w, err)
		return
	}
	spec.RotateEvery = max(time.Duration(h.rotateEvery.Load()), 0)
	if req.RotateEvery != "" {
		if spec.RotateEvery, err = rotateEveryFrom(req.RotateEvery); err != nil {
			h.writeDomainError(w, err)
			return
		}
	}
	if req.Expires != "" {
		if spec.Expires, err = h.expiry(req.Expires); err != nil {
			h.writeDomainError(w, err)
			return
		}
	}
	tok, secret, err := h.opts.DB.CreateToken(r.Context(), spec)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	view, err := h.tokenView(tok)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	view.Secret = secret
	h.opts.Log.Info().Str("token", tok.ID).Str("project", tok.Project).Msg("token created")
	writeJSON(w, http.StatusCreated, view)
}

func (h *Handler) listTokens(w http.ResponseWriter, r *http.Request) {
	if !h.flushed(w, r) {
		return
	}
	project := r.URL.Query().Get("project")
	ts, err := h.opts.DB.Tokens(project)
	if err == nil && len(ts) == 0 {
		// An unknown project is a mistake to say, not an empty list; a
		// deleted project's tokens stay listed.
		err = h.targetExists("", project)
	}
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	out := make([]TokenView, 0, len(ts))
	for _, t := range ts {
		v, err := h.tokenView(t)
		if err != nil {
			h.writeDomainError(w, err)
			return
		}
		out = append(out, v)
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

func (h *Handler) revokeToken(w http.ResponseWriter, r *http.Request) {
	tok, err := h.opts.DB.RevokeToken(r.Context(), r.PathValue("id"))
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	cut := h.opts.Proxy.Cut(proxy.CutTarget{TokenID: tok.ID})
	h.opts.Log.Info().Str("token", tok.ID).Int("cut", cut).Msg("token revoked")
	v, err := h.tokenView(tok)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, v)
}

type killRequest struct {
	Project string `json:"project"`
	Token   string `json:"token"`
}

func (h *Handler) kill(on bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req killRequest
		if r.ContentLength != 0 && !decode(w, r, &req) {
			return
		}
		if req.Project != "" && req.Token != "" {
			writeError(w, http.StatusBadRequest, "invalid_request", "name one project or one token, not both")
			return
		}
		if err := h.opts.DB.SetKill(r.Context(), storage.KillTarget{Project: req.Project, Token: req.Token}, on); err != nil {
			h.writeDomainError(w, err)
			return
		}
		scope := "everything"
		switch {
		case req.Project != "":
			scope = "project " + req.Project
		case req.Token != "":
			scope = "token " + req.Token
		}
		out := map[string]any{"scope": scope, "killed": on}
		if on {
			// The switch is committed first: a request that reserves after
			// this point is refused, one that reserved before is cut here.
			out["cut"] = h.opts.Proxy.Cut(proxy.CutTarget{Project: req.Project, TokenID: req.Token})
		}
		h.opts.Log.Warn().Str("scope", scope).Bool("killed", on).Msg("kill switch")
		writeJSON(w, http.StatusOK, out)
	}
}

func (h *Handler) status(w http.ResponseWriter, r *http.Request) {
	if !h.flushed(w, r) {
		return
	}
	st, err := h.opts.DB.Status()
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	// Settlements the ledger failed to write wait in memory, their
	// reservations held, until a retry lands them.
	waiting, held := h.opts.Proxy.SettlementsWaiting()
	out := map[string]any{
		"kill_all":                st.KillAll,
		"global":                  budgetView(st.Global),
		"open_reservations":       st.OpenReservations,
		"in_flight":               h.opts.Proxy.InFlight(),
		"overshoots":              st.Overshoots,
		"overshoot_usd":           st.OvershootUSD,
		"settlements_waiting":     waiting,
		"settlements_waiting_usd": held,
		"writer":                  writerView(h.opts.DB.WriterStats()),
	}
	if out["alerts"], err = h.alertsStatus(); err != nil {
		h.writeDomainError(w, err)
		return
	}
	if h.opts.Status != nil {
		for k, v := range h.opts.Status() {
			out[k] = v
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body, err := io.ReadAll(r.Body) // bounded by ServeHTTP's MaxBytesReader
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "the body could not be read: "+budget.ClipTo(err.Error(), 200))
		return false
	}
	// {"grace":"0","grace":"48h"} must not quietly mean 48h, nor a second
	// value after the object go unread.
	if len(bytes.TrimSpace(body)) > 0 && !json.Valid(body) {
		writeError(w, http.StatusBadRequest, "invalid_request", "the body must be one JSON object of this route's fields, with nothing after it")
		return false
	}
	if err := proxy.CheckDuplicateKeys(body); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "the body must be one JSON object that names each field once: "+budget.ClipTo(err.Error(), 200))
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "the body must be a JSON object of this route's fields: "+budget.ClipTo(err.Error(), 200))
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "invalid_request", "the body must be one JSON object, with nothing after it")
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// flushed waits for the writes queued before the request (settlements of
// responses already sent commit in the writer's next group commit), so
// that a read right after a request sees it; it answers the error and
// returns false when the database refuses.
func (h *Handler) flushed(w http.ResponseWriter, r *http.Request) bool {
	if err := h.opts.DB.Flush(r.Context()); err != nil {
		h.writeDomainError(w, err)
		return false
	}
	return true
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": msg}})
}

// writeDomainError answers err by the one error table (proxy.ErrorCodes),
// which the data plane uses too. A refusal (4xx) carries the error's text:
// it is written for the operator and echoes input only clipped. Anything
// else is a failure of the ledger (a write that could not commit, a full
// disk, a damaged or closed database): it is logged at error level with its
// cause and answered 503 ledger_unavailable with a public message only.
func (h *Handler) writeDomainError(w http.ResponseWriter, err error) {
	c, ok := proxy.Classify(err)
	if ok && c.Status < 500 {
		writeError(w, c.Status, c.Code, err.Error())
		return
	}
	if !ok {
		c = proxy.ErrorCode{Status: http.StatusServiceUnavailable, Code: "ledger_unavailable"}
	}
	h.opts.Log.Error().Err(err).Int("status", c.Status).Str("code", c.Code).Msg("admin request failed")
	writeError(w, c.Status, c.Code, "hardcap could not read or write its database, so nothing was changed; see the server log for the cause, and retry once it is fixed.")
}

// WriterView is the ledger writer's figures in the status answer: commits,
// the operations they carried, and commit latencies in microseconds
// (quantiles are bucket upper bounds, see storage.CommitLatencyBounds).
type WriterView struct {
	Commits      uint64 `json:"commits"`
	Ops          uint64 `json:"ops"`
	CommitMeanUS int64  `json:"commit_mean_us"`
	CommitP50US  int64  `json:"commit_p50_us"`
	CommitP99US  int64  `json:"commit_p99_us"`
	CommitMaxUS  int64  `json:"commit_max_us"`
	// BatchSize counts commits by operations carried, keyed by the
	// bucket's upper bound ("1", "2", "4", ... "1024", "more").
	BatchSize map[string]uint64 `json:"batch_size"`
}

func writerView(s storage.WriterStats) WriterView {
	v := WriterView{
		Commits:     s.Commits,
		Ops:         s.Ops,
		CommitP50US: s.Quantile(0.5).Microseconds(),
		CommitP99US: s.Quantile(0.99).Microseconds(),
		CommitMaxUS: s.CommitMax.Microseconds(),
		BatchSize:   map[string]uint64{},
	}
	if s.Commits > 0 {
		v.CommitMeanUS = (s.CommitTime / time.Duration(s.Commits)).Microseconds()
	}
	for i, n := range s.BatchSize {
		if n == 0 {
			continue
		}
		k := "more"
		if i < len(storage.BatchSizeBounds) {
			k = strconv.FormatUint(storage.BatchSizeBounds[i], 10)
		}
		v.BatchSize[k] = n
	}
	return v
}
