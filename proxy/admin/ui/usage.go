package ui

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/proxy/admin"
	"github.com/hardcap/hardcap/storage"
)

// UsagePageSize is how many records a usage page asks the admin API for.
const UsagePageSize = 50

// maxModelPages bounds the admin pages one usage page reads to find
// records of the model filter (which the admin API does not filter by).
const maxModelPages = 20

// maxDetailPages bounds the admin pages a request's detail page reads to
// find the record, of detailPageSize each.
const (
	maxDetailPages = 50
	detailPageSize = 200
)

// usageFilter is the usage page's filter.
type usageFilter struct {
	Project, Token, Model, Since, Cursor string
}

func usageFilterOf(r *http.Request) usageFilter {
	q := r.URL.Query()
	g := func(k string) string { return strings.TrimSpace(q.Get(k)) }
	return usageFilter{Project: g("project"), Token: g("token"), Model: g("model"), Since: g("since"), Cursor: g("cursor")}
}

// adminQuery is the admin usage query of the filter but its model.
func (f usageFilter) adminQuery(cursor string) url.Values {
	q := url.Values{}
	for k, v := range map[string]string{"project": f.Project, "token": f.Token, "since": f.Since, "cursor": cursor} {
		if v != "" {
			q.Set(k, v)
		}
	}
	return q
}

// query is the dashboard's query string of the filter at a cursor.
func (f usageFilter) query(cursor string) string {
	q := f.adminQuery(cursor)
	if f.Model != "" {
		q.Set("model", f.Model)
	}
	return q.Encode()
}

// usageRow is a record as the usage table shows it.
type usageRow struct {
	budget.Record
	Href, Time, Charged, Reserved string
}

// usageData is the usage page's content.
type usageData struct {
	Filter            usageFilter
	Rows              []usageRow
	Matched           int
	Spent, Reserved   string
	ModelFiltered     bool
	Next, CSV, Newest string
}

// usagePage serves GET /ui/usage?project=&token=&model=&since=&cursor=:
// the records newest first, a page at a time.
func (h *Handler) usagePage(w http.ResponseWriter, r *http.Request, se *session) {
	f := usageFilterOf(r)
	d := usageData{Filter: f, ModelFiltered: f.Model != "", CSV: "/ui/usage.csv?" + f.query("")}
	cursor := f.Cursor
	for pages := 0; ; pages++ {
		q := f.adminQuery(cursor)
		q.Set("limit", fmt.Sprint(UsagePageSize))
		var u storage.Usage
		if err := h.admin.call(r.Context(), "GET", "/admin/v1/usage?"+q.Encode(), nil, &u); err != nil {
			h.fail(w, se, err)
			return
		}
		if pages == 0 {
			d.Matched, d.Spent, d.Reserved = u.Matched, usd(u.Spent), usd(u.Reserved)
		}
		// A row's link carries the page's token and cursor, where its
		// detail page starts looking for it.
		hint := url.Values{}
		if cursor != "" {
			hint.Set("cursor", cursor)
		}
		slices.Reverse(u.Records)
		for _, rec := range u.Records {
			if f.Model != "" && rec.Model != f.Model {
				continue
			}
			hint.Set("token", rec.TokenID)
			d.Rows = append(d.Rows, usageRow{Record: rec, Href: "/ui/usage/" + url.PathEscape(rec.ReservationID) + "?" + hint.Encode(),
				Time: when(rec.Time), Charged: usd(rec.Charged), Reserved: usd(rec.Reserved)})
		}
		cursor = u.NextCursor
		if cursor == "" || f.Model == "" || len(d.Rows) >= UsagePageSize || pages+1 >= maxModelPages {
			break
		}
	}
	if cursor != "" {
		d.Next = "/ui/usage?" + f.query(cursor)
	}
	if f.Cursor != "" {
		d.Newest = "/ui/usage?" + f.query("")
	}
	h.render(w, http.StatusOK, "usage.html", h.newPage(se, "Usage", "usage", d))
}

