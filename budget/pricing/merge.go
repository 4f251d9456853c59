package pricing

import (
	"fmt"
	"math/bits"
	"slices"

	"github.com/hardcap/hardcap/budget"
)

// maxTiered returns the price that is, at every input size, the higher of a
// and b. Both are step functions of the request's input tokens, so the
// result has a step at every threshold of either, and on each step the
// larger of the two rates. An unset price yields to a set one: a source that
// says nothing about a price does not claim it is free.
func maxTiered(a, b Tiered) Tiered {
	switch {
	case !a.Set:
		return b
	case !b.Set:
		return a
	}
	out := Tiered{Base: max(a.Base, b.Base), Set: true}
	if len(a.Tiers) == 0 && len(b.Tiers) == 0 {
		return out
	}
	var starts []int64
	for _, t := range a.Tiers {
		starts = append(starts, t.Start)
	}
	for _, t := range b.Tiers {
		starts = append(starts, t.Start)
	}
	slices.Sort(starts)
	starts = slices.Compact(starts)
	for _, s := range starts {
		// At(s+1) is the rate on (s, next start]: At picks the tier with
		// the highest Start below its argument.
		out.Tiers = append(out.Tiers, Tier{Start: s, Rate: max(a.At(s+1), b.At(s+1))})
	}
	return out
}

// maxPrices is the field-wise maximum of a and b (see maxTiered and
// maxFees).
func maxPrices(a, b Prices) Prices {
	return Prices{
		Input:           maxTiered(a.Input, b.Input),
		CacheRead:       maxTiered(a.CacheRead, b.CacheRead),
		CacheWrite:      maxTiered(a.CacheWrite, b.CacheWrite),
		CacheWrite1h:    maxTiered(a.CacheWrite1h, b.CacheWrite1h),
		Output:          maxTiered(a.Output, b.Output),
		OutputReasoning: maxTiered(a.OutputReasoning, b.OutputReasoning),
		InputMedia:      maxTiered(a.InputMedia, b.InputMedia),
		OutputMedia:     maxTiered(a.OutputMedia, b.OutputMedia),
		Fees:            maxFees(a.Fees, b.Fees),
	}
}

// fields returns pointers to p's token prices with their names as shown by
// hardcap prices check.
func (p *Prices) fields() []struct {
	name string
	t    *Tiered
} {
	return []struct {
		name string
		t    *Tiered
	}{
		{"input", &p.Input}, {"cache_read", &p.CacheRead}, {"cache_write", &p.CacheWrite},
		{"cache_write_1h", &p.CacheWrite1h}, {"output", &p.Output}, {"output_reasoning", &p.OutputReasoning},
		{"input_media", &p.InputMedia}, {"output_media", &p.OutputMedia},
	}
}

// HasTiers reports whether any token price of p changes with input size.
func (p Prices) HasTiers() bool {
	for _, f := range p.fields() {
		if len(f.t.Tiers) > 0 {
			return true
		}
	}
	return false
}

// WithMedia returns the prices that bound a request carrying images: where
// the data bills image and video tokens above text, every input token (read
// from the cache or not) is taken at the higher rate, since the usage does
// not say which tokens were images.
func (p Prices) WithMedia() Prices {
	if !p.InputMedia.Set {
		return p
	}
	p.Input = maxTiered(p.Input, p.InputMedia)
	if p.CacheRead.Set {
		p.CacheRead = maxTiered(p.CacheRead, p.InputMedia)
	}
	return p
}

// WithUnplacedWrites returns the prices for usage that does not say how
// many input tokens were written to the cache: where the data prices cache
// writes above input, every uncached input token is taken at the write
// price.
func (p Prices) WithUnplacedWrites() Prices {
	if p.CacheWrite.Set {
		p.Input = maxTiered(p.Input, p.CacheWrite)
	}
	return p
}

// Multiplier is an exact ratio that scales prices, such as 11/10 for a 10 %
// uplift. The zero value scales by one.
type Multiplier struct {
	Num, Den int64
}

// ParseMultiplier parses a decimal factor of at least 1 such as "1.1" or
// "1.25" (at most nine decimal places). Factors below 1 are refused: an
// uplift never lowers a price; use prices.overrides for a negotiated rate.
func ParseMultiplier(s string) (Multiplier, error) {
	m, err := budget.ParseUSD(s)
	if err != nil {
		return Multiplier{}, fmt.Errorf("%w: multiplier %q: %v", ErrInvalidRate, s, err)
	}
	if m < budget.NanoPerUSD {
		return Multiplier{}, fmt.Errorf("%w: multiplier %q is below 1", ErrInvalidRate, s)
	}
	if m > 1000*budget.NanoPerUSD {
		return Multiplier{}, fmt.Errorf("%w: multiplier %q is above 1000", ErrInvalidRate, s)
	}
	return Multiplier{Num: int64(m), Den: budget.NanoPerUSD}, nil
}

// One reports whether m leaves prices unchanged.
func (m Multiplier) One() bool { return m.Num == m.Den || m.Den == 0 }

// String formats m as a decimal factor.
func (m Multiplier) String() string {
	if m.One() {
		return "1"
	}
	return budget.Money(m.Num * (budget.NanoPerUSD / m.Den)).String()
}

// scale returns ceil(v × m), or ErrOverflow.
func (m Multiplier) scale(v int64) (int64, error) {
	if m.One() || v == 0 {
		return v, nil
	}
	if v < 0 || m.Num <= 0 || m.Den <= 0 {
		return 0, budget.ErrOverflow
	}
	hi, lo := bits.Mul64(uint64(v), uint64(m.Num))
	if hi >= uint64(m.Den) {
		return 0, budget.ErrOverflow
	}
	q, r := bits.Div64(hi, lo, uint64(m.Den))
	if r != 0 {
		q++
	}
	if q > uint64(budget.MaxMoney) {
		return 0, budget.ErrOverflow
	}
	return int64(q), nil
}

// Money scales an amount, rounding up.
func (m Multiplier) Money(v budget.Money) (budget.Money, error) {
	r, err := m.scale(int64(v))
	return budget.Money(r), err
}

// Scale returns p with every rate and fee multiplied by m, each rounded up
// to the next unit.
func (p Prices) Scale(m Multiplier) (Prices, error) {
	if m.One() {
		return p, nil
	}
	var err error
	rate := func(r budget.Rate) budget.Rate {
		v, e := m.scale(int64(r))
		if e != nil {
			err = e
		}
		return budget.Rate(v)
	}
	money := func(v budget.Money) budget.Money {
		r, e := m.Money(v)
		if e != nil {
			err = e
		}
		return r
	}
	for _, f := range p.fields() {
		if !f.t.Set {
			continue
		}
		f.t.Base = rate(f.t.Base)
		tiers := make([]Tier, len(f.t.Tiers))
		for i, t := range f.t.Tiers {
			tiers[i] = Tier{Start: t.Start, Rate: rate(t.Rate)}
		}
		f.t.Tiers = tiers
	}
	p.Fees.Request = money(p.Fees.Request)
	p.Fees.Image = money(p.Fees.Image)
	p.Fees.CodeSession = money(p.Fees.CodeSession)
	p.Fees.Search = SearchFee{Low: money(p.Fees.Search.Low), Medium: money(p.Fees.Search.Medium), High: money(p.Fees.Search.High)}
	if err != nil {
		return Prices{}, err
	}
	return p, nil
}
