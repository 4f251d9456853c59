package admin

import (
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// backup sends a consistent copy of the whole database
// (GET /admin/v1/backup). The copy is a bbolt file that hardcap serve opens
// as it is; `hardcap db backup FILE` writes and checks it.
//
// bbolt's Tx.WriteTo copies from one read transaction, and while a read
// transaction is open bbolt cannot remap a file that grows: the commit that
// needs more room waits, and every transaction after it waits too. Copying
// straight into the response let a slow client hold the whole proxy (a
// trial with curl --limit-rate froze it for minutes). So the copy goes first
// into a temporary file beside the database, at local disk speed, and only
// that file is streamed to the client, with no transaction open.
//
// The headers (status, Content-Length) go out when the copy is done, or
// after backupHeaderWait once the transaction has begun, so a client's
// header timeout measures the server's response rather than the size of a
// large ledger. A failure after the headers (say, no room
// for the temporary copy) is logged with its cause and cuts the body short,
// which the CLI refuses.
// backupHeaderWait is how long the headers wait for the copy to finish, well
// under the CLI's default 5 s header timeout.
const backupHeaderWait = 2 * time.Second

func (h *Handler) backup(w http.ResponseWriter, r *http.Request) {
	if !h.flushed(w, r) {
		return
	}
	dir := filepath.Dir(h.opts.DB.Path())
	// CreateTemp makes the file 0600: the copy holds token hashes and
	// client IPs, like the database.
	f, err := os.CreateTemp(dir, ".hardcap-backup-*.tmp")
	if err != nil {
		h.backupFailed(w, copyResult{err: err, local: true})
		return
	}
	tmp := f.Name()
	defer func() {
		f.Close()
		_ = os.Remove(tmp)
	}()

	// The copy runs in its own goroutine so that nothing it waits for (the
	// client taking the headers) can hold the read transaction open.
	sized := make(chan int64, 1)
	copied := make(chan copyResult, 1)
	go func() {
		out := &recordingWriter{w: f}
		_, err := h.opts.DB.WriteBackup(out, func(size int64) { sized <- size })
		if err == nil {
			err = f.Sync()
			out.err = err
		}
		copied <- copyResult{err: err, local: out.err != nil}
	}()
	var size int64
	var res copyResult
	finished := false
	select {
	case size = <-sized:
	case res = <-copied:
		finished = true
		// Both may be ready at once, and select picks either.
		select {
		case size = <-sized:
		default:
			// No transaction, so no copy: WriteBackup calls size before
			// anything else it does after the transaction begins.
			h.backupFailed(w, res)
			return
		}
	}
	if !finished {
		// Most ledgers are copied well within this, and then a failure
		// (no room for the copy) is still answered 503 rather than as a
		// 200 with a short body; a larger one gets its headers on time.
		select {
		case res = <-copied:
			finished = true
			if res.err != nil {
				h.backupFailed(w, res)
				return
			}
		case <-time.After(backupHeaderWait):
		}
	}
	hd := w.Header()
	hd.Set("Content-Type", "application/octet-stream")
	hd.Set("Content-Length", strconv.FormatInt(size, 10))
	hd.Set("Content-Disposition", `attachment; filename="hardcap.db"`)
	hd.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
	if !finished {
		res = <-copied
	}
	if res.err != nil {
		// The status is sent: the client sees a body shorter than its
		// Content-Length and refuses the copy.
		h.opts.Log.Error().Err(res.err).Bool("temporary_copy", res.local).Str("data_dir", dir).Msg("backup failed: no copy was sent")
		return
	}
	// Unlinked now, while the open file is still read, so that a crash
	// while streaming leaves nothing behind (where the system allows it;
	// elsewhere the deferred Remove does it).
	_ = os.Remove(tmp)
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		h.opts.Log.Error().Err(err).Msg("backup failed: no copy was sent")
		return
	}
	n, err := io.Copy(w, io.LimitReader(f, size))
	if err != nil || n != size {
		// Most often the client went away; nothing is held meanwhile.
		h.opts.Log.Warn().AnErr("cause", err).Int64("bytes", n).Int64("of", size).Str("client", r.RemoteAddr).Msg("backup cut short")
		return
	}
	h.opts.Log.Info().Int64("bytes", n).Str("client", r.RemoteAddr).Msg("backup sent")
}

// copyResult is how the copy into the temporary file ended; local says
// that writing the temporary file failed, rather than reading the database.
type copyResult struct {
	err   error
	local bool
}

// backupFailed answers a backup that could not start: a database error by
// the one error table; a temporary file that could not be written by a 503
// of its own that says so, so that a full disk is not taken for a damaged
// ledger.
func (h *Handler) backupFailed(w http.ResponseWriter, res copyResult) {
	if !res.local {
		h.writeDomainError(w, res.err)
		return
	}
	h.opts.Log.Error().Err(res.err).Msg("backup failed: the temporary copy could not be written")
	writeError(w, http.StatusServiceUnavailable, "backup_failed",
		"hardcap could not write the backup's temporary copy into its data directory (a full disk?); see the server log for the cause. The ledger is unchanged.")
}

// recordingWriter keeps the first error of its writer, so that a failed
// copy can say which side failed.
type recordingWriter struct {
	w   io.Writer
	err error
}

func (r *recordingWriter) Write(p []byte) (int, error) {
	n, err := r.w.Write(p)
	if err != nil && r.err == nil {
		r.err = err
	}
	return n, err
}
