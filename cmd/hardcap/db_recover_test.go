package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDB_RecoverSaysWhenNothingWasRecovered: a ledger cut to its two meta
// pages recovers into an empty file; the command says so and fails rather
// than telling the user to put the empty file in place.
func TestDB_RecoverSaysWhenNothingWasRecovered(t *testing.T) {
	s := startServer(t, "")
	s.mustCLI("project", "create", "web")
	s.stop()
	path := filepath.Join(s.dataDir, "hardcap.db")
	if err := os.Truncate(path, 8192); err != nil {
		t.Fatal(err)
	}
	for _, json := range []bool{false, true} {
		args := []string{"db", "recover", "--data-dir", s.dataDir, "--out", filepath.Join(t.TempDir(), "rescued.db")}
		if json {
			args = append(args, "--json")
		}
		code, out, stderr := runCmd(t, args...)
		if code != 1 || !strings.Contains(stderr, "nothing was recovered: restore a backup instead") || !strings.Contains(stderr, "keep "+path) {
			t.Fatalf("json %v: exit %d, stderr %q; want 1 and nothing recovered", json, code, stderr)
		}
		if strings.Contains(out, "passes `hardcap db check`") || strings.Contains(out, "To use it") {
			t.Fatalf("json %v: the empty copy is offered as a replacement: %q", json, out)
		}
		if json && !strings.Contains(out, `"warning": "nothing was recovered`) {
			t.Fatalf("the JSON report has no warning: %q", out)
		}
	}
}
