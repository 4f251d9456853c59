package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

// answerAfter is a --fix confirmation typed after something happened while
// the prompt was open: the first Read runs during, then answers.
type answerAfter struct {
	during func()
	answer io.Reader
}

func (a *answerAfter) Read(p []byte) (int, error) {
	if a.during != nil {
		a.during()
		a.during = nil
	}
	return a.answer.Read(p)
}

// TestAudit_FixRereadsBeforeRevoking: a zombie used again, or revoked,
// while the [y/N] prompt was open is skipped, saying so; the others are
// revoked.
func TestAudit_FixRereadsBeforeRevoking(t *testing.T) {
	clock := &auditClock{t: time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)}
	s := startAuditServer(t, clock, auditConfig)
	s.mustCLI("project", "create", "web")
	idle, _ := createToken(t, s)
	woken, secret := createToken(t, s)
	gone, _ := createToken(t, s)
	clock.Add(8 * 24 * time.Hour)
	if _, rep := auditJSON(s); !strings.Contains(openKeys(rep), "zombie-token:"+woken) || !strings.Contains(openKeys(rep), "zombie-token:"+gone) {
		t.Fatalf("want three zombies: %s", openKeys(rep))
	}

	in := &answerAfter{answer: strings.NewReader("y\n"), during: func() {
		// At the audit's own instant (the clock stands still): a use
		// then is no older than the audit.
		if code, body := chat(t, s.url, secret, hello); code != 200 {
			t.Fatalf("chat while the prompt is open: %d %s", code, body)
		}
		s.mustCLI("token", "revoke", gone)
	}}
	oldIn, oldTerm := auditStdin, stdinIsTerminal
	auditStdin, stdinIsTerminal = in, func() bool { return true }
	defer func() { auditStdin, stdinIsTerminal = oldIn, oldTerm }()
	code, out, errOut := runCmd(t, "audit", "--fix", "--server", s.url, "--data-dir", s.dataDir)
	if code != 0 {
		t.Fatalf("audit --fix: exit %d: %s %s", code, out, errOut)
	}
	for _, want := range []string{
		"Revoke 3 zombie token(s)",
		"token " + idle + " revoked",
		"token " + woken + " skipped, not revoked: it was used at ",
		"after the audit listed it",
		"token " + gone + " skipped, not revoked: it is revoked already",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("audit --fix lacks %q:\n%s", want, out)
		}
	}
	var list struct{ Tokens []struct{ ID, State string } }
	decodeJSON(t, s.mustCLI("token", "list", "--json"), &list)
	want := map[string]string{idle: "revoked", woken: "active", gone: "revoked"}
	for _, tok := range list.Tokens {
		if tok.State != want[tok.ID] {
			t.Errorf("token %s is %s after --fix, want %s", tok.ID, tok.State, want[tok.ID])
		}
	}
	// Exactly one revoke by the audit: the one the prompt's user made is
	// the other.
	if log := s.mustCLI("log", "--token", woken); strings.Contains(log, "revoke") {
		t.Errorf("the used token was revoked:\n%s", log)
	}
}
