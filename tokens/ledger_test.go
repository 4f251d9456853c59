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
	for _, bad := range []string{"a\nb", "\x00", "\xff", strings.Repeat("x", MaxOwner+1)} {
		err := CheckText("owner", bad, MaxOwner)
		if !errors.Is(err, ErrInvalidName) || strings.Contains(err.Error(), bad) {
			t.Errorf("CheckText(%q) = %v, want ErrInvalidName without the input", bad, err)
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
