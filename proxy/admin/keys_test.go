package admin

import (
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/internal/testlog"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
	"github.com/rs/zerolog"
)

const (
	keyA = "sk-proj-ADMINKEYSTESTaaaa0123456789abcdefghij"
	keyB = "sk-proj-ADMINKEYSTESTbbbb0123456789abcdefghij"
)

// keysEnv is the admin API with a file-sourced openai key tied to the
// ledger.
type keysEnv struct {
	*adminEnv
	keyFile string
	dbPath  string
}

func newKeysEnv(t *testing.T, provs func(keyFile string) []*proxy.Provider) *keysEnv {
	t.Helper()
	dir := t.TempDir()
	e := &keysEnv{adminEnv: &adminEnv{t: t, log: &testlog.Buffer{}, now: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)},
		keyFile: filepath.Join(dir, "openai.key"), dbPath: filepath.Join(dir, "hardcap.db")}
	if err := os.WriteFile(e.keyFile, []byte(keyA+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	db, err := storage.Open(e.dbPath, storage.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	e.db = db
	clock := func() time.Time { return e.now }
	keys := proxy.NewKeys(proxy.KeysOptions{Providers: provs(e.keyFile), Recorder: KeyLedger{DB: db}, Log: zerolog.New(e.log), Now: clock})
	h := New(Options{
		DB: db, Proxy: proxy.New(proxy.Options{Tokens: db, Ledger: db}), AdminToken: testAdminToken,
		Log: zerolog.New(e.log), Now: clock, Keys: keys,
	})
	e.srv = httptest.NewServer(h)
	t.Cleanup(e.srv.Close)
	return e
}

func openaiFromFile(t *testing.T, every time.Duration) func(string) []*proxy.Provider {
	return func(keyFile string) []*proxy.Provider {
		ks, err := proxy.ParseKeySource("file:" + keyFile)
		if err != nil {
			t.Fatal(err)
		}
		ks.RotateEvery = every
		return []*proxy.Provider{{Name: "openai", Kind: proxy.KindOpenAI, Key: ks}}
	}
}

// TestKeys_ReloadRecordsRotation: a key file changed on disk is seen by
// POST /admin/v1/keys/reload without a restart, recorded as a rotation in
// the ledger and the audit log, and listed by GET /admin/v1/keys; the key
// appears in no answer, no log line and nowhere in the database file.
func TestKeys_ReloadRecordsRotation(t *testing.T) {
	e := newKeysEnv(t, openaiFromFile(t, 0))
	var answers []string
	code, body := e.do("POST", "/admin/v1/keys/reload", "")
	answers = append(answers, body)
	if code != 200 || field(t, body, "reloaded") == nil || !strings.Contains(body, `"first": true`) {
		t.Fatalf("first reload got %d: %s", code, body)
	}
	first := field(t, body, "reloaded").([]any)[0].(map[string]any)["fingerprint"].(string)
	if len(first) != 8 {
		t.Fatalf("fingerprint %q, want 8 hex digits", first)
	}

	e.now = e.now.Add(10 * 24 * time.Hour)
	if err := os.WriteFile(e.keyFile, []byte(keyB+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	code, body = e.do("POST", "/admin/v1/keys/reload", `{"provider":"openai"}`)
	answers = append(answers, body)
	got := field(t, body, "reloaded").([]any)[0].(map[string]any)
	if code != 200 || got["changed"] != true || got["previous"] != first || got["fingerprint"] == first || got["source"] != "file:"+e.keyFile {
		t.Fatalf("reload after the change got %d: %s", code, body)
	}

	e.now = e.now.Add(24 * time.Hour)
	code, body = e.do("GET", "/admin/v1/keys", "")
	answers = append(answers, body)
	if code != 200 {
		t.Fatalf("list got %d: %s", code, body)
	}
	k := field(t, body, "keys").([]any)[0].(map[string]any)
	if k["provider"] != "openai" || k["source_kind"] != "file" || k["fingerprint"] != got["fingerprint"] || k["age_days"] != float64(1) ||
		k["rotate_every"] != "90d" || k["rotate_by"] != "2027-03-11T00:00:00Z" || k["overdue"] != false || k["configured"] != true {
		t.Fatalf("list got %s", body)
	}
	hist := k["history"].([]any)
	if len(hist) != 1 || hist[0].(map[string]any)["fingerprint"] != first || hist[0].(map[string]any)["last_seen"] != "2026-12-01T00:00:00Z" {
		t.Fatalf("history got %v", hist)
	}
	log, err := e.db.AuditLog(storage.AuditFilter{Kind: "provider_key", Target: "openai"})
	if err != nil || len(log) != 2 || log[1].Action != "rotate" || log[1].Actor != testActor {
		t.Fatalf("audit log got %+v, %v", log, err)
	}

	e.db.Close()
	raw, err := os.ReadFile(e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{keyA, keyB} {
		for where, text := range map[string]string{"the database file": string(raw), "the log": e.log.String(), "an answer": strings.Join(answers, "\n")} {
			if strings.Contains(text, key) || strings.Contains(text, "ADMINKEYSTEST") {
				t.Fatalf("%s holds a provider key", where)
			}
		}
	}
}

// TestKeys_Overdue: a key older than its rotate_every is listed overdue.
func TestKeys_Overdue(t *testing.T) {
	e := newKeysEnv(t, openaiFromFile(t, 24*time.Hour))
	if code, body := e.do("POST", "/admin/v1/keys/reload", ""); code != 200 {
		t.Fatalf("got %d: %s", code, body)
	}
	e.now = e.now.Add(50 * time.Hour)
	_, body := e.do("GET", "/admin/v1/keys?provider=openai", "")
	k := field(t, body, "keys").([]any)[0].(map[string]any)
	if k["overdue"] != true || k["age_days"] != float64(2) || k["rotate_every"] != "1d" {
		t.Fatalf("got %s", body)
	}
}

// TestKeys_BadInput: an unknown provider, nothing to reload and a body
// that is not the route's are clear errors and change nothing.
func TestKeys_BadInput(t *testing.T) {
	e := newKeysEnv(t, openaiFromFile(t, 0))
	tests := []struct {
		name, method, path, body string
		status                   int
		code, says               string
	}{
		{"reload unknown", "POST", "/admin/v1/keys/reload", `{"provider":"groq"}`, 404, "not_found", "no such provider"},
		{"list unknown", "GET", "/admin/v1/keys?provider=" + strings.Repeat("g", 400), "", 404, "not_found", "no such provider"},
		{"bad body", "POST", "/admin/v1/keys/reload", `{"providers":["openai"]}`, 400, "invalid_request", "fields"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := e.do(tt.method, tt.path, tt.body)
			if code != tt.status || field(t, body, "error.code") != tt.code || !strings.Contains(body, tt.says) || len(body) > 400 {
				t.Fatalf("got %d: %s", code, body)
			}
		})
	}
	if keys, _ := e.db.ProviderKeys(); len(keys) != 0 {
		t.Fatalf("bad requests recorded %+v", keys)
	}

	none := newKeysEnv(t, func(string) []*proxy.Provider { return nil })
	code, body := none.do("POST", "/admin/v1/keys/reload", "")
	if code != 404 || !strings.Contains(body, "no provider is configured") {
		t.Fatalf("reload with no providers got %d: %s", code, body)
	}
	if code, body := none.do("GET", "/admin/v1/keys", ""); code != 200 || !strings.Contains(body, `"keys": []`) {
		t.Fatalf("list with no providers got %d: %s", code, body)
	}
}

// TestKeys_ReplacedKeyBack: the key file goes from A to B and back to A.
// The reload says the key changed to a replaced one; hardcap keys shows A
// with its first age and due date, B alone in the history; the log warns;
// the audit raises provider-key-reused.
func TestKeys_ReplacedKeyBack(t *testing.T) {
	e := newKeysEnv(t, openaiFromFile(t, 0))
	start := e.now
	steps := []struct {
		key          string
		after        time.Duration
		changed, was bool // changed, and to a key replaced before
	}{
		{keyA, 0, false, false},
		{keyB, 10 * 24 * time.Hour, true, false},
		{keyA, 10 * 24 * time.Hour, true, true},
	}
	var fps []string
	for i, st := range steps {
		e.now = e.now.Add(st.after)
		if err := os.WriteFile(e.keyFile, []byte(st.key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		code, body := e.do("POST", "/admin/v1/keys/reload", "")
		got := field(t, body, "reloaded").([]any)[0].(map[string]any)
		if code != 200 || got["changed"] != st.changed || got["reused"] != st.was {
			t.Fatalf("reload %d got %d: %s", i, code, body)
		}
		fps = append(fps, got["fingerprint"].(string))
	}
	_, body := e.do("GET", "/admin/v1/keys", "")
	k := field(t, body, "keys").([]any)[0].(map[string]any)
	hist := k["history"].([]any)
	if k["fingerprint"] != fps[0] || k["age_days"] != float64(20) || k["first_seen"] != start.Format(time.RFC3339) ||
		k["rotate_by"] != start.Add(90*24*time.Hour).Format(time.RFC3339) || k["reused"] != true ||
		len(hist) != 1 || hist[0].(map[string]any)["fingerprint"] != fps[1] {
		t.Fatalf("keys got %s", body)
	}
	if !strings.Contains(e.log.String(), "a replaced key is in use again") {
		t.Fatalf("no warning in the log: %s", e.log.String())
	}
	code, body := e.do("GET", "/admin/v1/audit", "")
	if code != 200 || !strings.Contains(body, `"kind": "provider-key-reused"`) || !strings.Contains(body, fps[0]) {
		t.Fatalf("audit got %d: %s", code, body)
	}
}

// TestKeys_State: GET /admin/v1/keys sums each key up in "state"; a key
// the provider refused (upstream 401s since it was first seen) is
// "rejected", before its due date counts, until a new key replaces it.
func TestKeys_State(t *testing.T) {
	tests := []struct {
		name  string
		every time.Duration
		setup func(t *testing.T, e *keysEnv)
		want  string
	}{
		{"not read", 0, func(t *testing.T, e *keysEnv) {}, KeyNotRead},
		{"ok", 0, reloadKey(keyA), KeyOK},
		{"due soon", 10 * 24 * time.Hour, reloadKey(keyA), KeyDueSoon},
		{"overdue", 24 * time.Hour, func(t *testing.T, e *keysEnv) {
			reloadKey(keyA)(t, e)
			e.now = e.now.Add(50 * time.Hour)
		}, KeyOverdue},
		{"rejected", 0, func(t *testing.T, e *keysEnv) {
			reloadKey(keyA)(t, e)
			if err := e.db.AddUnauthorized(t.Context(), "openai", 3, e.now); err != nil {
				t.Fatal(err)
			}
		}, KeyRejected},
		{"rejected and overdue", 24 * time.Hour, func(t *testing.T, e *keysEnv) {
			reloadKey(keyA)(t, e)
			if err := e.db.AddUnauthorized(t.Context(), "openai", 1, e.now); err != nil {
				t.Fatal(err)
			}
			e.now = e.now.Add(50 * time.Hour)
		}, KeyRejected},
		{"rejected, then a new key", 0, func(t *testing.T, e *keysEnv) {
			reloadKey(keyA)(t, e)
			if err := e.db.AddUnauthorized(t.Context(), "openai", 3, e.now); err != nil {
				t.Fatal(err)
			}
			e.now = e.now.Add(time.Hour)
			reloadKey(keyB)(t, e)
		}, KeyOK},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newKeysEnv(t, openaiFromFile(t, tt.every))
			tt.setup(t, e)
			code, body := e.do("GET", "/admin/v1/keys", "")
			if code != 200 || field(t, body, "keys").([]any)[0].(map[string]any)["state"] != tt.want {
				t.Fatalf("got %d: %s; want state %q", code, body, tt.want)
			}
		})
	}
}

// reloadKey writes key to the key file and reloads it.
func reloadKey(key string) func(t *testing.T, e *keysEnv) {
	return func(t *testing.T, e *keysEnv) {
		t.Helper()
		if err := os.WriteFile(e.keyFile, []byte(key+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if code, body := e.do("POST", "/admin/v1/keys/reload", ""); code != 200 {
			t.Fatalf("reload got %d: %s", code, body)
		}
	}
}
