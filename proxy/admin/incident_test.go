package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/incident"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
)

// incidentEnv is the admin API over a database with project web and one
// token whose records are recs.
type incidentEnv struct {
	*adminEnv
	tok    tokens.Token
	secret string
}

type incidentRec struct {
	ago       time.Duration // before e.now
	ip, ua    string
	model     string
	status    int
	outcome   budget.Outcome
	charged   budget.Money
	requestID string
}

func newIncidentEnv(t *testing.T, recs []incidentRec) *incidentEnv {
	t.Helper()
	e := &incidentEnv{adminEnv: newAdminEnv(t)}
	ctx := context.Background()
	if _, err := e.db.CreateProject(ctx, "web", budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	var err error
	if e.tok, e.secret, err = e.db.CreateToken(ctx, storage.TokenSpec{Project: "web", Name: "ci"}); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		req := budget.Request{TokenID: e.tok.ID, Project: "web", Provider: "openai", Model: r.model, Route: "POST /v1/chat/completions", ClientIP: r.ip, UserAgent: r.ua}
		res, err := e.db.Reserve(ctx, req, budget.Quote{MaxOutput: 1 << 20, OutputRate: 1_000_000})
		if err != nil {
			t.Fatal(err)
		}
		s := budget.Settlement{Charged: r.charged, Status: r.status, Outcome: r.outcome, Ended: e.now.Add(-r.ago), RequestID: r.requestID}
		if _, err := e.db.Settle(ctx, res.ID, s); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

var incidentRecs = []incidentRec{
	{3 * time.Hour, "127.0.0.1", "openai-python/1.0", "gpt-4o-mini", 200, budget.Complete, 1_000, "req_a"},
	{2 * time.Hour, "203.0.113.9", "curl/8.5", "gpt-4o", 200, budget.Complete, 50_000, "req_b"},
	{time.Hour, "203.0.113.9", "curl/8.5", "gpt-4o", 502, budget.UpstreamRefused, 0, ""},
}

func (e *incidentEnv) report(query string) incident.Report {
	e.t.Helper()
	code, body := e.do("GET", "/admin/v1/incident?token="+e.tok.ID+query, "")
	if code != http.StatusOK {
		e.t.Fatalf("incident%s: %d %s", query, code, body)
	}
	e.noSecrets(body)
	var rep incident.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		e.t.Fatalf("not a report: %v: %s", err, body)
	}
	return rep
}

// noSecrets fails when body holds the token's secret, its hash or the
// admin token.
func (e *incidentEnv) noSecrets(body string) {
	e.t.Helper()
	for name, s := range map[string]string{"token secret": e.secret, "token hash": e.tok.Hash, "admin token": testAdminToken} {
		if s != "" && strings.Contains(body, s) {
			e.t.Fatalf("the report holds the %s", name)
		}
	}
}

func TestIncident_Report(t *testing.T) {
	e := newIncidentEnv(t, incidentRecs)
	if code, body := e.do("POST", "/admin/v1/kill", `{"token":"`+e.tok.ID+`"}`); code != 200 {
		t.Fatalf("kill: %d %s", code, body)
	}
	rep := e.report("")
	if rep.Token.ID != e.tok.ID || rep.Token.Project != "web" || rep.Token.Name != "ci" || rep.Token.State != "killed" || rep.Token.Limit != nil {
		t.Errorf("token got %+v", rep.Token)
	}
	s := rep.Summary
	if s.Requests != 3 || s.Detailed != 3 || s.Spent != 51_000 || s.ErrorRequests != 1 {
		t.Errorf("summary got %+v", s)
	}
	if !s.FirstUse.Equal(e.now.Add(-3*time.Hour)) || !s.LastUse.Equal(e.now.Add(-time.Hour)) {
		t.Errorf("first/last use got %s / %s", s.FirstUse, s.LastUse)
	}
	if len(rep.Hours) != 3 || rep.Hours[1].Spent != 50_000 {
		t.Errorf("hours got %+v", rep.Hours)
	}
	if len(rep.Clients) != 2 || rep.Clients[0].IP != "127.0.0.1" || rep.Clients[1].IP != "203.0.113.9" || rep.Clients[1].Requests != 2 {
		t.Errorf("clients got %+v", rep.Clients)
	}
	if len(rep.Models) != 2 || rep.Models[0].Model != "gpt-4o" || len(rep.Routes) != 1 {
		t.Errorf("models %+v, routes %+v", rep.Models, rep.Routes)
	}
	if len(rep.Errors) != 1 || rep.Errors[0].Status != 502 || rep.Errors[0].Outcome != "upstream_refused" {
		t.Errorf("errors got %+v", rep.Errors)
	}
	if rep.NotSeen == "" {
		t.Error("the report does not say what hardcap cannot see")
	}

	// A window: a duration back from now, or a time.
	for _, since := range []string{"90m", e.now.Add(-90 * time.Minute).Format(time.RFC3339)} {
		w := e.report("&since=" + url.QueryEscape(since))
		if w.Summary.Requests != 1 || len(w.Clients) != 1 || !w.Since.Equal(e.now.Add(-90*time.Minute)) {
			t.Errorf("since %s: summary %+v, clients %+v, since %s", since, w.Summary, w.Clients, w.Since)
		}
	}

	req, _ := http.NewRequest("GET", e.srv.URL+"/admin/v1/incident?format=md&token="+e.tok.ID, nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var md bytes.Buffer
	if _, err := md.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/markdown") {
		t.Fatalf("md: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	e.noSecrets(md.String())
	for _, want := range []string{"# hardcap incident report: token " + e.tok.ID, "| state | killed |", "| 203.0.113.9 |", "| 502 | upstream_refused |"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("no %q in the Markdown:\n%s", want, md.String())
		}
	}
}

// TestIncident_UserAgentsAndRequestIDs: the clients table pairs each
// address with its user agent, and the provider's ids are listed in time
// order, as the records keep them.
func TestIncident_UserAgentsAndRequestIDs(t *testing.T) {
	e := newIncidentEnv(t, incidentRecs)
	rep := e.report("")
	if len(rep.Clients) != 2 || rep.Clients[0].UserAgent != "openai-python/1.0" || rep.Clients[1].UserAgent != "curl/8.5" {
		t.Errorf("clients got %+v", rep.Clients)
	}
	if len(rep.RequestIDs) != 2 || rep.RequestIDs[0].RequestID != "req_a" || rep.RequestIDs[1].RequestID != "req_b" || rep.RequestIDs[1].Charged != 50_000 || rep.RequestIDs[1].Model != "gpt-4o" {
		t.Errorf("request ids got %+v", rep.RequestIDs)
	}
}

// TestIncident_AdminActions: the kill of the token and of everything,
// with the credential that did them, are in the report.
func TestIncident_AdminActions(t *testing.T) {
	e := newIncidentEnv(t, incidentRecs)
	ctx := storage.WithActor(context.Background(), "admin:test")
	if err := e.db.SetKill(ctx, storage.KillTarget{Token: e.tok.ID}, true); err != nil {
		t.Fatal(err)
	}
	if err := e.db.SetKill(ctx, storage.KillTarget{}, true); err != nil {
		t.Fatal(err)
	}
	rep := e.report("")
	var got []string
	for _, a := range rep.Actions {
		got = append(got, a.Actor+" "+a.Action+" "+a.Kind)
	}
	// The project and token were made through storage directly, with no
	// admin credential in the context: "system".
	if strings.Join(got, ",") != "system create project,system create token,admin:test kill token,admin:test kill all" {
		t.Errorf("actions got %q", got)
	}
	if !rep.Token.AllKilled {
		t.Errorf("the report does not say everything is killed")
	}
}

func TestIncident_BadInput(t *testing.T) {
	e := newIncidentEnv(t, nil)
	long := strings.Repeat("9", 10_000)
	for _, tt := range []struct {
		name, query string
		status      int
		code        string
	}{
		{"no token", "", 400, "invalid_request"},
		{"unknown token", "?token=tok_nosuchtoken", 404, "not_found"},
		{"since not a duration", "?token=" + e.tok.ID + "&since=soon", 400, "invalid_request"},
		{"since negative", "?token=" + e.tok.ID + "&since=-1h", 400, "invalid_request"},
		{"since zero", "?token=" + e.tok.ID + "&since=0d", 400, "invalid_request"},
		{"since long", "?token=" + e.tok.ID + "&since=" + long, 400, "invalid_request"},
		{"format", "?token=" + e.tok.ID + "&format=pdf", 400, "invalid_request"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body := e.do("GET", "/admin/v1/incident"+tt.query, "")
			if code != tt.status || field(t, body, "error.code") != tt.code {
				t.Fatalf("got %d %s, want %d %s", code, body, tt.status, tt.code)
			}
			if len(body) > 500 {
				t.Fatalf("the error echoes the input: %d bytes", len(body))
			}
		})
	}
	// A token with no records has an empty report, not an error.
	rep := e.report("")
	if rep.Summary.Requests != 0 || len(rep.Hours) != 0 || rep.Clients == nil {
		t.Fatalf("empty report got %+v", rep)
	}
}

// TestIncident_ManyRecords: a token with more records than one read page
// and more distinct clients than a table holds: every record is counted
// once, across the pages, and the clients table keeps its bound with the
// rest counted.
func TestIncident_ManyRecords(t *testing.T) {
	n := incident.MaxRows + 200
	recs := make([]incidentRec, n)
	for i := range recs {
		recs[i] = incidentRec{time.Duration(n-i) * time.Second, fmt.Sprintf("10.1.%d.%d", i/256, i%256), "bot", "gpt-4o-mini", 200, budget.Complete, 3, ""}
	}
	e := newIncidentEnv(t, recs)
	rep := e.report("")
	s := rep.Summary
	if s.Requests != int64(n) || s.Detailed != int64(n) || s.Spent != budget.Money(3*n) {
		t.Fatalf("summary got %+v, want %d requests", s, n)
	}
	var hours int64
	for _, h := range rep.Hours {
		hours += h.Requests
	}
	if hours != int64(n) {
		t.Fatalf("the hours count %d requests, want %d", hours, n)
	}
	o := rep.ClientsOmitted
	if len(rep.Clients) != incident.MaxRows || rep.Clients[0].IP != "10.1.0.0" || o == nil || o.Rows != 200 || o.Requests != 200 {
		t.Fatalf("got %d clients, omitted %+v; want %d and 200 omitted", len(rep.Clients), o, incident.MaxRows)
	}
}
