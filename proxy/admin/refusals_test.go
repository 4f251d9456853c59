package admin

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
)

// TestIncident_ScopesRefusalsAndProviderKeys: the report's token has its
// rate, in-flight and per-request limits and its rotation; its refusals are
// the ledger's (those noted before the report are committed by it); the
// provider keys' entries show the key in force and its rotation; and JSON's
// since is present without --since.
func TestIncident_ScopesRefusalsAndProviderKeys(t *testing.T) {
	e := newIncidentEnv(t, incidentRecs)
	ctx := context.Background()
	rpm, conc, maxReq, every := 60, 4, budget.Money(250_000_000), 30*24*time.Hour
	if _, err := e.db.UpdateToken(ctx, e.tok.ID, storage.TokenChange{RPM: &rpm, MaxConcurrent: &conc, MaxRequest: &maxReq, RotateEvery: &every}); err != nil {
		t.Fatal(err)
	}
	for _, at := range []time.Time{e.now.Add(-5 * time.Hour), e.now.Add(-2 * time.Hour)} {
		if _, err := e.db.SeeProviderKey(ctx, storage.ProviderKeySeen{Provider: "openai", Key: "sk-" + at.Format("150405") + strings.Repeat("k", 40), SourceKind: "env", Source: "env:OPENAI_API_KEY", Time: at}); err != nil {
			t.Fatal(err)
		}
	}
	e.db.NoteRefusal(e.tok.ID, "kill_switch", "203.0.113.9", e.now.Add(-30*time.Minute))
	e.db.NoteRefusal(e.tok.ID, "kill_switch", "203.0.113.9", e.now.Add(-20*time.Minute))

	for _, query := range []string{"", "&since=3h"} {
		code, body := e.do("GET", "/admin/v1/incident?token="+e.tok.ID+query, "")
		if code != http.StatusOK {
			t.Fatalf("incident%s: %d %s", query, code, body)
		}
		var raw map[string]json.RawMessage
		if err := json.Unmarshal([]byte(body), &raw); err != nil {
			t.Fatal(err)
		}
		if _, ok := raw["since"]; !ok {
			t.Errorf("incident%s: no since in %s", query, body)
		}
		rep := e.report(query)
		tk := rep.Token
		if tk.RPM != 60 || tk.MaxConcurrent != 4 || tk.MaxRequest == nil || *tk.MaxRequest != maxReq || tk.RotateEvery != "30d" || tk.RotateBy.IsZero() {
			t.Errorf("incident%s: token got %+v", query, tk)
		}
		if len(rep.Refusals) != 1 || rep.Refusals[0].Code != "kill_switch" || rep.Refusals[0].Count != 2 || rep.Refusals[0].LastIP != "203.0.113.9" {
			t.Errorf("incident%s: refusals got %+v", query, rep.Refusals)
		}
		// With since=3h the first sighting (5h ago) is the key in force at
		// the window's start; the rotation 2h ago is in the window.
		if len(rep.ProviderKeys) != 2 || rep.ProviderKeys[0].Action != "create" || rep.ProviderKeys[1].Action != "rotate" || !strings.Contains(rep.ProviderKeys[1].Detail, "->") {
			t.Errorf("incident%s: provider keys got %+v", query, rep.ProviderKeys)
		}
	}

	// token show has the same counts.
	code, body := e.do("GET", "/admin/v1/tokens/"+e.tok.ID, "")
	if code != http.StatusOK {
		t.Fatalf("token show: %d %s", code, body)
	}
	var v TokenView
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatal(err)
	}
	if v.Refusals == nil || len(v.Refusals.Codes) != 1 || v.Refusals.Codes[0].Count != 2 || len(v.Refusals.IPs) != 1 {
		t.Errorf("token show refusals: got %+v", v.Refusals)
	}
}
