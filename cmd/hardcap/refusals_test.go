package main

import (
	"strings"
	"testing"
)

// TestCLI_RefusalsInTokenShowAndIncident: a leaked token, killed, keeps
// being tried; token show and the incident report list the refusals by
// code with the client address, through the CLI against the server.
func TestCLI_RefusalsInTokenShowAndIncident(t *testing.T) {
	s := startServer(t, "")
	s.mustCLI("project", "create", "web")
	var tok struct{ ID, Token string }
	decodeJSON(t, s.mustCLI("token", "create", "--project", "web", "--json"), &tok)
	s.mustCLI("kill", "--token", tok.ID)
	for range 3 {
		if code, body := chat(t, s.url, tok.Token, hello); code != 403 {
			t.Fatalf("killed token: %d %s", code, body)
		}
	}
	show := s.mustCLI("token", "show", tok.ID)
	if !strings.Contains(show, "refusals (refused before any money was reserved):") || !containsRow(show, "kill_switch", "3", "127.0.0.1") {
		t.Errorf("token show lacks the refusals:\n%s", show)
	}
	md := s.mustCLI("incident", "--token", tok.ID)
	if !strings.Contains(md, "| kill_switch | 3 |") || !strings.Contains(md, "| 127.0.0.1 |") || !strings.Contains(md, "3 refused before any money was reserved") {
		t.Errorf("incident lacks the refusals:\n%s", md)
	}
}

// containsRow reports whether a line of out holds every field, in order.
func containsRow(out string, fields ...string) bool {
	for _, line := range strings.Split(out, "\n") {
		rest, ok := line, true
		for _, f := range fields {
			i := strings.Index(rest, f)
			if i < 0 {
				ok = false
				break
			}
			rest = rest[i+len(f):]
		}
		if ok {
			return true
		}
	}
	return false
}
