package admin

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
)

// TestAppendRecordJSON: the export's encoder writes what json.Marshal
// writes, for plain records and for every kind of string and number
// json.Marshal treats specially.
func TestAppendRecordJSON(t *testing.T) {
	plain := budget.Record{
		Time: time.Date(2026, 12, 1, 10, 11, 12, 123456789, time.UTC), ReservationID: "r000000002s",
		Request: budget.Request{TokenID: "tok_abc", Project: "web", Provider: "openai", Model: "gpt-4o-mini", Route: "/v1/chat/completions", ClientIP: "127.0.0.1"},
		Status:  200, Outcome: budget.Complete,
		Usage:    budget.Usage{InputTokens: 12, CacheReadTokens: 3, CacheWriteTokens: 4, CacheWrite1hTokens: 5, OutputTokens: 6, ReasoningTokens: 7},
		Reserved: 123456789, Charged: 1, LatencyMS: 42,
	}
	tests := map[string]func(r *budget.Record){
		"plain":                func(*budget.Record) {},
		"zero usage and money": func(r *budget.Record) { r.Usage, r.Reserved, r.Charged = budget.Usage{}, 0, 0 },
		"negative and large":   func(r *budget.Record) { r.Charged, r.Reserved, r.LatencyMS, r.Status = -1500, 1<<62, -3, -1 },
		"empty strings":        func(r *budget.Record) { r.Request = budget.Request{} },
		"escapes":              func(r *budget.Record) { r.Model, r.Route = "a\"b\\c\n\t\x01", "<script>&" },
		"unicode and invalid":  func(r *budget.Record) { r.Model, r.ClientIP = "modèle\u2028日本", "\xff\xfe" },
		"zero time":            func(r *budget.Record) { r.Time = time.Time{} },
		"whole second":         func(r *budget.Record) { r.Time = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) },
		"other zone":           func(r *budget.Record) { r.Time = r.Time.In(time.FixedZone("x", -5*3600)) },
		"year out of range":    func(r *budget.Record) { r.Time = time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC) },
		"key ledger fields": func(r *budget.Record) {
			r.UserAgent, r.OldSecret, r.RequestID = "OpenAI/Python 1.99.9 <x&y>", true, "req_0123abcd"
		},
		"old secret alone": func(r *budget.Record) { r.OldSecret = true },
		"request id alone": func(r *budget.Record) { r.RequestID = "req_\u2028\"" },
	}
	for name, edit := range tests {
		t.Run(name, func(t *testing.T) {
			r := plain
			edit(&r)
			want, err := json.Marshal(r)
			got := appendRecordJSON([]byte("x"), r)
			if err != nil {
				if string(got) != "x" {
					t.Fatalf("json.Marshal fails (%v), got %s", err, got)
				}
				return
			}
			if string(got[1:]) != string(want) {
				t.Fatalf("got  %s\nwant %s", got[1:], want)
			}
		})
	}
}

// TestCSV_ClientTextIsNotAFormula: a user agent that a spreadsheet would
// run as a formula is written with a leading apostrophe; plain text stays.
func TestCSV_ClientTextIsNotAFormula(t *testing.T) {
	for in, want := range map[string]string{
		"=HYPERLINK(\"http://x\")": "'=HYPERLINK(\"http://x\")",
		"+1":                       "'+1",
		"-cmd":                     "'-cmd",
		"@SUM(A1)":                 "'@SUM(A1)",
		"\tx":                      "'\tx",
		"curl/8.5":                 "curl/8.5",
		"":                         "",
	} {
		if got := cell(in); got != want {
			t.Errorf("cell(%q) = %q; want %q", in, got, want)
		}
	}
	var rec budget.Record
	rec.UserAgent = "=1+1"
	if row := csvRow(rec); row[len(row)-3] != "'=1+1" {
		t.Errorf("the user agent column is %q", row[len(row)-3])
	}
}
