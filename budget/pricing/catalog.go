package pricing

import (
	"cmp"
	"fmt"
	"strings"
	"time"
)

// Model is what hardcap knows of one model at one moment.
type Model struct {
	// Provider is the price-data provider id whose entry priced the model,
	// e.g. "openai". It differs from the provider passed to Lookup when the
	// price came from a fallback provider (Azure falls back to OpenAI).
	Provider string
	// ID is the price data's model id, e.g. "gpt-4o".
	ID string
	// ContextWindow is the maximum number of input tokens; 0 when unknown.
	ContextWindow int64
	// MaxOutputTokens is the maximum number of output tokens per request;
	// 0 when unknown. It comes from LiteLLM data or an override.
	MaxOutputTokens int64
	// Prices are the model's token prices at the looked-up moment.
	Prices Prices
}

// Catalog answers price lookups. It is immutable after construction and safe
// for concurrent use; WithOverrides and Layer return new catalogs.
type Catalog struct {
	providers map[string]*provider
	order     []*provider   // data order
	limits    []*limitTable // LiteLLM token limits, highest priority first
}

// provider is one price-data provider. A provider merged by Layer has one
// segment per layer, earliest first.
type provider struct {
	id        string
	fallbacks []string
	segs      []*segment
}

// segment is one data source's models for a provider, in data order.
type segment struct {
	models []*model
	exact  map[string]int // equals text -> first model whose rule matches it
	folded map[string]int // the same, in lower case, for case-folded matching
}

// model is one model entry with all its price variants.
type model struct {
	id            string
	rule          *rule
	contextWindow int64
	maxOutput     int64
	variants      []variant
}

// variant is one price set and the constraint under which it applies; a nil
// constraint always applies.
type variant struct {
	when   constraint
	prices Prices
}

// pricesAt picks the price variant for at the way genai-prices does: the
// last variant whose constraint is active (or that has none), else the
// first.
func (m *model) pricesAt(at time.Time) Prices {
	for i := len(m.variants) - 1; i >= 0; i-- {
		if v := m.variants[i]; v.when == nil || v.when.active(at) {
			return v.prices
		}
	}
	return m.variants[0].prices
}

func newCatalog() *Catalog {
	return &Catalog{providers: map[string]*provider{}}
}

// addProvider registers p, which must have a new id.
func (c *Catalog) addProvider(p *provider) {
	c.providers[p.id] = p
	c.order = append(c.order, p)
}

// newSegment indexes models for lookup. For every equals clause text, the
// index keeps the first model in data order whose whole rule matches that
// text, case-sensitively (exact) and case-folded (folded).
func newSegment(models []*model) *segment {
	s := &segment{models: models, exact: map[string]int{}, folded: map[string]int{}}
	for i, m := range models {
		for _, name := range m.rule.equalsLeaves(nil) {
			if _, ok := s.exact[name]; !ok && m.rule.match(name, false) {
				s.exact[name] = i
			}
			low := strings.ToLower(name)
			if _, ok := s.folded[low]; !ok && m.rule.match(low, true) {
				s.folded[low] = i
			}
		}
	}
	return s
}

// find returns the model that name resolves to in s, or nil.
//
// Matching is case-sensitive first: an exact equals hit wins, then the first
// model in data order whose rule matches. Only when nothing matches is the
// name lower-cased and tried again against lower-cased rules, as the
// genai-prices reference implementation always does; its data relies on that
// (Hugging Face rules are written in lower case for mixed-case model ids).
func (s *segment) find(name string) *model {
	if i, ok := s.exact[name]; ok {
		return s.models[i]
	}
	for _, m := range s.models {
		if m.rule.match(name, false) {
			return m
		}
	}
	low := strings.ToLower(name)
	if i, ok := s.folded[low]; ok {
		return s.models[i]
	}
	for _, m := range s.models {
		if m.rule.match(low, true) {
			return m
		}
	}
	return nil
}

// provider returns the provider with the exact id, else with the
// lower-cased, trimmed id. genai-prices' provider_match rules (substring
// guesses such as "contains cerebras", which also catches
// "huggingface_cerebras") are deliberately not used: an unknown provider id
// is refused rather than priced as some other provider.
func (c *Catalog) provider(id string) *provider {
	if p, ok := c.providers[id]; ok {
		return p
	}
	return c.providers[strings.ToLower(strings.TrimSpace(id))]
}

