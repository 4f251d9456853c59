package pricing

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/hardcap/hardcap/budget"
)

// genai-prices v2 JSON (see data/genai-prices-v2.json and its schema).
type (
	genaiProvider struct {
		ID        string       `json:"id"`
		Fallbacks []string     `json:"fallback_model_providers"`
		Models    []genaiModel `json:"models"`
	}
	genaiModel struct {
		ID            string          `json:"id"`
		Match         json.RawMessage `json:"match"`
		ContextWindow json.Number     `json:"context_window"`
		Prices        json.RawMessage `json:"prices"`
	}
	genaiConditional struct {
		Constraint json.RawMessage `json:"constraint"`
		Prices     json.RawMessage `json:"prices"`
	}
	genaiTiered struct {
		Base  json.Number `json:"base"`
		Tiers []struct {
			Start json.Number `json:"start"`
			Price json.Number `json:"price"`
		} `json:"tiers"`
	}
)

// genaiFields lists, for each Prices field, the genai-prices ModelPrice keys
// that may carry it. The data uses input_mtok,
// cache_read_mtok, cache_write_mtok, cache_write_1h_mtok, output_mtok and
// output_reasoning_mtok; the others are schema keys for the same prices.
var genaiFields = []struct {
	keys []string
	get  func(*Prices) *Tiered
}{
	{[]string{"input_mtok", "input_text_mtok"}, func(p *Prices) *Tiered { return &p.Input }},
	{[]string{"cache_read_mtok", "cache_text_read_mtok"}, func(p *Prices) *Tiered { return &p.CacheRead }},
	{[]string{"cache_write_5m_mtok", "cache_write_mtok", "cache_text_write_5m_mtok", "cache_text_write_mtok"}, func(p *Prices) *Tiered { return &p.CacheWrite }},
	{[]string{"cache_write_1h_mtok", "cache_text_write_1h_mtok"}, func(p *Prices) *Tiered { return &p.CacheWrite1h }},
	{[]string{"output_mtok", "output_text_mtok"}, func(p *Prices) *Tiered { return &p.Output }},
	{[]string{"output_reasoning_mtok", "output_text_reasoning_mtok"}, func(p *Prices) *Tiered { return &p.OutputReasoning }},
}

// ParseGenAIPrices parses a genai-prices v2 data file (a JSON array of
// providers, USD per million tokens) into a Catalog. Match rules and regexes
// are compiled once here; every price is converted exactly to nano-USD per
// million tokens, rounding up any fraction of a unit (see parseGenAIPrice
// for image, request and search prices). Malformed data returns an error
// wrapping ErrInvalidData or ErrInvalidRate.
func ParseGenAIPrices(data []byte) (*Catalog, error) {
	var provs []genaiProvider
	if err := unmarshalNumbers(data, &provs); err != nil {
		return nil, fmt.Errorf("%w: genai-prices: %v", ErrInvalidData, err)
	}
	src := newSource("genai-prices")
	for _, gp := range provs {
		if gp.ID == "" {
			return nil, fmt.Errorf("%w: genai-prices: provider without id", ErrInvalidData)
		}
		if _, dup := src.providers[gp.ID]; dup {
			return nil, fmt.Errorf("%w: genai-prices: duplicate provider %q", ErrInvalidData, gp.ID)
		}
		p := &provider{id: gp.ID, fallbacks: slices.Clone(gp.Fallbacks)}
		models := make([]*model, 0, len(gp.Models))
		for _, gm := range gp.Models {
			m, err := parseGenAIModel(gm)
			if err != nil {
				return nil, fmt.Errorf("genai-prices %s/%s: %w", gp.ID, gm.ID, err)
			}
			models = append(models, m)
		}
		p.seg = newSegment(models)
		src.addProvider(p)
	}
	return Merge(&Catalog{sources: []*source{src}}), nil
}

func parseGenAIModel(gm genaiModel) (*model, error) {
	if gm.ID == "" {
		return nil, fmt.Errorf("%w: model without id", ErrInvalidData)
	}
	r, err := parseRule(gm.Match)
	if err != nil {
		return nil, err
	}
	m := &model{id: gm.ID, rule: r}
	if gm.ContextWindow != "" {
		if m.contextWindow, err = parseCount(gm.ContextWindow.String()); err != nil {
			return nil, err
		}
	}
	raw := bytes.TrimSpace(gm.Prices)
	switch {
	case isNull(raw):
		return nil, fmt.Errorf("%w: no prices", ErrInvalidData)
	case raw[0] == '[':
		var conds []genaiConditional
		if err := strictUnmarshal(raw, &conds); err != nil {
			return nil, fmt.Errorf("%w: prices: %v", ErrInvalidData, err)
		}
		if len(conds) == 0 {
			return nil, fmt.Errorf("%w: empty price list", ErrInvalidData)
		}
		for _, cp := range conds {
			when, err := parseConstraint(cp.Constraint)
			if err != nil {
				return nil, err
			}
			pr, err := parseGenAIPrice(cp.Prices)
			if err != nil {
				return nil, err
			}
			m.variants = append(m.variants, variant{when: when, prices: pr})
		}
	default:
		pr, err := parseGenAIPrice(raw)
		if err != nil {
			return nil, err
		}
		m.variants = []variant{{prices: pr}}
	}
	return m, nil
}

