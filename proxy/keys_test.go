package proxy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
