package admin

import (
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
)

// NeverExpires is the expires value of PATCH /admin/v1/tokens/{id} that
// removes a token's expiry.
const NeverExpires = "never"

// describeLimit is a limit's amount for a log line.
func describeLimit(l budget.Limit) string {
	if c, ok := l.Ceiling(); ok {
		return c.String()
	}
	return budget.UnlimitedWord
}

// writeProject answers with a project and its budget.
func (h *Handler) writeProject(w http.ResponseWriter, status int, p tokens.Project) {
	bs, err := h.opts.DB.BudgetStatus(budget.ProjectScope(p.Name))
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	writeJSON(w, status, projectView(p, bs))
}

// expiry turns a lifetime from now into an expiry time; NeverExpires is the
// zero time.
func (h *Handler) expiry(s string) (time.Time, error) {
	if s == NeverExpires {
		return time.Time{}, nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%w: expires %v", tokens.ErrInvalidExpiry, err)
	}
	if d <= 0 {
		return time.Time{}, fmt.Errorf("%w: expires must be a positive duration such as 720h or 30d", tokens.ErrInvalidExpiry)
	}
	return h.opts.Now().Add(d).UTC(), nil
}

// limitChangeFrom reads the optional budget fields of a PATCH body.
func limitChangeFrom(usd, period *string) (storage.LimitChange, error) {
	var c storage.LimitChange
	// An edit says what it wants: an empty value (an unset shell variable)
	// must not quietly remove a limit or reset a period to total.
	if usd != nil && strings.TrimSpace(*usd) == "" {
		return c, fmt.Errorf("%w: budget_usd is empty; give an amount in USD, 0, or %q", budget.ErrInvalidAmount, budget.UnlimitedWord)
	}
	if period != nil && strings.TrimSpace(*period) == "" {
		return c, fmt.Errorf("%w: period is empty; give day, week, month or total", budget.ErrInvalidPeriod)
	}
	if usd != nil {
		l, err := budget.ParseLimit(*usd, "")
		if err != nil {
			return c, err
		}
		c.Amount = &l
	}
	if period != nil {
		p, err := budget.ParsePeriod(*period)
		if err != nil {
			return c, err
		}
		c.Period = p
	}
	return c, nil
}

// updateProjectRequest is the body of PATCH /admin/v1/projects/{name}.
// Absent fields keep their value; budget_usd "unlimited" removes the limit
// and "0" is a limit of zero.
type updateProjectRequest struct {
	Budget *string `json:"budget_usd"`
	Period *string `json:"period"`
	// AlertAt replaces the project's alert thresholds; [] goes back to
	// the config's.
	AlertAt *[]string `json:"alert_at"`
}

func (h *Handler) updateProject(w http.ResponseWriter, r *http.Request) {
	var req updateProjectRequest
	if !decode(w, r, &req) {
		return
	}
	change, err := limitChangeFrom(req.Budget, req.Period)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	if change.AlertAt, err = alertAtChange(req.AlertAt); err != nil {
		writeBadAlertAt(w, err)
		return
	}
	p, l, err := h.opts.DB.UpdateProject(r.Context(), r.PathValue("name"), change)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	h.opts.Log.Info().Str("project", p.Name).Str("limit_usd", describeLimit(l)).Str("period", string(l.Period)).Msg("project budget changed")
	h.writeProject(w, http.StatusOK, p)
}

// DeleteProjectView is the answer of DELETE /admin/v1/projects/{name}.
type DeleteProjectView struct {
	Project string `json:"project"`
	Deleted bool   `json:"deleted"`
	// Revoked lists the ids of the tokens the deletion revoked.
	Revoked []string `json:"revoked"`
	// Cut counts the in-flight requests of those tokens that were cut.
	Cut int `json:"cut"`
}

