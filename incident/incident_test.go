package incident

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
)

var t0 = time.Date(2026, 11, 30, 14, 5, 0, 0, time.UTC)

// rec is a usage record of tok_a at t0 plus at.
func rec(at time.Duration, ip, ua, model string, status int, out budget.Outcome, charged budget.Money, reqID string) budget.Record {
	return budget.Record{
		Time: t0.Add(at), ReservationID: fmt.Sprintf("r%d", at),
		Request: budget.Request{TokenID: "tok_a", Project: "web", Provider: "openai", Model: model, Route: "POST /v1/chat/completions", ClientIP: ip, UserAgent: ua},
		Status:  status, Outcome: out, Charged: charged, Reserved: charged * 10, RequestID: reqID,
	}
}

func build(t *testing.T, recs []budget.Record, actions []Action) Report {
	t.Helper()
	b := New(Token{ID: "tok_a", Project: "web", State: "killed"}, time.Time{}, t0.Add(48*time.Hour))
	b.SetTotals(int64(len(recs)), 0, 0)
	var sum budget.Money
	for _, r := range recs {
		if err := b.Add(r); err != nil {
			t.Fatal(err)
		}
		sum += r.Charged
	}
	b.SetTotals(int64(len(recs)), sum, 7)
	rep, err := b.Report(actions)
	if err != nil {
		t.Fatal(err)
	}
	return rep
}

func TestBuilder_Aggregates(t *testing.T) {
	old := rec(2*time.Hour+time.Minute, "203.0.113.9", "curl/8.5", "gpt-4o", 200, budget.Complete, 5_000, "req_3")
	old.OldSecret = true
	recs := []budget.Record{
		rec(0, "127.0.0.1", "openai-python/1.0", "gpt-4o-mini", 200, budget.Complete, 1_000, "req_1"),
		rec(10*time.Minute, "127.0.0.1", "openai-python/1.0", "gpt-4o-mini", 200, budget.Complete, 2_000, ""),
		rec(2*time.Hour, "203.0.113.9", "curl/8.5", "gpt-4o", 402, budget.NotSent, 0, ""),
		old,
		rec(3*time.Hour, "203.0.113.9", "curl/8.5", "gpt-4o", 200, budget.UsageMissing, 9_000, "req_4"),
	}
	actions := []Action{
		{Time: t0.Add(4 * time.Hour), Actor: "admin:root", Action: "revoke", Kind: "token", Target: "tok_a"},
		{Time: t0.Add(3*time.Hour + 30*time.Minute), Actor: "admin:root", Action: "kill", Kind: "project", Target: "web"},
	}
	rep := build(t, recs, actions)

	s := rep.Summary
	if s.Requests != 5 || s.Detailed != 5 || s.Spent != 17_000 || s.Reserved != 7 || s.ErrorRequests != 2 || s.OldSecretRequests != 1 || s.WithRequestID != 3 {
		t.Fatalf("summary got %+v", s)
	}
	if !s.FirstUse.Equal(t0) || !s.LastUse.Equal(t0.Add(3*time.Hour)) {
		t.Fatalf("first/last use got %s / %s", s.FirstUse, s.LastUse)
	}
	wantHours := []Hour{
		{t0.Truncate(time.Hour), 2, 3_000},
		{t0.Truncate(time.Hour).Add(2 * time.Hour), 2, 5_000},
		{t0.Truncate(time.Hour).Add(3 * time.Hour), 1, 9_000},
	}
	if len(rep.Hours) != len(wantHours) {
		t.Fatalf("hours got %+v, want %+v", rep.Hours, wantHours)
	}
	for i, h := range wantHours {
		if got := rep.Hours[i]; !got.Hour.Equal(h.Hour) || got.Requests != h.Requests || got.Spent != h.Spent {
			t.Errorf("hour %d got %+v, want %+v", i, got, h)
		}
	}
	if len(rep.Clients) != 2 {
		t.Fatalf("clients got %+v", rep.Clients)
	}
	c := rep.Clients[1]
	if c.IP != "203.0.113.9" || c.UserAgent != "curl/8.5" || c.Requests != 3 || c.Spent != 14_000 || c.OldSecret != 1 ||
		!c.First.Equal(t0.Add(2*time.Hour)) || !c.Last.Equal(t0.Add(3*time.Hour)) {
		t.Errorf("second client got %+v", c)
	}
	if len(rep.Models) != 2 || rep.Models[0].Model != "gpt-4o" || rep.Models[0].Spent != 14_000 || rep.Models[1].Requests != 2 {
		t.Errorf("models got %+v, want gpt-4o (most spent) first", rep.Models)
	}
	if len(rep.Routes) != 1 || rep.Routes[0].Requests != 5 {
		t.Errorf("routes got %+v", rep.Routes)
	}
	if len(rep.Errors) != 2 || rep.Errors[0].Status != 200 || rep.Errors[0].Outcome != "usage_missing" || rep.Errors[1].Status != 402 || rep.Errors[1].Outcome != "not_sent" {
		t.Errorf("errors got %+v, want 200 usage_missing then 402 not_sent", rep.Errors)
	}
	var ids []string
	for _, x := range rep.RequestIDs {
		ids = append(ids, x.RequestID)
	}
	if strings.Join(ids, ",") != "req_1,req_3,req_4" || rep.RequestIDsOmitted != 0 || rep.RequestIDs[2].Charged != 9_000 || rep.RequestIDs[2].Model != "gpt-4o" {
		t.Errorf("request ids got %+v", rep.RequestIDs)
	}
	if len(rep.Actions) != 2 || rep.Actions[0].Action != "kill" || rep.Actions[1].Action != "revoke" {
		t.Errorf("actions got %+v, want kill then revoke (by time)", rep.Actions)
	}
}

