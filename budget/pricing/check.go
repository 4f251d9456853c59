package pricing

import (
	"cmp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hardcap/hardcap/budget"
)

// Names returns every model name the sources list for a provider id: each
// entry's id and the exact names of its match rule (a LiteLLM key with and
// without its provider prefix), sorted. Names a rule cannot match (an id
// written for a starts_with rule, say) are left out.
func (c *Catalog) Names(providerID string) []string {
	seen := map[string]bool{}
	for _, s := range c.sources {
		p := s.provider(providerID)
		if p == nil {
			continue
		}
		for _, m := range p.seg.models {
			for _, n := range append([]string{m.id}, m.rule.equalsLeaves(nil)...) {
				if n != "" && (m.rule.match(n, false) || m.rule.match(strings.ToLower(n), true)) {
					seen[n] = true
				}
			}
		}
	}
	for _, o := range c.overrides {
		if o.created && normalID(o.ov.Provider) == normalID(providerID) {
			seen[o.ov.Model] = true
		}
	}
	return slices.Sorted(func(yield func(string) bool) {
		for n := range seen {
			if !yield(n) {
				return
			}
		}
	})
}

// SourceValue is one source's value of a price.
type SourceValue struct {
	// Source is the source's name and origin, e.g. "litellm (embedded)".
	Source string
	// Value is a rate in nano-USD per million tokens, or a fee in nano-USD.
	Value int64
}

// Disagreement is a price that sources give differently.
type Disagreement struct {
	Provider, Model string
	// Field names the price: "input", "output", "cache_write_1h", ...,
	// with " above N tokens" for a tier, or a fee ("search_fee_high",
	// "request_fee").
	Field string
	// Fee is set for fees (Values in nano-USD) and clear for rates
	// (nano-USD per million tokens).
	Fee    bool
	Values []SourceValue
	// Used is what hardcap reserves and charges with.
	Used int64
}

// Report is what hardcap prices check prints for some providers.
type Report struct {
	Sources []Source
	// Disagreements are prices on which sources differ by more than the
	// tolerance.
	Disagreements []Disagreement
	// Implied lists the models priced with an implied long-context tier.
	Implied []string
	// Unpriced lists the models refused for fees hardcap cannot price,
	// with those fees.
	Unpriced []string
	// Regional lists models with a regional-processing uplift in the data,
	// with the factor.
	Regional []string
	// Overridden lists prices an override sets below what a source gives.
	Overridden []Disagreement
}

// Check compares the sources' prices for every model name of the given
// provider ids at `at`. A rate or fee is listed when its highest and lowest
// source values differ by more than tolerance, in parts per thousand of the
// lowest (10 is 1 %).
func (c *Catalog) Check(providers []string, at time.Time, tolerance int64) Report {
	r := Report{Sources: c.Sources()}
	for _, prov := range providers {
		for _, name := range c.Names(prov) {
			m, err := c.Lookup(prov, name, at)
			if err != nil {
				continue
			}
			label := prov + "/" + name
			if m.ImpliedTier {
				r.Implied = append(r.Implied, label)
			}
			if len(m.Prices.Fees.Unpriced) > 0 {
				r.Unpriced = append(r.Unpriced, label+" ("+strings.Join(m.Prices.Fees.Unpriced, ", ")+")")
			}
			if m.RegionalUplift != "" {
				r.Regional = append(r.Regional, label+" x"+m.RegionalUplift)
			}
			for _, d := range compare(c.PerSource(prov, name, at), m.Prices) {
				d.Provider, d.Model = prov, name
				lo, hi := d.Values[0].Value, d.Values[0].Value
				for _, v := range d.Values {
					lo, hi = min(lo, v.Value), max(hi, v.Value)
				}
				if len(d.Values) > 1 && hi*1000 > lo*(1000+tolerance) {
					r.Disagreements = append(r.Disagreements, d)
				}
				if d.Used < lo {
					r.Overridden = append(r.Overridden, d)
				}
			}
		}
	}
	return r
}

// label names a source as prices check shows it: "litellm (embedded)".
func (s Source) label() string { return s.Name + " (" + cmp.Or(s.Origin, "file") + ")" }

// SourcePrices is what one source alone says of a model name: its entry
// (through the provider's fallbacks), without merging, implied tiers or
// overrides.
type SourcePrices struct {
	Source Source
	// Provider and ID name the entry.
	Provider, ID string
	Prices       Prices
	// ContextWindow and MaxOutputTokens are the entry's own limits; 0 when
	// it has none.
	ContextWindow, MaxOutputTokens int64
}

