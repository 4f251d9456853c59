package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
)

// TestToken_LedgerEntry: create takes the ledger fields and scopes, show
// gives the SPEC §6 record with the client addresses, created_by is the
// admin credential's id, and no answer holds a hash.
func TestToken_LedgerEntry(t *testing.T) {
	e := newAdminEnv(t)
	if status, body := e.do("POST", "/admin/v1/projects", `{"name":"web"}`); status != 201 {
		t.Fatalf("project: %d %s", status, body)
	}
	status, body := e.do("POST", "/admin/v1/tokens", `{"project":"web","name":"bot","owner":"team-ml","purpose":"nightly eval",
		"routes":["chat","embeddings"],"ips":["10.0.0.0/8","2001:db8::1"],"max_concurrent":3,"max_request_usd":"0.5","rotate_every":"30d"}`)
	if status != 201 {
		t.Fatalf("create: %d %s", status, body)
	}
	id := field(t, body, "id").(string)
	sum := sha256.Sum256([]byte(testAdminToken))
	actor := "admin:" + hex.EncodeToString(sum[:4])
	for path, want := range map[string]any{
		"owner": "team-ml", "purpose": "nightly eval", "created_by": actor, "max_request_usd": "0.500000",
		"max_concurrent": 3.0, "rotate_every": "30d", "requests": 0.0,
	} {
		if got := field(t, body, path); got != want {
			t.Errorf("%s: got %v, want %v", path, got, want)
		}
	}
	if ips := field(t, body, "ips").([]any); len(ips) != 2 || ips[0] != "10.0.0.0/8" || ips[1] != "2001:db8::1/128" {
		t.Errorf("ips: got %v", ips)
	}
	if _, err := e.db.Reserve(context.Background(), budget.Request{TokenID: id, Model: "m", ClientIP: "10.0.0.7", UserAgent: "openai-python/1.0"},
		budget.Quote{MaxOutput: 1, OutputRate: 1}); err != nil {
		t.Fatal(err)
	}
	status, body = e.do("GET", "/admin/v1/tokens/"+id, "")
	if status != 200 {
		t.Fatalf("show: %d %s", status, body)
	}
	for path, want := range map[string]any{
		"last_used.ip": "10.0.0.7", "last_used.user_agent": "openai-python/1.0", "requests": 1.0, "state": "active", "project": "web",
	} {
		if got := field(t, body, path); got != want {
			t.Errorf("show %s: got %v, want %v", path, got, want)
		}
	}
	ips, _ := field(t, body, "client_ips").([]any)
	if len(ips) != 1 || ips[0].(map[string]any)["ip"] != "10.0.0.7" || ips[0].(map[string]any)["requests"] != 1.0 {
		t.Errorf("client_ips: got %v", ips)
	}
	for _, k := range []string{"rotate_by", "created", "routes", "models", "budget", "killed"} {
		if !strings.Contains(body, `"`+k+`"`) {
			t.Errorf("show lacks %s: %s", k, body)
		}
	}
	_, list := e.do("GET", "/admin/v1/tokens", "")
	_, rotated := e.do("POST", "/admin/v1/tokens/"+id+"/rotate", `{"grace":"1h"}`)
	for name, b := range map[string]string{"create": body, "list": list, "rotate": rotated, "show": body} {
		if strings.Contains(b, "hash") {
			t.Errorf("%s shows a hash: %s", name, b)
		}
	}
	if status, body := e.do("GET", "/admin/v1/tokens/tok_000000000000", ""); status != 404 {
		t.Errorf("show of an unknown id: %d %s", status, body)
	}
}

// TestToken_BadLedgerInput: each bad field is refused 400 and creates or
// changes nothing.
func TestToken_BadLedgerInput(t *testing.T) {
	e := newAdminEnv(t)
	e.do("POST", "/admin/v1/projects", `{"name":"web"}`)
	_, body := e.do("POST", "/admin/v1/tokens", `{"project":"web","owner":"ana"}`)
	id := field(t, body, "id").(string)
	for _, bad := range []string{
		`"ips":["example.com"]`, `"routes":["images"]`, `"max_request_usd":"0"`, `"max_request_usd":"-1"`,
		`"max_concurrent":-1`, `"rotate_every":"0s"`, `"rotate_every":"soon"`, `"owner":"a\u0007b"`,
		`"purpose":"` + strings.Repeat("p", 300) + `"`,
	} {
		if status, body := e.do("POST", "/admin/v1/tokens", `{"project":"web",`+bad+`}`); status != 400 {
			t.Errorf("create with %s: got %d %s, want 400", bad, status, body)
		}
		if status, body := e.do("PATCH", "/admin/v1/tokens/"+id, `{`+bad+`}`); status != 400 {
			t.Errorf("set with %s: got %d %s, want 400", bad, status, body)
		}
	}
	_, list := e.do("GET", "/admin/v1/tokens", "")
	if n := strings.Count(list, `"id"`); n != 1 {
		t.Errorf("got %d tokens, want the one good one", n)
	}
	if got := field(t, list, "tokens").([]any)[0].(map[string]any)["owner"]; got != "ana" {
		t.Errorf("owner changed to %v", got)
	}
	// An empty list clears a scope.
	e.do("PATCH", "/admin/v1/tokens/"+id, `{"routes":["chat"],"ips":["10.0.0.0/8"]}`)
	_, body = e.do("PATCH", "/admin/v1/tokens/"+id, `{"ips":[]}`)
	if ips := field(t, body, "ips").([]any); len(ips) != 0 || len(field(t, body, "routes").([]any)) != 1 {
		t.Errorf("after clearing ips: %s", body)
	}
}

