package budget

import (
	"errors"
	"testing"
)

func TestParseFraction(t *testing.T) {
	good := []struct {
		in   string
		want Fraction
		str  string
	}{
		{"0.5", 500_000, "0.5"}, {"1", 1_000_000, "1"}, {"0.95", 950_000, "0.95"},
		{"0.000001", 1, "0.000001"}, {"1.25", 1_250_000, "1.25"}, {"10", 10_000_000, "10"},
	}
	for _, g := range good {
		f, err := ParseFraction(g.in)
		if err != nil || f != g.want || f.String() != g.str {
			t.Errorf("ParseFraction(%q) = %d %v (%q), want %d %q", g.in, f, err, f.String(), g.want, g.str)
		}
	}
	for _, bad := range []string{"", "0", "0.0", "-0.5", ".5", "1.", "0.1234567", "11", "1e-3", "0,5", "NaN", "99999999999"} {
		if _, err := ParseFraction(bad); !errors.Is(err, ErrInvalidFraction) {
			t.Errorf("ParseFraction(%q) = %v, want ErrInvalidFraction", bad, err)
		}
	}
	fs, err := ParseFractions("0.9, 0.5,0.9")
	if err != nil || len(fs) != 2 || fs[0] != 500_000 || fs[1] != 900_000 {
		t.Errorf("ParseFractions = %v %v", fs, err)
	}
}

func TestFraction_Of(t *testing.T) {
	tests := []struct {
		f     Fraction
		limit Money
		want  Money
	}{
		{500_000, 10, 5}, {500_000, 11, 6}, {333_333, 3, 1}, {1_000_000, MaxMoney, MaxMoney},
		{10_000_000, MaxMoney, MaxMoney}, {800_000, 0, 0}, {1, 1, 1},
	}
	for _, tt := range tests {
		if got := tt.f.Of(tt.limit); got != tt.want {
			t.Errorf("%s of %d = %d, want %d", tt.f, tt.limit, got, tt.want)
		}
	}
	if got := Fraction(955_000).Percent(); got != "95.5 %" {
		t.Errorf("Percent = %q", got)
	}
}