// parseGenAIPrice reads one ModelPrice object. Token prices fill Prices;
// image and video token prices fill InputMedia and OutputMedia; per-request
// and per-search prices fill Fees. Audio prices are not read: hardcap
// refuses audio. Any other key is a fee hardcap cannot price and is listed
// in Fees.Unpriced, so the model is refused rather than served at token
// rates.
func parseGenAIPrice(raw json.RawMessage) (Prices, error) {
	var obj map[string]json.RawMessage
	if err := unmarshalNumbers(raw, &obj); err != nil {
		return Prices{}, fmt.Errorf("%w: prices: %v", ErrInvalidData, err)
	}
	var p Prices
	used := map[string]bool{}
	for _, f := range genaiFields {
		// Two spellings of one price both count: the higher wins.
		for _, key := range f.keys {
			v, ok := obj[key]
			if !ok || isNull(v) {
				continue
			}
			t, err := parseGenAITiered(v)
			if err != nil {
				return Prices{}, fmt.Errorf("%s: %w", key, err)
			}
			*f.get(&p) = maxTiered(*f.get(&p), t)
			used[key] = true
		}
	}
	for _, key := range slices.Sorted(maps.Keys(obj)) {
		v := obj[key]
		if used[key] || isNull(v) {
			continue
		}
		switch kind := genaiKind(key); kind {
		case kindAudio:
		case kindInputMedia, kindOutputMedia:
			t, err := parseGenAITiered(v)
			if err != nil {
				return Prices{}, fmt.Errorf("%s: %w", key, err)
			}
			if kind == kindInputMedia {
				p.InputMedia = maxTiered(p.InputMedia, t)
			} else {
				p.OutputMedia = maxTiered(p.OutputMedia, t)
			}
		case kindRequest, kindSearch:
			n, ok := numberText(v)
			if !ok {
				return Prices{}, fmt.Errorf("%w: %s is not a number", ErrInvalidData, key)
			}
			// USD per thousand is nano-USD per one times 10^6.
			fee, err := scaledRate(n, 6)
			if err != nil {
				return Prices{}, fmt.Errorf("%s: %w", key, err)
			}
			if kind == kindRequest {
				p.Fees.Request = max(p.Fees.Request, budget.Money(fee))
			} else {
				f := budget.Money(fee)
				p.Fees.Search = SearchFee{Low: f, Medium: f, High: f}
			}
		default:
			p.Fees.Unpriced = append(p.Fees.Unpriced, key)
		}
	}
	return p, nil
}

// priceKind is what a price key the token fields do not cover bills.
type priceKind uint8

const (
	kindUnpriced priceKind = iota
	kindAudio
	kindInputMedia
	kindOutputMedia
	kindRequest
	kindSearch
)

// genaiKind classifies a genai-prices ModelPrice key.
func genaiKind(key string) priceKind {
	switch {
	case strings.Contains(key, "audio"):
		return kindAudio
	case key == "requests_kcount":
		return kindRequest
	case key == "web_searches_kcount":
		return kindSearch
	case strings.HasSuffix(key, "_mtok") && (strings.Contains(key, "image") || strings.Contains(key, "video")):
		if strings.HasPrefix(key, "output_") {
			return kindOutputMedia
		}
		return kindInputMedia
	}
	return kindUnpriced
}

// parseGenAITiered reads a price that is either a number or a TieredPrices
// object {base, tiers: [{start, price}]}, both in USD per million tokens.
// Tiers are sorted by start, as genai-prices does.
func parseGenAITiered(raw json.RawMessage) (Tiered, error) {
	raw = bytes.TrimSpace(raw)
	if raw[0] != '{' {
		n, ok := numberText(raw)
		if !ok {
			return Tiered{}, fmt.Errorf("%w: %s is not a number", ErrInvalidData, raw)
		}
		r, err := scaledRate(n, shiftPerMTok)
		return Flat(r), err
	}
	var gt genaiTiered
	if err := strictUnmarshal(raw, &gt); err != nil {
		return Tiered{}, fmt.Errorf("%w: tiered price: %v", ErrInvalidData, err)
	}
	base, err := scaledRate(gt.Base.String(), shiftPerMTok)
	if err != nil {
		return Tiered{}, err
	}
	t := Tiered{Base: base, Set: true}
	for _, tr := range gt.Tiers {
		start, err := parseCount(tr.Start.String())
		if err != nil {
			return Tiered{}, err
		}
		rate, err := scaledRate(tr.Price.String(), shiftPerMTok)
		if err != nil {
			return Tiered{}, err
		}
		t.Tiers = append(t.Tiers, Tier{Start: start, Rate: rate})
	}
	sortTiers(t.Tiers)
	return t, nil
}

// sortTiers orders tiers by ascending start, keeping the data order of equal
// starts.
func sortTiers(ts []Tier) {
	slices.SortStableFunc(ts, func(a, b Tier) int { return cmp.Compare(a.Start, b.Start) })
}
