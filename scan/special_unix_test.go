//go:build unix

package scan

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// TestFiles_SpecialPaths: a path that leads nowhere is ErrNoPath, one that
// is not a regular file or directory ErrNotRegular, before anything is
// scanned and without opening it (a FIFO would block).
func TestFiles_SpecialPaths(t *testing.T) {
	dir := t.TempDir()
	write(t, filepath.Join(dir, "ok.txt"), "x\n")
	link := func(target, name string) {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	link("nowhere", "dangling")
	link("loop2", "loop1")
	link("loop1", "loop2")
	if err := syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	link("fifo", "tofifo")
	tests := []struct {
		name string
		want error
	}{
		{"dangling", ErrNoPath},
		{"loop1", ErrNoPath},
		{"fifo", ErrNotRegular},
		{"tofifo", ErrNotRegular},
	}
	s := newScanner(t)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := s.Files(context.Background(), []string{filepath.Join(dir, "ok.txt"), filepath.Join(dir, tt.name)})
			if !errors.Is(err, tt.want) || !strings.Contains(err.Error(), tt.name) || res != nil {
				t.Errorf("%v, %+v; want %v naming %s and nothing scanned", err, res, tt.want, tt.name)
			}
		})
	}
}
