package admin

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
	"github.com/rs/zerolog"
)

// backupServer is the admin API over a database with one project; logs
// receives the storage log.
func backupServer(t *testing.T, logs *bytes.Buffer) (*httptest.Server, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := storage.Open(path, storage.Options{NoSync: true, Log: zerolog.New(logs)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.CreateProject(context.Background(), "web", budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(New(Options{DB: db, AdminToken: testAdminToken}))
	t.Cleanup(srv.Close)
	return srv, path
}

func adminGet(t *testing.T, srv *httptest.Server, path string) (*http.Response, []byte) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+path, nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, b
}

func TestBackup_IsAConsistentCopy(t *testing.T) {
	srv, path := backupServer(t, &bytes.Buffer{})
	resp, body := adminGet(t, srv, "/admin/v1/backup")
	if resp.StatusCode != 200 || resp.Header.Get("Content-Length") != strconv.Itoa(len(body)) {
		t.Fatalf("got %d with Content-Length %q for %d bytes", resp.StatusCode, resp.Header.Get("Content-Length"), len(body))
	}
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(copyPath, body, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := storage.Check(copyPath)
	if err != nil || !rep.OK() || rep.Entries["projects"] != 1 {
		t.Fatalf("the copy: %+v, %v; want a sound file with the project", rep, err)
	}
	noTempFiles(t, filepath.Dir(path))
}

// noTempFiles fails if a backup's temporary copy is left in dir.
func noTempFiles(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".hardcap-backup-") {
			t.Fatalf("%s is left in the data dir", e.Name())
		}
	}
}

// TestBackup_NoRoomForTheCopy: when the temporary copy cannot be written
// (here: the data dir is gone from its path), the answer is a 503 that says
// so, not ledger_unavailable, and the ledger still works.
func TestBackup_NoRoomForTheCopy(t *testing.T) {
	var logs bytes.Buffer
	srv, path := backupServer(t, &logs)
	dir := filepath.Dir(path)
	moved := dir + "-moved"
	if err := os.Rename(dir, moved); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Rename(moved, dir) })
	resp, body := adminGet(t, srv, "/admin/v1/backup")
	if resp.StatusCode != 503 || !strings.Contains(string(body), "backup_failed") || !strings.Contains(string(body), "temporary copy") {
		t.Fatalf("got %d %s, want 503 backup_failed", resp.StatusCode, body)
	}
	if resp, body := adminGet(t, srv, "/admin/v1/projects"); resp.StatusCode != 200 {
		t.Fatalf("projects after the failed backup: %d %s", resp.StatusCode, body)
	}
}

// TestDamaged_Is503 cuts the database under the admin API: the answer is
// 503 ledger_unavailable and the cause is in the log at error level.
func TestDamaged_Is503(t *testing.T) {
	var logs bytes.Buffer
	srv, path := backupServer(t, &logs)
	if err := os.Truncate(path, 4096); err != nil {
		t.Fatal(err)
	}
	for _, route := range []string{"/admin/v1/projects", "/admin/v1/backup"} {
		resp, body := adminGet(t, srv, route)
		if resp.StatusCode != 503 || !strings.Contains(string(body), "ledger_unavailable") {
			t.Fatalf("%s: got %d %s, want 503 ledger_unavailable", route, resp.StatusCode, body)
		}
	}
	if !strings.Contains(logs.String(), `"level":"error"`) || !strings.Contains(logs.String(), "panicked") {
		t.Fatalf("the cause is not logged at error level: %s", logs.String())
	}
}

// smallBuffers shrinks the kernel send buffer of every accepted connection,
// so a backup that the client does not read stops the handler's writes after
// a few kB instead of after the megabytes loopback buffers can take.
type smallBuffers struct{ net.Listener }

func (l smallBuffers) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if tc, ok := c.(*net.TCPConn); ok {
		_ = tc.SetWriteBuffer(4096)
	}
	return c, err
}

// addTokens writes n tokens with long names into db, one commit each.
func addTokens(ctx context.Context, db *storage.DB, prefix string, n int) error {
	for i := range n {
		name := fmt.Sprintf("%s-%05d-%s", prefix, i, strings.Repeat("n", 100))
		if _, _, err := db.CreateToken(ctx, storage.TokenSpec{Project: "web", Name: name}); err != nil {
			return err
		}
	}
	return nil
}

// TestBackup_SlowReaderDoesNotBlockWrites is the trial's freeze: a client
// that reads the backup slowly, while writes grow the file past bbolt's
// memory map. The writes must complete while the download is still unread;
// before, they waited for the reader (bbolt cannot remap under an open read
// transaction), and so did every request after them.
func TestBackup_SlowReaderDoesNotBlockWrites(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	path := filepath.Join(dir, "hardcap.db")
	db, err := storage.Open(path, storage.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if _, err := db.CreateProject(ctx, "web", budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	if err := addTokens(ctx, db, "before", 300); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(New(Options{DB: db, AdminToken: testAdminToken}))
	srv.Listener = smallBuffers{srv.Listener}
	srv.Start()
	t.Cleanup(srv.Close)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	sizeBefore := info.Size()

	tr := &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := (&net.Dialer{}).DialContext(ctx, network, addr)
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetReadBuffer(4096)
		}
		return c, err
	}}
	t.Cleanup(tr.CloseIdleConnections)
	req, _ := http.NewRequest("GET", srv.URL+"/admin/v1/backup", nil)
	req.Header.Set("Authorization", "Bearer "+testAdminToken)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || resp.ContentLength <= 0 {
		t.Fatalf("got %d with Content-Length %d, want 200 and a length", resp.StatusCode, resp.ContentLength)
	}
	head := make([]byte, 16)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatal(err)
	}
	// Streaming from an unlinked file: nothing to clean up after a crash.
	noTempFiles(t, dir)

	done := make(chan error, 1)
	go func() { done <- addTokens(ctx, db, "during", 1000) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		// Not a latency bound: a minute is what a stuck writer looks like.
		// Read the rest so the writes can end, then fail.
		_, _ = io.Copy(io.Discard, resp.Body)
		<-done
		t.Fatal("the writes completed only after the slow client had read the whole backup")
	}
	if info, err := os.Stat(path); err != nil || info.Size() < 2*sizeBefore {
		t.Fatalf("the file grew from %d to %v bytes (%v): not enough to make bbolt remap, so the test shows nothing", sizeBefore, info.Size(), err)
	}
	// The copy is the database as it was when the download began.
	rest, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	copyPath := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(copyPath, append(head, rest...), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := storage.Check(copyPath)
	if err != nil || !rep.OK() || rep.Entries["tokens"] != 300 {
		t.Fatalf("the copy: %+v, %v; want a sound file with the 300 tokens of before", rep, err)
	}
}
