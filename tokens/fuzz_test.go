package tokens

import "testing"

// FuzzParse: Parse never panics, and a well-formed token with any one
// character changed is refused (CRC-32 catches every change within 32
// bits).
func FuzzParse(f *testing.F) {
	good, _ := NewSecret()
	f.Add(good, 5, byte('x'))
	f.Add("hc_", 0, byte('a'))
	f.Add("sk-proj-abc", 1, byte('0'))
	f.Fuzz(func(t *testing.T, s string, pos int, c byte) {
		_ = Parse(s)
		if pos < len(Prefix) || pos >= len(good) || good[pos] == c {
			return
		}
		b := []byte(good)
		b[pos] = c
		if Parse(string(b)) == nil {
			t.Fatalf("a token with position %d changed to %q was accepted", pos, c)
		}
	})
}
