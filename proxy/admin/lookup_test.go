package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
)

func TestLookupTokens(t *testing.T) {
	e := newAdminEnv(t)
	if _, err := e.db.CreateProject(t.Context(), "web", budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	live, liveSecret, err := e.db.CreateToken(t.Context(), storage.TokenSpec{Project: "web", Name: "ci"})
	if err != nil {
		t.Fatal(err)
	}
	gone, goneSecret, err := e.db.CreateToken(t.Context(), storage.TokenSpec{Project: "web"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.RevokeToken(t.Context(), gone.ID); err != nil {
		t.Fatal(err)
	}
	unknown := tokens.HashOf("hc_unknown").String()
	body := fmt.Sprintf(`{"hashes": [%q, %q, %q]}`, tokens.HashOf(liveSecret), strings.ToUpper(tokens.HashOf(goneSecret).String()), unknown)
	status, out := e.do("POST", "/admin/v1/tokens/lookup", body)
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, out)
	}
	var got LookupResponse
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatal(err)
	}
	want := []LookupMatch{
		{Hash: tokens.HashOf(liveSecret).String(), Found: true, ID: live.ID, Project: "web", Name: "ci", State: "active"},
		{Hash: tokens.HashOf(goneSecret).String(), Found: true, ID: gone.ID, Project: "web", State: "revoked"},
		{Hash: unknown},
	}
	if len(got.Tokens) != len(want) {
		t.Fatalf("got %+v, want %+v", got.Tokens, want)
	}
	for i := range want {
		if got.Tokens[i] != want[i] {
			t.Errorf("tokens[%d] = %+v, want %+v", i, got.Tokens[i], want[i])
		}
	}
	if strings.Contains(out, liveSecret) || strings.Contains(out, goneSecret) {
		t.Errorf("the answer holds a secret: %s", out)
	}
}

func TestLookupTokens_BadInput(t *testing.T) {
	e := newAdminEnv(t)
	secret, _ := tokens.NewSecret()
	many := make([]string, MaxLookupHashes+1)
	for i := range many {
		many[i] = tokens.HashOf(fmt.Sprint(i)).String()
	}
	manyBody, _ := json.Marshal(LookupRequest{Hashes: many})
	tests := []struct {
		name, body, want string
	}{
		{"no hashes", `{"hashes": []}`, "1 to 1000"},
		{"no body", `{}`, "1 to 1000"},
		{"too many", string(manyBody), "got 1001"},
		{"a secret instead of its hash", fmt.Sprintf(`{"hashes": [%q]}`, secret), "hashes[0] is not a SHA-256"},
		{"short hex", `{"hashes": ["abcd"]}`, "hashes[0] is not a SHA-256"},
		{"unknown field", `{"secrets": ["x"]}`, "JSON object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, out := e.do("POST", "/admin/v1/tokens/lookup", tt.body)
			if status != http.StatusBadRequest || !strings.Contains(out, tt.want) || !strings.Contains(out, "invalid_request") {
				t.Errorf("status %d, %s; want 400 invalid_request saying %q", status, out, tt.want)
			}
			if strings.Contains(out, secret) {
				t.Errorf("the refusal echoes the secret: %s", out)
			}
		})
	}
}

// TestLookupMatch: a secret that a rotation replaced is named as the
// token's, accepted until its grace ends and then "rotated".
func TestLookupMatch(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	old := tokens.HashOf("old")
	tok := tokens.Token{ID: "tok_1", Project: "web", Hash: tokens.HashOf("new").String(), PrevHash: old.String()}
	inGrace, over, revoked, older := tok, tok, tok, tok
	inGrace.RotatingUntil = now.Add(time.Hour)
	over.RotatingUntil = now.Add(-time.Hour)
	revoked.RotatingUntil, revoked.Revoked = now.Add(time.Hour), now.Add(-time.Minute)
	older.PrevHash = tokens.HashOf("between").String()
	tests := []struct {
		name  string
		tok   tokens.Token
		state string
		until time.Time
	}{
		{"in grace", inGrace, "active", now.Add(time.Hour)},
		{"grace over", over, "rotated", time.Time{}},
		{"revoked in grace", revoked, "revoked", time.Time{}},
		{"older than the last rotation", older, "rotated", time.Time{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := lookupMatch(old, storage.HashMatch{Token: tt.tok, Previous: true}, true, now)
			if !m.Found || !m.PreviousSecret || m.ID != "tok_1" || m.State != tt.state || !m.ValidUntil.Equal(tt.until) {
				t.Errorf("got %+v, want state %s valid until %v", m, tt.state, tt.until)
			}
		})
	}
}
