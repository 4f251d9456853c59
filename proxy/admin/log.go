package admin

import (
	"fmt"
	"net/http"
	"strconv"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
)

// AuditLogView is the answer of GET /admin/v1/log: the admin audit log
// entries selected, oldest first.
type AuditLogView struct {
	Entries []storage.AuditEntry `json:"entries"`
}

// auditLog serves GET /admin/v1/log[?since=D][&token=ID|&project=NAME]
// [&limit=N]: every admin change (create, change, kill, resume, revoke,
// rotate, delete) with its time, admin credential and target. project
// selects the changes of the project and of each of its tokens (an entry
// whose target is a token of the project). A token or project that does
// not exist and that no entry names (a deleted project's entries stay) is
// answered 404 not_found, as usage does, not an empty log.
func (h *Handler) auditLog(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f storage.AuditFilter
	if s := q.Get("since"); s != "" {
		d, err := ParseDuration(s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", "since: "+err.Error())
			return
		}
		f.Since = h.opts.Now().Add(-d)
	}
	token, project := q.Get("token"), q.Get("project")
	switch {
	case token != "" && project != "":
		writeError(w, http.StatusBadRequest, "invalid_request", "name one token or one project, not both")
		return
	case token != "":
		f.Kind, f.Target = "token", token
	case project != "":
		if err := tokens.CheckName(project); err != nil {
			h.writeDomainError(w, err)
			return
		}
		f.Kind, f.Target = "project", project
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("limit %q is not a count (0 is all)", budget.Clip(s)))
			return
		}
		f.Limit = n
	}
	var entries []storage.AuditEntry
	var err error
	if project != "" {
		entries, err = h.projectLog(f)
	} else {
		entries, err = h.opts.DB.AuditLog(f)
	}
	if err == nil && len(entries) == 0 {
		err = h.targetExists(token, project)
	}
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	if entries == nil {
		entries = []storage.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, AuditLogView{Entries: entries})
}

// projectLog returns the entries f selects about project f.Target and its
// tokens, oldest first, the newest f.Limit of them when f.Limit is set. A
// token entry is the project's when the token belongs to it; tokens keep
// their project after it is deleted, so a deleted project's token entries
// are found too.
func (h *Handler) projectLog(f storage.AuditFilter) ([]storage.AuditEntry, error) {
	project, limit := f.Target, f.Limit
	ts, err := h.opts.DB.Tokens(project)
	if err != nil {
		return nil, err
	}
	mine := make(map[string]bool, len(ts))
	for _, t := range ts {
		mine[t.ID] = true
	}
	all, err := h.opts.DB.AuditLog(storage.AuditFilter{Since: f.Since})
	if err != nil {
		return nil, err
	}
	var out []storage.AuditEntry
	for _, e := range all {
		if (e.Kind == "project" && e.Target == project) || (e.Kind == "token" && mine[e.Target]) {
			out = append(out, e)
		}
	}
	if limit > 0 && len(out) > limit {
		out = out[len(out)-limit:]
	}
	return out, nil
}

// targetExists reports, for a log or list that selected nothing, whether
// the token or project it names exists: tokens.ErrTokenNotFound or
// ErrProjectNotFound when not, nil when it does (or none is named).
func (h *Handler) targetExists(token, project string) error {
	if token != "" {
		_, err := h.opts.DB.Token(token)
		return err
	}
	if project == "" {
		return nil
	}
	ps, err := h.opts.DB.Projects()
	if err != nil {
		return err
	}
	for _, p := range ps {
		if p.Name == project {
			return nil
		}
	}
	return fmt.Errorf("%w: %s", tokens.ErrProjectNotFound, budget.Clip(project))
}
