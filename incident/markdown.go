package incident

import (
	"bufio"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/hardcap/hardcap/budget"
)

// cellLen is the most runes of one value a Markdown cell shows: a user
// agent or a label is free text a client or an admin chose.
const cellLen = 200

// cell makes s safe in a Markdown table cell: clipped to cellLen runes,
// control characters and line breaks turned into spaces (a break would end
// the row), and the characters Markdown or HTML would read as markup
// backslash-escaped, so a user agent such as "<img src=x>" or "a|b" shows
// as the text it is.
func cell(s string) string {
	s = budget.ClipTo(s, cellLen)
	var b strings.Builder
	for _, r := range s {
		switch {
		case r < 0x20 || r == 0x7f || r == '\u2028' || r == '\u2029' || (r >= 0x80 && r < 0xa0):
			b.WriteByte(' ')
		case strings.ContainsRune("\\`*[]<>|&~", r):
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			b.WriteRune(r)
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

func stamp(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.UTC().Format(time.RFC3339)
}

func usd(m budget.Money) string { return m.String() }

// mdWriter writes Markdown, keeping the first error.
type mdWriter struct {
	w   *bufio.Writer
	err error
}

func (m *mdWriter) printf(format string, args ...any) {
	if m.err == nil {
		_, m.err = fmt.Fprintf(m.w, format, args...)
	}
}

// row writes one table row of cells already made safe.
func (m *mdWriter) row(cells ...string) {
	m.printf("| %s |\n", strings.Join(cells, " | "))
}

// header writes a table's header and separator rows.
func (m *mdWriter) header(cols ...string) {
	m.row(cols...)
	seps := make([]string, len(cols))
	for i := range seps {
		seps[i] = "---"
	}
	m.row(seps...)
}

func (m *mdWriter) omitted(o *Omitted, what string) {
	if o == nil {
		return
	}
	more := strconv.FormatInt(o.Rows, 10)
	if o.Rows >= MaxRows {
		more = "at least " + more
	}
	m.printf("\n%s more %s (past the first %d) are not listed: %d requests, %s USD, first seen %s, last seen %s.\n",
		more, what, MaxRows, o.Requests, usd(o.Spent), stamp(o.First), stamp(o.Last))
}

// WriteMarkdown writes the report for people: a title, the token, a
// summary, then one table per section.
func (r Report) WriteMarkdown(w io.Writer) error {
	m := &mdWriter{w: bufio.NewWriter(w)}
	t := r.Token
	m.printf("# hardcap incident report: token %s\n\n", cell(t.ID))
	window := "the token's whole history"
	if !r.Since.IsZero() {
		window = "from " + stamp(r.Since) + " to " + stamp(r.Generated)
	}
	m.printf("Generated %s. Window: %s. Times are UTC; money is USD.\n\n", stamp(r.Generated), window)

	m.printf("## Token\n\n")
	m.header("field", "value")
	limit := "unlimited"
	if t.Limit != nil {
		limit = usd(*t.Limit) + " USD per " + t.Period
	}
	maxRequest := "no limit"
	if t.MaxRequest != nil {
		maxRequest = usd(*t.MaxRequest) + " USD"
	}
	last := "-"
	if !t.LastUsed.Time.IsZero() {
		last = fmt.Sprintf("%s from %s (%s)", stamp(t.LastUsed.Time), cell(t.LastUsed.IP), cell(t.LastUsed.UserAgent))
	}
	for _, f := range [][2]string{
		{"id", cell(t.ID)}, {"project", cell(t.Project)}, {"name", cell(t.Name)}, {"owner", cell(t.Owner)},
		{"purpose", cell(t.Purpose)}, {"created", stamp(t.Created)}, {"created by", cell(t.CreatedBy)},
		{"state", cell(t.State)}, {"project kill switch", onOff(t.ProjectKilled)}, {"global kill switch", onOff(t.AllKilled)},
		{"expires", stamp(t.Expires)}, {"revoked", stamp(t.Revoked)}, {"rotated", stamp(t.Rotated)},
		{"old secret valid until", stamp(t.RotatingUntil)}, {"last used (ledger)", last},
		{"requests (ledger, all time)", strconv.FormatInt(t.Requests, 10)}, {"budget", limit},
		{"models allowed", list(t.Models)}, {"routes allowed", list(t.Routes)}, {"client addresses allowed", list(t.IPs)},
		{"requests per minute", limitOf(t.RPM)}, {"requests in flight", limitOf(t.MaxConcurrent)}, {"max per request", maxRequest},
		{"rotate every", cell(t.RotateEvery)}, {"rotate by", stamp(t.RotateBy)},
	} {
		m.row(f[0], f[1])
	}

	s := r.Summary
	m.printf("\n## Summary\n\n")
	m.printf("- First use in the window: %s\n- Last use in the window: %s\n", stamp(s.FirstUse), stamp(s.LastUse))
	m.printf("- Requests: %d, spent %s USD; %s USD reserved by requests in flight now\n", s.Requests, usd(s.Spent), usd(s.Reserved))
	if s.Requests > s.Detailed {
		m.printf("- %d of these requests are older than the usage retention and were rolled up into daily totals: they count in the totals above but not in the tables below\n", s.Requests-s.Detailed)
	}
	m.printf("- Refusals and errors: %d requests with a record, %d refused before any money was reserved\n", s.ErrorRequests, s.RefusedRequests)
	m.printf("- Requests with a rotated secret still in its grace: %d\n", s.OldSecretRequests)
	m.printf("- Requests the provider gave an id to: %d\n", s.WithRequestID)

	m.printf("\n## Requests and spend per hour\n\n")
	if len(r.Hours) == 0 {
		m.printf("No requests in the window.\n")
	} else {
		m.header("hour (UTC)", "requests", "spent (USD)")
		for _, h := range r.Hours {
			m.row(h.Hour.UTC().Format("2006-01-02 15:00"), strconv.FormatInt(h.Requests, 10), usd(h.Spent))
		}
	}

	m.printf("\n## Clients\n\n")
	if len(r.Clients) == 0 {
		m.printf("None.\n")
	} else {
		m.header("client IP", "user agent", "first seen", "last seen", "requests", "spent (USD)", "with old secret")
		for _, c := range r.Clients {
			m.row(cell(c.IP), cell(c.UserAgent), stamp(c.First), stamp(c.Last), strconv.FormatInt(c.Requests, 10), usd(c.Spent), strconv.FormatInt(c.OldSecret, 10))
		}
	}
	m.omitted(r.ClientsOmitted, "clients")

	m.printf("\n## Models\n\n")
	if len(r.Models) == 0 {
		m.printf("None.\n")
	} else {
		m.header("provider", "model", "requests", "spent (USD)")
		for _, x := range r.Models {
			m.row(cell(x.Provider), cell(x.Model), strconv.FormatInt(x.Requests, 10), usd(x.Spent))
		}
	}
	m.omitted(r.ModelsOmitted, "models")

	m.printf("\n## Routes\n\n")
	if len(r.Routes) == 0 {
		m.printf("None.\n")
	} else {
		m.header("route", "requests", "spent (USD)")
		for _, x := range r.Routes {
			m.row(cell(x.Route), strconv.FormatInt(x.Requests, 10), usd(x.Spent))
		}
	}
	m.omitted(r.RoutesOmitted, "routes")

	m.printf("\n## Refusals and errors\n\n")
	if len(r.Errors) == 0 {
		m.printf("None: every request of the window completed.\n")
	} else {
		m.header("status", "outcome", "first seen", "last seen", "requests", "charged (USD)")
		for _, x := range r.Errors {
			m.row(strconv.Itoa(x.Status), cell(x.Outcome), stamp(x.First), stamp(x.Last), strconv.FormatInt(x.Requests, 10), usd(x.Spent))
		}
	}
	m.omitted(r.ErrorsOmitted, "status and outcome pairs")
	m.printf("\nRefused before any money was reserved (no usage record), by code:\n\n")
	if len(r.Refusals) == 0 {
		m.printf("None.\n")
	} else {
		m.header("code", "refusals", "first seen", "last seen", "last client IP")
		for _, x := range r.Refusals {
			m.row(cell(x.Code), strconv.FormatInt(x.Count, 10), stamp(x.First), stamp(x.Last), cell(x.LastIP))
		}
	}
	if len(r.RefusalIPs) > 0 {
		m.printf("\nRefused client addresses:\n\n")
		m.header("client IP", "refusals", "first seen", "last seen")
		for _, x := range r.RefusalIPs {
			m.row(cell(x.IP), strconv.FormatInt(x.Refusals, 10), stamp(x.First), stamp(x.Last))
		}
	}
	if r.RefusalsDropped > 0 {
		m.printf("\n%d refusals (of any token) since the server started came faster than it could count them and are only in the server log.\n", r.RefusalsDropped)
	}
	m.printf("\n%s\n", r.NotRecorded)

	m.printf("\n## Admin actions\n\n")
	if len(r.Actions) == 0 {
		m.printf("None recorded.\n")
	} else {
		m.header("time", "admin credential", "action", "on", "detail")
		for _, a := range r.Actions {
			on := a.Kind
			if a.Target != "" {
				on += " " + a.Target
			}
			m.row(stamp(a.Time), cell(a.Actor), cell(a.Action), cell(on), cell(a.Detail))
		}
	}

	m.printf("\n## Provider keys\n\n")
	if len(r.ProviderKeys) == 0 {
		m.printf("No provider key was recorded before or in the window.\n")
	} else {
		m.printf("The real key of each provider, by its fingerprint (a keyed hash, never the key): the entry in force when the window began, then every change in it. A request was served by the key of the provider's last entry before it.\n\n")
		m.header("time", "provider", "action", "detail", "by")
		for _, a := range r.ProviderKeys {
			m.row(stamp(a.Time), cell(a.Target), cell(a.Action), cell(a.Detail), cell(a.Actor))
		}
	}

	m.printf("\n## Provider request ids\n\n")
	switch {
	case len(r.RequestIDs) == 0:
		m.printf("The provider gave no request id for the requests of the window.\n")
	default:
		if r.RequestIDsOmitted > 0 {
			last := r.RequestIDs[len(r.RequestIDs)-1].Time
			m.printf("The first %d of %d; `--since %s` lists the newer ones.\n\n", len(r.RequestIDs), int64(len(r.RequestIDs))+r.RequestIDsOmitted, last.Format(time.RFC3339Nano))
		}
		m.header("time", "request id", "provider", "model", "status", "charged (USD)")
		for _, x := range r.RequestIDs {
			m.row(stamp(x.Time), cell(x.RequestID), cell(x.Provider), cell(x.Model), strconv.Itoa(x.Status), usd(x.Charged))
		}
	}

	m.printf("\n## What hardcap cannot see\n\n%s\n", r.NotSeen)
	if m.err != nil {
		return m.err
	}
	return m.w.Flush()
}

func limitOf(n int) string {
	if n == 0 {
		return "no limit"
	}
	return strconv.Itoa(n)
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}

func list(s []string) string {
	if len(s) == 0 {
		return "any"
	}
	out := make([]string, len(s))
	for i, x := range s {
		out[i] = cell(x)
	}
	return strings.Join(out, ", ")
}
