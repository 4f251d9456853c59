package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// chatAs sends a chat completion with a hardcap token and a user agent.
func chatAs(t *testing.T, base, token, userAgent string) int {
	t.Helper()
	req, _ := http.NewRequest("POST", base+"/v1/chat/completions", strings.NewReader(hello))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("User-Agent", userAgent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestCLI_Incident: after requests, a kill and a revoke, `hardcap incident`
// prints the Markdown report and the JSON one, writes --out, and never
// holds the token's secret, the provider key or the admin token.
func TestCLI_Incident(t *testing.T) {
	s := startServer(t, "")
	s.mustCLI("project", "create", "web")
	var created struct {
		ID    string `json:"id"`
		Token string `json:"token"`
	}
	decodeJSON(t, s.mustCLI("token", "create", "--project", "web", "--name", "ci", "--json"), &created)
	for range 3 {
		if code := chatAs(t, s.url, created.Token, "leaked-bot/1.0"); code != 200 {
			t.Fatalf("chat got %d", code)
		}
	}
	s.mustCLI("kill", "--token", created.ID)
	if code := chatAs(t, s.url, created.Token, "leaked-bot/1.0"); code != 403 {
		t.Fatalf("chat after kill got %d, want 403", code)
	}
	s.mustCLI("token", "revoke", created.ID)
	admin, err := os.ReadFile(filepath.Join(s.dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"token secret": created.Token, "provider key": fakeKey, "admin token": strings.TrimSpace(string(admin))}
	clean := func(what, out string) {
		t.Helper()
		for name, secret := range secrets {
			if strings.Contains(out, secret) {
				t.Fatalf("the %s holds the %s", what, name)
			}
		}
	}

	md := s.mustCLI("incident", "--token", created.ID)
	clean("Markdown report", md)
	for _, want := range []string{"# hardcap incident report: token " + created.ID, "| state | revoked |", "- Requests: 3, spent ", "| 127.0.0.1 |", "| openai | gpt-4o-mini | 3 |", "## What hardcap cannot see"} {
		if !strings.Contains(md, want) {
			t.Errorf("no %q in:\n%s", want, md)
		}
	}

	var rep struct {
		Token struct {
			ID, State string
		} `json:"token"`
		Summary struct {
			Requests int64  `json:"requests"`
			Spent    string `json:"spent_usd"`
		} `json:"summary"`
		Hours   []struct{ Requests int64 } `json:"hours"`
		Clients []struct {
			IP       string `json:"ip"`
			Requests int64  `json:"requests"`
		} `json:"clients"`
	}
	js := s.mustCLI("incident", "--token", created.ID, "--json")
	clean("JSON report", js)
	decodeJSON(t, js, &rep)
	if rep.Token.ID != created.ID || rep.Token.State != "revoked" || rep.Summary.Requests != 3 || rep.Summary.Spent == "" || len(rep.Hours) == 0 || len(rep.Clients) != 1 || rep.Clients[0].Requests != 3 {
		t.Fatalf("incident --json got %+v", rep)
	}
	if js2 := s.mustCLI("incident", "--token", created.ID, "--format", "json", "--since", "1h"); !strings.Contains(js2, `"since"`) {
		t.Errorf("--format json --since 1h got %s", js2)
	}

	out := filepath.Join(t.TempDir(), "incident.md")
	if msg := s.mustCLI("incident", "--token", created.ID, "--out", out); !strings.Contains(msg, "written to "+out) {
		t.Errorf("--out printed %q", msg)
	}
	raw, err := os.ReadFile(out)
	if err != nil || !strings.HasPrefix(string(raw), "# hardcap incident report") {
		t.Fatalf("--out wrote %q (%v)", raw, err)
	}
	clean("report file", string(raw))
	if info, err := os.Stat(out); err != nil || info.Mode().Perm() != 0o600 {
		t.Errorf("--out file mode %v (%v), want 600", info.Mode().Perm(), err)
	}
}

// TestCLI_IncidentBadInput: each mistake is a clear error and writes
// nothing.
func TestCLI_IncidentBadInput(t *testing.T) {
	s := startServer(t, "")
	s.mustCLI("project", "create", "web")
	var created struct {
		ID string `json:"id"`
	}
	decodeJSON(t, s.mustCLI("token", "create", "--project", "web", "--json"), &created)
	for _, tt := range []struct {
		name string
		args []string
		want string
	}{
		{"no token", []string{"incident"}, "--token is required"},
		{"unknown token", []string{"incident", "--token", "tok_nosuchtoken0"}, "not_found"},
		{"bad token id", []string{"incident", "--token", "../etc"}, "not_found"},
		{"bad since", []string{"incident", "--token", created.ID, "--since", "soon"}, "invalid_request"},
		{"bad format", []string{"incident", "--token", created.ID, "--format", "pdf"}, "not md or json"},
		{"json and md", []string{"incident", "--token", created.ID, "--json", "--format", "md"}, "--json"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "report.md")
			stdout, err := s.cli(append(tt.args, "--out", out)...)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v (%q), want an error with %q", err, stdout, tt.want)
			}
			if _, err := os.Stat(out); !os.IsNotExist(err) {
				t.Fatalf("--out was written (%v)", err)
			}
			if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 0 {
				t.Fatalf("files left beside --out: %v", entries)
			}
		})
	}
}
