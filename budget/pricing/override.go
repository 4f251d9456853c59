package pricing

import (
	"fmt"
)

// Override changes or adds one model's prices and limits, typically from
// hardcap's configuration. Prices are decimal USD per million tokens as
// accepted by ParseRate; an empty string keeps the merged price (or leaves
// it unset for a new model). A limit of 0 keeps the data's limit. An
// override is the operator's word: it may lower a price below every
// source, and hardcap prices check lists it when it does.
type Override struct {
	// Provider is the price-data provider id, e.g. "openai".
	Provider string
	// Model is a request model name. The override applies to it and to
	// every other name that each source knowing it resolves to the same
	// entry (see WithOverrides). When no source knows it, a model matching
	// exactly this name is created.
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
	// Untiered declares that the model's price does not change with input
	// size, so hardcap does not apply its provider's implied long-context
	// tier (see Catalog.Lookup).
	Untiered bool
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

// override is one Override, checked and resolved against the sources.
type override struct {
	ov  Override
	set Prices // the overridden prices, flat
	// mask picks the fields set replaces.
	mask []func(*Prices) *Tiered
	// entries are what ov.Model resolves to in each source's own provider
	// ov.Provider (no fallbacks), by source index; nil where unknown.
	entries []*model
	// created is set when no source knows the name in that provider: the
	// override is then the model's whole price.
	created bool
}

// apply replaces the overridden fields of p.
func (o *override) apply(p *Prices) {
	for _, get := range o.mask {
		*get(p) = *get(&o.set)
	}
}

// covers reports whether the override applies to a request name at
// providerID: the name it names, and any other name that every source
// knowing it resolves to the same entry as the override's own name. So an
// override of "gpt-4o" covers a snapshot that a source lists under gpt-4o's
// rule, but not one that some source prices with an entry of its own.
func (o *override) covers(c *Catalog, providerID, name string) bool {
	if normalID(providerID) != normalID(o.ov.Provider) {
		return false
	}
	if name == o.ov.Model {
		return true
	}
	if o.created {
		return false
	}
	agreed := false
	for i, s := range c.sources {
		p := s.provider(o.ov.Provider)
		if p == nil {
			continue
		}
		m := p.seg.find(name)
		if m == nil {
			continue
		}
		if m != o.entries[i] {
			return false
		}
		agreed = true
	}
	return agreed
}

// matchingOverrides returns, in order, the overrides that apply to name.
func (c *Catalog) matchingOverrides(providerID, name string) []*override {
	var out []*override
	for _, o := range c.overrides {
		if o.covers(c, providerID, name) {
			out = append(out, o)
		}
	}
	return out
}

// WithOverrides returns a new catalog with ovs applied after the sources, in
// order; c is not changed. An overridden price replaces the merged price in
// every date-bound variant of the model and is flat (the data's tiers for
// that price are dropped); prices not overridden keep their tiers and dates.
// An override applies to the name it gives and to the names that resolve,
// in every source that knows them, to the same entry. An override for a
// name no source knows in that provider creates the model, and then must
// give at least InputMTok; an override for an unknown provider creates the
// provider. The name is resolved in the provider itself, never through its
// fallback providers, so overriding "azure" never changes "openai".
//
// Errors wrap ErrInvalidOverride, or ErrInvalidRate for a price that
// ParseRate rejects.
func (c *Catalog) WithOverrides(ovs ...Override) (*Catalog, error) {
	out := *c
	out.overrides = append([]*override(nil), c.overrides...)
	for _, ov := range ovs {
		o, err := c.resolveOverride(ov, out.overrides)
		if err != nil {
			return nil, err
		}
		out.overrides = append(out.overrides, o)
	}
	return &out, nil
}

func (c *Catalog) resolveOverride(ov Override, earlier []*override) (*override, error) {
	if ov.Provider == "" || ov.Model == "" {
		return nil, fmt.Errorf("%w: provider and model are required (got %q, %q)", ErrInvalidOverride, ov.Provider, ov.Model)
	}
	if ov.ContextWindow < 0 || ov.MaxOutputTokens < 0 {
		return nil, fmt.Errorf("%w: %s/%s: negative token limit", ErrInvalidOverride, ov.Provider, ov.Model)
	}
	o := &override{ov: ov, entries: make([]*model, len(c.sources)), created: true}
	for _, f := range ov.fields() {
		if f.text == "" {
			continue
		}
		r, err := ParseRate(f.text)
		if err != nil {
			return nil, fmt.Errorf("override %s/%s %s: %w", ov.Provider, ov.Model, f.name, err)
		}
		*f.get(&o.set) = Flat(r)
		o.mask = append(o.mask, f.get)
	}
	for i, s := range c.sources {
		if p := s.provider(ov.Provider); p != nil {
			if m := p.seg.find(ov.Model); m != nil {
				o.entries[i], o.created = m, false
			}
		}
	}
	for _, e := range earlier {
		if o.created && e.created && normalID(e.ov.Provider) == normalID(ov.Provider) && e.ov.Model == ov.Model {
			// The model an earlier override created: this one changes it.
			o.created = false
		}
	}
	if o.created && !o.set.Priced() {
		return nil, fmt.Errorf("%w: %s/%s is not in the price data, so the override must give at least InputMTok", ErrInvalidOverride, ov.Provider, ov.Model)
	}
	return o, nil
}
