package main

import (
	"strings"
	"testing"
)

// TestStatus_SettlementsWaiting: status shows how many settlements wait
// to be written and the money their reservations hold, in the CLI's text
// and in the API's JSON (a count and a decimal USD string).
func TestStatus_SettlementsWaiting(t *testing.T) {
	s := startServer(t, "")
	if out := s.mustCLI("status"); !strings.Contains(out, "settlements waiting to be written: 0 (0.000000 USD held)") {
		t.Fatalf("status got %q", out)
	}
	var st map[string]any
	decodeJSON(t, s.mustCLI("status", "--json"), &st)
	if st["settlements_waiting"] != float64(0) || st["settlements_waiting_usd"] != "0.000000" {
		t.Fatalf("status --json got settlements_waiting %v, settlements_waiting_usd %v; want 0 and \"0.000000\"", st["settlements_waiting"], st["settlements_waiting_usd"])
	}
}

// TestStatus_Writer: status reports the ledger writer's commits and commit
// latencies, in text and in JSON.
func TestStatus_Writer(t *testing.T) {
	s := startServer(t, "")
	s.mustCLI("project", "create", "web", "--budget", "5")
	out := s.mustCLI("status")
	if !strings.Contains(out, "ledger writer: ") || !strings.Contains(out, "commit time mean ") {
		t.Fatalf("status got %q, want a ledger writer line", out)
	}
	var st struct {
		Writer struct {
			Commits   uint64            `json:"commits"`
			Ops       uint64            `json:"ops"`
			P99       int64             `json:"commit_p99_us"`
			BatchSize map[string]uint64 `json:"batch_size"`
		} `json:"writer"`
	}
	decodeJSON(t, s.mustCLI("status", "--json"), &st)
	var batches uint64
	for _, n := range st.Writer.BatchSize {
		batches += n
	}
	if st.Writer.Commits == 0 || st.Writer.Ops < st.Writer.Commits || st.Writer.P99 <= 0 || batches != st.Writer.Commits {
		t.Fatalf("status --json writer = %+v", st.Writer)
	}
}
