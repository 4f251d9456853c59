package scan

import (
	"strings"
	"unicode"
)

// Redact returns what may be shown of a secret: its first characters, "...",
// and its last characters; at most 6 and 4 of them, and at most a quarter
// of the secret at each end, so a short secret shows less and one under 4
// characters shows none. Characters that are not printable become '?', so a
// file cannot steer a terminal through a finding. The result never holds
// the whole secret.
func Redact(secret string) string {
	r := []rune(secret)
	n := len(r)
	head, tail := min(6, n/4), min(4, n/4)
	out := Printable(string(r[:head])) + "..." + Printable(string(r[n-tail:]))
	if secret == "" || !strings.Contains(out, secret) {
		return out
	}
	// Only a secret of a few characters can hide in so little; one of
	// these markers cannot hold it, since no character is in all three.
	for _, m := range []string{"...", "***", "###"} {
		if !strings.Contains(m, secret) {
			return m
		}
	}
	return ""
}

// Printable replaces every character of s that is not printable (control
// characters, bidirectional overrides, invalid UTF-8) with '?'. Text output
// passes file names through it: a name in a repository's history is
// anyone's choice.
func Printable(s string) string {
	return strings.Map(func(r rune) rune {
		if r == unicode.ReplacementChar || !unicode.IsPrint(r) {
			return '?'
		}
		return r
	}, s)
}
