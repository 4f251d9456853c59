package admin

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
)

// usageHead is the part of GET /admin/v1/usage's JSON answer before its
// records: the fields of storage.Usage but Records.
type usageHead struct {
	Spent      budget.Money `json:"spent_usd"`
	Reserved   budget.Money `json:"reserved_usd"`
	Matched    int          `json:"matched"`
	NextCursor string       `json:"next_cursor,omitempty"`
}

// usage serves GET /admin/v1/usage?project=&token=&since=&limit=&cursor=&format=.
// The answer is written as the records are read (storage.StreamUsage: small
// read transactions, one page in memory), so an export of every record
// costs the server neither memory nor a long transaction, and limit needs
// no maximum. format is json (the default: the totals, next_cursor, then
// the records array, oldest first), ndjson (one record per line, no
// totals) or csv (a header line, then one record per line).
func (h *Handler) usage(w http.ResponseWriter, r *http.Request) {
	if !h.flushed(w, r) {
		return
	}
	q := r.URL.Query()
	f := storage.RecordFilter{Project: q.Get("project"), TokenID: q.Get("token"), Cursor: q.Get("cursor")}
	if s := q.Get("since"); s != "" {
		d, err := ParseDuration(s)
		if err != nil || d <= 0 {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("since %q is not a positive duration such as 24h or 7d", budget.Clip(s)))
			return
		}
		f.Since = h.opts.Now().Add(-d)
	}
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("limit %q is not a whole number of records (0 means all)", budget.Clip(s)))
			return
		}
		f.Limit = n
	}
	format := q.Get("format")
	var out usageWriter
	switch format {
	case "", "json":
		out = &jsonUsage{}
	case "ndjson":
		out = &ndjsonUsage{}
	case "csv":
		out = &csvUsage{}
	default:
		writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("format %q is not json, ndjson or csv", budget.Clip(format)))
		return
	}
	var bw *bufio.Writer
	err := h.opts.DB.StreamUsage(f, func(u storage.Usage) error {
		w.Header().Set("Content-Type", out.contentType())
		w.WriteHeader(http.StatusOK)
		bw = bufio.NewWriterSize(w, 32<<10)
		return out.head(bw, u)
	}, func(rec budget.Record) error { return out.record(bw, rec) })
	switch {
	case err == nil:
		if err = out.end(bw); err == nil {
			err = bw.Flush()
		}
		if err != nil {
			h.opts.Log.Warn().Err(err).Msg("writing usage")
		}
	case bw == nil && errors.Is(err, storage.ErrBadCursor):
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error()+" (give a next_cursor of an earlier answer)")
	case bw == nil:
		h.writeDomainError(w, err)
	default:
		// The status is sent: cut the answer, so the client sees a broken
		// body rather than a short one that parses.
		h.opts.Log.Error().Err(err).Msg("usage answer cut short")
		panic(http.ErrAbortHandler)
	}
}

// usageWriter writes one format of the usage answer.
type usageWriter interface {
	contentType() string
	head(w io.Writer, u storage.Usage) error
	record(w io.Writer, r budget.Record) error
	end(w io.Writer) error
}

type jsonUsage struct {
	n   int
	buf []byte
}

func (*jsonUsage) contentType() string { return "application/json" }

func (j *jsonUsage) head(w io.Writer, u storage.Usage) error {
	raw, err := json.Marshal(usageHead{Spent: u.Spent, Reserved: u.Reserved, Matched: u.Matched, NextCursor: u.NextCursor})
	if err != nil {
		return err
	}
	// The head's closing brace gives way to the records array.
	_, err = fmt.Fprintf(w, "%s,\"records\":[", raw[:len(raw)-1])
	return err
}

func (j *jsonUsage) record(w io.Writer, r budget.Record) error {
	j.buf = append(j.buf[:0], ",\n"...)
	if j.n == 0 {
		j.buf = j.buf[1:]
	}
	j.n++
	j.buf = appendRecordJSON(j.buf, r)
	_, err := w.Write(j.buf)
	return err
}

func (j *jsonUsage) end(w io.Writer) error {
	_, err := io.WriteString(w, "\n]}\n")
	return err
}

type ndjsonUsage struct{ buf []byte }

func (*ndjsonUsage) contentType() string                 { return "application/x-ndjson" }
func (*ndjsonUsage) head(io.Writer, storage.Usage) error { return nil }
func (*ndjsonUsage) end(io.Writer) error                 { return nil }

func (n *ndjsonUsage) record(w io.Writer, r budget.Record) error {
	n.buf = append(appendRecordJSON(n.buf[:0], r), '\n')
	_, err := w.Write(n.buf)
	return err
}
