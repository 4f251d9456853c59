package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardcap/hardcap/internal/testlog"
)

// runCmd runs a hardcap command line and returns its exit code and output.
func runCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := run(context.Background(), args, &out, &errOut)
	return code, out.String(), errOut.String()
}

// serveArgs is a serve command line on dir with a loopback port.
func serveArgs(t *testing.T, dir string) []string {
	t.Helper()
	t.Setenv("HARDCAP_TEST_FAKE_KEY", fakeKey)
	return []string{"serve", "--config", writeConfig(t, t.TempDir(), "http://127.0.0.1:9/v1", ""), "--data-dir", dir}
}

func TestServe_SecondInstanceOnTheSameDataDir(t *testing.T) {
	s := startServer(t, "")
	pid := fmt.Sprint(os.Getpid())
	if b, err := os.ReadFile(filepath.Join(s.dataDir, "hardcap.pid")); err != nil || strings.TrimSpace(string(b)) != pid {
		t.Fatalf("pid file holds %q (%v), want %s", b, err, pid)
	}
	code, _, stderr := runCmd(t, serveArgs(t, s.dataDir)...)
	if code != 1 || !strings.Contains(stderr, "another hardcap (pid "+pid+") holds the data directory "+s.dataDir) {
		t.Fatalf("second serve: exit %d, %q; want 1 naming pid %s and the directory", code, stderr, pid)
	}
	s.stop()
	if _, err := os.Stat(filepath.Join(s.dataDir, "hardcap.pid")); !os.IsNotExist(err) {
		t.Fatalf("the pid file is left after a clean stop (%v)", err)
	}
}

func TestServe_RefusesDamagedDatabase(t *testing.T) {
	tests := []struct {
		name   string
		damage func(path string) error
		says   string
	}{
		{"empty", func(path string) error { return os.Truncate(path, 0) }, "is empty (0 bytes)"},
		{"truncated", func(path string) error {
			info, err := os.Stat(path)
			if err != nil {
				return err
			}
			return os.Truncate(path, info.Size()/2)
		}, "truncated"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, "")
			for i := range 200 {
				s.mustCLI("project", "create", fmt.Sprintf("project-%03d-%s", i, strings.Repeat("x", 40)))
			}
			s.stop()
			path := filepath.Join(s.dataDir, "hardcap.db")
			if err := tt.damage(path); err != nil {
				t.Fatal(err)
			}
			code, _, stderr := runCmd(t, serveArgs(t, s.dataDir)...)
			if code != 1 || strings.Count(strings.TrimSpace(stderr), "\n") != 0 {
				t.Fatalf("exit %d, %q; want 1 and one line", code, stderr)
			}
			for _, want := range []string{path, tt.says, "Restore a backup", "hardcap db check --data-dir " + s.dataDir, "hardcap db recover"} {
				if !strings.Contains(stderr, want) {
					t.Fatalf("%q does not say %q", stderr, want)
				}
			}
			if info, err := os.Stat(path); tt.name == "empty" && (err != nil || info.Size() != 0) {
				t.Fatal("the empty file was re-initialised")
			}
			if code, out, _ := runCmd(t, "db", "check", "--data-dir", s.dataDir); code != 1 || !strings.Contains(out, "damaged: "+path) {
				t.Fatalf("db check: exit %d, %q; want 1 and damaged", code, out)
			}
		})
	}
}

