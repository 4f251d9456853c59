package tokens

import (
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"
)

// MaxOwner and MaxPurpose bound a token's owner and purpose, in characters,
// as MaxTokenName bounds its name: they are shown in tables and messages.
const (
	MaxOwner   = MaxTokenName
	MaxPurpose = 256
)

// CheckText reports whether s can be a token's free-text field (what names
// it, as "owner" or "purpose"): empty, or up to n characters of printable
// UTF-8 text. It fails with ErrInvalidText, never repeating s.
func CheckText(what, s string, n int) error {
	if c := utf8.RuneCountInString(s); c > n {
		return fmt.Errorf("%w: a token %s has at most %d characters, this one has %d", ErrInvalidText, what, n, c)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: a token %s must be UTF-8 text", ErrInvalidText, what)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: a token %s must not hold control characters", ErrInvalidText, what)
		}
	}
	return nil
}

// DefaultRotateEvery is how often a token's secret is due for rotation when
// neither the token nor the config (tokens.rotate_every) says: about three
// months, the usual practice for API keys.
const DefaultRotateEvery = 90 * 24 * time.Hour

// MaxClientIPs bounds the distinct client addresses kept per token. Past it,
// requests from addresses not yet seen are counted under OtherIPs, one entry
// for all of them, so a token used from a botnet cannot grow its record
// without bound.
const MaxClientIPs = 1000

// OtherIPs is the ClientIP.IP of the entry that counts the requests from
// addresses beyond the first MaxClientIPs.
const OtherIPs = "other"

// MaxUserAgent bounds the user agent kept as a token's last use, in bytes.
const MaxUserAgent = 256

// ClientIP is one client address a token was used from: when first and
// last, and how many requests came from it.
type ClientIP struct {
	IP       string    `json:"ip"`
	First    time.Time `json:"first"`
	Last     time.Time `json:"last"`
	Requests int64     `json:"requests"`
}

// RotatedError is the error Authenticate returns for a secret a rotation
// replaced, once its grace has ended (or at once with no grace, or for any
// older secret). It wraps ErrRotated, and its text says when, so that a
// client is told its key was rotated, not that it is unknown.
type RotatedError struct {
	// ID is the token's id.
	ID string
	// Rotated is when the secret was replaced (the token's last rotation
	// for an older secret).
	Rotated time.Time
	// GraceEnded is when the old secret stopped working; zero when there
	// was no grace.
	GraceEnded time.Time
}

func (e *RotatedError) Error() string {
	return ErrRotated.Error() + ": " + e.Detail()
}

// Detail is the sentence a client may be shown: no secret, only times.
func (e *RotatedError) Detail() string {
	s := "This hardcap token's secret was rotated"
	if !e.Rotated.IsZero() {
		s += " at " + e.Rotated.UTC().Format(time.RFC3339)
	}
	if !e.GraceEnded.IsZero() {
		s += " and its grace ended at " + e.GraceEnded.UTC().Format(time.RFC3339)
	}
	return s + "; use the new secret issued by `hardcap token rotate`."
}

// Unwrap makes errors.Is(err, ErrRotated) hold.
func (e *RotatedError) Unwrap() error { return ErrRotated }

// Due says what is due for a live token t at now, most urgent first:
// "expired", "rotation overdue" (past RotateBy), "expires soon" (within
// soon of Expires), "rotation due" (within soon of RotateBy), or "" when
// nothing is (and for a revoked token, which nothing is due for).
func (t *Token) Due(now time.Time, soon time.Duration) string {
	switch {
	case !t.Revoked.IsZero():
		return ""
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return "expired"
	case !t.RotateBy.IsZero() && !now.Before(t.RotateBy):
		return "rotation overdue"
	case !t.Expires.IsZero() && now.Add(soon).After(t.Expires):
		return "expires soon"
	case !t.RotateBy.IsZero() && now.Add(soon).After(t.RotateBy):
		return "rotation due"
	}
	return ""
}
