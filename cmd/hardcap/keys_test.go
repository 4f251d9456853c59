package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/hardcap/hardcap/internal/testlog"
	"github.com/hardcap/hardcap/proxy/admin"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
)

// newFakeKey is the key the operator puts in the key file to rotate.
const newFakeKey = "sk-proj-NEWKEYforhardcapkeystests9876543210fedcba"

// startFileKeyServer is startServer with the openai key read from a file
// (rotate_every 30d); it returns the key file's path.
func startFileKeyServer(t *testing.T) (*server, string) {
	t.Helper()
	t.Setenv("HARDCAP_ADMIN_TOKEN", "")
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "openai.key")
	if err := os.WriteFile(keyFile, []byte(fakeKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, up: fakeopenai.New(t, fakeopenai.Options{APIKey: fakeKey}), dataDir: t.TempDir(), logs: &testlog.Buffer{}}
	cfgPath := filepath.Join(dir, "hardcap.yaml")
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\nproviders:\n  openai:\n    base_url: %s\n    api_key: file:%s\n    rotate_every: 30d\nlog:\n  level: debug\n  format: json\n", s.up.URL(), keyFile)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	s.main = &Main{Config: c, DataDir: s.dataDir, LogOutput: s.logs}
	if err := s.main.Open(); err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + s.main.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() { s.done <- s.main.Run(ctx) }()
	t.Cleanup(s.stop)
	return s, keyFile
}

// newChatToken creates a project and an unlimited token.
func newChatToken(t *testing.T, s *server) string {
	t.Helper()
	s.mustCLI("project", "create", "web")
	var tok struct{ Token string }
	decodeJSON(t, s.mustCLI("token", "create", "--project", "web", "--json"), &tok)
	if tokens.Parse(tok.Token) != nil {
		t.Fatalf("token create printed %q", tok.Token)
	}
	return tok.Token
}