// hit is where a lookup found a priced model.
type hit struct {
	prov   *provider
	seg    int
	model  *model
	prices Prices
}

// resolve searches p's segments in order, then p's fallback providers
// depth-first, for a matching model whose prices at `at` satisfy enough. A
// matching model that does not is passed over so that a later layer or
// fallback may price it; found reports whether any model matched at all.
func (c *Catalog) resolve(p *provider, name string, at time.Time, seen map[string]bool, enough func(Prices) bool) (h hit, ok, found bool) {
	seen[p.id] = true
	for i, s := range p.segs {
		m := s.find(name)
		if m == nil {
			continue
		}
		found = true
		if pr := m.pricesAt(at); enough(pr) {
			return hit{prov: p, seg: i, model: m, prices: pr}, true, true
		}
	}
	for _, id := range p.fallbacks {
		fp, exists := c.providers[id]
		if !exists || seen[id] {
			continue
		}
		h, ok, f := c.resolve(fp, name, at, seen, enough)
		if ok {
			return h, true, true
		}
		found = found || f
	}
	return hit{}, false, found
}

// Lookup returns the model that the request model name resolves to at
// provider providerID, with the prices in force at `at` (the zero time means
// now). providerID is a price-data provider id such as "openai" or
// "anthropic", matched exactly or lower-cased.
//
// The name is matched with each model's match rule: an exact equals hit
// first, then the first rule in data order; if nothing matches, the same
// again case-folded, as the genai-prices reference implementation matches
// (its data writes some rules in lower case for mixed-case model names). When
// the provider has no priced model for the name, the provider's
// fallback_model_providers are searched.
// Among date- and time-bound price variants the last one active at `at`
// wins, as genai-prices specifies; start dates are calendar dates in UTC and
// daily windows are UTC clock times.
//
// The returned ContextWindow comes from the model's own data, else a later
// layer's matching model, else LiteLLM max_input_tokens; MaxOutputTokens
// from the model's own data or override, else a later layer, else LiteLLM
// max_output_tokens, looked up by the request name and then by the model id.
//
// Lookup returns ErrUnknownProvider when no provider matches, and
// ErrModelNotPriced when no model matches or the matching model has no input
// price at `at`. A model without an output price is returned (embedding
// models have none); callers that meter output check Prices.HasOutput.
func (c *Catalog) Lookup(providerID, name string, at time.Time) (Model, error) {
	if at.IsZero() {
		at = time.Now()
	}
	p := c.provider(providerID)
	if p == nil {
		return Model{}, fmt.Errorf("%w: %q", ErrUnknownProvider, providerID)
	}
	// A model priced for input and output wins over one priced for input
	// only (an embedding model, or a user file that lists only input
	// prices); the latter is used when nothing better matches.
	h, ok, found := c.resolve(p, name, at, map[string]bool{}, func(pr Prices) bool { return pr.Priced() && pr.HasOutput() })
	if !ok {
		h, ok, found = c.resolve(p, name, at, map[string]bool{}, Prices.Priced)
	}
	if !ok {
		if found {
			return Model{}, fmt.Errorf("%w: %s model %q has no input token price", ErrModelNotPriced, p.id, name)
		}
		return Model{}, fmt.Errorf("%w: %s has no model matching %q", ErrModelNotPriced, p.id, name)
	}
	m := Model{
		Provider:        h.prov.id,
		ID:              h.model.id,
		ContextWindow:   h.model.contextWindow,
		MaxOutputTokens: h.model.maxOutput,
		Prices:          h.prices,
	}
	for _, s := range h.prov.segs[h.seg+1:] {
		if m.ContextWindow != 0 && m.MaxOutputTokens != 0 {
			break
		}
		if lm := s.find(name); lm != nil {
			m.ContextWindow = cmp.Or(m.ContextWindow, lm.contextWindow)
			m.MaxOutputTokens = cmp.Or(m.MaxOutputTokens, lm.maxOutput)
		}
	}
	for _, key := range []string{name, h.model.id} {
		for _, t := range c.limits {
			if m.ContextWindow != 0 && m.MaxOutputTokens != 0 {
				return m, nil
			}
			l := t.get(key)
			m.ContextWindow = cmp.Or(m.ContextWindow, l.contextWindow)
			m.MaxOutputTokens = cmp.Or(m.MaxOutputTokens, l.maxOutput)
		}
	}
	return m, nil
}