// TestRotate_API: rotate answers the new secret once; bad rotations are
// refused with clear errors and change nothing; the audit log records the
// rotation under the admin credential.
func TestRotate_API(t *testing.T) {
	e := newAdminEnv(t)
	e.do("POST", "/admin/v1/projects", `{"name":"web"}`)
	_, body := e.do("POST", "/admin/v1/tokens", `{"project":"web"}`)
	id, old := field(t, body, "id").(string), field(t, body, "token").(string)
	tests := []struct {
		name, id, body string
		status         int
	}{
		{"negative grace", id, `{"grace":"-1h"}`, 400},
		{"bad grace", id, `{"grace":"soon"}`, 400},
		{"unknown id", "tok_000000000000", `{"grace":"1h"}`, 404},
	}
	for _, tt := range tests {
		if status, body := e.do("POST", "/admin/v1/tokens/"+tt.id+"/rotate", tt.body); status != tt.status || !strings.Contains(body, `"message"`) {
			t.Errorf("%s: got %d %s, want %d", tt.name, status, body, tt.status)
		}
	}
	if got, err := e.db.Authenticate(old); err != nil || got.OldSecret {
		t.Fatalf("a refused rotation changed the secret: old=%v, %v", got.OldSecret, err)
	}
	status, body := e.do("POST", "/admin/v1/tokens/"+id+"/rotate", "")
	fresh, _ := field(t, body, "token").(string)
	if status != 200 || !strings.HasPrefix(fresh, "hc_") || field(t, body, "id") != id || field(t, body, "rotating_until") == nil {
		t.Fatalf("rotate: %d %s", status, body)
	}
	if got, err := e.db.Authenticate(old); err != nil || !got.OldSecret {
		t.Errorf("old secret in the default grace: old=%v, %v", got.OldSecret, err)
	}
	if _, err := e.db.Authenticate(fresh); err != nil {
		t.Errorf("new secret: %v", err)
	}
	e.do("DELETE", "/admin/v1/tokens/"+id, "")
	if status, body := e.do("POST", "/admin/v1/tokens/"+id+"/rotate", `{"grace":"0"}`); status != 409 || !strings.Contains(body, "revoked") || strings.Contains(body, "rotation period") {
		t.Errorf("rotate of a revoked token: got %d %s, want 409 saying revoked", status, body)
	}
	_, log := e.do("GET", "/admin/v1/log?token="+id, "")
	var actions []string
	for _, en := range field(t, log, "entries").([]any) {
		m := en.(map[string]any)
		actions = append(actions, m["action"].(string))
		if !strings.HasPrefix(m["actor"].(string), "admin:") {
			t.Errorf("actor: %v", m["actor"])
		}
	}
	if strings.Join(actions, ",") != "create,rotate,revoke" {
		t.Errorf("log of the token: got %v, want create, rotate, revoke", actions)
	}
}

// TestAuditLog_API: the filters, and bad ones refused.
func TestAuditLog_API(t *testing.T) {
	e := newAdminEnv(t)
	e.do("POST", "/admin/v1/projects", `{"name":"web"}`)
	e.do("POST", "/admin/v1/projects", `{"name":"ops"}`)
	e.do("POST", "/admin/v1/kill", `{"project":"ops"}`)
	e.do("POST", "/admin/v1/projects", `{"name":"web"}`) // refused: exists
	_, body := e.do("GET", "/admin/v1/log?project=ops", "")
	if n := len(field(t, body, "entries").([]any)); n != 2 {
		t.Errorf("project ops: got %d entries, want create and kill: %s", n, body)
	}
	_, body = e.do("GET", "/admin/v1/log", "")
	if n := len(field(t, body, "entries").([]any)); n != 3 {
		t.Errorf("all: got %d entries, want 3 (the refused create writes none): %s", n, body)
	}
	// The admin API's clock is a day ahead of the database's: since 1h
	// from it selects nothing.
	e.now = time.Now().Add(24 * time.Hour)
	if _, body := e.do("GET", "/admin/v1/log?since=1h", ""); len(field(t, body, "entries").([]any)) != 0 {
		t.Errorf("since 1h a day later: %s", body)
	}
	for _, q := range []string{"since=soon", "token=tok_a&project=web", "limit=-1", "project=a%20b"} {
		if status, body := e.do("GET", "/admin/v1/log?"+q, ""); status != 400 {
			t.Errorf("%s: got %d %s, want 400", q, status, body)
		}
	}
}