// TestCLI_KeysReloadRotation: the operator replaces the key in its file;
// `hardcap keys reload` sees it without a restart and records a rotation,
// `hardcap keys` lists it with the replaced key and the upstream 401s it
// got; neither key is in the database file, a log line or an answer.
func TestCLI_KeysReloadRotation(t *testing.T) {
	s, keyFile := startFileKeyServer(t)
	token := newChatToken(t, s)
	if code, body := chat(t, s.url, token, hello); code != 200 {
		t.Fatalf("chat got %d: %s", code, body)
	}
	var outputs []string
	out := s.mustCLI("keys", "reload")
	outputs = append(outputs, out)
	if !strings.Contains(out, "openai: ") || strings.Contains(out, "key changed") {
		t.Fatalf("keys reload of the same key printed %q", out)
	}

	// The provider refuses the key: counted and shown at once.
	s.up.SetBehavior(fakeopenai.Behavior{Status: http.StatusUnauthorized})
	if code, _ := chat(t, s.url, token, hello); code != 401 {
		t.Fatalf("chat got %d, want the provider's 401", code)
	}
	s.up.SetBehavior(fakeopenai.Behavior{})
	var listed struct {
		Keys []struct {
			Provider, Fingerprint, Source, RotateEvery, State string
			SourceKind                                        string `json:"source_kind"`
			Unauthorized                                      uint64
			History                                           []struct{ Fingerprint string }
		}
	}
	out = s.mustCLI("keys", "--json")
	outputs = append(outputs, out)
	decodeJSON(t, out, &listed)
	if len(listed.Keys) != 1 || listed.Keys[0].SourceKind != "file" || listed.Keys[0].Source != "file:"+keyFile || listed.Keys[0].Unauthorized != 1 || len(listed.Keys[0].Fingerprint) != 8 {
		t.Fatalf("keys --json got %s", out)
	}
	old := listed.Keys[0].Fingerprint
	if listed.Keys[0].State != "rejected" {
		t.Fatalf("keys --json got state %q after a 401, want rejected", listed.Keys[0].State)
	}
	if out = s.mustCLI("keys"); !strings.Contains(out, "rejected (1, last ") {
		t.Fatalf("keys after a 401 printed %q, want the state rejected", out)
	}
	outputs = append(outputs, out)

	if err := os.WriteFile(keyFile, []byte(newFakeKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	out = s.mustCLI("keys", "reload", "--provider", "openai")
	outputs = append(outputs, out)
	if !strings.Contains(out, "openai: key changed "+old+" -> ") || !strings.Contains(out, "recorded as a rotation") {
		t.Fatalf("keys reload after the change printed %q", out)
	}
	out = s.mustCLI("keys")
	outputs = append(outputs, out)
	if !strings.Contains(out, "file:"+keyFile) || !strings.Contains(out, "30d") || !strings.Contains(out, "replaced keys, oldest first:\n  "+old) ||
		!strings.Contains(out, "1 upstream 401s") {
		t.Fatalf("keys printed %q", out)
	}
	if strings.Contains(strings.SplitN(out, "\n", 3)[1], old) {
		t.Fatalf("the current key is still the old one: %q", out)
	}
	entries, err := s.main.db.AuditLog(storage.AuditFilter{Kind: "provider_key", Target: "openai"})
	if err != nil || len(entries) == 0 || entries[len(entries)-1].Action != "rotate" || !strings.HasPrefix(entries[len(entries)-1].Actor, "admin:") {
		t.Fatalf("audit log got %+v, %v", entries, err)
	}

	// Bad input: a clear error, nothing changed.
	if _, err := s.cli("keys", "reload", "--provider", "nope"); err == nil || !strings.Contains(err.Error(), "no such provider") || !strings.Contains(err.Error(), "not_found") {
		t.Fatalf("reload of an unknown provider: %v", err)
	}
	if _, err := s.cli("keys", "--provider", "nope"); err == nil || !strings.Contains(err.Error(), "not_found") {
		t.Fatalf("keys of an unknown provider: %v", err)
	}
	var stderr strings.Builder
	if code := run(t.Context(), []string{"keys", "bogus"}, &strings.Builder{}, &stderr); code != 2 {
		t.Fatalf("keys bogus exited %d: %s", code, stderr.String())
	}

	s.stop()
	raw, err := os.ReadFile(filepath.Join(s.dataDir, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{fakeKey, newFakeKey} {
		for where, text := range map[string]string{"the database file": string(raw), "the server log": s.logs.String(), "the CLI output": strings.Join(outputs, "\n")} {
			if strings.Contains(text, key) {
				t.Fatalf("%s holds a provider key", where)
			}
		}
	}
}

// TestKeys_UnauthorizedWrittenAtShutdown: upstream 401s counted in memory
// reach the key ledger when the server stops, without a key read.
func TestKeys_UnauthorizedWrittenAtShutdown(t *testing.T) {
	s, _ := startFileKeyServer(t)
	token := newChatToken(t, s)
	s.up.SetBehavior(fakeopenai.Behavior{Status: http.StatusUnauthorized})
	for range 2 {
		if code, _ := chat(t, s.url, token, hello); code != 401 {
			t.Fatalf("chat got %d", code)
		}
	}
	s.stop()
	if strings.Count(s.logs.String(), "refused its real key") != 1 {
		t.Fatalf("want one warning for two 401s within a minute: %s", s.logs.String())
	}
	db, err := storage.Open(filepath.Join(s.dataDir, dbFile), storage.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	keys, err := db.ProviderKeys()
	if err != nil || len(keys) != 1 || keys[0].Unauthorized != 2 || keys[0].LastUnauthorized.IsZero() {
		t.Fatalf("after the stop the ledger holds %+v, %v; want 2 upstream 401s", keys, err)
	}
}

// TestConfig_RotateEvery: providers.NAME.rotate_every sets the key's
// rotation interval; a value that is not a positive duration is refused.
func TestConfig_RotateEvery(t *testing.T) {
	tests := []struct {
		value string
		want  time.Duration
		fails bool
	}{
		{"", 0, false}, // the proxy's DefaultRotateEvery applies
		{"30d", 30 * 24 * time.Hour, false},
		{"2w", 14 * 24 * time.Hour, false},
		{"0d", 0, true},
		{"-1d", 0, true},
		{"soon", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.value, func(t *testing.T) {
			yaml := "providers:\n  openai: {base_url: https://x/v1, api_key: env:K, rotate_every: \"" + tt.value + "\"}\n"
			cfg, err := parseConfig([]byte(yaml), defaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			set, err := cfg.check()
			if tt.fails {
				if err == nil || !strings.Contains(err.Error(), "providers.openai.rotate_every") {
					t.Fatalf("got %v, want an error naming providers.openai.rotate_every", err)
				}
				return
			}
			if err != nil || len(set.providers) != 1 || set.providers[0].Key.RotateEvery != tt.want {
				t.Fatalf("got %v, %v; want %v", set.providers, err, tt.want)
			}
		})
	}
}

// TestPrintKeys_State: the STATE column shows the server's state; a key
// the provider refused reads "rejected" with the 401 count and the last
// one's time, not "ok"; a replaced key in use again gets a note.
func TestPrintKeys_State(t *testing.T) {
	last := time.Date(2026, 12, 2, 10, 4, 11, 0, time.UTC)
	base := admin.KeyView{Provider: "openai", Configured: true, Source: "file:/run/keys/openai", Fingerprint: "38e15918", RotateEvery: "90d",
		FirstSeen: last.Add(-72 * time.Hour), RotateBy: last.Add(87 * 24 * time.Hour), AgeDays: 3, History: []admin.KeyHistoryView{}}
	tests := []struct {
		name string
		edit func(*admin.KeyView)
		want []string
		not  []string
	}{
		{"ok", func(*admin.KeyView) {}, []string{" ok "}, []string{"rejected"}},
		{"rejected", func(k *admin.KeyView) {
			k.State, k.Unauthorized, k.LastUnauthorized = admin.KeyRejected, 2, last
		}, []string{"rejected (2, last 2026-12-02T10:04:11Z)", "answered 401 to 2 request(s)"}, []string{" ok "}},
		{"overdue", func(k *admin.KeyView) { k.State, k.Overdue = admin.KeyOverdue, true }, []string{"OVERDUE", "past its rotation date"}, nil},
		{"due soon", func(k *admin.KeyView) { k.State = admin.KeyDueSoon }, []string{"due soon"}, nil},
		{"not read", func(k *admin.KeyView) { k.State, k.Fingerprint = admin.KeyNotRead, "" }, []string{"not read yet"}, nil},
		{"reused", func(k *admin.KeyView) { k.Reused, k.ReusedAt = true, last }, []string{"a replaced key in use again (since 2026-12-02T10:04:11Z)"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k := base
			k.State = admin.KeyOK
			tt.edit(&k)
			var out strings.Builder
			printKeys(&out, []admin.KeyView{k})
			for _, s := range tt.want {
				if !strings.Contains(out.String(), s) {
					t.Errorf("output lacks %q:\n%s", s, out.String())
				}
			}
			for _, s := range tt.not {
				if strings.Contains(out.String(), s) {
					t.Errorf("output holds %q:\n%s", s, out.String())
				}
			}
		})
	}
}

// TestPrintReload_Reused: a reload to a key replaced before says so.
func TestPrintReload_Reused(t *testing.T) {
	var out strings.Builder
	if err := printReload(&out, []admin.KeyReloadView{{Provider: "openai", Source: "file:k", Fingerprint: "aaaa1111", Previous: "bbbb2222", Changed: true, Reused: true}}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "openai: key changed bbbb2222 -> aaaa1111 (file:k): a replaced key is in use again") {
		t.Fatalf("printed %q", out.String())
	}
}
