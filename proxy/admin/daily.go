package admin

import (
	"fmt"
	"net/http"
	"time"

	"github.com/hardcap/hardcap/storage"
)

// DailyView is the answer of GET /admin/v1/usage/daily: hardcap's books per
// UTC day, provider and request model, sorted by day, provider and model.
// hardcap reconcile reads it.
type DailyView struct {
	Days []storage.DailyUsage `json:"days"`
}

// daily serves GET /admin/v1/usage/daily?provider=NAME&since=RFC3339. Both
// parameters are optional: no provider means every provider, no since means
// every record.
func (h *Handler) daily(w http.ResponseWriter, r *http.Request) {
	if !h.flushed(w, r) {
		return
	}
	q := r.URL.Query()
	f := storage.DailyFilter{Provider: q.Get("provider")}
	if s := q.Get("since"); s != "" {
		t, err := time.Parse(time.RFC3339, s)
		if err != nil {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("since %q is not an RFC 3339 time such as 2026-11-01T00:00:00Z", s))
			return
		}
		f.Since = t
	}
	days, err := h.opts.DB.Daily(f)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, DailyView{Days: days})
}
