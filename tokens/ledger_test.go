package tokens

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestCheckText(t *testing.T) {
	for _, ok := range []string{"", "team-ml", "Ana Lima <ana@example.com>", "évaluations nocturnes"} {
		if err := CheckText("owner", ok, MaxOwner); err != nil {
			t.Errorf("CheckText(%q) = %v, want nil", ok, err)
		}
	}
	tests := []struct {
		what, bad, want string
	}{
		{"owner", "a\nb", "invalid text: a token owner must not hold control characters"},
		{"owner", "\x00", "invalid text: a token owner must not hold control characters"},
		{"purpose", "\xff", "invalid text: a token purpose must be UTF-8 text"},
		{"owner", strings.Repeat("x", MaxOwner+1), "invalid text: a token owner has at most 128 characters, this one has 129"},
	}
	for _, tt := range tests {
		err := CheckText(tt.what, tt.bad, MaxOwner)
		// Not "invalid name": an owner or purpose is free text.
		if !errors.Is(err, ErrInvalidText) || err.Error() != tt.want || strings.Contains(err.Error(), tt.bad) {
			t.Errorf("CheckText(%s, %q) = %v, want %q", tt.what, tt.bad, err, tt.want)
		}
	}
}

func TestToken_Due(t *testing.T) {
	now := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	day := 24 * time.Hour
	soon := 14 * day
	tests := []struct {
		name string
		tok  Token
		want string
	}{
		{"nothing due", Token{RotateBy: now.Add(60 * day)}, ""},
		{"never due", Token{}, ""},
		{"rotation due", Token{RotateBy: now.Add(3 * day)}, "rotation due"},
		{"rotation overdue", Token{RotateBy: now.Add(-day)}, "rotation overdue"},
		{"expires soon before rotation due", Token{RotateBy: now.Add(3 * day), Expires: now.Add(2 * day)}, "expires soon"},
		{"expired", Token{RotateBy: now.Add(-day), Expires: now}, "expired"},
		{"revoked", Token{RotateBy: now.Add(-day), Revoked: now}, ""},
	}
	for _, tt := range tests {
		if got := tt.tok.Due(now, soon); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestRotatedError(t *testing.T) {
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	err := error(&RotatedError{ID: "tok_x", Rotated: at, GraceEnded: at.Add(time.Hour)})
	if !errors.Is(err, ErrRotated) || errors.Is(err, ErrUnknown) {
		t.Fatalf("%v: want ErrRotated only", err)
	}
	msg := err.(*RotatedError).Detail()
	if !strings.Contains(msg, "rotated at 2026-12-01T10:00:00Z") || !strings.Contains(msg, "grace ended at 2026-12-01T11:00:00Z") {
		t.Errorf("detail %q does not say when", msg)
	}
	if d := (&RotatedError{}).Detail(); !strings.Contains(d, "rotated;") {
		t.Errorf("detail without times: %q", d)
	}
}
