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
