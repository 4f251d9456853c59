package incident

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
)

// TestReport_RefusalsScopesAndProviderKeys: the report lists the token's
// refusals by code (those last seen before the window left out), its rate,
// in-flight and per-request limits and its rotation, and the provider keys'
// entry in force at the window's start with the changes in it; JSON's
// since is present without a window too.
func TestReport_RefusalsScopesAndProviderKeys(t *testing.T) {
	maxReq := budget.Money(250_000_000)
	tok := Token{ID: "tok_a", Project: "web", State: "killed", RPM: 60, MaxConcurrent: 4, MaxRequest: &maxReq,
		RotateEvery: "90d", RotateBy: t0.Add(90 * 24 * time.Hour)}
	refusals := []Refusal{
		{Code: "kill_switch", Count: 41, First: t0.Add(time.Hour), Last: t0.Add(5 * time.Hour), LastIP: "203.0.113.9"},
		{Code: "rate_limited", Count: 3, First: t0.Add(-72 * time.Hour), Last: t0.Add(-48 * time.Hour), LastIP: "127.0.0.1"},
	}
	ips := []RefusalIP{
		{IP: "203.0.113.9", First: t0.Add(time.Hour), Last: t0.Add(5 * time.Hour), Refusals: 41},
		{IP: "127.0.0.1", First: t0.Add(-72 * time.Hour), Last: t0.Add(-48 * time.Hour), Refusals: 3},
	}
	keys := []Action{
		{Time: t0.Add(2 * time.Hour), Actor: "admin:root", Action: "rotate", Kind: "provider_key", Target: "openai", Detail: "key changed: fingerprint aaaa1111 -> bbbb2222 from env:OPENAI_API_KEY"},
		{Time: t0.Add(-30 * 24 * time.Hour), Actor: "system", Action: "create", Kind: "provider_key", Target: "openai", Detail: "first key seen: fingerprint 0000ffff from env:OPENAI_API_KEY"},
		{Time: t0.Add(-10 * 24 * time.Hour), Actor: "system", Action: "rotate", Kind: "provider_key", Target: "openai", Detail: "key changed: fingerprint 0000ffff -> aaaa1111 from env:OPENAI_API_KEY"},
	}
	tests := []struct {
		name      string
		since     time.Time
		wantCodes []string
		wantKeys  []string
		wantSince string
	}{
		{"whole history", time.Time{}, []string{"kill_switch", "rate_limited"}, []string{"0000ffff from", "0000ffff -> aaaa1111", "aaaa1111 -> bbbb2222"}, `"since":"0001-01-01T00:00:00Z"`},
		{"since the leak", t0, []string{"kill_switch"}, []string{"0000ffff -> aaaa1111", "aaaa1111 -> bbbb2222"}, `"since":"2026-11-30T14:05:00Z"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := New(tok, tt.since, t0.Add(48*time.Hour))
			b.SetRefusals(refusals, ips, 2)
			b.SetProviderKeys(keys)
			rep, err := b.Report(nil)
			if err != nil {
				t.Fatal(err)
			}
			var codes []string
			var n int64
			for _, r := range rep.Refusals {
				codes = append(codes, r.Code)
				n += r.Count
			}
			if strings.Join(codes, ",") != strings.Join(tt.wantCodes, ",") || rep.Summary.RefusedRequests != n {
				t.Errorf("refusals: got %v (%d counted), want %v", codes, rep.Summary.RefusedRequests, tt.wantCodes)
			}
			if len(rep.ProviderKeys) != len(tt.wantKeys) {
				t.Fatalf("provider keys: got %+v, want %d entries", rep.ProviderKeys, len(tt.wantKeys))
			}
			for i, w := range tt.wantKeys {
				if !strings.Contains(rep.ProviderKeys[i].Detail, w) {
					t.Errorf("provider key %d: got %q, want %q", i, rep.ProviderKeys[i].Detail, w)
				}
			}
			raw, err := json.Marshal(rep)
			if err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{tt.wantSince, `"rpm":60`, `"max_concurrent":4`, `"max_request_usd":"0.250000"`, `"rotate_every":"90d"`, `"rotate_by":"2027-02-28T14:05:00Z"`, `"refusals_dropped":2`, `"last_ip":"203.0.113.9"`} {
				if !bytes.Contains(raw, []byte(want)) {
					t.Errorf("JSON lacks %s: %s", want, raw)
				}
			}
			var md bytes.Buffer
			if err := rep.WriteMarkdown(&md); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{
				"| requests per minute | 60 |", "| requests in flight | 4 |", "| max per request | 0.250000 USD |",
				"| rotate every | 90d |", "| rotate by | 2027-02-28T14:05:00Z |",
				"| kill_switch | 41 | 2026-11-30T15:05:00Z | 2026-11-30T19:05:00Z | 203.0.113.9 |",
				"| 203.0.113.9 | 41 |", fmt.Sprintf("%d refused before any money was reserved", n),
				"the server log has each of them", "## Provider keys", `aaaa1111 -\> bbbb2222`,
				"2 refusals (of any token)",
			} {
				if !strings.Contains(md.String(), want) {
					t.Errorf("Markdown lacks %q:\n%s", want, md.String())
				}
			}
		})
	}
}
