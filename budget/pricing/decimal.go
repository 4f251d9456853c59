package pricing

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"

	"github.com/hardcap/hardcap/budget"
)

// Decimal shifts from a price's quoted unit to budget.Rate (nano-USD per
// million tokens).
const (
	// shiftPerMTok converts USD per million tokens: 1 USD = 1e9 nano-USD.
	shiftPerMTok = 9
	// shiftPerToken converts USD per token: 1e6 tokens times 1e9 nano-USD.
	shiftPerToken = 15
)

// maxExponent bounds the decimal exponent accepted in price text, so that
// hostile input such as "1e999999999" cannot make the parser allocate.
const maxExponent = 400

// ParseRate parses a price in US dollars per million tokens, written as a
// plain decimal ("2.5", "0.075", ".5") or in exponent form ("2.5e0"), into a
// budget.Rate in nano-USD per million tokens: "2.5" is 2_500_000_000. A
// leading "$" and surrounding spaces are ignored. A price finer than one
// nano-USD per million tokens is rounded up to the next whole unit (fail
// closed: a rounded price never undercharges). Negative, empty or malformed
// text and prices above budget.Rate's range return ErrInvalidRate.
func ParseRate(usdPerMTok string) (budget.Rate, error) {
	s := strings.TrimSpace(usdPerMTok)
	s = strings.TrimPrefix(s, "$")
	return scaledRate(s, shiftPerMTok)
}

// scaledRate returns ceil(s × 10^shift) for a non-negative decimal text s,
// computed exactly with integers. It accepts the JSON number grammar without a
// sign plus ".5" and "5." forms; a leading "+" or "-" is refused, because a
// price is never negative.
func scaledRate(s string, shift int) (budget.Rate, error) {
	mant, exp, err := splitDecimal(s)
	if err != nil {
		return 0, err
	}
	exp += shift
	m, ok := new(big.Int).SetString(mant, 10)
	if !ok {
		return 0, fmt.Errorf("%w: %q", ErrInvalidRate, s)
	}
	if m.Sign() == 0 {
		return 0, nil
	}
	if exp >= 0 {
		if exp > 18 { // a non-zero mantissa times 10^19 overflows int64
			return 0, fmt.Errorf("%w: %q is out of range", ErrInvalidRate, s)
		}
		m.Mul(m, pow10(exp))
	} else {
		// Division rounds up: the price is never taken as lower than the
		// data says.
		q, r := new(big.Int).QuoRem(m, pow10(-exp), new(big.Int))
		if r.Sign() != 0 {
			q.Add(q, big.NewInt(1))
		}
		m = q
	}
	if !m.IsInt64() {
		return 0, fmt.Errorf("%w: %q is out of range", ErrInvalidRate, s)
	}
	return budget.Rate(m.Int64()), nil
}

// splitDecimal splits decimal text into its digits and a power of ten:
// "2.5e-06" is ("25", -7). It validates the grammar
// digits [ "." digits ] [ ("e"|"E") [sign] digits ] with at least one mantissa
// digit.
func splitDecimal(s string) (digits string, exp int, err error) {
	bad := func() (string, int, error) { return "", 0, fmt.Errorf("%w: %q", ErrInvalidRate, s) }
	if s == "" {
		return bad()
	}
	mantissa, expText, hasExp := strings.Cut(strings.ToLower(s), "e")
	whole, frac, _ := strings.Cut(mantissa, ".")
	if whole+frac == "" || !isDigits(whole) || !isDigits(frac) {
		return bad()
	}
	if hasExp {
		t := strings.TrimPrefix(strings.TrimPrefix(expText, "+"), "-")
		if t == "" || !isDigits(t) || len(t) > 4 {
			return bad()
		}
		e, _ := strconv.Atoi(expText)
		if e > maxExponent || e < -maxExponent {
			return bad()
		}
		exp = e
	}
	digits = strings.TrimLeft(whole+frac, "0")
	if digits == "" {
		digits = "0"
	}
	return digits, exp - len(frac), nil
}

func isDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func pow10(n int) *big.Int {
	return new(big.Int).Exp(big.NewInt(10), big.NewInt(int64(n)), nil)
}

// parseCount parses a JSON token count such as 128000 or 128000.0. A count
// must be a non-negative whole number that fits in an int64.
func parseCount(s string) (int64, error) {
	if n, err := strconv.ParseInt(s, 10, 64); err == nil && n >= 0 {
		return n, nil
	}
	mant, exp, err := splitDecimal(s)
	if err != nil {
		return 0, fmt.Errorf("%w: token count %q", ErrInvalidData, s)
	}
	m, _ := new(big.Int).SetString(mant, 10)
	if exp >= 0 {
		if exp > 18 && m.Sign() != 0 {
			return 0, fmt.Errorf("%w: token count %q is out of range", ErrInvalidData, s)
		}
		m.Mul(m, pow10(exp))
	} else {
		q, r := new(big.Int).QuoRem(m, pow10(-exp), new(big.Int))
		if r.Sign() != 0 {
			return 0, fmt.Errorf("%w: token count %q is not a whole number", ErrInvalidData, s)
		}
		m = q
	}
	if !m.IsInt64() {
		return 0, fmt.Errorf("%w: token count %q is out of range", ErrInvalidData, s)
	}
	return m.Int64(), nil
}
