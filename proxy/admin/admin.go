// Package admin is hardcap's control plane: the JSON API under /admin/v1/
// that the CLI talks to, for projects, tokens, usage, the kill switch and
// status. Every route requires the admin token.
package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

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
	// Keys are the provider key sources GET /admin/v1/keys shows and POST
	// /admin/v1/keys/reload re-reads; nil lists the ledger only and
	// refuses a reload.
	Keys *proxy.Keys
}

// Handler serves /admin/v1/.
type Handler struct {
	opts      Options
	tokenHash [sha256.Size]byte
	mux       *http.ServeMux
}

// New returns the admin API handler.
func New(opts Options) *Handler {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	h := &Handler{opts: opts, tokenHash: sha256.Sum256([]byte(opts.AdminToken)), mux: http.NewServeMux()}
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
	h.mux.HandleFunc("POST /admin/v1/kill", h.kill(true))
	h.mux.HandleFunc("POST /admin/v1/resume", h.kill(false))
	h.mux.HandleFunc("GET /admin/v1/status", h.status)
	h.mux.HandleFunc("GET /admin/v1/backup", h.backup)
	// The provider key ledger (keys.go).
	h.mux.HandleFunc("GET /admin/v1/keys", h.listKeys)
	h.mux.HandleFunc("POST /admin/v1/keys/reload", h.reloadKeys)
	return h
}

// ServeHTTP checks the admin token, then serves the route.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !h.authorized(r) {
		writeError(w, http.StatusUnauthorized, "unauthorized", "The admin API needs the admin token as `Authorization: Bearer <token>` (see <data_dir>/admin.token or $HARDCAP_ADMIN_TOKEN).")
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
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
	tokens.Project
	Budget BudgetView `json:"budget"`
}

// TokenView is a token as the API shows it: never its hash, and its secret
// only in the answer to its creation.
type TokenView struct {
	ID      string     `json:"id"`
	Secret  string     `json:"token,omitempty"`
	Name    string     `json:"name,omitempty"`
	Project string     `json:"project"`
	Models  []string   `json:"models,omitempty"`
	Expires time.Time  `json:"expires,omitzero"`
	RPM     int        `json:"rpm,omitempty"`
	Created time.Time  `json:"created"`
	Revoked time.Time  `json:"revoked,omitzero"`
	Killed  bool       `json:"killed"`
	State   string     `json:"state"`
	Budget  BudgetView `json:"budget"`
}

func (h *Handler) tokenView(t tokens.Token) (TokenView, error) {
	bs, err := h.opts.DB.BudgetStatus(budget.TokenScope(t.ID))
	if err != nil {
		return TokenView{}, err
	}
	state := "active"
	if err := t.Usable(h.opts.Now()); err != nil {
		switch {
		case errors.Is(err, tokens.ErrRevoked):
			state = "revoked"
		case errors.Is(err, tokens.ErrExpired):
			state = "expired"
		default:
			state = "killed"
		}
	}
	return TokenView{
		ID: t.ID, Name: t.Name, Project: t.Project, Models: t.Models, Expires: t.Expires, RPM: t.RPM,
		Created: t.Created, Revoked: t.Revoked, Killed: t.Killed, State: state, Budget: budgetView(bs),
	}, nil
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
	p, err := h.opts.DB.CreateProject(r.Context(), req.Name, limit)
	if err != nil {
		h.writeDomainError(w, err)
		return
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
		out = append(out, ProjectView{Project: p, Budget: budgetView(bs)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"projects": out})
}

type createTokenRequest struct {
	Project string   `json:"project"`
	Name    string   `json:"name"`
	Budget  string   `json:"budget_usd"`
	Period  string   `json:"period"`
	Models  []string `json:"models"`
	// Expires is a duration from now such as "720h" or "30d".
	Expires string `json:"expires"`
	RPM     int    `json:"rpm"`
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
	spec := storage.TokenSpec{Project: req.Project, Name: req.Name, Limit: limit, Models: req.Models, RPM: req.RPM}
	if req.RPM < 0 {
		writeError(w, http.StatusBadRequest, "invalid_request", "rpm must not be negative")
		return
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
	ts, err := h.opts.DB.Tokens(r.URL.Query().Get("project"))
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
	if h.opts.Status != nil {
		for k, v := range h.opts.Status() {
			out[k] = v
		}
	}
	writeJSON(w, http.StatusOK, out)
}

func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", "the body must be a JSON object of this route's fields: "+budget.ClipTo(err.Error(), 200))
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
