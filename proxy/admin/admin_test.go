package admin

import (
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"30d", 30 * 24 * time.Hour, false},
		{"0d", 0, false},
		{"90m", 90 * time.Minute, false},
		{"720h", 720 * time.Hour, false},
		{"1.5d", 0, true},
		{"-1d", 0, true},
		{"d", 0, true},
		{"soon", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseDuration(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v (error %v)", tt.in, got, err, tt.want, tt.err)
		}
	}
}

func TestWriteCSV(t *testing.T) {
	var sb strings.Builder
	rec := budget.Record{
		Time:          time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC),
		ReservationID: "r01",
		Request:       budget.Request{TokenID: "tok_a", Project: "web", Provider: "openai", Model: "gpt-4o-mini", Route: "POST /v1/chat/completions", ClientIP: "127.0.0.1"},
		Status:        200,
		Outcome:       budget.Complete,
		Usage:         budget.Usage{InputTokens: 10, OutputTokens: 5, CacheReadTokens: 2},
		Reserved:      450_000,
		Charged:       4_500,
		LatencyMS:     12,
	}
	if err := WriteCSV(&sb, []budget.Record{rec}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(sb.String()), "\n")
	want := "2026-11-26T12:00:00Z,r01,tok_a,web,openai,gpt-4o-mini,POST /v1/chat/completions,127.0.0.1,200,complete,10,2,0,0,5,0,0.000450,0.0000045,12,,false,"
	if len(lines) != 2 || lines[1] != want {
		t.Fatalf("got %q, want header and %q", lines, want)
	}
	// The key ledger's columns come last.
	rec.UserAgent, rec.OldSecret, rec.RequestID = "curl/8.5.0, like \"x\"", true, "req_0123abcd"
	sb.Reset()
	if err := WriteCSV(&sb, []budget.Record{rec}); err != nil {
		t.Fatal(err)
	}
	lines = strings.Split(strings.TrimSpace(sb.String()), "\n")
	want = strings.TrimSuffix(want, ",,false,") + `,"curl/8.5.0, like ""x""",true,req_0123abcd`
	if len(lines) != 2 || lines[1] != want || !strings.HasSuffix(lines[0], ",latency_ms,user_agent,old_secret,request_id") {
		t.Fatalf("got %q, want a header ending in the new columns and %q", lines, want)
	}
}
