package proxy_test

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/storage"
)

// refusedLine is the fields of a "refused" log line the evidence needs.
type refusedLine struct {
	Message   string `json:"message"`
	Token     string `json:"token"`
	Project   string `json:"project"`
	Code      string `json:"code"`
	ClientIP  string `json:"client_ip"`
	UserAgent string `json:"user_agent"`
}

// TestRefused_LogsAndCountsTheToken: a request refused before any money is
// reserved, by authentication (kill switch, revoked, rotated, expired) or
// by a scope, is logged with its token, project, client address and user
// agent, and counted against the token by code; an unknown secret is logged
// without a token and counted against none.
func TestRefused_LogsAndCountsTheToken(t *testing.T) {
	ctx := context.Background()
	past := time.Now().Add(-time.Minute)
	tests := []struct {
		name   string
		change func(h *harness) error
		code   string
	}{
		{"token kill", func(h *harness) error {
			return h.db.SetKill(ctx, storage.KillTarget{Token: h.tokenID}, true)
		}, "kill_switch"},
		{"global kill", func(h *harness) error { return h.db.SetKill(ctx, storage.KillTarget{}, true) }, "kill_switch"},
		{"revoked", func(h *harness) error { _, err := h.db.RevokeToken(ctx, h.tokenID); return err }, "invalid_api_key"},
		{"rotated", func(h *harness) error { _, _, err := h.db.RotateToken(ctx, h.tokenID, 0); return err }, "invalid_api_key"},
		{"expired", func(h *harness) error {
			_, err := h.db.UpdateToken(ctx, h.tokenID, storage.TokenChange{Expires: &past})
			return err
		}, "invalid_api_key"},
		{"model not allowed", func(h *harness) error {
			models := []string{"gpt-4.1"}
			_, err := h.db.UpdateToken(ctx, h.tokenID, storage.TokenChange{Models: &models})
			return err
		}, "not_allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{noSync: true})
			if err := tt.change(h); err != nil {
				t.Fatal(err)
			}
			for range 2 {
				resp := postWithAgent(t, h, h.token, "leaked-bot/1.0 "+strings.Repeat("x", 300))
				if code, _, _ := apiError(t, readAll(t, resp)); code != tt.code {
					t.Fatalf("got %d %s, want %s", resp.StatusCode, code, tt.code)
				}
			}
			line := lastRefused(t, h)
			if line.Token != h.tokenID || line.Project != h.project || line.Code != tt.code || line.ClientIP != "127.0.0.1" {
				t.Errorf("refused line: got %+v, want token %s, project %s, code %s, client 127.0.0.1", line, h.tokenID, h.project, tt.code)
			}
			if !strings.HasPrefix(line.UserAgent, "leaked-bot/1.0 ") || len(line.UserAgent) > 256 {
				t.Errorf("user agent: got %d bytes %q, want it clipped to 256 as the records clip it", len(line.UserAgent), line.UserAgent)
			}
			flushLedger(t, h.db)
			got, err := h.db.Refusals(h.tokenID)
			if err != nil {
				t.Fatal(err)
			}
			if len(got.Codes) != 1 || got.Codes[0].Code != tt.code || got.Codes[0].Count != 2 || got.Codes[0].LastIP != "127.0.0.1" {
				t.Errorf("counts: got %+v, want 2 of %s from 127.0.0.1", got.Codes, tt.code)
			}
			if len(got.IPs) != 1 || got.IPs[0].IP != "127.0.0.1" || got.IPs[0].Requests != 2 {
				t.Errorf("addresses: got %+v, want 127.0.0.1 twice", got.IPs)
			}
		})
	}
	t.Run("unknown secret", func(t *testing.T) {
		h := newHarness(t, harnessOptions{noSync: true})
		resp := postWithAgent(t, h, "hc_not-a-token", "scanner/2")
		if code, _, _ := apiError(t, readAll(t, resp)); code != "invalid_api_key" {
			t.Fatalf("got %d %s, want invalid_api_key", resp.StatusCode, code)
		}
		line := lastRefused(t, h)
		if line.Token != "" || line.ClientIP != "127.0.0.1" || line.UserAgent != "scanner/2" {
			t.Errorf("refused line: got %+v, want no token, the client and its agent", line)
		}
		flushLedger(t, h.db)
		if got, err := h.db.Refusals(h.tokenID); err != nil || len(got.Codes) != 0 {
			t.Errorf("another token's counts: got %+v, %v; want none", got, err)
		}
	})
}

func postWithAgent(t *testing.T, h *harness, secret, agent string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+"/v1/chat/completions", strings.NewReader(helloBody))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", agent)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// lastRefused is the last "refused" line of h's log.
func lastRefused(t *testing.T, h *harness) refusedLine {
	t.Helper()
	var last refusedLine
	found := false
	for _, l := range strings.Split(h.logs.String(), "\n") {
		var line refusedLine
		if json.Unmarshal([]byte(l), &line) == nil && line.Message == "refused" {
			last, found = line, true
		}
	}
	if !found {
		t.Fatalf("no refused line in the log:\n%s", h.logs.String())
	}
	return last
}
