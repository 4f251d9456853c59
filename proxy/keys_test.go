package proxy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

func TestKeySource(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "key")
	if err := os.WriteFile(keyFile, []byte("sk-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("HARDCAP_KEY_TEST", "sk-from-env")
	t.Setenv("HARDCAP_KEY_EMPTY", "")
	tests := []struct {
		spec, want string
		fails      bool
	}{
		{"env:HARDCAP_KEY_TEST", "sk-from-env", false},
		{"file:" + keyFile, "sk-from-file", false},
		{"cmd:echo sk-from-cmd", "sk-from-cmd", false},
		{"env:HARDCAP_KEY_EMPTY", "", true},
		{"file:" + filepath.Join(dir, "missing"), "", true},
		// A failing command's output is never shown, even when it printed
		// the key.
		{"cmd:sh -c 'echo sk-leaked-secret; exit 3'", "", true},
		{"cmd:sh -c 'echo sk-leaked-secret >&2; exit 3'", "", true},
		{"cmd:/nonexistent/binary", "", true},
		{"cmd:printf 'sk-one\\nsk-two'", "", true},
		{`cmd:sh -c "printf '%s' sk-quoted"`, "sk-quoted", false},
	}
	for _, tt := range tests {
		t.Run(tt.spec, func(t *testing.T) {
			ks, err := ParseKeySource(tt.spec)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ks.Key(t.Context())
			if tt.fails {
				if !errors.Is(err, ErrNoKey) {
					t.Fatalf("got %q, %v; want ErrNoKey", got, err)
				}
				if strings.Contains(err.Error(), "sk-") || strings.Contains(err.Error(), "secret") {
					t.Fatalf("the error shows the key: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
		})
	}
	for _, bad := range []string{"sk-literal", "env:", "vault:x", "", `cmd:sh -c 'unterminated`} {
		if _, err := ParseKeySource(bad); !errors.Is(err, ErrKeySource) {
			t.Errorf("ParseKeySource(%q) = %v, want ErrKeySource", bad, err)
		}
	}
}

func TestKeySource_StringHidesCommandArguments(t *testing.T) {
	ks, _ := ParseKeySource("cmd:op read op://vault/openai/credential")
	if got := ks.String(); got != "cmd:op ..." {
		t.Fatalf("got %q", got)
	}
}

func TestSplitArgs(t *testing.T) {
	tests := map[string][]string{
		`op read op://vault/x`: {"op", "read", "op://vault/x"},
		`sh -c "echo a b"`:     {"sh", "-c", "echo a b"},
		`a 'b c' d`:            {"a", "b c", "d"},
		`a\ b`:                 {"a b"},
		`  spaced   out `:      {"spaced", "out"},
		`x ""`:                 {"x", ""},
	}
	for in, want := range tests {
		got, err := splitArgs(in)
		if err != nil || strings.Join(got, "|") != strings.Join(want, "|") || len(got) != len(want) {
			t.Errorf("splitArgs(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// TestKeySource_RefreshDoesNotBlock: a stale key is served at once while the
// source is read again in the background, and the new key replaces it.
func TestKeySource_RefreshDoesNotBlock(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	if err := os.WriteFile(path, []byte("sk-old"), 0o600); err != nil {
		t.Fatal(err)
	}
	ks, _ := ParseKeySource("file:" + path)
	if got, err := ks.Key(t.Context()); err != nil || got != "sk-old" {
		t.Fatalf("got %q, %v", got, err)
	}
	if err := os.WriteFile(path, []byte("sk-new"), 0o600); err != nil {
		t.Fatal(err)
	}
	ks.mu.Lock()
	ks.fetched = ks.fetched.Add(-KeyTTL)
	ks.mu.Unlock()
	if got, _ := ks.Key(t.Context()); got != "sk-old" {
		t.Fatalf("a stale key was not served while refreshing: got %q", got)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if got, _ := ks.Key(t.Context()); got == "sk-new" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the background refresh never replaced the key")
		}
		time.Sleep(5 * time.Millisecond)
	}
	// A refresh that fails keeps the key.
	os.Remove(path)
	ks.mu.Lock()
	ks.fetched = ks.fetched.Add(-KeyTTL)
	ks.mu.Unlock()
	ks.Key(t.Context())
	time.Sleep(50 * time.Millisecond)
	if got, err := ks.Key(t.Context()); err != nil || got != "sk-new" {
		t.Fatalf("after a failed refresh got %q, %v; want the old key", got, err)
	}
}

// TestKeySource_FailureRemembered: a broken source is not read again for
// every request.
func TestKeySource_FailureRemembered(t *testing.T) {
	path := filepath.Join(t.TempDir(), "key")
	ks, _ := ParseKeySource("file:" + path)
	if _, err := ks.Key(t.Context()); !errors.Is(err, ErrNoKey) {
		t.Fatalf("got %v, want ErrNoKey", err)
	}
	if err := os.WriteFile(path, []byte("sk-late"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ks.Key(t.Context()); !errors.Is(err, ErrNoKey) {
		t.Fatalf("within keyRetryAfter got %v, want the remembered failure", err)
	}
	ks.mu.Lock()
	ks.failed = ks.failed.Add(-keyRetryAfter)
	ks.mu.Unlock()
	if got, err := ks.Key(t.Context()); err != nil || got != "sk-late" {
		t.Fatalf("after keyRetryAfter got %q, %v", got, err)
	}
}

// fakeRecorder is a key ledger in memory: the fingerprint is the key's
// length and last four characters, enough to tell test keys apart.
type fakeRecorder struct {
	mu     sync.Mutex
	fp     map[string]string
	reads  []KeyRead
	unauth map[string]uint64
	fail   error
}

func (f *fakeRecorder) SeeKey(_ context.Context, r KeyRead) (KeyChange, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return KeyChange{}, f.fail
	}
	if f.fp == nil {
		f.fp, f.unauth = map[string]string{}, map[string]uint64{}
	}
	f.reads = append(f.reads, r)
	f.unauth[r.Provider] += r.Unauthorized
	fp := fmt.Sprintf("%04d%s", len(r.Key), r.Key[len(r.Key)-4:])
	old, found := f.fp[r.Provider]
	f.fp[r.Provider] = fp
	return KeyChange{Fingerprint: fp + "ffff", Previous: old, First: !found, Rotated: found && old != fp}, nil
}

func (f *fakeRecorder) AddUnauthorized(_ context.Context, provider string, n uint64, _ time.Time) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.fail != nil {
		return f.fail
	}
	if f.unauth == nil {
		f.unauth = map[string]uint64{}
	}
	f.unauth[provider] += n
	return nil
}

func fileProvider(t *testing.T, name, key string) (*Provider, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), name+".key")
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ks, err := ParseKeySource("file:" + path)
	if err != nil {
		t.Fatal(err)
	}
	return &Provider{Name: name, Kind: KindOpenAI, Key: ks}, path
}

// TestKeys_ReloadSeesChangedFile: a key file changed on disk is read by
// Reload at once, served from then on, and recorded as a rotation.
func TestKeys_ReloadSeesChangedFile(t *testing.T) {
	prov, path := fileProvider(t, "openai", "sk-test-old-1111")
	rec := &fakeRecorder{}
	var logs strings.Builder
	ks := NewKeys(KeysOptions{Providers: []*Provider{prov}, Recorder: rec, Log: zerolog.New(&logs)})
	if got, err := prov.Key.Key(t.Context()); err != nil || got != "sk-test-old-1111" {
		t.Fatalf("got %q, %v", got, err)
	}
	if len(rec.reads) != 1 || rec.reads[0].Kind != "file" || rec.reads[0].Source != "file:"+path || rec.reads[0].RotateEvery != DefaultRotateEvery {
		t.Fatalf("the first read was recorded as %+v", rec.reads)
	}
	if err := os.WriteFile(path, []byte("sk-test-new-2222\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ks.Reload(t.Context(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || !got[0].Changed || got[0].Err != nil || got[0].Fingerprint != "00162222" || got[0].Previous != "00161111" {
		t.Fatalf("reload got %+v, want a change 00161111 -> 00162222", got)
	}
	if key, _ := prov.Key.Key(t.Context()); key != "sk-test-new-2222" {
		t.Fatalf("after the reload the key served is %q", key)
	}
	if st := ks.States(); len(st) != 1 || st[0].Fingerprint != "00162222" || st[0].Kind != "file" || st[0].ReadError != "" {
		t.Fatalf("states got %+v", st)
	}
	if !strings.Contains(logs.String(), "recorded as a rotation") {
		t.Fatalf("no log line for the rotation: %s", logs.String())
	}
	// Unchanged: no rotation.
	if got, _ := ks.Reload(t.Context(), "openai"); got[0].Changed || got[0].First {
		t.Fatalf("a reload of the same key got %+v", got)
	}
	if strings.Contains(logs.String(), "sk-test") {
		t.Fatalf("the log shows a key: %s", logs.String())
	}
}

// TestKeys_ReloadFailureKeepsKey: a source that fails on reload keeps the
// key read before, and the error names the source, not a value.
func TestKeys_ReloadFailureKeepsKey(t *testing.T) {
	prov, path := fileProvider(t, "openai", "sk-test-kept-3333")
	ks := NewKeys(KeysOptions{Providers: []*Provider{prov}, Recorder: &fakeRecorder{}})
	if _, err := ks.Reload(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	os.Remove(path)
	got, err := ks.Reload(t.Context(), "")
	if err != nil || len(got) != 1 || !errors.Is(got[0].Err, ErrNoKey) || strings.Contains(got[0].Err.Error(), "sk-test") {
		t.Fatalf("got %+v, %v; want ErrNoKey naming the source", got, err)
	}
	if key, err := prov.Key.Key(t.Context()); err != nil || key != "sk-test-kept-3333" {
		t.Fatalf("after a failed reload got %q, %v; want the old key", key, err)
	}
	if st := ks.States(); !strings.Contains(st[0].ReadError, path) {
		t.Fatalf("state got %+v, want the read error", st[0])
	}
	// A ledger that cannot write is reported, and the key still served.
	if err := os.WriteFile(path, []byte("sk-test-next-4444"), 0o600); err != nil {
		t.Fatal(err)
	}
	ks.rec.(*fakeRecorder).fail = errors.New("disk full")
	got, _ = ks.Reload(t.Context(), "")
	if !errors.Is(got[0].Err, ErrStorage) {
		t.Fatalf("got %+v, want ErrStorage", got[0])
	}
	if key, _ := prov.Key.Key(t.Context()); key != "sk-test-next-4444" {
		t.Fatalf("got %q", key)
	}
}

// TestKeys_ReloadBadInput: nothing to reload and an unknown provider are
// clear errors.
func TestKeys_ReloadBadInput(t *testing.T) {
	if _, err := NewKeys(KeysOptions{}).Reload(t.Context(), ""); !errors.Is(err, ErrNoProviders) {
		t.Fatalf("no providers: got %v", err)
	}
	prov, _ := fileProvider(t, "openai", "sk-test-5555")
	ks := NewKeys(KeysOptions{Providers: []*Provider{prov}, Recorder: &fakeRecorder{}})
	_, err := ks.Reload(t.Context(), "groq"+strings.Repeat("x", 500))
	if !errors.Is(err, ErrProviderNotFound) || len(err.Error()) > 200 {
		t.Fatalf("unknown provider: got %v, want a short ErrProviderNotFound", err)
	}
	if c, ok := Classify(err); !ok || c.Status != 404 {
		t.Fatalf("unknown provider is answered %+v", c)
	}
}

// TestKeys_Rejections: upstream 401s are counted and warned about at most
// once a minute; a warning also writes the counts to the ledger at once
// (for the key_rejected alert), and what comes between two warnings is
// written with the next read, the next warning or Flush. At every quiet
// point the ledger's count and the one pending in memory add up to the
// 401s seen.
func TestKeys_Rejections(t *testing.T) {
	prov, _ := fileProvider(t, "openai", "sk-test-6666")
	rec := &fakeRecorder{}
	now := time.Date(2026, 9, 1, 12, 0, 0, 0, time.UTC)
	var logs strings.Builder
	p := New(Options{Providers: []*Provider{prov}, Log: zerolog.New(&logs), Now: func() time.Time { return now }})
	ks := NewKeys(KeysOptions{Providers: []*Provider{prov}, Recorder: rec})
	if _, err := ks.Reload(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	written := func() uint64 {
		rec.mu.Lock()
		defer rec.mu.Unlock()
		return rec.unauth["openai"]
	}
	// settled waits until the ledger and memory add up to want, the
	// 401s seen, and returns what the ledger holds.
	settled := func(want uint64) uint64 {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for {
			var pending, ledger uint64
			_ = ks.Counted(func(st []KeyState) error {
				pending, ledger = st[0].Pending, written()
				return nil
			})
			if pending+ledger == want && ks.States()[0].Rejected == want {
				return ledger
			}
			if time.Now().After(deadline) {
				t.Fatalf("ledger %d + pending %d, want %d", ledger, pending, want)
			}
			time.Sleep(time.Millisecond)
		}
	}
	p.keyRejected(prov)
	p.keyRejected(prov)
	if n := strings.Count(logs.String(), "refused its real key"); n != 1 {
		t.Fatalf("%d warnings for two 401s in a minute, want 1: %s", n, logs.String())
	}
	if !strings.Contains(logs.String(), `"fingerprint":"00126666"`) {
		t.Fatalf("the warning does not name the fingerprint: %s", logs.String())
	}
	// The warning's write took at least the first 401 to the ledger.
	deadline := time.Now().Add(5 * time.Second)
	for written() == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if written() == 0 {
		t.Fatal("a warned 401 did not reach the ledger")
	}
	settled(2)
	now = now.Add(time.Minute)
	p.keyRejected(prov)
	if n := strings.Count(logs.String(), "refused its real key"); n != 2 {
		t.Fatalf("%d warnings after a minute, want 2", n)
	}
	settled(3)
	if st := ks.States()[0]; !st.LastRejected.Equal(now) {
		t.Fatalf("state got %+v", st)
	}
	if _, err := ks.Reload(t.Context(), ""); err != nil {
		t.Fatal(err)
	}
	if got := settled(3); got != 3 || ks.States()[0].Pending != 0 {
		t.Fatalf("the read wrote %d 401s in all, pending %d; want 3, 0", got, ks.States()[0].Pending)
	}
	p.keyRejected(prov) // no warning: within the minute
	if err := ks.Close(t.Context()); err != nil {
		t.Fatal(err)
	}
	if written() != 4 || ks.States()[0].Rejected != 4 {
		t.Fatalf("after Close %d 401s were written, want 4", written())
	}
}

// TestParseKeySource_RefusesAKeyInTheSource: a key pasted where a
// variable's name, a path or a command belongs is refused, and the error
// never holds it.
func TestParseKeySource_RefusesAKeyInTheSource(t *testing.T) {
	key := "sk-proj-" + strings.Repeat("Q7nnA1", 8)
	for _, spec := range []string{"env:" + key, "file:/keys/" + key, "cmd:echo " + key, "env:hc_" + strings.Repeat("a1B2", 8), "env:OPENAI KEY", "env:1ABC"} {
		_, err := ParseKeySource(spec)
		if !errors.Is(err, ErrKeySource) || strings.Contains(err.Error(), key) {
			t.Errorf("ParseKeySource(%.20q...) = %v; want ErrKeySource without the key", spec, err)
		}
	}
	for _, spec := range []string{"env:OPENAI_API_KEY", "file:/run/secrets/openai_api_key_2026", "cmd:op read op://vault/openai/key"} {
		if _, err := ParseKeySource(spec); err != nil {
			t.Errorf("ParseKeySource(%q) = %v", spec, err)
		}
	}
}
