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
// rotate, delete) with its time, admin credential and target.
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
	entries, err := h.opts.DB.AuditLog(f)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	if entries == nil {
		entries = []storage.AuditEntry{}
	}
	writeJSON(w, http.StatusOK, AuditLogView{Entries: entries})
}