// deleteProject serves DELETE /admin/v1/projects/{name}[?revoke_tokens=true].
func (h *Handler) deleteProject(w http.ResponseWriter, r *http.Request) {
	revoke := false
	if s := r.URL.Query().Get("revoke_tokens"); s != "" {
		var err error
		if revoke, err = strconv.ParseBool(s); err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "revoke_tokens must be true or false")
			return
		}
	}
	name := r.PathValue("name")
	revoked, err := h.opts.DB.DeleteProject(r.Context(), name, revoke)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	cut := 0
	if len(revoked) > 0 {
		cut = h.opts.Proxy.Cut(proxy.CutTarget{Project: name})
	}
	h.opts.Log.Warn().Str("project", name).Strs("revoked", revoked).Int("cut", cut).Msg("project deleted")
	writeJSON(w, http.StatusOK, DeleteProjectView{Project: name, Deleted: true, Revoked: append([]string{}, revoked...), Cut: cut})
}

// updateTokenRequest is the body of PATCH /admin/v1/tokens/{id}. Absent
// fields keep their value. models [] allows every priced model; rpm 0 is no
// limit; expires is a lifetime from now (720h, 30d, 1y) or "never".
type updateTokenRequest struct {
	Name    *string   `json:"name"`
	Owner   *string   `json:"owner"`
	Purpose *string   `json:"purpose"`
	Budget  *string   `json:"budget_usd"`
	Period  *string   `json:"period"`
	Models  *[]string `json:"models"`
	Routes  *[]string `json:"routes"`
	IPs     *[]string `json:"ips"`
	Expires *string   `json:"expires"`
	RPM     *int      `json:"rpm"`
	// MaxConcurrent 0 is no limit.
	MaxConcurrent *int `json:"max_concurrent"`
	// MaxRequest "" or "unlimited" removes the per-request limit.
	MaxRequest *string `json:"max_request_usd"`
	// RotateEvery is a duration or "never".
	RotateEvery *string `json:"rotate_every"`
	// AlertAt replaces the token's alert thresholds; [] goes back to the
	// config's.
	AlertAt *[]string `json:"alert_at"`
}

// maxRequestFrom parses max_request_usd: "" or "unlimited" is no limit,
// else a decimal USD amount above zero. Anything else, zero and negative
// amounts alike, gets the one message that says what is accepted, with the
// way to no limit that works in create and in set alike.
func maxRequestFrom(s string) (budget.Money, error) {
	s = strings.TrimSpace(s)
	if s == "" || s == budget.UnlimitedWord {
		return 0, nil
	}
	if m, err := budget.ParseUSD(s); err == nil && m > 0 {
		return m, nil
	}
	return 0, fmt.Errorf("%w: max_request_usd %q is not an amount above zero: give USD such as 0.25 (at most 9 decimal places), or %s for no per-request limit",
		tokens.ErrInvalidScope, budget.Clip(s), budget.UnlimitedWord)
}

// rotateEveryFrom parses rotate_every: a positive duration, or "never".
func rotateEveryFrom(s string) (time.Duration, error) {
	if s == NeverExpires {
		return 0, nil
	}
	d, err := ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("%w: rotate_every %v", tokens.ErrInvalidRotation, err)
	}
	if d <= 0 {
		return 0, fmt.Errorf("%w: rotate_every must be a positive duration such as 90d, or never", tokens.ErrInvalidRotation)
	}
	return d, nil
}

func (h *Handler) updateToken(w http.ResponseWriter, r *http.Request) {
	var req updateTokenRequest
	if !decode(w, r, &req) {
		return
	}
	limit, err := limitChangeFrom(req.Budget, req.Period)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	if limit.AlertAt, err = alertAtChange(req.AlertAt); err != nil {
		writeBadAlertAt(w, err)
		return
	}
	if req.Models != nil {
		if err := tokens.CheckModels(*req.Models); err != nil {
			h.writeDomainError(w, err)
			return
		}
	}
	change := storage.TokenChange{Limit: limit, Name: req.Name, Owner: req.Owner, Purpose: req.Purpose, Models: req.Models,
		Routes: req.Routes, IPs: req.IPs, RPM: req.RPM, MaxConcurrent: req.MaxConcurrent}
	if req.MaxRequest != nil {
		m, err := maxRequestFrom(*req.MaxRequest)
		if err != nil {
			h.writeDomainError(w, err)
			return
		}
		change.MaxRequest = &m
	}
	if req.RotateEvery != nil {
		d, err := rotateEveryFrom(*req.RotateEvery)
		if err != nil {
			h.writeDomainError(w, err)
			return
		}
		change.RotateEvery = &d
	}
	if req.Expires != nil {
		t, err := h.expiry(*req.Expires)
		if err != nil {
			h.writeDomainError(w, err)
			return
		}
		change.Expires = &t
	}
	tok, err := h.opts.DB.UpdateToken(r.Context(), r.PathValue("id"), change)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	v, err := h.tokenView(tok)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	h.opts.Log.Info().Str("token", tok.ID).Str("project", tok.Project).Str("limit_usd", v.Budget.describe()).Msg("token changed")
	writeJSON(w, http.StatusOK, v)
}

