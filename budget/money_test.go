package budget

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"testing"
)

func TestParseUSD(t *testing.T) {
	tests := []struct {
		in   string
		want Money
		err  bool
	}{
		{"50", 50 * NanoPerUSD, false},
		{"0.25", 250_000_000, false},
		{"$1.5", 1_500_000_000, false},
		{"0.000000001", 1, false},
		{".5", 500_000_000, false},
		{"0", 0, false},
		{"0.0000000001", 0, true},
		{"-1", 0, true},
		{"1e3", 0, true},
		{"", 0, true},
		{".", 0, true},
		{"1.2.3", 0, true},
		{"99999999999999999999", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseUSD(tt.in)
			if tt.err {
				if !errors.Is(err, ErrInvalidAmount) {
					t.Fatalf("ParseUSD(%q) error = %v, want ErrInvalidAmount", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseUSD(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestMoney_String(t *testing.T) {
	tests := []struct {
		m    Money
		want string
	}{
		{0, "0.000000"},
		{450_000, "0.000450"},
		{1, "0.000000001"},
		{50 * NanoPerUSD, "50.000000"},
		{1_234_567_891, "1.234567891"},
		{-450_000, "-0.000450"},
	}
	for _, tt := range tests {
		if got := tt.m.String(); got != tt.want {
			t.Errorf("Money(%d).String() = %q, want %q", int64(tt.m), got, tt.want)
		}
	}
}

func TestMoney_JSONRoundTrip(t *testing.T) {
	in := struct{ M Money }{M: 1_234_567_891}
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != `{"M":"1.234567891"}` {
		t.Fatalf("got %s, want the amount as a decimal string", b)
	}
	var out struct{ M Money }
	if err := json.Unmarshal(b, &out); err != nil || out.M != in.M {
		t.Fatalf("round trip got %d, %v; want %d", out.M, err, in.M)
	}
}

func TestCost_RoundsUpOnce(t *testing.T) {
	// 0.000075 USD per million tokens is 0.075 nano-USD per token: one token
	// costs 1 nano-USD after rounding up, and 3 tokens (0.225) also 1.
	r := Rate(75_000)
	for _, tt := range []struct {
		tokens int64
		want   Money
	}{{0, 0}, {1, 1}, {3, 1}, {14, 2}, {1_000_000, 75_000}} {
		got, err := Cost(TokenCharge{tt.tokens, r})
		if err != nil || got != tt.want {
			t.Errorf("Cost(%d tokens) = %d, %v; want %d", tt.tokens, got, err, tt.want)
		}
	}
	// Summed before rounding: 1 token at 0.5 nano and 1 at 0.5 nano is 1.
	got, _ := Cost(TokenCharge{1, 500_000}, TokenCharge{1, 500_000})
	if got != 1 {
		t.Errorf("got %d, want 1: parts must be summed before rounding", got)
	}
}

func TestCost_Overflow(t *testing.T) {
	if _, err := Cost(TokenCharge{1 << 62, 1 << 62}); !errors.Is(err, ErrOverflow) {
		t.Fatalf("got %v, want ErrOverflow", err)
	}
	if _, err := Cost(TokenCharge{-1, 1}); !errors.Is(err, ErrOverflow) {
		t.Fatalf("negative tokens: got %v, want ErrOverflow", err)
	}
}

// moneyStringSprintf is Money.String as it was, on fmt.Sprintf: the
// reference the one-buffer String must print exactly as.
func moneyStringSprintf(m Money) string {
	neg := m < 0
	u := uint64(m)
	if neg {
		u = uint64(-m)
	}
	frac := fmt.Sprintf("%09d", u%NanoPerUSD)
	for len(frac) > 6 && frac[len(frac)-1] == '0' {
		frac = frac[:len(frac)-1]
	}
	sign := ""
	if neg {
		sign = "-"
	}
	return sign + strconv.FormatUint(u/NanoPerUSD, 10) + "." + frac
}

// FuzzMoneyString: String prints every amount as the Sprintf version did.
func FuzzMoneyString(f *testing.F) {
	for _, m := range []int64{0, 1, -1, 10, 1000, 1234567, 999999999, 1000000000, -1500000000, 123456789012, math.MaxInt64, math.MinInt64, math.MinInt64 + 1} {
		f.Add(m)
	}
	f.Fuzz(func(t *testing.T, m int64) {
		if got, want := Money(m).String(), moneyStringSprintf(Money(m)); got != want {
			t.Fatalf("Money(%d).String() = %q, want %q", m, got, want)
		}
	})
}