// TestBuilder_Bounds: past MaxRows distinct clients and MaxRequestIDs ids
// the report keeps the first ones and counts the rest, so its size does
// not grow with the records.
func TestBuilder_Bounds(t *testing.T) {
	extra := 5
	var recs []budget.Record
	for i := range MaxRows + extra {
		recs = append(recs, rec(time.Duration(i)*time.Second, fmt.Sprintf("10.0.%d.%d", i/256, i%256), "bot", "gpt-4o-mini", 200, budget.Complete, 10, fmt.Sprintf("req_%d", i)))
	}
	rep := build(t, recs, nil)
	if len(rep.Clients) != MaxRows || rep.Clients[0].IP != "10.0.0.0" {
		t.Fatalf("got %d clients starting %+v, want the first %d", len(rep.Clients), rep.Clients[0], MaxRows)
	}
	o := rep.ClientsOmitted
	if o == nil || o.Rows != int64(extra) || o.Requests != int64(extra) || o.Spent != budget.Money(10*extra) || !o.First.Equal(recs[MaxRows].Time) {
		t.Fatalf("clients omitted got %+v, want %d rows", o, extra)
	}
	if rep.ModelsOmitted != nil || rep.RoutesOmitted != nil || rep.ErrorsOmitted != nil {
		t.Fatalf("tables within their bound have an omitted row")
	}
	if len(rep.RequestIDs) != MaxRequestIDs || rep.RequestIDs[0].RequestID != "req_0" || rep.RequestIDsOmitted != int64(MaxRows+extra-MaxRequestIDs) {
		t.Fatalf("got %d request ids, %d omitted", len(rep.RequestIDs), rep.RequestIDsOmitted)
	}
	var md strings.Builder
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(md.String(), fmt.Sprintf("%d more clients (past the first %d) are not listed", extra, MaxRows)) {
		t.Errorf("the Markdown does not say clients were left out")
	}
}

func TestBuilder_Overflow(t *testing.T) {
	b := New(Token{ID: "tok_a"}, time.Time{}, t0)
	r := rec(0, "127.0.0.1", "", "m", 200, budget.Complete, math.MaxInt64, "")
	if err := b.Add(r); err != nil {
		t.Fatal(err)
	}
	if err := b.Add(r); !errors.Is(err, budget.ErrOverflow) {
		t.Fatalf("second add got %v, want ErrOverflow", err)
	}
	if _, err := b.Report(nil); !errors.Is(err, budget.ErrOverflow) {
		t.Fatalf("report got %v, want ErrOverflow", err)
	}
}

