package pricing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
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
// tokens, rounding up any fraction of a unit. Limits come from
// max_input_tokens and max_output_tokens (max_tokens when the latter is
// missing). The "sample_spec" entry is skipped. Malformed data returns an
// error wrapping ErrInvalidData or ErrInvalidRate.
func ParseLiteLLM(data []byte) (*Catalog, error) {
	keys, entries, err := litellmEntries(data)
	if err != nil {
		return nil, err
	}
	c := newCatalog()
	c.limits = []*limitTable{newLimitTable()}
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
		c.limits[0].add(key, limits{contextWindow: m.contextWindow, maxOutput: m.maxOutput})
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
		c.addProvider(&provider{id: id, segs: []*segment{newSegment(byProv[id])}})
	}
	return c, nil
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
	for field, raw := range e {
		if isNull(raw) {
			continue
		}
		for i, f := range litellmFields {
			if field == f.key {
				t, err := litellmNumber(field, raw)
				if err != nil {
					return "", nil, err
				}
				r, err := scaledRate(t, shiftPerToken)
				if err != nil {
					return "", nil, fmt.Errorf("%s: %w", field, err)
				}
				*f.get(&p) = Flat(r)
				break
			}
			if rest, ok := strings.CutPrefix(field, f.key+"_above_"); ok {
				if start, ok := litellmThreshold(rest); ok {
					t, err := litellmNumber(field, raw)
					if err != nil {
						return "", nil, err
					}
					tiers[i] = append(tiers[i], tier{start, t})
					break
				}
			}
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
	m := &model{id: key, variants: []variant{{prices: p}}}
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
