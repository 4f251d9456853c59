package admin

import (
	"net/http"
	"strconv"
)

// backup streams a consistent copy of the whole database
// (GET /admin/v1/backup): bbolt's Tx.WriteTo from one read transaction, so
// the proxy goes on serving while it runs. The copy is a bbolt file that
// hardcap serve opens as it is; `hardcap db backup FILE` writes and checks it.
func (h *Handler) backup(w http.ResponseWriter, r *http.Request) {
	started := false
	n, err := h.opts.DB.WriteBackup(w, func(size int64) {
		hd := w.Header()
		hd.Set("Content-Type", "application/octet-stream")
		hd.Set("Content-Length", strconv.FormatInt(size, 10))
		hd.Set("Content-Disposition", `attachment; filename="hardcap.db"`)
		hd.Set("Cache-Control", "no-store")
		started = true
	})
	if err != nil {
		if !started {
			h.writeDomainError(w, err)
			return
		}
		// The status is sent: the client sees a body shorter than its
		// Content-Length and refuses the copy.
		h.opts.Log.Error().Err(err).Int64("bytes", n).Msg("backup cut short")
		return
	}
	h.opts.Log.Info().Int64("bytes", n).Str("client", r.RemoteAddr).Msg("backup sent")
}
