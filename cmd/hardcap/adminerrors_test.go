package main

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// TestClient_Only401UnauthorizedBlamesTheAdminToken: the CLI says the
// admin token was refused only when the admin API answers its own 401
// unauthorized; any other 401 is reported with the server's message.
func TestClient_Only401UnauthorizedBlamesTheAdminToken(t *testing.T) {
	tests := []struct {
		name, body string
		want, not  string
	}{
		{"the admin API's refusal", `{"error":{"code":"unauthorized","message":"The admin API needs the admin token"}}`, "refused the admin token from $HARDCAP_ADMIN_TOKEN (401)", "needs"},
		{"a domain 401", `{"error":{"code":"invalid_api_key","message":"token revoked: tok_x"}}`, "token revoked: tok_x (invalid_api_key)", "admin token"},
		{"not the API's shape", `<html>401</html>`, "server answered 401 Unauthorized", "admin token"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.WriteHeader(http.StatusUnauthorized)
				w.Write([]byte(tt.body))
			}))
			defer srv.Close()
			t.Setenv("HARDCAP_ADMIN_TOKEN", "hcadmin_test")
			c := &client{server: srv.URL, out: &strings.Builder{}, timeout: defaultTimeout}
			err := c.call(context.Background(), "GET", "/admin/v1/status", nil, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), tt.not) {
				t.Fatalf("got %v, want %q without %q", err, tt.want, tt.not)
			}
		})
	}
}

// TestCLI_AdminMistakesAreSaidClearly: a change or rotation of a revoked
// token says the token is revoked (not that the admin token was refused),
// and a log or token list of an unknown token or project fails naming it
// instead of printing nothing; an owner, a per-request limit of zero or
// below are refused in words that fit them.
func TestCLI_AdminMistakesAreSaidClearly(t *testing.T) {
	s := startServer(t, "")
	s.mustCLI("project", "create", "web")
	var tok struct{ ID string }
	decodeJSON(t, s.mustCLI("token", "create", "--project", "web", "--json"), &tok)
	s.mustCLI("token", "set", tok.ID, "--owner", "ana")
	s.mustCLI("token", "revoke", tok.ID)
	var live struct{ ID string }
	decodeJSON(t, s.mustCLI("token", "create", "--project", "web", "--json"), &live)
	tests := []struct {
		name string
		args []string
		want string
	}{
		{"set of a revoked token", []string{"token", "set", tok.ID, "--rpm", "5"}, tok.ID + " is revoked"},
		{"rotate of a revoked token", []string{"token", "rotate", tok.ID}, "token " + tok.ID + " is revoked, and a revoked token cannot be rotated"},
		{"log of an unknown token", []string{"log", "--token", "tok_nope"}, "token not found: tok_nope (not_found)"},
		{"log of an unknown project", []string{"log", "--project", "nope"}, "project not found: nope (not_found)"},
		{"token list of an unknown project", []string{"token", "list", "--project", "nope"}, "project not found: nope (not_found)"},
		{"an owner with a control character", []string{"token", "set", live.ID, "--owner", "a\x07b"}, "invalid text: a token owner must not hold control characters"},
		{"--max-request-usd 0", []string{"token", "set", live.ID, "--max-request-usd", "0"}, "or unlimited for no per-request limit"},
		{"--max-request-usd -1", []string{"token", "set", live.ID, "--max-request-usd", "-1"}, `max_request_usd "-1" is not an amount above zero`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, err := s.cli(tt.args...)
			if err == nil {
				t.Fatalf("succeeded: %s", out)
			}
			if msg := err.Error(); !strings.Contains(msg, tt.want) || strings.Contains(msg, "admin token") || strings.Contains(msg, "rotation period") ||
				strings.Contains(msg, "invalid name") || strings.Contains(msg, "leave it out") || strings.Contains(msg, "non-negative") {
				t.Fatalf("got %v, want %q", err, tt.want)
			}
		})
	}
	// The project's log holds its token's changes too.
	log := s.mustCLI("log", "--project", "web")
	for _, want := range []string{"create  project web", "create  token " + tok.ID, "change  token " + tok.ID, "revoke  token " + tok.ID, "create  token " + live.ID, "5 admin change(s)"} {
		if !strings.Contains(log, want) {
			t.Errorf("hardcap log --project web lacks %q:\n%s", want, log)
		}
	}
}
