package pricing

import (
	"cmp"
	"fmt"
	"strings"
	"time"

	"github.com/hardcap/hardcap/budget"
)

// Model is what hardcap knows of one model at one moment.
type Model struct {
	// Provider is the price-data provider id whose entry priced the model,
	// e.g. "openai". It differs from the provider passed to Lookup when the
	// price came from a fallback provider (Azure falls back to OpenAI).
	Provider string
	// ID is the model id of the first source that prices the name, e.g.
	// "gpt-4o".
	ID string
	// ContextWindow is the maximum number of input tokens, the largest any
	// source gives; 0 when unknown.
	ContextWindow int64
	// MaxOutputTokens is the maximum number of output tokens per request;
	// 0 when unknown. It comes from an override, else the first source that
	// has one (LiteLLM data).
	MaxOutputTokens int64
	// Prices are the model's prices at the looked-up moment: for each rate
	// and fee the highest any source gives (see Lookup).
	Prices Prices
	// ImpliedTier is set when no source has input-size tiers for a model
	// that may take more input than its provider's lowest tier threshold,
	// so Prices carry the dearest long-context tier seen for that provider.
	ImpliedTier bool
	// RegionalUplift is the largest regional-processing multiplier a source
	// notes for the model ("1.1"); empty when none. hardcap does not apply
	// it by itself: set the provider's price_multiplier when it applies.
	RegionalUplift string
}

// Source describes one price data set a Catalog reads.
type Source struct {
	// Name is the data set: "genai-prices" or "litellm".
	Name string
	// Origin is where the copy came from: "embedded", a file path or a URL.
	Origin string
	// AsOf is when the copy was taken from its project; zero when unknown.
	AsOf time.Time
}

// Catalog answers price lookups over one or more sources. It is immutable
// after construction and safe for concurrent use; Merge and WithOverrides
// return new catalogs.
type Catalog struct {
	sources   []*source
	limits    []*limitTable // LiteLLM token limits, highest priority first
	overrides []*override
	// implied is, by provider id, the dearest long-context tier its models
	// show; global is the same over every provider.
	implied map[string]impliedTier
	global  impliedTier
}

// source is one data set's providers.
type source struct {
	info      Source
	providers map[string]*provider
	order     []*provider // data order
}

// provider is one price-data provider of one source.
type provider struct {
	id        string
	fallbacks []string
	seg       *segment
}

// segment is a provider's models, in data order, with their name index.
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
	// regionalUplift is the largest LiteLLM
	// regional_processing_uplift_multiplier_*, a factor held with nine
	// decimal places as budget.Money holds dollars (1.1 is 1_100_000_000);
	// 0 when none.
	regionalUplift budget.Money
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

// tiered reports whether any variant of m has input-size tiers.
func (m *model) tiered() bool {
	for _, v := range m.variants {
		if v.prices.HasTiers() {
			return true
		}
	}
	return false
}

func newSource(name string) *source {
	return &source{info: Source{Name: name}, providers: map[string]*provider{}}
}

