package budget

import (
	"encoding/json"
	"errors"
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
