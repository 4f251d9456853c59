package admin

import (
	"errors"
	"math"
	"net/http"

	"github.com/hardcap/hardcap/audit"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
)

// auditReport gathers the facts the audit needs (every token with whether
// it has a budget of its own, the provider keys, the server's files, price
// dates and providers, the stored acknowledgements) and runs it.
func (h *Handler) auditReport(r *http.Request) (audit.Report, error) {
	var in audit.Input
	if h.opts.AuditFacts != nil {
		in = h.opts.AuditFacts()
	}
	in.Now = h.opts.Now
	if h.opts.ProviderKeys != nil {
		in.ProviderKeys = h.opts.ProviderKeys()
	} else {
		// The provider keys as hardcap keys shows them.
		views, err := h.keyViews()
		if err != nil {
			return audit.Report{}, err
		}
		for _, v := range views {
			if v.FirstSeen.IsZero() {
				continue // configured but never read: nothing to date
			}
			in.ProviderKeys = append(in.ProviderKeys, audit.ProviderKey{
				Provider: v.Provider, FingerprintPrefix: v.Fingerprint, FirstSeen: v.FirstSeen,
				RotateBy: v.RotateBy, Unauthorized: int64(min(v.Unauthorized, math.MaxInt64)),
				Reused: v.Reused, ReusedAt: v.ReusedAt,
			})
		}
	}
	ts, err := h.opts.DB.Tokens("")
	if err != nil {
		return audit.Report{}, err
	}
	in.Tokens = make([]audit.Token, 0, len(ts))
	for _, t := range ts {
		bs, err := h.opts.DB.BudgetStatus(budget.TokenScope(t.ID))
		if err != nil {
			return audit.Report{}, err
		}
		_, budgeted := bs.Limit.Ceiling()
		in.Tokens = append(in.Tokens, audit.Token{Token: t, Budgeted: budgeted})
	}
	acks, err := h.opts.DB.Acks()
	if err != nil {
		return audit.Report{}, err
	}
	for _, a := range acks {
		in.Acks = append(in.Acks, audit.Ack{Key: a.Key, Time: a.Time, Actor: a.Actor})
	}
	return audit.Check(in), nil
}

// auditGet serves GET /admin/v1/audit: the findings, most urgent first, and
// the acknowledged ones apart.
func (h *Handler) auditGet(w http.ResponseWriter, r *http.Request) {
	if !h.flushed(w, r) {
		return
	}
	rep, err := h.auditReport(r)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

type ackRequest struct {
	// Ack is the finding's KIND:TARGET.
	Ack string `json:"ack"`
}

// AckView is the answer to an acknowledgement: the finding it dismissed,
// when and by whom, and whether this request stored it (false: it was
// acknowledged before, and that first acknowledgement stands).
type AckView struct {
	Finding audit.Finding `json:"finding"`
	Created bool          `json:"created"`
}

// auditAck serves POST /admin/v1/audit/acks: it dismisses a current
// finding of a kind that may be dismissed (audit.Ackable).
func (h *Handler) auditAck(w http.ResponseWriter, r *http.Request) {
	var req ackRequest
	if !decode(w, r, &req) {
		return
	}
	rep, err := h.auditReport(r)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	f, err := rep.Ackable(req.Ack)
	switch {
	case errors.Is(err, audit.ErrNoFinding):
		writeError(w, http.StatusNotFound, "not_found", err.Error())
		return
	case err != nil:
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	ack, created, err := h.opts.DB.Acknowledge(r.Context(), f.Key())
	if errors.Is(err, storage.ErrInvalidAck) {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	f.AckedAt, f.AckedBy = ack.Time, ack.Actor
	status := http.StatusOK
	if created {
		status = http.StatusCreated
		h.opts.Log.Info().Str("finding", f.Key()).Msg("audit finding acknowledged")
	}
	writeJSON(w, status, AckView{Finding: f, Created: created})
}
