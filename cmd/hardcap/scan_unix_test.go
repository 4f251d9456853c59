//go:build unix

package main

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestScan_FIFO: a FIFO named as PATH, or a link to one, is refused with
// exit 2 and never opened (opening it would block).
func TestScan_FIFO(t *testing.T) {
	dir := t.TempDir()
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	code, out, errOut := runCLI("scan", filepath.Join(dir, "fifo"))
	if code != 2 || !strings.Contains(errOut, "fifo is a named pipe (FIFO)") {
		t.Errorf("exit %d, want 2 naming the FIFO\n%s%s", code, out, errOut)
	}
}
