package tokens

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestNewSecret_Parses(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		s, err := NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		if err := Parse(s); err != nil {
			t.Fatalf("Parse(%q) = %v, want nil", s, err)
		}
		if len(s) != SecretLen || !strings.HasPrefix(s, "hc_") {
			t.Fatalf("got %q, want hc_ and %d characters", s, SecretLen)
		}
		if seen[s] {
			t.Fatalf("NewSecret repeated %q", s)
		}
		seen[s] = true
	}
}

func TestParse_Malformed(t *testing.T) {
	good, err := NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'a' {
			b[i] = 'b'
		} else {
			b[i] = 'a'
		}
		return string(b)
	}
	tests := map[string]string{
		"empty":          "",
		"no prefix":      "xx_" + good[3:],
		"short":          good[:len(good)-1],
		"long":           good + "a",
		"typo in body":   flip(good, 10),
		"typo in sum":    flip(good, len(good)-2),
		"not base62":     good[:10] + "-" + good[11:],
		"provider key":   "sk-proj-" + strings.Repeat("a", 30),
		"swapped halves": "hc_" + good[len(good)-6:] + good[3:len(good)-6],
	}
	for name, s := range tests {
		t.Run(name, func(t *testing.T) {
			if err := Parse(s); !errors.Is(err, ErrMalformed) {
				t.Errorf("Parse(%q) = %v, want ErrMalformed", s, err)
			}
		})
	}
}

func TestHash_EqualAndHex(t *testing.T) {
	a, b := HashOf("hc_a"), HashOf("hc_b")
	if !a.Equal(HashOf("hc_a")) || a.Equal(b) {
		t.Fatal("Equal disagrees with the hashed inputs")
	}
	if got := len(a.String()); got != 64 {
		t.Fatalf("got hex length %d, want 64", got)
	}
}

func TestToken_Usable(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		tok  Token
		want error
	}{
		{"live", Token{}, nil},
		{"revoked", Token{Revoked: now.Add(-time.Second)}, ErrRevoked},
		{"expired at the instant", Token{Expires: now}, ErrExpired},
		{"not yet expired", Token{Expires: now.Add(time.Second)}, nil},
		{"killed", Token{Killed: true}, ErrKilled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.tok.Usable(now)
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestToken_Allows(t *testing.T) {
	any := Token{}
	some := Token{Models: []string{"gpt-4o-mini"}}
	if !any.Allows("gpt-4o") || !some.Allows("gpt-4o-mini") || some.Allows("gpt-4o") {
		t.Fatal("Allows disagrees with the model list")
	}
}

func TestCheckName(t *testing.T) {
	for _, ok := range []string{"web", "a", "team-1.app_x"} {
		if err := CheckName(ok); err != nil {
			t.Errorf("CheckName(%q) = %v, want nil", ok, err)
		}
	}
	for _, bad := range []string{"", "-x", "a b", "a/b", strings.Repeat("a", 65)} {
		if err := CheckName(bad); !errors.Is(err, ErrInvalidName) {
			t.Errorf("CheckName(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
}
