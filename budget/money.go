package budget

import (
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Money is an amount in nano-USD (1e-9 USD). Every charge, reservation and
// limit in hardcap is a Money; floating point is never used for money.
type Money int64

// NanoPerUSD is the number of Money units in one US dollar.
const NanoPerUSD = 1_000_000_000

// MaxMoney is the largest representable amount. Arithmetic that would pass it
// fails rather than wraps.
const MaxMoney = Money(math.MaxInt64)

// ParseUSD parses a decimal dollar amount such as "50", "0.25" or "1e-3"-free
// "0.000000001". At most nine decimal places are accepted, because nine is the
// resolution of Money; a negative amount is an error.
func ParseUSD(s string) (Money, error) {
	s = strings.TrimSpace(s)
	s = strings.TrimPrefix(s, "$")
	if s == "" {
		return 0, fmt.Errorf("%w: empty amount", ErrInvalidAmount)
	}
	if s[0] == '-' || s[0] == '+' {
		return 0, fmt.Errorf("%w: %q must be a plain non-negative decimal", ErrInvalidAmount, Clip(s))
	}
	whole, frac, hasDot := strings.Cut(s, ".")
	if whole == "" && (!hasDot || frac == "") {
		return 0, fmt.Errorf("%w: %q", ErrInvalidAmount, Clip(s))
	}
	if len(frac) > 9 {
		return 0, fmt.Errorf("%w: %q has more than 9 decimal places", ErrInvalidAmount, Clip(s))
	}
	if !allDigits(whole) || !allDigits(frac) || (hasDot && frac == "" && whole == "") {
		return 0, fmt.Errorf("%w: %q", ErrInvalidAmount, Clip(s))
	}
	var w uint64
	if whole != "" {
		var err error
		w, err = strconv.ParseUint(whole, 10, 63)
		if err != nil {
			return 0, fmt.Errorf("%w: %q is out of range", ErrInvalidAmount, Clip(s))
		}
	}
	f := uint64(0)
	if frac != "" {
		padded := frac + strings.Repeat("0", 9-len(frac))
		f, _ = strconv.ParseUint(padded, 10, 64)
	}
	hi, lo := bits.Mul64(w, NanoPerUSD)
	if hi != 0 || lo > math.MaxInt64-f {
		return 0, fmt.Errorf("%w: %q is out of range", ErrInvalidAmount, Clip(s))
	}
	return Money(lo + f), nil
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// String formats m as a decimal dollar amount with at least six decimal
// places and no more than needed, e.g. "0.000450" or "0.000000001". This is
// the form hardcap's JSON and CSV output uses.
func (m Money) String() string {
	// Built in one buffer (a single allocation, the string): the request
	// path logs two amounts per request.
	u := uint64(m)
	if m < 0 {
		u = uint64(-m)
	}
	var buf [32]byte
	b := buf[:0]
	if m < 0 {
		b = append(b, '-')
	}
	b = strconv.AppendUint(b, u/NanoPerUSD, 10)
	b = append(b, '.')
	frac := u % NanoPerUSD
	var digits [9]byte
	for i := len(digits) - 1; i >= 0; i-- {
		digits[i] = byte('0' + frac%10)
		frac /= 10
	}
	n := len(digits)
	for n > 6 && digits[n-1] == '0' {
		n--
	}
	return string(append(b, digits[:n]...))
}

// Add returns m+n, or ErrOverflow when the sum does not fit.
func (m Money) Add(n Money) (Money, error) {
	s := m + n
	if (n > 0 && s < m) || (n < 0 && s > m) {
		return 0, ErrOverflow
	}
	return s, nil
}

// MarshalText encodes m as its decimal dollar string, so JSON carries money as
// a string and never as a float.
func (m Money) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// UnmarshalText decodes a decimal dollar string written by MarshalText.
func (m *Money) UnmarshalText(b []byte) error {
	s := string(b)
	neg := strings.HasPrefix(s, "-")
	v, err := ParseUSD(strings.TrimPrefix(s, "-"))
	if err != nil {
		return err
	}
	if neg {
		v = -v
	}
	*m = v
	return nil
}
