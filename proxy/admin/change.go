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
	writeJSON(w, status, ProjectView{Project: p, Budget: budgetView(bs)})
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
	Budget  *string   `json:"budget_usd"`
	Period  *string   `json:"period"`
	Models  *[]string `json:"models"`
	Expires *string   `json:"expires"`
	RPM     *int      `json:"rpm"`
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
	if req.Models != nil {
		if err := tokens.CheckModels(*req.Models); err != nil {
			h.writeDomainError(w, err)
			return
		}
	}
	change := storage.TokenChange{Limit: limit, Name: req.Name, Models: req.Models, RPM: req.RPM}
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
