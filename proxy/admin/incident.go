package admin

import (
	"bytes"
	"fmt"
	"net/http"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/incident"
	"github.com/hardcap/hardcap/storage"
)

// maxIncidentActions bounds each of the three audit log reads of a report
// (the token's, its project's, everything's): the newest of each.
const maxIncidentActions = 1000

// parseSince reads an incident report's since: a positive duration back
// from now ("24h", "7d") or a time in RFC 3339 ("2026-11-30T14:00:00Z"),
// the moment a key was pushed, say; "" is the whole history.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	if d, err := ParseDuration(s); err == nil && d > 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("since %q is neither a positive duration such as 24h or 7d nor a time such as 2026-11-30T14:00:00Z", budget.Clip(s))
}

// incident serves GET /admin/v1/incident?token=ID&since=D&format=json|md:
// the evidence report on one token (package incident). The records are
// aggregated as storage.StreamUsage reads them, a page at a time, so a
// token with a million records costs the report's tables, not its records;
// the report is built whole before anything is sent, so a failure is
// answered as an error and never as half a report.
func (h *Handler) incident(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	id := q.Get("token")
	if id == "" {
		writeError(w, http.StatusBadRequest, "invalid_request", "name the token: ?token=ID (hardcap token list shows the ids)")
		return
	}
	format := q.Get("format")
	switch format {
	case "", "json", "md":
	default:
		writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("format %q is not json or md", budget.Clip(format)))
		return
	}
	now := h.opts.Now()
	since, err := parseSince(q.Get("since"), now)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	if !h.flushed(w, r) {
		return
	}
	rep, err := h.incidentReport(id, since, now)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	if format == "" || format == "json" {
		writeJSON(w, http.StatusOK, rep)
		return
	}
	var buf bytes.Buffer
	if err := rep.WriteMarkdown(&buf); err != nil {
		h.writeDomainError(w, err)
		return
	}
	w.Header().Set("Content-Type", "text/markdown; charset=utf-8")
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(buf.Bytes())
}

// incidentReport builds the report on token id for the window from since
// to now.
func (h *Handler) incidentReport(id string, since, now time.Time) (incident.Report, error) {
	db := h.opts.DB
	tok, err := db.Token(id)
	if err != nil {
		return incident.Report{}, err
	}
	view, err := h.tokenView(tok)
	if err != nil {
		return incident.Report{}, err
	}
	st, err := db.Status()
	if err != nil {
		return incident.Report{}, err
	}
	projects, err := db.Projects()
	if err != nil {
		return incident.Report{}, err
	}
	info := incident.Token{
		ID: tok.ID, Project: tok.Project, Name: tok.Name, Owner: tok.Owner, Purpose: tok.Purpose,
		Created: tok.Created.UTC(), CreatedBy: tok.CreatedBy, State: view.State, AllKilled: st.KillAll,
		Expires: utc(tok.Expires), Revoked: utc(tok.Revoked), Rotated: utc(tok.Rotated), RotatingUntil: utc(tok.RotatingUntil),
		LastUsed: tok.LastUsed, Requests: tok.Requests, Limit: view.Budget.Limit, Period: string(view.Budget.Period),
		Models: tok.Models, Routes: tok.Routes, IPs: tok.IPs,
		RPM: tok.RPM, MaxConcurrent: tok.MaxConcurrent, MaxRequest: view.MaxRequest,
		RotateEvery: view.RotateEvery, RotateBy: utc(tok.RotateBy),
	}
	for _, p := range projects {
		if p.Name == tok.Project {
			info.ProjectKilled = p.Killed
		}
	}
	b := incident.New(info, since, now)
	refusals, err := db.Refusals(tok.ID)
	if err != nil {
		return incident.Report{}, err
	}
	codes := make([]incident.Refusal, 0, len(refusals.Codes))
	for _, c := range refusals.Codes {
		codes = append(codes, incident.Refusal{Code: c.Code, Count: c.Count, First: c.First, Last: c.Last, LastIP: c.LastIP})
	}
	ips := make([]incident.RefusalIP, 0, len(refusals.IPs))
	for _, e := range refusals.IPs {
		ips = append(ips, incident.RefusalIP{IP: e.IP, First: e.First, Last: e.Last, Refusals: e.Requests})
	}
	b.SetRefusals(codes, ips, db.RefusalsDropped())
	// The provider keys' whole history (a few entries a year): the one in
	// force when the window began and the changes in it.
	keyEntries, err := db.AuditLog(storage.AuditFilter{Kind: "provider_key", Limit: maxIncidentActions})
	if err != nil {
		return incident.Report{}, err
	}
	keys := make([]incident.Action, 0, len(keyEntries))
	for _, e := range keyEntries {
		keys = append(keys, incident.Action{Time: e.Time, Actor: e.Actor, Action: e.Action, Kind: e.Kind, Target: e.Target, Detail: e.Detail})
	}
	b.SetProviderKeys(keys)
	err = db.StreamUsage(storage.RecordFilter{TokenID: tok.ID, Since: since}, func(u storage.Usage) error {
		b.SetTotals(int64(u.Matched), u.Spent, u.Reserved)
		return nil
	}, b.Add)
	if err != nil {
		return incident.Report{}, err
	}
	// The token's own actions are its whole lifecycle (created, rotated,
	// killed, revoked), so all of them; its project's and everything's
	// are many more over time, so those of the window.
	var actions []incident.Action
	for _, f := range []storage.AuditFilter{
		{Kind: "token", Target: tok.ID, Limit: maxIncidentActions},
		{Kind: "project", Target: tok.Project, Since: since, Limit: maxIncidentActions},
		{Kind: "all", Since: since, Limit: maxIncidentActions},
	} {
		entries, err := db.AuditLog(f)
		if err != nil {
			return incident.Report{}, err
		}
		for _, e := range entries {
			actions = append(actions, incident.Action{Time: e.Time, Actor: e.Actor, Action: e.Action, Kind: e.Kind, Target: e.Target, Detail: e.Detail})
		}
	}
	return b.Report(actions)
}

// utc is t in UTC, and the zero time as it is (so omitzero drops it).
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return t
	}
	return t.UTC()
}