// PerSource returns, for each source that prices name at providerID, what
// it says at `at`.
func (c *Catalog) PerSource(providerID, name string, at time.Time) []SourcePrices {
	var out []SourcePrices
	for _, s := range c.sources {
		if h, ok, _, _ := s.lookup(providerID, name, at); ok {
			out = append(out, SourcePrices{Source: s.info, Provider: h.prov.id, ID: h.model.id, Prices: h.prices,
				ContextWindow: h.model.contextWindow, MaxOutputTokens: h.model.maxOutput})
		}
	}
	return out
}

// compare lists, for every price point that any source sets (each base
// rate, each tier threshold, each fee), every source's value and the value
// used.
func compare(per []SourcePrices, used Prices) []Disagreement {
	var out []Disagreement
	fields := used.fields()
	for fi, f := range fields {
		var starts []int64
		for _, sp := range per {
			t := *sp.Prices.fields()[fi].t
			for _, tr := range t.Tiers {
				starts = append(starts, tr.Start)
			}
		}
		slices.Sort(starts)
		points := append([]int64{-1}, slices.Compact(starts)...)
		for _, start := range points {
			d := Disagreement{Field: f.name}
			if start >= 0 {
				d.Field += " above " + strconv.FormatInt(start, 10) + " tokens"
			}
			for _, sp := range per {
				if t := *sp.Prices.fields()[fi].t; t.Set {
					d.Values = append(d.Values, SourceValue{sp.Source.label(), int64(t.At(start + 1))})
				}
			}
			if len(d.Values) == 0 {
				continue
			}
			d.Used = int64(f.t.At(start + 1))
			out = append(out, d)
		}
	}
	fees := func(p Prices) []struct {
		name string
		v    budget.Money
	} {
		return []struct {
			name string
			v    budget.Money
		}{
			{"request_fee", p.Fees.Request}, {"image_fee", p.Fees.Image},
			{"search_fee_low", p.Fees.Search.Low}, {"search_fee_medium", p.Fees.Search.Medium},
			{"search_fee_high", p.Fees.Search.High}, {"code_session_fee", p.Fees.CodeSession},
		}
	}
	usedFees := fees(used)
	for i, uf := range usedFees {
		d := Disagreement{Field: uf.name, Fee: true, Used: int64(uf.v)}
		for _, sp := range per {
			if v := fees(sp.Prices)[i].v; v != 0 {
				d.Values = append(d.Values, SourceValue{sp.Source.label(), int64(v)})
			}
		}
		if len(d.Values) > 0 {
			out = append(out, d)
		}
	}
	return out
}

// Providers returns every provider id the sources and overrides know,
// sorted.
func (c *Catalog) Providers() []string {
	seen := map[string]bool{}
	for _, s := range c.sources {
		for id := range s.providers {
			seen[id] = true
		}
	}
	for _, o := range c.overrides {
		seen[o.ov.Provider] = true
	}
	return slices.Sorted(func(yield func(string) bool) {
		for id := range seen {
			if !yield(id) {
				return
			}
		}
	})
}

// Drops lists the prices that next puts below half of prev: each token
// price both set, at its base and at every threshold either has, and each
// fee both set, as "field: old -> new" in USD per million tokens (fees in
// USD).
func Drops(prev, next Prices) []string {
	var out []string
	nf := next.fields()
	for i, f := range prev.fields() {
		a, b := *f.t, *nf[i].t
		if !a.Set || !b.Set {
			continue
		}
		points := []int64{-1}
		for _, t := range append(slices.Clone(a.Tiers), b.Tiers...) {
			points = append(points, t.Start)
		}
		slices.Sort(points)
		for _, p := range slices.Compact(points) {
			if o, n := a.At(p+1), b.At(p+1); 2*n < o {
				field := f.name
				if p >= 0 {
					field += " above " + strconv.FormatInt(p, 10) + " tokens"
				}
				out = append(out, field+": "+budget.Money(o).String()+" -> "+budget.Money(n).String()+" USD/Mtok")
			}
		}
	}
	for _, fe := range []struct {
		name string
		o, n budget.Money
	}{
		{"request_fee", prev.Fees.Request, next.Fees.Request}, {"image_fee", prev.Fees.Image, next.Fees.Image},
		{"search_fee_high", prev.Fees.Search.High, next.Fees.Search.High}, {"code_session_fee", prev.Fees.CodeSession, next.Fees.CodeSession},
	} {
		if fe.o > 0 && fe.n > 0 && 2*fe.n < fe.o {
			out = append(out, fe.name+": "+fe.o.String()+" -> "+fe.n.String()+" USD")
		}
	}
	return out
}
