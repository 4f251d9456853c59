package budget

import (
	"math/bits"
)

// Rate is a token price in nano-USD per million tokens. A price of
// 2.50 USD per million tokens is Rate(2_500_000_000). Every price in the
// price data has at most nine decimal places in USD per million tokens, so a
// Rate is exact.
type Rate int64

// tokensPerRateUnit is the number of tokens a Rate is quoted for.
const tokensPerRateUnit = 1_000_000

// Cost is the exact cost of a list of token counts, each at its rate, summed
// before rounding and then rounded up to the next nano-USD. It returns
// ErrOverflow when the sum cannot be represented.
func Cost(items ...TokenCharge) (Money, error) {
	var hi, lo uint64
	for _, it := range items {
		if it.Tokens < 0 || it.Rate < 0 {
			return 0, ErrOverflow
		}
		h, l := bits.Mul64(uint64(it.Tokens), uint64(it.Rate))
		var c uint64
		lo, c = bits.Add64(lo, l, 0)
		hi, c = bits.Add64(hi, h, c)
		if c != 0 {
			return 0, ErrOverflow
		}
	}
	return ceilDivMillion(hi, lo)
}

// TokenCharge is a number of tokens and the rate they are billed at.
type TokenCharge struct {
	Tokens int64
	Rate   Rate
}

// ceilDivMillion returns ceil((hi<<64 | lo) / 1e6) as Money.
func ceilDivMillion(hi, lo uint64) (Money, error) {
	if hi >= tokensPerRateUnit {
		return 0, ErrOverflow
	}
	q, r := bits.Div64(hi, lo, tokensPerRateUnit)
	if r != 0 {
		q++
	}
	if q > uint64(MaxMoney) {
		return 0, ErrOverflow
	}
	return Money(q), nil
}
