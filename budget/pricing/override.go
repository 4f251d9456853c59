package pricing

import (
	"cmp"
	"fmt"
	"slices"
)

// Override changes or adds one model's prices and limits, typically from
// hardcap's configuration. Prices are decimal USD per million tokens as
// accepted by ParseRate; an empty string keeps the data's price (or leaves it
// unset for a new model). A limit of 0 keeps the data's limit.
type Override struct {
	// Provider is the price-data provider id, e.g. "openai".
	Provider string
	// Model is a request model name. The override applies to the model this
	// name resolves to in that provider, so every name of that model (its
	// dated snapshots, aliases) gets the new prices. When nothing matches,
	// a model matching exactly this name is created.
	Model string

	// InputMTok is the uncached input price in USD per million tokens.
	InputMTok string
	// CacheReadMTok is the cache-read price in USD per million tokens.
	CacheReadMTok string
	// CacheWriteMTok is the 5-minute cache-write price in USD per million
	// tokens.
	CacheWriteMTok string
	// CacheWrite1hMTok is the one-hour cache-write price in USD per million
	// tokens.
	CacheWrite1hMTok string
	// OutputMTok is the output price in USD per million tokens.
	OutputMTok string
	// OutputReasoningMTok is the reasoning-output price in USD per million
	// tokens.
	OutputReasoningMTok string

	// ContextWindow is the maximum number of input tokens; 0 keeps the data's.
	ContextWindow int64
	// MaxOutputTokens is the maximum number of output tokens; 0 keeps the
	// data's.
	MaxOutputTokens int64
}

// fields pairs each price text with the Prices field it sets.
func (o Override) fields() []struct {
	name, text string
	get        func(*Prices) *Tiered
} {
	return []struct {
		name, text string
		get        func(*Prices) *Tiered
	}{
		{"InputMTok", o.InputMTok, func(p *Prices) *Tiered { return &p.Input }},
		{"CacheReadMTok", o.CacheReadMTok, func(p *Prices) *Tiered { return &p.CacheRead }},
		{"CacheWriteMTok", o.CacheWriteMTok, func(p *Prices) *Tiered { return &p.CacheWrite }},
		{"CacheWrite1hMTok", o.CacheWrite1hMTok, func(p *Prices) *Tiered { return &p.CacheWrite1h }},
		{"OutputMTok", o.OutputMTok, func(p *Prices) *Tiered { return &p.Output }},
		{"OutputReasoningMTok", o.OutputReasoningMTok, func(p *Prices) *Tiered { return &p.OutputReasoning }},
	}
}

// WithOverrides returns a new catalog with ovs applied in order; c is not
// changed. An overridden price replaces the data's price in every date-bound
// variant of the model and is flat (the data's tiers for that price are
// dropped); prices not overridden keep their tiers and dates. An override for
// a model the provider lacks creates it, and then must give both InputMTok and
// OutputMTok; an override for an unknown provider creates the provider. The
// model is resolved in the provider itself, never through its fallback
// providers, so overriding "azure" never changes "openai".
//
// Errors wrap ErrInvalidOverride, or ErrInvalidRate for a price that
// ParseRate rejects.
func (c *Catalog) WithOverrides(ovs ...Override) (*Catalog, error) {
	out := &Catalog{
		providers: make(map[string]*provider, len(c.providers)),
		limits:    slices.Clone(c.limits),
	}
	for _, p := range c.order {
		out.addProvider(p)
	}
	owned := map[string]bool{} // providers already copied for this call
	for _, ov := range ovs {
		if err := out.apply(ov, owned); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (c *Catalog) apply(ov Override, owned map[string]bool) error {
	if ov.Provider == "" || ov.Model == "" {
		return fmt.Errorf("%w: provider and model are required (got %q, %q)", ErrInvalidOverride, ov.Provider, ov.Model)
	}
	if ov.ContextWindow < 0 || ov.MaxOutputTokens < 0 {
		return fmt.Errorf("%w: %s/%s: negative token limit", ErrInvalidOverride, ov.Provider, ov.Model)
	}
	var set Prices // the overridden prices, flat
	var setMask []func(*Prices) *Tiered
	for _, f := range ov.fields() {
		if f.text == "" {
			continue
		}
		r, err := ParseRate(f.text)
		if err != nil {
			return fmt.Errorf("override %s/%s %s: %w", ov.Provider, ov.Model, f.name, err)
		}
		*f.get(&set) = Flat(r)
		setMask = append(setMask, f.get)
	}

	p := c.ownProvider(ov.Provider, owned)
	for si, s := range p.segs {
		m := s.find(ov.Model)
		if m == nil {
			continue
		}
		nm := *m
		nm.variants = slices.Clone(m.variants)
		for i := range nm.variants {
			for _, get := range setMask {
				*get(&nm.variants[i].prices) = *get(&set)
			}
		}
		nm.contextWindow = cmp.Or(ov.ContextWindow, nm.contextWindow)
		nm.maxOutput = cmp.Or(ov.MaxOutputTokens, nm.maxOutput)
		ns := &segment{models: slices.Clone(s.models), exact: s.exact, folded: s.folded}
		ns.models[slices.Index(s.models, m)] = &nm
		p.segs[si] = ns
		return nil
	}

	if !set.Priced() {
		return fmt.Errorf("%w: %s/%s is not in the price data, so the override must give at least InputMTok", ErrInvalidOverride, ov.Provider, ov.Model)
	}
	nm := &model{
		id:            ov.Model,
		rule:          equalsRule(ov.Model),
		contextWindow: ov.ContextWindow,
		maxOutput:     ov.MaxOutputTokens,
		variants:      []variant{{prices: set}},
	}
	// Nothing in the provider matches the name, so the new model's own
	// segment can go last without changing any other lookup.
	p.segs = append(p.segs, newSegment([]*model{nm}))
	return nil
}

// ownProvider returns a copy of the provider with exact id that this
// WithOverrides call may change, creating the provider when it is missing.
func (c *Catalog) ownProvider(id string, owned map[string]bool) *provider {
	p, ok := c.providers[id]
	switch {
	case !ok:
		p = &provider{id: id}
		c.addProvider(p)
	case !owned[id]:
		cp := *p
		cp.segs = slices.Clone(p.segs)
		cp.fallbacks = slices.Clone(p.fallbacks)
		p = &cp
		c.providers[id] = p
		c.order[slices.IndexFunc(c.order, func(q *provider) bool { return q.id == id })] = p
	}
	owned[id] = true
	return p
}