func TestDB_BackupCheckRecover(t *testing.T) {
	s := startServer(t, "")
	for i := range 200 {
		s.mustCLI("project", "create", fmt.Sprintf("p%03d-%s", i, strings.Repeat("y", 40)))
	}
	backup := filepath.Join(t.TempDir(), "backup.db")
	if out := s.mustCLI("db", "backup", backup); !strings.Contains(out, "backup written to "+backup) || !strings.Contains(out, "200 projects") {
		t.Fatalf("db backup printed %q", out)
	}
	if info, err := os.Stat(backup); err != nil || info.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v %v, want mode 0600", info, err)
	}
	if code, _, stderr := runCmd(t, "db", "check", "--data-dir", s.dataDir); code != 1 || !strings.Contains(stderr, "in use by a running hardcap") {
		t.Fatalf("db check while serving: exit %d, %q", code, stderr)
	}
	s.stop()
	if code, out, _ := runCmd(t, "db", "check", "--data-dir", s.dataDir); code != 0 || !strings.HasPrefix(out, "ok: ") || !strings.Contains(out, "200 projects") {
		t.Fatalf("db check: exit %d, %q", code, out)
	}

	// Damage the live file, recover what is readable into a new file.
	path := filepath.Join(s.dataDir, "hardcap.db")
	info, _ := os.Stat(path)
	if err := os.Truncate(path, info.Size()/2); err != nil {
		t.Fatal(err)
	}
	rescued := filepath.Join(t.TempDir(), "rescued.db")
	code, out, stderr := runCmd(t, "db", "recover", "--data-dir", s.dataDir, "--out", rescued)
	// Which pages the cut half held depends on the file's layout: when it
	// held every project page (or the root), the copy has no tenant and
	// recover says so (exit 1) instead of offering it.
	usable := code == 0
	if !strings.Contains(out, "could not read") || usable != strings.Contains(out, "passes `hardcap db check`") ||
		!usable && (code != 1 || !strings.Contains(stderr, "restore a backup instead")) {
		t.Fatalf("db recover: exit %d, %q %q", code, out, stderr)
	}
	if code, _, stderr := runCmd(t, "db", "recover", "--data-dir", s.dataDir, "--out", rescued); code != 1 || !strings.Contains(stderr, "exists") {
		t.Fatalf("db recover onto an existing file: exit %d, %q", code, stderr)
	}

	// Restore is: stop, copy the file in, start.
	for _, file := range []string{backup, rescued} {
		if file == rescued && !usable {
			continue
		}
		dir := t.TempDir()
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "hardcap.db"), b, 0o644); err != nil {
			t.Fatal(err)
		}
		if code, out, _ := runCmd(t, "db", "check", "--data-dir", dir); code != 0 {
			t.Fatalf("db check of %s: exit %d, %q", file, code, out)
		}
		m := &Main{Config: s.main.Config, DataDir: dir, LogOutput: &testlog.Buffer{}}
		if err := m.Open(); err != nil {
			t.Fatalf("serving %s: %v", file, err)
		}
		ps, err := m.db.Projects()
		m.Close()
		if err != nil || (file == backup && len(ps) != 200) {
			t.Fatalf("%s restored %d projects (%v)", file, len(ps), err)
		}
	}
}

func TestAdminToken_File(t *testing.T) {
	t.Setenv("HARDCAP_ADMIN_TOKEN", "")
	tests := []struct {
		name, content, says string
	}{
		{"empty", "", "is empty"},
		{"blank", " \n\n", "is empty"},
		{"short", "hcadmin_x\n", "shorter than 16"},
		{"garbage", "hcadmin_\x00\x01\x02garbage-garbage\n", "printable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "admin.token")
			if err := os.WriteFile(path, []byte(tt.content), 0o600); err != nil {
				t.Fatal(err)
			}
			_, err := loadAdminToken(dir)
			if err == nil || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), tt.says) || !strings.Contains(err.Error(), "delete it") {
				t.Fatalf("got %v, want the path, %q and what to do", err, tt.says)
			}
			if strings.TrimSpace(tt.content) != "" && strings.Contains(err.Error(), strings.TrimSpace(tt.content)) {
				t.Fatal("the error quotes the file's content")
			}
		})
	}
	t.Run("created", func(t *testing.T) {
		dir := t.TempDir()
		tok, err := loadAdminToken(dir)
		if err != nil {
			t.Fatal(err)
		}
		again, err := loadAdminToken(dir)
		if err != nil || again != tok {
			t.Fatalf("second load got %q, %v; want the same token", again, err)
		}
		entries, _ := os.ReadDir(dir)
		if len(entries) != 1 {
			t.Fatalf("the data dir holds %v, want admin.token only (no temporary file)", entries)
		}
		if info, _ := entries[0].Info(); info.Mode().Perm() != 0o600 {
			t.Fatalf("admin.token mode %v, want 0600", info.Mode().Perm())
		}
	})
}

func TestServe_TightensDataDir(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HARDCAP_ADMIN_TOKEN", "")
	t.Setenv("HARDCAP_TEST_FAKE_KEY", fakeKey)
	cfg, err := loadConfig(writeConfig(t, t.TempDir(), "http://127.0.0.1:9/v1", ""))
	if err != nil {
		t.Fatal(err)
	}
	logs := &testlog.Buffer{}
	m := &Main{Config: cfg, DataDir: dir, LogOutput: logs}
	if err := m.Open(); err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	for name, want := range map[string]os.FileMode{"": 0o700, "hardcap.db": 0o600, "admin.token": 0o600, "hardcap.pid": 0o600, "hardcap.db.lock": 0o600} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil || info.Mode().Perm() != want {
			t.Fatalf("%s: %v %v, want mode %o", filepath.Join(dir, name), info.Mode().Perm(), err, want)
		}
	}
	if !strings.Contains(logs.String(), "data dir was readable by others") {
		t.Fatal("tightening the data dir is not logged")
	}
}
