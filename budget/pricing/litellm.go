package pricing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/hardcap/hardcap/budget"
)

// litellmFields maps LiteLLM's USD-per-token keys to Prices fields. Longer
// keys come first so that cache_creation_input_token_cost_above_1hr is not
// read as a tier of cache_creation_input_token_cost. A key followed by
// "_above_<N>k_tokens" is a tier that starts at N×1000 total input tokens.
// Service-tier variants (_priority, _flex, _batches) are not read.
var litellmFields = []struct {
	key string
	get func(*Prices) *Tiered
}{
	{"cache_creation_input_token_cost_above_1hr", func(p *Prices) *Tiered { return &p.CacheWrite1h }},
	{"cache_creation_input_token_cost", func(p *Prices) *Tiered { return &p.CacheWrite }},
	{"cache_read_input_token_cost", func(p *Prices) *Tiered { return &p.CacheRead }},
	{"output_cost_per_reasoning_token", func(p *Prices) *Tiered { return &p.OutputReasoning }},
	{"output_cost_per_token", func(p *Prices) *Tiered { return &p.Output }},
	{"input_cost_per_token", func(p *Prices) *Tiered { return &p.Input }},
}

// litellmAliases maps LiteLLM provider names to the genai-prices provider id
// of the same service. ParseLiteLLM files each model under both names, so a
// LiteLLM-format file layered over the embedded data overrides the provider
// ids hardcap looks up.
var litellmAliases = map[string]string{
	"gemini":                     "google",
	"vertex_ai":                  "google",
	"vertex_ai-language-models":  "google",
	"vertex_ai-embedding-models": "google",
	"vertex_ai-anthropic_models": "google",
	"xai":                        "x-ai",
	"moonshot":                   "moonshotai",
	"zhipu":                      "zhipuai",
	"bedrock":                    "aws",
	"bedrock_converse":           "aws",
	"text-completion-openai":     "openai",
	"together_ai":                "together",
	"fireworks_ai":               "fireworks",
	"cohere_chat":                "cohere",
}

// ParseLiteLLM parses a LiteLLM model_prices_and_context_window.json file (a
// JSON object of model name to entry, USD per token) into a Catalog. Each
// entry's provider is its litellm_provider, and the model is also filed under
// the matching genai-prices provider id where the names differ (gemini and
// vertex_ai-* as google, xai as x-ai, bedrock as aws, ...). A key prefixed
// with its provider ("anthropic/claude-x") also matches the bare name.
//
// Prices come from input_cost_per_token, output_cost_per_token,
// cache_read_input_token_cost, cache_creation_input_token_cost,
// cache_creation_input_token_cost_above_1hr and
// output_cost_per_reasoning_token, with tiers from the same keys suffixed
// _above_<N>k_tokens; each is converted exactly to nano-USD per million
// tokens, rounding up any fraction of a unit. Image and video token prices,
// per-image and per-search fees and code-interpreter sessions are read too
// (see litellmKind); a cost key hardcap does not know is recorded as
// unpriced, which refuses the model. Limits come from
// max_input_tokens and max_output_tokens (max_tokens when the latter is
// missing). The "sample_spec" entry is skipped. Malformed data returns an
// error wrapping ErrInvalidData or ErrInvalidRate.
func ParseLiteLLM(data []byte) (*Catalog, error) {
	keys, entries, err := litellmEntries(data)
	if err != nil {
		return nil, err
	}
	src := newSource("litellm")
	table := newLimitTable()
	var provOrder []string
	byProv := map[string][]*model{}
	for i, key := range keys {
		if key == "sample_spec" {
			continue
		}
		prov, m, err := parseLiteLLMEntry(key, entries[i])
		if err != nil {
			return nil, fmt.Errorf("litellm %q: %w", key, err)
		}
		table.add(key, limits{contextWindow: m.contextWindow, maxOutput: m.maxOutput})
		for _, id := range []string{prov, litellmAliases[prov]} {
			if id == "" {
				continue
			}
			if _, seen := byProv[id]; !seen {
				provOrder = append(provOrder, id)
			}
			byProv[id] = append(byProv[id], m)
		}
	}
	for _, id := range provOrder {
		src.addProvider(&provider{id: id, seg: newSegment(byProv[id])})
	}
	return Merge(&Catalog{sources: []*source{src}, limits: []*limitTable{table}}), nil
}

