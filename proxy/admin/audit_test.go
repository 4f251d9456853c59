package admin

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/audit"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/testlog"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
	"github.com/rs/zerolog"
)

// auditEnv is the admin API with audit facts, over a database on a clock
// the test moves.
func newAuditEnv(t *testing.T, keys func() []audit.ProviderKey) (*adminEnv, func(time.Duration)) {
	t.Helper()
	var mu sync.Mutex
	now := time.Date(2026, 5, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	db, err := storage.Open(filepath.Join(t.TempDir(), "hardcap.db"), storage.Options{NoSync: true, Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e := &adminEnv{t: t, db: db, log: &testlog.Buffer{}}
	h := New(Options{
		DB: db, Proxy: proxy.New(proxy.Options{Tokens: db, Ledger: db}), AdminToken: testAdminToken,
		Log: zerolog.New(e.log), Now: clock,
		AuditFacts: func() audit.Input {
			return audit.Input{Providers: []audit.Provider{{Name: "openai", Kind: "openai", BaseURL: "https://api.openai.com/v1"}}}
		},
		ProviderKeys: keys,
	})
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e, func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
}

// testActor is the admin credential id of testAdminToken, as the handler
// names it in the audit log.
var testActor = func() string {
	sum := sha256.Sum256([]byte(testAdminToken))
	return "admin:" + hex.EncodeToString(sum[:4])
}()

func auditKeys(t *testing.T, body string) (open, acked []string) {
	t.Helper()
	var rep audit.Report
	if err := json.Unmarshal([]byte(body), &rep); err != nil {
		t.Fatalf("not a report: %v: %s", err, body)
	}
	for _, f := range rep.Findings {
		open = append(open, f.Severity.String()+" "+f.Key())
	}
	for _, f := range rep.Acknowledged {
		acked = append(acked, f.Key()+" by "+f.AckedBy)
	}
	return open, acked
}

func TestAdmin_Audit(t *testing.T) {
	e, advance := newAuditEnv(t, nil)
	if _, err := e.db.CreateProject(context.Background(), "web", budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	tok, _, err := e.db.CreateToken(context.Background(), storage.TokenSpec{Project: "web"})
	if err != nil {
		t.Fatal(err)
	}
	code, body := e.do("GET", "/admin/v1/audit", "")
	open, _ := auditKeys(t, body)
	want := "medium token-unbounded:" + tok.ID + ",low auto-topup:openai,low token-no-owner:" + tok.ID
	if code != 200 || strings.Join(open, ",") != want {
		t.Fatalf("GET audit: %d %q, want %q", code, open, want)
	}
	advance(8 * 24 * time.Hour)
	_, body = e.do("GET", "/admin/v1/audit", "")
	if open, _ := auditKeys(t, body); len(open) == 0 || open[0] != "high zombie-token:"+tok.ID {
		t.Fatalf("8 days later: %q, want the zombie first", open)
	}

	tests := []struct {
		name, body string
		code       int
		want       string
	}{
		{"new", `{"ack":"auto-topup:openai"}`, 201, `"created": true`},
		{"again", `{"ack":"auto-topup:openai"}`, 200, `"created": false`},
		{"typo", `{"ack":"auto-topup:opnai"}`, 404, "not_found"},
		{"must be fixed", `{"ack":"zombie-token:` + tok.ID + `"}`, 400, "cannot be acknowledged"},
		{"not a key", `{"ack":"whatever"}`, 400, "invalid_request"},
		{"unknown field", `{"key":"auto-topup:openai"}`, 400, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := e.do("POST", "/admin/v1/audit/acks", tt.body)
			if code != tt.code || !strings.Contains(body, tt.want) {
				t.Fatalf("got %d %s, want %d with %q", code, body, tt.code, tt.want)
			}
		})
	}
	_, body = e.do("GET", "/admin/v1/audit", "")
	open, acked := auditKeys(t, body)
	if strings.Contains(strings.Join(open, ","), "auto-topup") || strings.Join(acked, ",") != "auto-topup:openai by "+testActor {
		t.Fatalf("after the ack: open %q, acknowledged %q", open, acked)
	}
	log, err := e.db.AuditLog(storage.AuditFilter{Kind: "finding"})
	if err != nil || len(log) != 1 || log[0].Target != "auto-topup:openai" {
		t.Fatalf("audit log: %+v, %v; want the one acknowledgement", log, err)
	}
}

func TestAdmin_AuditProviderKeys(t *testing.T) {
	keys := func() []audit.ProviderKey {
		return []audit.ProviderKey{{Provider: "openai", FingerprintPrefix: "c0ffee", FirstSeen: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), RotateBy: time.Date(2026, 4, 1, 0, 0, 0, 0, time.UTC)}}
	}
	e, _ := newAuditEnv(t, keys)
	_, body := e.do("GET", "/admin/v1/audit", "")
	if open, _ := auditKeys(t, body); len(open) == 0 || open[0] != "high provider-key-rotation-due:openai" || !strings.Contains(body, "c0ffee") {
		t.Fatalf("got %q: %s", open, body)
	}
}
