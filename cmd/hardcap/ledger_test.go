package main

import (
	"github.com/hardcap/hardcap/tokens"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestCLI_TokenLedger: token create with the ledger flags, list and show,
// rotate with and without grace against the running proxy, and the admin
// audit log, all through the CLI.
func TestCLI_TokenLedger(t *testing.T) {
	s := startServer(t, "tokens:\n  rotate_every: 30d\n")
	s.mustCLI("project", "create", "web")
	var tok struct {
		ID, Token, Owner, Purpose string
		CreatedBy                 string    `json:"created_by"`
		RotateEvery               string    `json:"rotate_every"`
		RotateBy                  time.Time `json:"rotate_by"`
		MaxRequest                string    `json:"max_request_usd"`
		IPs                       []string
	}
	decodeJSON(t, s.mustCLI("token", "create", "--project", "web", "--name", "bot", "--owner", "team-ml", "--purpose", "nightly eval",
		"--routes", "chat", "--ips", "127.0.0.1,::1", "--max-concurrent", "4", "--max-request-usd", "0.25", "--json"), &tok)
	if tok.Owner != "team-ml" || tok.RotateEvery != "30d" || time.Until(tok.RotateBy) < 29*24*time.Hour || tok.MaxRequest != "0.250000" ||
		!strings.HasPrefix(tok.CreatedBy, "admin:") || strings.Join(tok.IPs, ",") != "127.0.0.1/32,::1/128" {
		t.Fatalf("token create --json: %+v", tok)
	}
	if code, body := chat(t, s.url, tok.Token, hello); code != 200 {
		t.Fatalf("chat: %d %s", code, body)
	}
	list := s.mustCLI("token", "list")
	for _, want := range []string{"OWNER", "PURPOSE", "LAST USED", "DUE", "team-ml", "nightly eval", "127.0.0.1"} {
		if !strings.Contains(list, want) {
			t.Errorf("token list lacks %q:\n%s", want, list)
		}
	}
	show := s.mustCLI("token", "show", tok.ID)
	for _, want := range []string{"owner", "team-ml", "requests", "1", "rotate by", "client addresses:", "127.0.0.1", "max request", "0.250000 USD", "routes", "chat"} {
		if !strings.Contains(show, want) {
			t.Errorf("token show lacks %q:\n%s", want, show)
		}
	}
	if strings.Contains(s.mustCLI("token", "show", tok.ID, "--json"), "hash") {
		t.Error("token show --json shows a hash")
	}

	// Rotation with grace: both secrets work; then without: the old one
	// is told it was rotated.
	out := s.mustCLI("token", "rotate", tok.ID, "--grace", "1h")
	second := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	if !strings.HasPrefix(second, "hc_") || !strings.Contains(out, "keeps working until") {
		t.Fatalf("token rotate printed %q", out)
	}
	for _, secret := range []string{tok.Token, second} {
		if code, body := chat(t, s.url, secret, hello); code != 200 {
			t.Fatalf("in grace: %d %s", code, body)
		}
	}
	// The usage table marks the request made with the old secret.
	if out := s.mustCLI("usage", "--token", tok.ID); strings.Count(out, "(old secret)") != 1 || !strings.Contains(out, "1 of those shown used a rotated token's previous secret") {
		t.Errorf("usage does not mark the old secret's request once:\n%s", out)
	}
	out = s.mustCLI("token", "rotate", tok.ID, "--grace", "0")
	third := strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	for _, old := range []string{tok.Token, second} {
		if code, body := chat(t, s.url, old, hello); code != 401 || !strings.Contains(body, "rotated") || !strings.Contains(body, "invalid_api_key") {
			t.Errorf("old secret after rotation: %d %s", code, body)
		}
	}
	if code, body := chat(t, s.url, third, hello); code != 200 {
		t.Fatalf("newest secret: %d %s", code, body)
	}

	// Refusals: clear errors, nothing changed.
	for _, args := range [][]string{
		{"token", "rotate", "tok_000000000000"},
		{"token", "rotate", tok.ID, "--grace", "-1h"},
		{"token", "create", "--project", "web", "--ips", "example.com"},
		{"token", "create", "--project", "web", "--routes", "images"},
		{"token", "create", "--project", "web", "--max-request-usd", "0"},
		{"token", "set", tok.ID, "--rotate-every", "soon"},
	} {
		if out, err := s.cli(args...); err == nil {
			t.Errorf("hardcap %s succeeded: %s", strings.Join(args, " "), out)
		}
	}
	if code, _ := chat(t, s.url, third, hello); code != 200 {
		t.Error("a refused command changed the token")
	}
	s.mustCLI("token", "set", tok.ID, "--ips", "", "--owner", "ana")
	s.mustCLI("kill", "--token", tok.ID)
	s.mustCLI("resume", "--token", tok.ID)
	s.mustCLI("token", "revoke", tok.ID)

	log := s.mustCLI("log", "--token", tok.ID)
	for _, want := range []string{"create", "rotate", "grace 1h0m0s", "grace 0s", "change", "owner, ips", "kill", "resume", "revoke", "admin:"} {
		if !strings.Contains(log, want) {
			t.Errorf("hardcap log --token lacks %q:\n%s", want, log)
		}
	}
	if strings.Contains(log, "create  project") || !strings.Contains(log, "7 admin change(s)") {
		t.Errorf("the token filter let a project entry through:\n%s", log)
	}
	var all struct {
		Entries []struct{ Action, Kind, Target string }
	}
	decodeJSON(t, s.mustCLI("log", "--json"), &all)
	// The server's first read of its provider key is logged too (by
	// "system"); the admin's changes are the rest.
	all.Entries = slices.DeleteFunc(all.Entries, func(e struct{ Action, Kind, Target string }) bool { return e.Kind == "provider_key" })
	if len(all.Entries) != 8 || all.Entries[0].Kind != "project" {
		t.Errorf("hardcap log --json: got %d entries %+v, want 8 starting with the project", len(all.Entries), all.Entries)
	}
	if _, err := s.cli("log", "--token", tok.ID, "--project", "web"); err == nil {
		t.Error("log with --token and --project succeeded")
	}
}

func TestConfig_TokensRotateEvery(t *testing.T) {
	tests := []struct {
		yaml string
		want time.Duration
		bad  bool
	}{
		{"", 90 * 24 * time.Hour, false},
		{"tokens: {rotate_every: 30d}\n", 30 * 24 * time.Hour, false},
		{"tokens: {rotate_every: never}\n", -1, false},
		{"tokens: {rotate_every: 0s}\n", 0, true},
		{"tokens: {rotate_every: soon}\n", 0, true},
	}
	for _, tt := range tests {
		cfg, err := parseConfig([]byte(tt.yaml), defaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		set, err := cfg.check()
		if tt.bad {
			if err == nil || !strings.Contains(err.Error(), "tokens.rotate_every") {
				t.Errorf("%q: got %v, want an error naming tokens.rotate_every", tt.yaml, err)
			}
			continue
		}
		if err != nil || set.rotateEvery != tt.want {
			t.Errorf("%q: got %s, %v; want %s", tt.yaml, set.rotateEvery, err, tt.want)
		}
	}
}

// TestCLI_SecretWhereAnIDBelongs: a token's secret given as an id is
// refused before anything is sent, and neither the CLI nor the server
// repeats it.
func TestCLI_SecretWhereAnIDBelongs(t *testing.T) {
	secret, err := tokens.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	s := startServer(t, "")
	for _, args := range [][]string{
		{"token", "revoke", secret}, {"token", "show", secret}, {"token", "rotate", secret}, {"kill", "--token", secret},
	} {
		out, err := s.cli(args...)
		if err == nil || strings.Contains(out+err.Error(), secret) || !strings.Contains(err.Error(), "secret, not its id") {
			t.Errorf("hardcap %s: %q, %v", args[0]+" "+args[1], out, err)
		}
	}
	if strings.Contains(s.logs.String(), secret) {
		t.Error("the server log holds the secret")
	}
}
