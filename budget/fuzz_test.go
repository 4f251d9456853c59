package budget

import "testing"

// FuzzParseUSD: whatever parses prints back to an amount that parses to
// the same value.
func FuzzParseUSD(f *testing.F) {
	for _, s := range []string{"0", "50", "0.000450", ".5", "1.234567891", "9223372036", "$3", "1e3", "-1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseUSD(s)
		if err != nil {
			return
		}
		if m < 0 {
			t.Fatalf("ParseUSD(%q) = %d, negative", s, m)
		}
		back, err := ParseUSD(m.String())
		if err != nil || back != m {
			t.Fatalf("ParseUSD(%q) = %d prints %q, which parses to %d, %v", s, m, m.String(), back, err)
		}
	})
}