// describe is a budget view's limit for a log line.
func (b BudgetView) describe() string {
	if b.Limit == nil {
		return budget.UnlimitedWord
	}
	return b.Limit.String()
}

// showToken serves GET /admin/v1/tokens/{id}: the token's whole ledger
// entry, with the client addresses it was used from.
func (h *Handler) showToken(w http.ResponseWriter, r *http.Request) {
	if !h.flushed(w, r) {
		return
	}
	tok, err := h.opts.DB.Token(r.PathValue("id"))
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	v, err := h.tokenView(tok)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	if v.ClientIPs, err = h.opts.DB.ClientIPs(tok.ID); err != nil {
		h.writeDomainError(w, err)
		return
	}
	refusals, err := h.opts.DB.Refusals(tok.ID)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	v.Refusals = &refusals
	writeJSON(w, http.StatusOK, v)
}

// DefaultGrace is how long a rotated token's old secret keeps working when
// the rotation does not say.
const DefaultGrace = "24h"

// rotateTokenRequest is the body of POST /admin/v1/tokens/{id}/rotate;
// grace is a duration ("24h", "0" refuses the old secret at once), default
// DefaultGrace.
type rotateTokenRequest struct {
	Grace *string `json:"grace"`
}

// rotateAnswer is a rotation's answer: the token with its new secret, and
// how many requests in flight on a secret it made invalid were cut.
type rotateAnswer struct {
	TokenView
	Cut int `json:"cut"`
}

// rotateToken serves POST /admin/v1/tokens/{id}/rotate: a new secret for
// the token, shown once in the answer's "token".
func (h *Handler) rotateToken(w http.ResponseWriter, r *http.Request) {
	var req rotateTokenRequest
	if r.ContentLength != 0 && !decode(w, r, &req) {
		return
	}
	graceText := DefaultGrace
	if req.Grace != nil {
		graceText = strings.TrimSpace(*req.Grace)
	}
	var grace time.Duration
	if graceText != "0" {
		if strings.HasPrefix(graceText, "-") {
			h.writeDomainError(w, fmt.Errorf("%w: the grace must not be negative; 0 refuses the old secret at once", tokens.ErrInvalidGrace))
			return
		}
		var err error
		if grace, err = ParseDuration(graceText); err != nil {
			h.writeDomainError(w, fmt.Errorf("%w: grace %v", tokens.ErrInvalidGrace, err))
			return
		}
	}
	tok, secret, err := h.opts.DB.RotateToken(r.Context(), r.PathValue("id"), grace)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	// Requests still running on a secret the rotation made invalid are cut
	// as a revocation cuts them: with no grace every request of the token
	// (none can carry the new secret yet), with a grace those made with
	// the secret replaced before, whose grace this rotation ended.
	cut := h.opts.Proxy.Cut(proxy.CutTarget{TokenID: tok.ID, OldSecret: grace > 0})
	v, err := h.tokenView(tok)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	v.Secret = secret
	h.opts.Log.Info().Str("token", tok.ID).Str("project", tok.Project).Dur("grace", grace).Int("cut", cut).Msg("token rotated")
	writeJSON(w, http.StatusOK, rotateAnswer{TokenView: v, Cut: cut})
}
