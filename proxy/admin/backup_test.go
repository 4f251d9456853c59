package admin

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

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
	srv, _ := backupServer(t, &bytes.Buffer{})
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
