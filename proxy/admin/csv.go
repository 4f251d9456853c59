package admin

import (
	"encoding/csv"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
)

// csvHeader names the columns of `hardcap usage --csv`.
var csvHeader = []string{
	"time", "id", "token_id", "project", "provider", "model", "route", "client_ip", "status", "outcome",
	"input_tokens", "cache_read_tokens", "cache_write_tokens", "cache_write_1h_tokens", "output_tokens", "reasoning_tokens",
	"reserved_usd", "charged_usd", "latency_ms",
	// Added with the key ledger, after the others so that a reader by
	// position still finds those where they were.
	"user_agent", "old_secret", "request_id",
}

// WriteCSV writes usage records as CSV with a header line.
func WriteCSV(w io.Writer, recs []budget.Record) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(csvHeader); err != nil {
		return err
	}
	for _, r := range recs {
		if err := cw.Write(csvRow(r)); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func csvRow(r budget.Record) []string {
	i := func(n int64) string { return strconv.FormatInt(n, 10) }
	u := r.Usage
	return []string{
		r.Time.UTC().Format(time.RFC3339Nano), r.ReservationID, r.TokenID, r.Project, r.Provider, r.Model, r.Route, r.ClientIP,
		strconv.Itoa(r.Status), string(r.Outcome),
		i(u.InputTokens), i(u.CacheReadTokens), i(u.CacheWriteTokens), i(u.CacheWrite1hTokens), i(u.OutputTokens), i(u.ReasoningTokens),
		r.Reserved.String(), r.Charged.String(), i(r.LatencyMS),
		cell(r.UserAgent), strconv.FormatBool(r.OldSecret), cell(r.RequestID),
	}
}

// cell makes text a client chose (its user agent, a provider's request id)
// safe to open in a spreadsheet: one that starts with =, +, -, @, a tab or
// a carriage return would be read as a formula there, so it gets a leading
// apostrophe (the usual defence; the JSON export keeps the text as sent).
func cell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}

// csvUsage streams the usage answer as CSV (see WriteCSV).
type csvUsage struct{ cw *csv.Writer }

func (*csvUsage) contentType() string { return "text/csv; charset=utf-8" }

func (c *csvUsage) head(w io.Writer, _ storage.Usage) error {
	c.cw = csv.NewWriter(w)
	return c.cw.Write(csvHeader)
}

func (c *csvUsage) record(_ io.Writer, r budget.Record) error { return c.cw.Write(csvRow(r)) }

func (c *csvUsage) end(io.Writer) error {
	c.cw.Flush()
	return c.cw.Error()
}