// usageCSV serves GET /ui/usage.csv with the usage page's filters: every
// record selected, oldest first, in the columns of hardcap usage --csv,
// streamed from the admin API as it reads them.
func (h *Handler) usageCSV(w http.ResponseWriter, r *http.Request, se *session) {
	f := usageFilterOf(r)
	q := f.adminQuery("")
	out := &startWriter{w: w}
	var to io.Writer = out
	var mf *modelFilter
	if f.Model == "" {
		q.Set("format", "csv")
	} else {
		// The admin API does not filter by model: its records come as
		// ndjson and only the model's are written.
		q.Set("format", "ndjson")
		mf = &modelFilter{model: f.Model, cw: csv.NewWriter(out)}
		to = mf
	}
	_, err := h.admin.serve(r.Context(), "GET", "/admin/v1/usage?"+q.Encode(), nil, to)
	if err == nil && mf != nil {
		err = mf.close()
	}
	switch {
	case err == nil:
		out.start() // headers even for an empty selection
	case !out.started:
		h.fail(w, se, err)
	default:
		// The status is sent: cut the answer so the download fails
		// rather than look complete.
		h.opts.Log.Error().Err(err).Msg("dashboard: usage export cut short")
		panic(http.ErrAbortHandler)
	}
}

// startWriter sends the CSV's headers at its first byte.
type startWriter struct {
	w       http.ResponseWriter
	started bool
}

func (s *startWriter) start() {
	if s.started {
		return
	}
	s.started = true
	s.w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	s.w.Header().Set("Content-Disposition", `attachment; filename="hardcap-usage.csv"`)
	s.w.WriteHeader(http.StatusOK)
}

func (s *startWriter) Write(p []byte) (int, error) {
	s.start()
	return s.w.Write(p)
}

// maxRecordLine bounds one ndjson record line.
const maxRecordLine = 1 << 20

// modelFilter reads ndjson records as they are written and writes those of
// one model as CSV rows.
type modelFilter struct {
	model  string
	cw     *csv.Writer
	buf    []byte
	header bool
}

func (m *modelFilter) Write(p []byte) (int, error) {
	m.buf = append(m.buf, p...)
	for {
		i := bytes.IndexByte(m.buf, '\n')
		if i < 0 {
			break
		}
		if err := m.line(m.buf[:i]); err != nil {
			return 0, err
		}
		m.buf = m.buf[i+1:]
	}
	if len(m.buf) > maxRecordLine {
		return 0, fmt.Errorf("%w: a usage record longer than %d bytes", ErrAdminAnswer, maxRecordLine)
	}
	return len(p), nil
}

func (m *modelFilter) writeHeader() error {
	if m.header {
		return nil
	}
	m.header = true
	return m.cw.Write(admin.CSVHeader())
}

func (m *modelFilter) line(b []byte) error {
	if len(bytes.TrimSpace(b)) == 0 {
		return nil
	}
	var rec budget.Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return fmt.Errorf("%w: a usage record: %v", ErrAdminAnswer, err)
	}
	if err := m.writeHeader(); err != nil {
		return err
	}
	if rec.Model != m.model {
		return nil
	}
	if err := m.cw.Write(admin.CSVRecord(rec)); err != nil {
		return err
	}
	m.cw.Flush()
	return m.cw.Error()
}

// close writes what is left: the header of an empty selection.
func (m *modelFilter) close() error {
	if err := m.line(m.buf); err != nil {
		return err
	}
	if err := m.writeHeader(); err != nil {
		return err
	}
	m.cw.Flush()
	return m.cw.Error()
}

// recordPage serves GET /ui/usage/{id}[?token=&cursor=]: one request's
// record. The admin API has no lookup by reservation id, so the page
// reads pages of the token's records (the link's hints) from the cursor
// on, newest first, up to maxDetailPages of them.
func (h *Handler) recordPage(w http.ResponseWriter, r *http.Request, se *session) {
	id := r.PathValue("id")
	q := r.URL.Query()
	cursor := q.Get("cursor")
	for pages := 0; pages < maxDetailPages; pages++ {
		aq := url.Values{"limit": {fmt.Sprint(detailPageSize)}}
		if t := q.Get("token"); t != "" {
			aq.Set("token", t)
		}
		if cursor != "" {
			aq.Set("cursor", cursor)
		}
		var u storage.Usage
		if err := h.admin.call(r.Context(), "GET", "/admin/v1/usage?"+aq.Encode(), nil, &u); err != nil {
			h.fail(w, se, err)
			return
		}
		for _, rec := range u.Records {
			if rec.ReservationID == id {
				data := usageRow{Record: rec, Time: when(rec.Time), Charged: usd(rec.Charged), Reserved: usd(rec.Reserved)}
				h.render(w, http.StatusOK, "record.html", h.newPage(se, "Request "+id, "usage", data))
				return
			}
		}
		if cursor = u.NextCursor; cursor == "" {
			break
		}
	}
	h.fail(w, se, &APIError{Status: http.StatusNotFound, Code: "not_found",
		Message: fmt.Sprintf("No usage record %s was found among the %d newest records searched.", clip(id), maxDetailPages*detailPageSize)})
}
