package tokens

import (
	"fmt"
	"regexp"
	"slices"
	"time"
	"unicode"
	"unicode/utf8"
)

// Project groups tokens under one budget and one kill switch.
type Project struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Killed is the project's kill switch.
	Killed bool `json:"killed"`
}

// Token is what an app holds instead of a real provider key. Its secret is
// never stored; Hash is.
type Token struct {
	// ID is the public name of the token ("tok_...").
	ID string `json:"id"`
	// Name is a free label, e.g. the app or purpose.
	Name string `json:"name,omitempty"`
	// Project is the name of the project the token spends from.
	Project string `json:"project"`
	// Hash is the SHA-256 of the secret, hex-encoded.
	Hash string `json:"hash"`
	// Models lists the models the token may use; empty means any priced
	// model.
	Models []string `json:"models,omitempty"`
	// Expires is when the token stops working; zero means never.
	Expires time.Time `json:"expires,omitzero"`
	// RPM is the most requests per minute the token may make; 0 means no
	// limit.
	RPM int `json:"rpm,omitempty"`
	// Created is when the token was issued.
	Created time.Time `json:"created"`
	// Revoked is when the token was revoked; zero means it is live.
	Revoked time.Time `json:"revoked,omitzero"`
	// Killed is the token's kill switch.
	Killed bool `json:"killed"`
}

// Usable reports why t cannot be used at now, or nil when it can.
func (t *Token) Usable(now time.Time) error {
	switch {
	case !t.Revoked.IsZero():
		return ErrRevoked
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return ErrExpired
	case t.Killed:
		return fmt.Errorf("%w for token %s", ErrKilled, t.ID)
	}
	return nil
}

// Allows reports whether t may call model.
func (t *Token) Allows(model string) bool {
	return len(t.Models) == 0 || slices.Contains(t.Models, model)
}

// MaxProjectName and MaxTokenName are the longest project name and token
// label, in characters. They keep names readable in tables and keep every
// message that names one short.
const (
	MaxProjectName = 64
	MaxTokenName   = 128
)

// MaxModels and MaxModelName bound a token's model list: how many models it
// may name, and how long each id may be, in characters. Real model ids are
// far shorter (fine-tunes included); the bounds keep a token record, and
// every answer that shows it, small.
const (
	MaxModels    = 256
	MaxModelName = 128
)

// CheckModels reports whether models can be a token's model list: at most
// MaxModels ids, each 1 to MaxModelName printable characters without
// spaces or commas (the CLI separates ids with commas).
func CheckModels(models []string) error {
	if len(models) > MaxModels {
		return fmt.Errorf("%w: a token names at most %d models, this list has %d", ErrInvalidScope, MaxModels, len(models))
	}
	for i, m := range models {
		if n := utf8.RuneCountInString(m); n == 0 || n > MaxModelName {
			return fmt.Errorf("%w: model %d of the list has %d characters; a model id has 1 to %d", ErrInvalidScope, i+1, n, MaxModelName)
		}
		if !utf8.ValidString(m) {
			return fmt.Errorf("%w: model %d of the list is not UTF-8 text", ErrInvalidScope, i+1)
		}
		for _, r := range m {
			if !unicode.IsPrint(r) || unicode.IsSpace(r) || r == ',' {
				return fmt.Errorf("%w: model %d of the list holds a space, comma or control character", ErrInvalidScope, i+1)
			}
		}
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CheckName reports whether s can name a project: 1 to 64 characters of
// letters, digits, '.', '_' and '-', starting with a letter or digit.
func CheckName(s string) error {
	if len(s) > MaxProjectName {
		return fmt.Errorf("%w: a project name has at most %d characters, this one has %d", ErrInvalidName, MaxProjectName, utf8.RuneCountInString(s))
	}
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%w: %q (1-64 letters, digits, '.', '_' or '-')", ErrInvalidName, s)
	}
	return nil
}

// CheckLabel reports whether s can be a token's name: empty, or up to 128
// characters of printable text (no control characters, valid UTF-8).
func CheckLabel(s string) error {
	if n := utf8.RuneCountInString(s); n > MaxTokenName {
		return fmt.Errorf("%w: a token name has at most %d characters, this one has %d", ErrInvalidName, MaxTokenName, n)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: a token name must be UTF-8 text", ErrInvalidName)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: a token name must not hold control characters", ErrInvalidName)
		}
	}
	return nil
}

// Authenticator finds the live token a presented secret belongs to.
// storage.DB is the implementation.
type Authenticator interface {
	// Authenticate returns the token, or ErrMalformed, ErrUnknown,
	// ErrRevoked, ErrExpired or ErrKilled.
	Authenticate(secret string) (Token, error)
}