// litellmEntries decodes the top-level object keeping its key order, which
// decides between two entries that claim the same name.
func litellmEntries(data []byte) ([]string, []map[string]json.RawMessage, error) {
	d := json.NewDecoder(bytes.NewReader(data))
	d.UseNumber()
	bad := func(err error) ([]string, []map[string]json.RawMessage, error) {
		return nil, nil, fmt.Errorf("%w: litellm: %v", ErrInvalidData, err)
	}
	if t, err := d.Token(); err != nil {
		return bad(err)
	} else if t != json.Delim('{') {
		return bad(fmt.Errorf("want a JSON object, got %v", t))
	}
	var keys []string
	var entries []map[string]json.RawMessage
	for d.More() {
		t, err := d.Token()
		if err != nil {
			return bad(err)
		}
		key, _ := t.(string)
		var raw json.RawMessage
		if err := d.Decode(&raw); err != nil {
			return bad(err)
		}
		var e map[string]json.RawMessage
		if err := json.Unmarshal(raw, &e); err != nil {
			return bad(fmt.Errorf("entry %q: %v", key, err))
		}
		keys = append(keys, key)
		entries = append(entries, e)
	}
	if _, err := d.Token(); err != nil {
		return bad(err)
	}
	return keys, entries, nil
}

func parseLiteLLMEntry(key string, e map[string]json.RawMessage) (string, *model, error) {
	var prov string
	if err := json.Unmarshal(e["litellm_provider"], &prov); err != nil || prov == "" {
		return "", nil, fmt.Errorf("%w: missing litellm_provider", ErrInvalidData)
	}
	var p Prices
	type tier struct {
		start int64
		text  string
	}
	tiers := map[int][]tier{} // litellmFields index -> tiers
	var regional budget.Money // the largest regional uplift factor, as a decimal
	for _, field := range slices.Sorted(maps.Keys(e)) {
		raw := e[field]
		if isNull(raw) {
			continue
		}
		handled := false
		for i, f := range litellmFields {
			if field == f.key {
				r, err := litellmRate(field, raw, shiftPerToken)
				if err != nil {
					return "", nil, err
				}
				*f.get(&p) = Flat(r)
				handled = true
				break
			}
			if rest, ok := strings.CutPrefix(field, f.key+"_above_"); ok {
				if start, ok := litellmThreshold(rest); ok {
					t, err := litellmNumber(field, raw)
					if err != nil {
						return "", nil, err
					}
					tiers[i] = append(tiers[i], tier{start, t})
					handled = true
					break
				}
			}
		}
		if handled {
			continue
		}
		var err error
		switch kind, shift := litellmKind(field); kind {
		case litellmNotPrice, litellmIgnored:
		case litellmRegional:
			if n, ok := numberText(raw); ok {
				if f, perr := budget.ParseUSD(n); perr == nil {
					regional = max(regional, f)
				}
			}
		case litellmCacheRead, litellmInputMedia, litellmOutputMedia, litellmInput, litellmOutput:
			var r budget.Rate
			if r, err = litellmRate(field, raw, shift); err == nil {
				t := &p.Input
				switch kind {
				case litellmCacheRead:
					t = &p.CacheRead
				case litellmInputMedia:
					t = &p.InputMedia
				case litellmOutputMedia:
					t = &p.OutputMedia
				case litellmOutput:
					t = &p.Output
				}
				*t = maxTiered(*t, Flat(r))
			}
		case litellmImageFee, litellmCodeSession:
			var r budget.Rate
			if r, err = litellmRate(field, raw, shift); err == nil {
				if kind == litellmImageFee {
					p.Fees.Image = max(p.Fees.Image, budget.Money(r))
				} else {
					p.Fees.CodeSession = max(p.Fees.CodeSession, budget.Money(r))
				}
			}
		case litellmSearch:
			p.Fees.Search, err = litellmSearchFee(raw)
		default:
			p.Fees.Unpriced = append(p.Fees.Unpriced, field)
		}
		if err != nil {
			return "", nil, err
		}
	}
	for i, ts := range tiers {
		t := litellmFields[i].get(&p)
		if !t.Set {
			continue // a tier without a base price is not a price
		}
		for _, tr := range ts {
			r, err := scaledRate(tr.text, shiftPerToken)
			if err != nil {
				return "", nil, err
			}
			t.Tiers = append(t.Tiers, Tier{Start: tr.start, Rate: r})
		}
		sortTiers(t.Tiers)
	}
	m := &model{id: key, variants: []variant{{prices: p}}, regionalUplift: regional}
	names := []string{key}
	if short, ok := strings.CutPrefix(key, prov+"/"); ok && short != "" {
		names = append(names, short)
	}
	m.rule = equalsRule(names...)
	var err error
	if m.contextWindow, err = litellmCount(e, "max_input_tokens"); err != nil {
		return "", nil, err
	}
	if m.maxOutput, err = litellmCount(e, "max_output_tokens"); err != nil {
		return "", nil, err
	}
	if m.maxOutput == 0 {
		// LiteLLM documents max_tokens as a legacy field holding the output
		// limit, or the input limit when the provider gives none; either way
		// it bounds the output.
		if m.maxOutput, err = litellmCount(e, "max_tokens"); err != nil {
			return "", nil, err
		}
	}
	return prov, m, nil
}

// litellmClass is what a LiteLLM key outside litellmFields bills.
type litellmClass uint8

