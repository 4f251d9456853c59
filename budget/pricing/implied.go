package pricing

import (
	"math"
	"math/big"

	"github.com/hardcap/hardcap/budget"
)

// impliedTier is the dearest long-context pricing the data shows for a
// provider: the lowest threshold any of its models switches at, and the
// largest factor any input-side and output-side price is raised by there.
// hardcap applies it to models whose data has no tiers, since a missing
// tier would otherwise bill a long request at the short-request price.
type impliedTier struct {
	start   int64
	in, out Multiplier
}

func (t impliedTier) set() bool { return t.in.Num > 0 && t.out.Num > 0 }

// inputSide and outputSide pick the prices each factor applies to.
func inputSide(p *Prices) []*Tiered {
	return []*Tiered{&p.Input, &p.CacheRead, &p.CacheWrite, &p.CacheWrite1h, &p.InputMedia}
}

func outputSide(p *Prices) []*Tiered {
	return []*Tiered{&p.Output, &p.OutputReasoning, &p.OutputMedia}
}

// apply returns p with a tier at t.start on every set price, at the base
// rate times the factor of its side, rounded up.
func (t impliedTier) apply(p Prices) Prices {
	for side, prices := range [][]*Tiered{inputSide(&p), outputSide(&p)} {
		f := t.in
		if side == 1 {
			f = t.out
		}
		for _, pr := range prices {
			if !pr.Set {
				continue
			}
			pr.Tiers = []Tier{{Start: t.start, Rate: scaleUp(f, pr.Base)}}
		}
	}
	return p
}

// scaleUp returns r times f, rounded up, never below r, and the largest
// rate when the product does not fit: a tier that cannot be represented
// must price a request out (its cost overflows and it is refused), not
// drop out of the price.
func scaleUp(f Multiplier, r budget.Rate) budget.Rate {
	v, err := f.scale(int64(r))
	if err != nil {
		return budget.Rate(budget.MaxMoney)
	}
	return max(budget.Rate(v), r)
}

// impliedFor returns the implied tier of a provider id, else the one over
// every provider.
func (c *Catalog) impliedFor(providerID string) impliedTier {
	if t, ok := c.implied[providerID]; ok {
		return t
	}
	if t, ok := c.implied[normalID(providerID)]; ok {
		return t
	}
	return c.global
}

// impliedTiers computes, per provider id and over all, the lowest tier
// threshold and the largest tier-to-base factors in the sources.
func impliedTiers(sources []*source) (map[string]impliedTier, impliedTier) {
	type acc struct {
		start    int64
		hasStart bool
		in, out  *big.Rat
	}
	per := map[string]*acc{}
	all := &acc{}
	note := func(a *acc, start int64, f *big.Rat, input bool) {
		if !a.hasStart || start < a.start {
			a.start, a.hasStart = start, true
		}
		dst := &a.out
		if input {
			dst = &a.in
		}
		if *dst == nil || f.Cmp(*dst) > 0 {
			*dst = f
		}
	}
	for _, s := range sources {
		for _, p := range s.order {
			if p.seg == nil {
				continue
			}
			for _, m := range p.seg.models {
				for _, v := range m.variants {
					pr := v.prices
					for side, prices := range [][]*Tiered{inputSide(&pr), outputSide(&pr)} {
						for _, t := range prices {
							if !t.Set || t.Base <= 0 {
								continue
							}
							for _, tr := range t.Tiers {
								f := big.NewRat(int64(tr.Rate), int64(t.Base))
								if f.Cmp(big.NewRat(1, 1)) <= 0 {
									continue
								}
								if per[p.id] == nil {
									per[p.id] = &acc{}
								}
								note(per[p.id], tr.Start, f, side == 0)
								note(all, tr.Start, f, side == 0)
							}
						}
					}
				}
			}
		}
	}
	finish := func(a *acc) impliedTier {
		t := impliedTier{start: a.start}
		// A provider whose tiers raise only one side raises the other by
		// the largest factor seen anywhere.
		in, out := a.in, a.out
		if in == nil {
			in = all.in
		}
		if out == nil {
			out = all.out
		}
		if in == nil || out == nil {
			return impliedTier{}
		}
		t.in = ratMultiplier(in)
		t.out = ratMultiplier(out)
		return t
	}
	out := map[string]impliedTier{}
	for id, a := range per {
		out[id] = finish(a)
	}
	return out, finish(all)
}

// ratMultiplier turns a factor into a Multiplier, rounding up to nine
// decimal places so that it is never below the data's factor. A factor too
// large to hold saturates: scaling by it overflows, which prices the tier
// out rather than wrapping to a small number.
func ratMultiplier(f *big.Rat) Multiplier {
	num := new(big.Int).Mul(f.Num(), big.NewInt(1e9))
	q, r := new(big.Int).QuoRem(num, f.Denom(), new(big.Int))
	if r.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	if !q.IsInt64() {
		return Multiplier{Num: math.MaxInt64, Den: 1e9}
	}
	return Multiplier{Num: q.Int64(), Den: 1e9}
}

// spreadTiers gives each price without tiers of its own the tiers of its
// side: input-side prices follow Input's, output-side prices Output's, at
// the same factors. A provider bills a long request's every token at the
// tier (Anthropic's one-hour cache writes above 200K are twice the tiered
// input price), so a source that lists a tier for input but a flat price
// for cache writes states less than the bill.
func spreadTiers(p Prices) Prices {
	for side, prices := range [][]*Tiered{inputSide(&p), outputSide(&p)} {
		anchor := p.Input
		if side == 1 {
			anchor = p.Output
		}
		if len(anchor.Tiers) == 0 || anchor.Base <= 0 {
			continue
		}
		for _, pr := range prices {
			if !pr.Set || len(pr.Tiers) > 0 {
				continue
			}
			tiers := make([]Tier, 0, len(anchor.Tiers))
			for _, at := range anchor.Tiers {
				f := ratMultiplier(big.NewRat(int64(at.Rate), int64(anchor.Base)))
				tiers = append(tiers, Tier{Start: at.Start, Rate: scaleUp(f, pr.Base)})
			}
			pr.Tiers = tiers
		}
	}
	return p
}
