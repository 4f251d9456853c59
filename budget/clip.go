package budget

import (
	"strconv"
	"unicode/utf8"
)

// ClipLen is the most runes of user input an error message echoes.
const ClipLen = 64

// Clip shortens user input for an error message: at most ClipLen runes,
// then an ellipsis and the input's full length, so a 100 kB name never comes
// back whole. Invalid UTF-8 is replaced, so the message stays valid text.
func Clip(s string) string { return ClipTo(s, ClipLen) }

// ClipTo is Clip with a bound of n runes, for text that may hold user input
// inside a longer explanation.
func ClipTo(s string, n int) string {
	if len(s) <= n && utf8.ValidString(s) {
		return s
	}
	kept := 0
	out := make([]rune, 0, n)
	for _, r := range s {
		if kept == n {
			return string(out) + "… (" + strconv.Itoa(len(s)) + " bytes)"
		}
		out = append(out, r)
		kept++
	}
	return string(out)
}