const (
	litellmNotPrice litellmClass = iota // not a price at all
	litellmUnpriced
	litellmIgnored // audio, other service tiers, storage: never on a request hardcap serves
	litellmRegional
	litellmCacheRead
	litellmInput
	litellmOutput
	litellmInputMedia
	litellmOutputMedia
	litellmImageFee
	litellmCodeSession
	litellmSearch
)

// litellmKind classifies a LiteLLM entry key that is not one of
// litellmFields (or its tiers), with the decimal shift from its unit to
// nano-USD per million tokens (rates) or nano-USD (fees). Keys that do not
// name a cost are not prices; a cost key hardcap does not know is
// unpriced, which refuses the model.
func litellmKind(field string) (litellmClass, int) {
	switch {
	case strings.HasPrefix(field, "regional_processing_uplift_multiplier"):
		return litellmRegional, 0
	case !strings.Contains(field, "cost") && field != "tiered_pricing":
		return litellmNotPrice, 0
	case strings.Contains(field, "audio"),
		strings.Contains(field, "_priority"), strings.Contains(field, "_flex"), strings.Contains(field, "_batch"),
		strings.HasPrefix(field, "file_search_cost"), strings.HasPrefix(field, "vector_store_cost"),
		field == "input_cost_per_video_per_second":
		// hardcap refuses audio and video inputs, forces the default
		// service tier, and refuses file search without an allowance.
		return litellmIgnored, 0
	case field == "input_cost_per_token_cache_hit":
		return litellmCacheRead, shiftPerToken
	case field == "input_cost_per_image_token" || field == "input_cost_per_video_token":
		return litellmInputMedia, shiftPerToken
	case field == "output_cost_per_image_token" || field == "output_cost_per_video_token":
		return litellmOutputMedia, shiftPerToken
	case field == "computer_use_input_cost_per_1k_tokens":
		return litellmInput, shiftPerToken - 3
	case field == "computer_use_output_cost_per_1k_tokens":
		return litellmOutput, shiftPerToken - 3
	case field == "input_cost_per_image" || strings.HasPrefix(field, "input_cost_per_image_above_"):
		return litellmImageFee, 9
	case field == "code_interpreter_cost_per_session":
		return litellmCodeSession, 9
	case field == "search_context_cost_per_query":
		return litellmSearch, 9
	}
	return litellmUnpriced, 0
}

// litellmRate reads a price field in USD per unit as nano-USD per million
// tokens (or nano-USD) by the decimal shift.
func litellmRate(field string, raw json.RawMessage, shift int) (budget.Rate, error) {
	t, err := litellmNumber(field, raw)
	if err != nil {
		return 0, err
	}
	r, err := scaledRate(t, shift)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	return r, nil
}

// litellmSearchFee reads search_context_cost_per_query, USD per query by
// search_context_size_low, _medium and _high.
func litellmSearchFee(raw json.RawMessage) (SearchFee, error) {
	var obj map[string]json.RawMessage
	if err := unmarshalNumbers(raw, &obj); err != nil {
		return SearchFee{}, fmt.Errorf("%w: search_context_cost_per_query: %v", ErrInvalidData, err)
	}
	var s SearchFee
	for key, dst := range map[string]*budget.Money{
		"search_context_size_low": &s.Low, "search_context_size_medium": &s.Medium, "search_context_size_high": &s.High,
	} {
		if v, ok := obj[key]; ok && !isNull(v) {
			r, err := litellmRate("search_context_cost_per_query."+key, v, 9)
			if err != nil {
				return SearchFee{}, err
			}
			*dst = budget.Money(r)
		}
	}
	return s, nil
}

// litellmThreshold parses a tier suffix such as "200k_tokens" into 200000.
func litellmThreshold(s string) (int64, bool) {
	num, ok := strings.CutSuffix(s, "k_tokens")
	mult := int64(1_000)
	if !ok {
		if num, ok = strings.CutSuffix(s, "m_tokens"); !ok {
			return 0, false
		}
		mult = 1_000_000
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n < 0 || n > (1<<62)/mult {
		return 0, false
	}
	return n * mult, true
}

// litellmNumber returns a price field's decimal text.
func litellmNumber(field string, raw json.RawMessage) (string, error) {
	n, ok := numberText(raw)
	if !ok {
		return "", fmt.Errorf("%w: %s is %s, not a number", ErrInvalidData, field, raw)
	}
	return n, nil
}

// litellmCount returns a token-limit field, or 0 when it is absent or null.
func litellmCount(e map[string]json.RawMessage, field string) (int64, error) {
	raw, ok := e[field]
	if !ok || isNull(raw) {
		return 0, nil
	}
	t, err := litellmNumber(field, raw)
	if err != nil {
		return 0, err
	}
	n, err := parseCount(t)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", field, err)
	}
	return n, nil
}
