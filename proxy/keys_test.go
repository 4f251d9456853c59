package proxy

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