// addProvider registers p, which must have a new id.
func (s *source) addProvider(p *provider) {
	s.providers[p.id] = p
	s.order = append(s.order, p)
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
	if s == nil {
		return nil
	}
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
func (s *source) provider(id string) *provider {
	if p, ok := s.providers[id]; ok {
		return p
	}
	return s.providers[normalID(id)]
}

func normalID(id string) string { return strings.ToLower(strings.TrimSpace(id)) }

// hit is where a lookup found a priced model in one source.
type hit struct {
	prov   *provider
	model  *model
	prices Prices
}

// resolve searches p, then p's fallback providers depth-first, for a
// matching model whose prices at `at` satisfy enough. A matching model that
// does not is passed over so that a fallback may price it; found reports
// whether any model matched at all.
func (s *source) resolve(p *provider, name string, at time.Time, seen map[string]bool, enough func(Prices) bool) (h hit, ok, found bool) {
	if m := p.seg.find(name); m != nil {
		found = true
		if pr := m.pricesAt(at); enough(pr) {
			return hit{prov: p, model: m, prices: pr}, true, true
		}
	}
	if len(p.fallbacks) == 0 {
		return hit{}, false, found
	}
	if seen == nil {
		seen = map[string]bool{}
	}
	seen[p.id] = true
	for _, id := range p.fallbacks {
		fp, exists := s.providers[id]
		if !exists || seen[id] {
			continue
		}
		h, ok, f := s.resolve(fp, name, at, seen, enough)
		if ok {
			return h, true, true
		}
		found = found || f
	}
	return hit{}, false, found
}

func pricedWithOutput(pr Prices) bool { return pr.Priced() && pr.HasOutput() }

// lookup finds name in s: a model priced for input and output wins over one
// priced for input only (an embedding model, or a file that lists only input
// prices), which is used when nothing better matches.
func (s *source) lookup(providerID, name string, at time.Time) (h hit, ok, known, found bool) {
	p := s.provider(providerID)
	if p == nil {
		return hit{}, false, false, false
	}
	h, ok, found = s.resolve(p, name, at, nil, pricedWithOutput)
	if !ok {
		h, ok, found = s.resolve(p, name, at, nil, Prices.Priced)
	}
	return h, ok, true, found
}

// undated returns name without a snapshot date at its end (-2025-03-11 or
// -0613), and whether it had one.
func undated(name string) (string, bool) {
	digits := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return true
	}
	if n := len(name); n > 11 && name[n-11] == '-' && name[n-6] == '-' && name[n-3] == '-' &&
		digits(name[n-10:n-6]) && digits(name[n-5:n-3]) && digits(name[n-2:]) {
		return name[:n-11], true
	}
	if n := len(name); n > 5 && name[n-5] == '-' && digits(name[n-4:]) {
		return name[:n-5], true
	}
	return name, false
}

// Lookup returns the model that the request model name resolves to at
// provider providerID, with the prices in force at `at` (the zero time means
// now). providerID is a price-data provider id such as "openai" or
// "anthropic", matched exactly or lower-cased.
//
// Every source is asked. In each, the name is matched with each model's
// match rule: an exact equals hit first, then the first rule in data order;
// if nothing matches, the same again case-folded, as the genai-prices
// reference implementation matches; when the provider has no priced model
// for the name, its fallback_model_providers are searched. Among date- and
// time-bound price variants the last one active at `at` wins, as
// genai-prices specifies; start dates are calendar dates in UTC and daily
// windows are UTC clock times.
//
// The prices are the highest any source gives, rate by rate, at every
// input size (the tiers of all sources together) and fee by fee: a source
// that prices a snapshot or a suffixed name with an entry of its own can
// only raise what a broader rule in another source says. Fees that an
// undated name's entry carries are also charged for its dated snapshots
// (-2025-03-11) when their own entries lack them. When no source has
// input-size tiers for a model whose context window is unknown or above
// its provider's lowest tier threshold, the dearest long-context tier seen
// for that provider is applied (ImpliedTier), unless an override declares
// the model untiered; a source whose earlier date variant had tiers counts
// as having them (the later flat price is the data's word). A price with no
// tiers of its own follows the tiers of its side (input or output), since
// providers bill every token of a long request at the tier. Overrides replace what they set.
//
// ContextWindow is the largest a matching entry gives, else from LiteLLM
// limits by name and by model id; MaxOutputTokens the first a matching
// entry gives, else from the limits.
//
// Lookup returns ErrUnknownProvider when no source names the provider, and
// ErrModelNotPriced when no model matches or no matching model has an input
// price at `at`. A model without an output price is returned (embedding
// models have none); callers that meter output check Prices.HasOutput.
func (c *Catalog) Lookup(providerID, name string, at time.Time) (Model, error) {
	if at.IsZero() {
		at = time.Now()
	}
	var m Model
	var buf [4]hit
	hits := buf[:0]
	known, found := false, false
	// dataTiers is set when some source has input-size tiers for the model
	// in any of its date variants: then a variant without tiers is the data
	// saying the tier was dropped, and no tier is implied.
	dataTiers := false
	for _, s := range c.sources {
		h, ok, k, f := s.lookup(providerID, name, at)
		known, found = known || k, found || f
		if ok {
			hits = append(hits, h)
		}
	}
	ovs := c.matchingOverrides(providerID, name)
	created := len(ovs) > 0 && ovs[0].created
	switch {
	case created:
		// A model the operator added: the override is the whole price.
		hits = nil
		m = Model{Provider: ovs[0].ov.Provider, ID: ovs[0].ov.Model}
	case len(hits) > 0:
		m = Model{Provider: hits[0].prov.id, ID: hits[0].model.id, Prices: hits[0].prices}
		var uplift budget.Money
		for i, h := range hits {
			dataTiers = dataTiers || h.model.tiered()
			if i > 0 {
				m.Prices = maxPrices(m.Prices, h.prices)
			}
			m.ContextWindow = max(m.ContextWindow, h.model.contextWindow)
			m.MaxOutputTokens = cmp.Or(m.MaxOutputTokens, h.model.maxOutput)
			uplift = max(uplift, h.model.regionalUplift)
		}
		if uplift > 0 {
			m.RegionalUplift = factorString(uplift)
		}
		c.inheritFees(&m, providerID, name, at)
	case !known:
		return Model{}, fmt.Errorf("%w: %q", ErrUnknownProvider, providerID)
	case found:
		return Model{}, fmt.Errorf("%w: %s model %q has no input token price", ErrModelNotPriced, providerID, name)
	default:
		return Model{}, fmt.Errorf("%w: %s has no model matching %q", ErrModelNotPriced, providerID, name)
	}
	untiered := false
	for _, o := range ovs {
		o.apply(&m.Prices)
		m.ContextWindow = cmp.Or(o.ov.ContextWindow, m.ContextWindow)
		m.MaxOutputTokens = cmp.Or(o.ov.MaxOutputTokens, m.MaxOutputTokens)
		untiered = untiered || o.ov.Untiered
	}
	for _, key := range []string{name, m.ID} {
		for _, t := range c.limits {
			if m.ContextWindow != 0 && m.MaxOutputTokens != 0 {
				break
			}
			l := t.get(key)
			m.ContextWindow = cmp.Or(m.ContextWindow, l.contextWindow)
			m.MaxOutputTokens = cmp.Or(m.MaxOutputTokens, l.maxOutput)
		}
	}
	m.Prices = spreadTiers(m.Prices)
	if !untiered && !dataTiers && !m.Prices.HasTiers() {
		it := c.impliedFor(providerID)
		if it.set() && (m.ContextWindow == 0 || m.ContextWindow > it.start) {
			m.Prices, m.ImpliedTier = it.apply(m.Prices), true
		}
	}
	return m, nil
}

