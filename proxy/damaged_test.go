package proxy_test

import (
	"os"
	"strings"
	"testing"
)

// TestServe_DamagedDatabaseIs503 cuts the database file under the running
// proxy: the token lookup faults inside storage, and the client gets
// 503 ledger_unavailable (before: the fault killed the process).
func TestServe_DamagedDatabaseIs503(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	if err := os.Truncate(h.dbPath, 4096); err != nil {
		t.Fatal(err)
	}
	resp := h.post("/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hi"}]}`)
	body := readAll(t, resp)
	if resp.StatusCode != 503 || !strings.Contains(body, `"ledger_unavailable"`) {
		t.Fatalf("got %d %s, want 503 ledger_unavailable", resp.StatusCode, body)
	}
	if n := len(h.up.Calls()); n != 0 {
		t.Fatalf("%d calls reached the provider", n)
	}
}
