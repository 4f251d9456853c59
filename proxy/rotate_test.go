package proxy_test

import (
	"context"
	"strings"
	"testing"
)

// TestChat_RotatedSecretIsToldItWasRotated: after a rotation without
// grace, the old secret is refused 401 invalid_api_key with a message that
// says the secret was rotated, not that it is unknown; the new one works.
func TestChat_RotatedSecretIsToldItWasRotated(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	_, fresh, err := h.db.RotateToken(context.Background(), h.tokenID, 0)
	if err != nil {
		t.Fatal(err)
	}
	resp := h.post("/v1/chat/completions", helloBody)
	code, _, msg := apiError(t, readAll(t, resp))
	if resp.StatusCode != 401 || code != "invalid_api_key" || !strings.Contains(msg, "rotated") || strings.Contains(msg, "unknown") {
		t.Fatalf("old secret: got %d %s %q; want 401 invalid_api_key saying it was rotated", resp.StatusCode, code, msg)
	}
	h.token = fresh
	if resp := h.post("/v1/chat/completions", helloBody); resp.StatusCode != 200 {
		t.Fatalf("new secret: got %d %s", resp.StatusCode, readAll(t, resp))
	} else {
		readAll(t, resp)
	}
}