// inheritFees adds to m the fees of the undated name's entries when name is
// a dated snapshot: a snapshot entry that lists only token prices must not
// drop a per-call fee its model pays.
func (c *Catalog) inheritFees(m *Model, providerID, name string, at time.Time) {
	base, ok := undated(name)
	if !ok {
		return
	}
	for _, s := range c.sources {
		if h, ok, _, _ := s.lookup(providerID, base, at); ok {
			m.Prices.Fees = maxFees(m.Prices.Fees, h.prices.Fees)
		}
	}
}

// Sources describes the data sets the catalog reads, in order.
func (c *Catalog) Sources() []Source {
	out := make([]Source, len(c.sources))
	for i, s := range c.sources {
		out[i] = s.info
	}
	return out
}

// Describe returns a copy of c whose sources say where they came from.
func (c *Catalog) Describe(origin string, asOf time.Time) *Catalog {
	out := *c
	out.sources = make([]*source, len(c.sources))
	for i, s := range c.sources {
		cp := *s
		cp.info.Origin, cp.info.AsOf = origin, asOf
		out.sources[i] = &cp
	}
	return &out
}

// Merge returns a catalog that asks every source of cats, in order (see
// Lookup: each rate is the highest any of them gives). The first source to
// price a name names the model. LiteLLM limits and overrides are kept in
// order. Nil catalogs are skipped.
//
// hardcap uses Merge(userFile, embedded) so that a newer price file adds
// its prices while the embedded data still covers what the file omits; a
// file can raise a price but not lower one (prices.overrides can).
func Merge(cats ...*Catalog) *Catalog {
	out := &Catalog{}
	for _, c := range cats {
		if c == nil {
			continue
		}
		out.sources = append(out.sources, c.sources...)
		out.limits = append(out.limits, c.limits...)
		out.overrides = append(out.overrides, c.overrides...)
	}
	out.implied, out.global = impliedTiers(out.sources)
	return out
}

// factorString formats a factor held like budget.Money without trailing
// zeros: 1_100_000_000 is "1.1".
func factorString(v budget.Money) string {
	return strings.TrimSuffix(strings.TrimRight(v.String(), "0"), ".")
}
