package budget

import (
	"fmt"
	"math/bits"
	"strconv"
	"strings"
)

// Fraction is a share of a budget in parts per million: 500000 is half.
// Alert thresholds are Fractions, so that "0.8" of a limit is computed in
// integers, never in floating point.
type Fraction uint32

// FractionOne is the whole budget (1.0).
const FractionOne Fraction = 1_000_000

// MaxFraction is the largest Fraction accepted: ten times the budget,
// which only an overshoot can reach.
const MaxFraction Fraction = 10 * FractionOne

// ParseFraction parses a decimal share such as "0.5", "0.95" or "1" (at
// most six decimal places, above 0, at most 10).
func ParseFraction(s string) (Fraction, error) {
	s = strings.TrimSpace(s)
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" || (hasDot && frac == "") || len(frac) > 6 || !allDigits(whole) || !allDigits(frac) {
		return 0, fmt.Errorf("%w: %q is not a decimal share such as 0.8", ErrInvalidFraction, Clip(s))
	}
	w, err := strconv.ParseUint(whole, 10, 32)
	if err != nil || w > uint64(MaxFraction/FractionOne) {
		return 0, fmt.Errorf("%w: %q is above 10", ErrInvalidFraction, Clip(s))
	}
	f := uint64(0)
	if frac != "" {
		f, _ = strconv.ParseUint(frac+strings.Repeat("0", 6-len(frac)), 10, 32)
	}
	v := Fraction(w)*FractionOne + Fraction(f)
	if v == 0 || v > MaxFraction {
		return 0, fmt.Errorf("%w: %q must be above 0 and at most 10", ErrInvalidFraction, Clip(s))
	}
	return v, nil
}

// ParseFractions parses a comma-separated list ("0.5,0.8,1") into
// ascending Fractions without repeats.
func ParseFractions(s string) ([]Fraction, error) {
	var out []Fraction
	for part := range strings.SplitSeq(s, ",") {
		f, err := ParseFraction(part)
		if err != nil {
			return nil, err
		}
		out = append(out, f)
	}
	return SortFractions(out), nil
}

// SortFractions sorts fs ascending and drops repeats, in place.
func SortFractions(fs []Fraction) []Fraction {
	for i := 1; i < len(fs); i++ {
		for j := i; j > 0 && fs[j] < fs[j-1]; j-- {
			fs[j], fs[j-1] = fs[j-1], fs[j]
		}
	}
	out := fs[:0]
	for i, f := range fs {
		if i == 0 || f != fs[i-1] {
			out = append(out, f)
		}
	}
	return out
}

// String formats f as a decimal share: "0.5", "1", "0.95".
func (f Fraction) String() string {
	s := strconv.FormatUint(uint64(f/FractionOne), 10)
	if r := f % FractionOne; r != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%06d", uint32(r)), "0")
	}
	return s
}

// Percent formats f as a percentage: "50 %", "95.5 %".
func (f Fraction) Percent() string {
	s := strconv.FormatUint(uint64(f/10_000), 10)
	if r := f % 10_000; r != 0 {
		s += "." + strings.TrimRight(fmt.Sprintf("%04d", uint32(r)), "0")
	}
	return s + " %"
}

// Of is the amount f of limit, rounded up: the least committed spend that
// has reached the share.
func (f Fraction) Of(limit Money) Money {
	if limit <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(limit), uint64(f))
	if hi >= uint64(FractionOne) {
		return MaxMoney // Div64 would overflow
	}
	q, r := bits.Div64(hi, lo, uint64(FractionOne))
	if r != 0 {
		q++
	}
	if q > uint64(MaxMoney) {
		return MaxMoney
	}
	return Money(q)
}

// MarshalText writes f as its decimal share.
func (f Fraction) MarshalText() ([]byte, error) { return []byte(f.String()), nil }

// UnmarshalText reads what MarshalText writes.
func (f *Fraction) UnmarshalText(b []byte) error {
	v, err := ParseFraction(string(b))
	if err != nil {
		return err
	}
	*f = v
	return nil
}
