package admin

import (
	"strings"
	"testing"
	"time"
)

// auditActions lists "action kind target" of each entry of a log answer.
func auditActions(t *testing.T, body string) []string {
	t.Helper()
	var out []string
	for _, en := range field(t, body, "entries").([]any) {
		m := en.(map[string]any)
		target, _ := m["target"].(string)
		out = append(out, m["action"].(string)+" "+m["kind"].(string)+" "+target)
	}
	return out
}

// TestAdmin_UnknownTargetsAreNotFound: a log or token list naming a token
// or project that does not exist is answered 404 not_found with a message
// naming it, not an empty success; one that exists, or existed (a deleted
// project's history stays), is answered 200 even when nothing is selected.
func TestAdmin_UnknownTargetsAreNotFound(t *testing.T) {
	e := newAdminEnv(t)
	e.do("POST", "/admin/v1/projects", `{"name":"web"}`)
	e.do("POST", "/admin/v1/projects", `{"name":"gone"}`)
	_, body := e.do("POST", "/admin/v1/tokens", `{"project":"gone"}`)
	goneTok := field(t, body, "id").(string)
	if status, body := e.do("DELETE", "/admin/v1/projects/gone?revoke_tokens=true", ""); status != 200 {
		t.Fatalf("delete: %d %s", status, body)
	}
	// The admin API's clock a day ahead of the database's: since 1s
	// selects nothing.
	e.now = time.Now().Add(24 * time.Hour)
	tests := []struct {
		name, path string
		status     int
		says       string
	}{
		{"log of an unknown token", "/admin/v1/log?token=tok_nope00000000", 404, "token not found: tok_nope00000000"},
		{"log of an unknown project", "/admin/v1/log?project=nope", 404, "project not found: nope"},
		{"token list of an unknown project", "/admin/v1/tokens?project=nope", 404, "project not found: nope"},
		{"log of a deleted project", "/admin/v1/log?project=gone", 200, `"delete"`},
		{"token list of a deleted project", "/admin/v1/tokens?project=gone", 200, goneTok},
		{"token list of a project without tokens", "/admin/v1/tokens?project=web", 200, `"tokens":[]`},
		{"log of a known token, nothing since", "/admin/v1/log?token=" + goneTok + "&since=1s", 200, `"entries":[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.do("GET", tt.path, "")
			if status != tt.status || !strings.Contains(strings.Join(strings.Fields(body), ""), strings.Join(strings.Fields(tt.says), "")) {
				t.Fatalf("got %d %s, want %d with %q", status, body, tt.status, tt.says)
			}
			if tt.status == 404 && !strings.Contains(body, `"not_found"`) {
				t.Errorf("code: %s", body)
			}
		})
	}
}

// TestAuditLog_ProjectIncludesItsTokens: log?project=NAME holds the
// project's own entries and those of its tokens (created, changed, killed,
// rotated, revoked), not another project's; limit keeps the newest.
func TestAuditLog_ProjectIncludesItsTokens(t *testing.T) {
	e := newAdminEnv(t)
	e.do("POST", "/admin/v1/projects", `{"name":"web"}`)
	e.do("POST", "/admin/v1/projects", `{"name":"ops"}`)
	_, body := e.do("POST", "/admin/v1/tokens", `{"project":"web"}`)
	mine := field(t, body, "id").(string)
	_, body = e.do("POST", "/admin/v1/tokens", `{"project":"ops"}`)
	other := field(t, body, "id").(string)
	e.do("PATCH", "/admin/v1/tokens/"+mine, `{"rpm":5}`)
	e.do("POST", "/admin/v1/kill", `{"token":"`+mine+`"}`)
	e.do("POST", "/admin/v1/kill", `{"token":"`+other+`"}`)
	e.do("DELETE", "/admin/v1/tokens/"+mine, "")

	_, body = e.do("GET", "/admin/v1/log?project=web", "")
	got := strings.Join(auditActions(t, body), "; ")
	want := strings.Join([]string{"create project web", "create token " + mine, "change token " + mine, "kill token " + mine, "revoke token " + mine}, "; ")
	if got != want {
		t.Errorf("log of project web:\n got %s\nwant %s", got, want)
	}
	_, body = e.do("GET", "/admin/v1/log?project=web&limit=2", "")
	if got := strings.Join(auditActions(t, body), "; "); got != "kill token "+mine+"; revoke token "+mine {
		t.Errorf("limit 2: got %s, want the newest two", got)
	}
}

// TestUpdateToken_RevokedIsAConflict: a change of a revoked token is
// refused 409 invalid_request saying it is revoked, never 401 (which reads
// as a refused admin token), and changes nothing.
func TestUpdateToken_RevokedIsAConflict(t *testing.T) {
	e := newAdminEnv(t)
	e.do("POST", "/admin/v1/projects", `{"name":"web"}`)
	_, body := e.do("POST", "/admin/v1/tokens", `{"project":"web"}`)
	id := field(t, body, "id").(string)
	e.do("DELETE", "/admin/v1/tokens/"+id, "")
	status, body := e.do("PATCH", "/admin/v1/tokens/"+id, `{"rpm":5}`)
	if status != 409 || field(t, body, "error.code") != "invalid_request" || !strings.Contains(body, id+" is revoked") {
		t.Fatalf("change of a revoked token: got %d %s, want 409 invalid_request saying it is revoked", status, body)
	}
	if _, body := e.do("GET", "/admin/v1/tokens/"+id, ""); strings.Contains(body, `"rpm"`) {
		t.Errorf("the refused change was applied: %s", body)
	}
}

// TestAdmin_MistakeMessages: each refusal says what was wrong in its own
// words: an owner is not a "name", a per-request limit of zero or below
// says what is accepted and that unlimited (not leaving it out) removes the
// limit, and a rotation of a revoked token says so, not "invalid rotation
// period".
func TestAdmin_MistakeMessages(t *testing.T) {
	e := newAdminEnv(t)
	e.do("POST", "/admin/v1/projects", `{"name":"web"}`)
	_, body := e.do("POST", "/admin/v1/tokens", `{"project":"web"}`)
	id := field(t, body, "id").(string)
	_, body = e.do("POST", "/admin/v1/tokens", `{"project":"web"}`)
	revoked := field(t, body, "id").(string)
	e.do("DELETE", "/admin/v1/tokens/"+revoked, "")
	const maxReq = `is not an amount above zero: give USD such as 0.25 (at most 9 decimal places), or unlimited for no per-request limit`
	tests := []struct {
		name, method, path, body string
		status                   int
		want                     string
		not                      []string
	}{
		{"owner with a control character", "PATCH", "/admin/v1/tokens/" + id, `{"owner":"a\u0007b"}`, 400,
			"invalid text: a token owner must not hold control characters", []string{"name"}},
		{"create: purpose with a control character", "POST", "/admin/v1/tokens", `{"project":"web","purpose":"x\ny"}`, 400,
			"invalid text: a token purpose must not hold control characters", []string{"name"}},
		{"set: max_request_usd 0", "PATCH", "/admin/v1/tokens/" + id, `{"max_request_usd":"0"}`, 400,
			`max_request_usd \"0\" ` + maxReq, []string{"leave it out"}},
		{"set: max_request_usd -1", "PATCH", "/admin/v1/tokens/" + id, `{"max_request_usd":"-1"}`, 400,
			`max_request_usd \"-1\" ` + maxReq, []string{"non-negative"}},
		{"create: max_request_usd 0", "POST", "/admin/v1/tokens", `{"project":"web","max_request_usd":"0"}`, 400,
			`max_request_usd \"0\" ` + maxReq, []string{"leave it out"}},
		{"create: max_request_usd abc", "POST", "/admin/v1/tokens", `{"project":"web","max_request_usd":"abc"}`, 400,
			`max_request_usd \"abc\" ` + maxReq, nil},
		{"rotate a revoked token", "POST", "/admin/v1/tokens/" + revoked + "/rotate", "", 409,
			"token cannot be changed: token " + revoked + " is revoked, and a revoked token cannot be rotated", []string{"rotation period"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := e.do(tt.method, tt.path, tt.body)
			if status != tt.status || !strings.Contains(body, tt.want) {
				t.Fatalf("got %d %s, want %d with %q", status, body, tt.status, tt.want)
			}
			for _, n := range tt.not {
				if strings.Contains(field(t, body, "error.message").(string), n) {
					t.Errorf("the message says %q: %s", n, body)
				}
			}
		})
	}
	// An expired token's rotation is checked by RotateToken's own test,
	// whose database clock is injected.
}
