package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardcap/hardcap/tokens"
)

const hello = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}`

func TestCLI_EndToEnd(t *testing.T) {
	s := startServer(t, "budget:\n  global: {limit_usd: \"5\", period: month}\n")

	out := s.mustCLI("project", "create", "web", "--budget", "1", "--period", "day")
	if !strings.Contains(out, "project web created") {
		t.Fatalf("got %q", out)
	}
	if _, err := s.cli("project", "create", "web"); err == nil {
		t.Fatal("creating a project twice succeeded")
	}
	var created struct {
		ID     string `json:"id"`
		Token  string `json:"token"`
		Budget struct {
			Limit  string `json:"limit_usd"`
			Period string `json:"period"`
		} `json:"budget"`
	}
	decodeJSON(t, s.mustCLI("token", "create", "--project", "web", "--name", "ci", "--budget", "0.5", "--period", "week", "--json"), &created)
	if err := tokens.Parse(created.Token); err != nil || !strings.HasPrefix(created.ID, "tok_") {
		t.Fatalf("token create printed %q / %q", created.Token, created.ID)
	}
	if created.Budget.Limit != "0.500000" || created.Budget.Period != "week" {
		t.Fatalf("token budget printed as %+v", created.Budget)
	}

	if code, body := chat(t, s.url, created.Token, hello); code != 200 {
		t.Fatalf("chat got %d: %s", code, body)
	}
	var usage struct {
		Spent    string `json:"spent_usd"`
		Reserved string `json:"reserved_usd"`
		Records  []struct {
			TokenID string `json:"token_id"`
			Charged string `json:"charged_usd"`
		} `json:"records"`
	}
	decodeJSON(t, s.mustCLI("usage", "--project", "web", "--json"), &usage)
	if len(usage.Records) != 1 || usage.Records[0].TokenID != created.ID || usage.Spent != usage.Records[0].Charged || usage.Reserved != "0.000000" {
		t.Fatalf("usage --json got %+v", usage)
	}
	csv := s.mustCLI("usage", "--csv", "--since", "1h")
	if lines := strings.Split(strings.TrimSpace(csv), "\n"); len(lines) != 2 || !strings.HasPrefix(lines[0], "time,id,token_id") {
		t.Fatalf("usage --csv got %q", csv)
	}
	// A second request, then the pages of one record each: the newest
	// first with a cursor to the older one, which ends the pages.
	if code, body := chat(t, s.url, created.Token, hello); code != 200 {
		t.Fatalf("chat got %d: %s", code, body)
	}
	var page struct {
		Matched    int    `json:"matched"`
		NextCursor string `json:"next_cursor"`
		Records    []struct {
			ID string `json:"id"`
		} `json:"records"`
	}
	decodeJSON(t, s.mustCLI("usage", "--json", "--limit", "1"), &page)
	newest := page
	if page.Matched != 2 || len(page.Records) != 1 || page.NextCursor == "" {
		t.Fatalf("usage --json --limit 1 got %+v, want 1 of 2 records and a cursor", page)
	}
	if out := s.mustCLI("usage", "--limit", "1"); !strings.Contains(out, "older: --cursor "+page.NextCursor) {
		t.Fatalf("usage --limit 1 printed %q, want the cursor", out)
	}
	page = struct {
		Matched    int    `json:"matched"`
		NextCursor string `json:"next_cursor"`
		Records    []struct {
			ID string `json:"id"`
		} `json:"records"`
	}{}
	decodeJSON(t, s.mustCLI("usage", "--json", "--limit", "1", "--cursor", newest.NextCursor), &page)
	if len(page.Records) != 1 || page.Records[0].ID == newest.Records[0].ID || page.NextCursor != "" {
		t.Fatalf("the older page got %+v, want the other record and no cursor", page)
	}
	if _, err := s.cli("usage", "--cursor", "not-one"); err == nil || !strings.Contains(err.Error(), "invalid_request") {
		t.Fatalf("usage --cursor not-one: got %v, want invalid_request", err)
	}
	if out := s.mustCLI("token", "list", "--project", "web"); !strings.Contains(out, created.ID) || !strings.Contains(out, "active") {
		t.Fatalf("token list got %q", out)
	}
	if out := s.mustCLI("project", "list"); !strings.Contains(out, "web") {
		t.Fatalf("project list got %q", out)
	}

	s.mustCLI("kill", "--token", created.ID)
	if code, body := chat(t, s.url, created.Token, hello); code != 403 || !strings.Contains(body, "kill_switch") {
		t.Fatalf("after kill got %d: %s", code, body)
	}
	s.mustCLI("resume", "--token", created.ID)
	s.mustCLI("kill")
	if out := s.mustCLI("status"); !strings.Contains(out, "kill switch (all): true") || !strings.Contains(out, "prices: genai-prices from embedded, as of 2026-08-21") {
		t.Fatalf("status got %q", out)
	}
	if code, _ := chat(t, s.url, created.Token, hello); code != 403 {
		t.Fatalf("after kill all got %d", code)
	}
	s.mustCLI("resume")
	if code, _ := chat(t, s.url, created.Token, hello); code != 200 {
		t.Fatalf("after resume got %d", code)
	}
	s.mustCLI("token", "revoke", created.ID)
	if code, body := chat(t, s.url, created.Token, hello); code != 401 || !strings.Contains(body, "invalid_api_key") {
		t.Fatalf("after revoke got %d: %s", code, body)
	}
	var status map[string]any
	decodeJSON(t, s.mustCLI("status", "--json"), &status)
	if status["open_reservations"] != float64(0) || status["overshoots"] != float64(0) {
		t.Fatalf("status --json got %v", status)
	}
	if strings.Contains(s.logs.String(), fakeKey) {
		t.Fatal("the server log carries the real key")
	}
}

func TestAdmin_RequiresAdminToken(t *testing.T) {
	s := startServer(t, "")
	info, err := os.Stat(filepath.Join(s.dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Fatalf("admin.token mode %o, want 600", mode)
	}
	for name, auth := range map[string]string{"none": "", "wrong": "Bearer hcadmin_wrong", "basic": "Basic abc"} {
		t.Run(name, func(t *testing.T) {
			req, _ := http.NewRequest("GET", s.url+"/admin/v1/status", nil)
			if auth != "" {
				req.Header.Set("Authorization", auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 {
				t.Fatalf("got %d, want 401", resp.StatusCode)
			}
		})
	}
	resp, err := http.Get(s.url + "/healthz")
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %v %v", err, resp)
	}
	resp.Body.Close()
}

func TestCLI_UsageErrors(t *testing.T) {
	for _, args := range [][]string{{"bogus"}, {"project"}, {"token", "create"}, {"project", "create"}, {"kill", "--project", "a", "--token", "b"}} {
		var out, errOut strings.Builder
		if code := run(t.Context(), args, &out, &errOut); code != 2 {
			t.Errorf("hardcap %v: exit %d, want 2 (%s)", args, code, errOut.String())
		}
	}
}