// TestReport_JSON: the field names machines read, money as decimal strings,
// empty tables as [] rather than null.
func TestReport_JSON(t *testing.T) {
	rep := build(t, []budget.Record{rec(0, "127.0.0.1", "ua", "gpt-4o-mini", 200, budget.Complete, 450_000, "req_1")}, nil)
	raw, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"generated", "token", "summary", "hours", "clients", "models", "routes", "errors", "admin_actions", "request_ids", "request_ids_omitted", "not_seen", "not_recorded"} {
		if _, ok := v[k]; !ok {
			t.Errorf("no %q in %s", k, raw)
		}
	}
	if v["errors"] == nil || v["admin_actions"] == nil {
		t.Errorf("an empty table is null: %s", raw)
	}
	sum := v["summary"].(map[string]any)
	if sum["spent_usd"] != "0.000450" || sum["first_use"] != "2026-11-30T14:05:00Z" {
		t.Errorf("summary got %v", sum)
	}
	c := v["clients"].([]any)[0].(map[string]any)
	if c["ip"] != "127.0.0.1" || c["user_agent"] != "ua" || c["spent_usd"] != "0.000450" || c["first_seen"] == nil || c["last_seen"] == nil || c["requests"] != 1.0 {
		t.Errorf("client got %v", c)
	}
	id := v["request_ids"].([]any)[0].(map[string]any)
	if id["request_id"] != "req_1" || id["charged_usd"] != "0.000450" || id["model"] != "gpt-4o-mini" {
		t.Errorf("request id got %v", id)
	}
}

// TestWriteMarkdown_Cells: a user agent holding table syntax, a line break
// or HTML stays one cell of text, and a long one is clipped.
func TestWriteMarkdown_Cells(t *testing.T) {
	ua := "evil|agent\n| injected | row |<script>alert(1)</script>" + strings.Repeat("x", 1000)
	rep := build(t, []budget.Record{rec(0, "127.0.0.1", ua, "gpt-4o-mini", 200, budget.Complete, 1, "")}, nil)
	var md strings.Builder
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	out := md.String()
	var row string
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "| 127.0.0.1 |") {
			if row != "" {
				t.Fatalf("two client rows:\n%s", out)
			}
			row = line
		}
	}
	if row == "" {
		t.Fatalf("no client row:\n%s", out)
	}
	if strings.Contains(out, "<script>") || strings.Contains(out, "\n| injected") {
		t.Errorf("the user agent's markup got through:\n%s", row)
	}
	if !strings.Contains(row, `evil\|agent \| injected \| row \|\<script\>`) {
		t.Errorf("the user agent is not escaped as text: %s", row)
	}
	if n := strings.Count(row, "x"); n > cellLen {
		t.Errorf("the user agent is not clipped: %d x's in the row", n)
	}
	if got := strings.Count(row, " | "); got != 6 {
		t.Errorf("the client row has %d cell separators, want 6 (7 cells): %s", got, row)
	}
}

func TestWriteMarkdown_Sections(t *testing.T) {
	b := New(Token{ID: "tok_a", Project: "web", State: "revoked"}, t0, t0.Add(time.Hour))
	b.SetTotals(3, 30, 0)
	if err := b.Add(rec(time.Minute, "127.0.0.1", "ua", "gpt-4o-mini", 200, budget.Complete, 10, "")); err != nil {
		t.Fatal(err)
	}
	rep, err := b.Report([]Action{{Time: t0, Actor: "admin", Action: "kill", Kind: "all"}})
	if err != nil {
		t.Fatal(err)
	}
	var md strings.Builder
	if err := rep.WriteMarkdown(&md); err != nil {
		t.Fatal(err)
	}
	out := md.String()
	for _, want := range []string{
		"# hardcap incident report: token tok_a", "Window: from 2026-11-30T14:05:00Z to 2026-11-30T15:05:00Z.",
		"## Token", "| state | revoked |", "## Summary", "- Requests: 3, spent 0.00000003 USD",
		"2 of these requests are older than the usage retention",
		"## Requests and spend per hour", "| 2026-11-30 14:00 | 1 | 0.00000001 |",
		"## Clients", "## Models", "## Routes", "## Refusals and errors", "None: every request of the window completed.",
		"## Admin actions", "| 2026-11-30T14:05:00Z | admin | kill | all |", "## Provider request ids",
		"## What hardcap cannot see", NotSeen, NotRecorded,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no %q in:\n%s", want, out)
		}
	}
}
