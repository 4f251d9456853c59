package testreq

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

func TestRequiredIn(t *testing.T) {
	tests := []struct {
		list, name string
		want       bool
	}{
		{"", "chromium", false},
		{"all", "chromium", true},
		{"all", "postgres", true},
		{"chromium", "chromium", true},
		{"postgres,chromium", "chromium", true},
		{"postgres, chromium ", "chromium", true},
		{"Chromium", "chromium", true},
		{"postgres", "chromium", false},
		{"chromiumx", "chromium", false},
		{"pebble,postgres", "chromium", false},
	}
	for _, tt := range tests {
		if got := requiredIn(tt.list, tt.name); got != tt.want {
			t.Errorf("requiredIn(%q, %q) = %v, want %v", tt.list, tt.name, got, tt.want)
		}
	}
}

// TestNeed runs the helper test below in a child process, so that its skip
// and its failure can be seen from outside.
func TestNeed(t *testing.T) {
	tests := []struct {
		name, require, found string
		wantFail             bool
		wantOut              string
	}{
		{"found", "all", "1", false, "--- PASS"},
		{"missing, not required", "", "", false, "--- SKIP"},
		{"missing, other required", "postgres", "", false, "--- SKIP"},
		{"missing, all required", "all", "", true, "widget is required (HARDCAP_TEST_REQUIRE=all) but missing: install widget"},
		{"missing, listed", "postgres,widget", "", true, "--- FAIL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestNeedChild$", "-test.v")
			cmd.Env = append(os.Environ(), "TESTREQ_CHILD=1", Env+"="+tt.require, "TESTREQ_FOUND="+tt.found)
			out, err := cmd.CombinedOutput()
			if failed := err != nil; failed != tt.wantFail {
				t.Fatalf("child failed = %v (%v), want %v:\n%s", failed, err, tt.wantFail, out)
			}
			if !strings.Contains(string(out), tt.wantOut) {
				t.Errorf("child output lacks %q:\n%s", tt.wantOut, out)
			}
			if !tt.wantFail && tt.found == "" && !strings.Contains(string(out), "install widget") {
				t.Errorf("skip does not say what to install:\n%s", out)
			}
		})
	}
}

func TestNeedChild(t *testing.T) {
	if os.Getenv("TESTREQ_CHILD") != "1" {
		t.Skip("run by TestNeed")
	}
	Need(t, "widget", os.Getenv("TESTREQ_FOUND") == "1", "install widget")
}
