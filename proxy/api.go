package proxy

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
)

// api is one request and response format hardcap meters: how to read,
// bound and rewrite a request, and how to read the usage of its answer.
// Each route names one (chat.go, completions.go, embeddings.go,
// messages.go).
type api interface {
	// parse reads a request body sent to prov. It refuses what it cannot
	// bound.
	parse(body []byte, prov *Provider) (meteredRequest, error)
}

// meteredRequest is a parsed request.
type meteredRequest interface {
	// model is the requested model name.
	model() string
	// bounds are the proven limits of what the request can be billed for.
	bounds() bounds
	// rewrite returns the body to send upstream, running with the
	// per-choice output cap the reservation was quoted for.
	rewrite(outputCap int64, prov *Provider) ([]byte, error)
	// tracker returns the usage reader for the response; call it after
	// rewrite, which decides what the client must not see.
	tracker() usageTracker
}

// bounds are what a request's worst case is computed from.
type bounds struct {
	// input is the proven upper bound of input tokens.
	input int64
	// clientCap is the client's own output cap per choice; 0 when none.
	clientCap int64
	// defaultCap is the output cap per choice the API applies when the
	// client sets none (legacy completions: 16); 0 when it has none.
	defaultCap int64
	// choices is how many outputs the request can produce (n, best_of,
	// prompts); at least 1.
	choices int64
	// noOutput marks requests that produce no output tokens (embeddings).
	noOutput bool
	// cache1h marks requests that may write one-hour cache entries, billed
	// above the input price.
	cache1h bool
	// allowance is added to the worst case for input the tokens do not
	// bound (config-granted allowances for stored state, files, opaque
	// items and server tools, whose results re-enter the input), in
	// nano-USD. Any allowance prices the request at its top tier.
	allowance budget.Money
	// fees are fixed charges the usage does not report (per-request,
	// per-image, per-search and container fees), in nano-USD; set by
	// priceRequest. They are reserved and charged but never cross a tier.
	fees budget.Money
	// surcharge is charged on top of the usage's cost at settlement: the
	// fees, and the allowances of server tools (their per-call fees are not
	// in the usage either).
	surcharge budget.Money
	// minOutput is the smallest output cap the API accepts; clamping stops
	// there.
	minOutput int64

	// images is how many images the input carries.
	images int64
	// searchEveryCall marks a search model, which searches on every call,
	// at searchSize ("low", "medium", "high"; "" when the request does not
	// fix it, which prices the dearest).
	searchEveryCall bool
	searchSize      string
	// callTools are the per-call server tools the request declares, by
	// the output item type their calls produce, each with its allowance
	// (USD per call) and, for web search, its search context size.
	// priceRequest turns them into callPrices.
	callTools map[string]callTool
	// callPrices is the price of one call by output item type, and
	// maxToolCalls the most built-in tool calls the response may make (the
	// request's max_tool_calls, or the one hardcap writes): maxToolCalls
	// times the dearest price is reserved; the calls the response shows are
	// charged.
	callPrices   map[string]budget.Money
	maxToolCalls int64
	// serverTools marks a request with server tools, whose results re-enter
	// the input: it is priced at its top tier.
	serverTools bool
	// containers holds, for each hosted container the request may start,
	// its session fee by memory size in nano-USD.
	containers []budget.Money
	// geoUplift marks an Anthropic request for US-only inference.
	geoUplift bool
}

// callTool is a server tool billed per call.
type callTool struct {
	// allowance is the operator's price of one call, in nano-USD.
	allowance budget.Money
	// searchSize is a web search tool's search context size.
	searchSize string
	search     bool
}

// grant adds the provider's allowance named key for count items to the
// bounds, and its USD amount to the settlement's surcharge when surcharge is
// set, or refuses the request when the config grants none. A tokens
// allowance widens the input bound; a USD one the allowance.
func (b *bounds) grant(prov *Provider, key, what string, count int64, surcharge bool) error {
	a, ok := prov.Allowances[key]
	if !ok {
		return refuse(ErrUnbounded, "%s: hardcap cannot bound its cost. An operator can grant a per-request allowance with providers.%s.allowances.%s (USD, or tokens as \"20000 tokens\").", what, prov.Name, key)
	}
	if count <= 0 {
		return nil
	}
	if a.Tokens > 0 {
		if count > math.MaxInt64/a.Tokens || b.input > math.MaxInt64-count*a.Tokens {
			return refuse(budget.ErrOverflow, "%s: the allowance overflows.", what)
		}
		b.input += count * a.Tokens
		return nil
	}
	if count > int64(budget.MaxMoney)/max(int64(a.USD), 1) {
		return refuse(budget.ErrOverflow, "%s: the allowance overflows.", what)
	}
	total := budget.Money(count) * a.USD
	var err error
	if b.allowance, err = b.allowance.Add(total); err != nil {
		return err
	}
	if surcharge {
		if b.surcharge, err = b.surcharge.Add(total); err != nil {
			return err
		}
	}
	return nil
}

// quote turns a request's bounds into its worst-case quote for model m.
func quote(b bounds, m pricing.Model) (budget.Quote, error) {
	// Input the body does not hold (granted allowances) can push the
	// request past a price tier, which raises every token's rate, output's
	// too: such requests are priced at the top tier.
	tierInput := b.input
	if b.allowance > 0 || b.serverTools {
		tierInput = math.MaxInt64
	}
	inRate, outRate := m.Prices.WorstRates(tierInput)
	if b.cache1h {
		inRate = max(inRate, m.Prices.Worst1hRate(tierInput))
	}
	fixed, err := b.allowance.Add(b.fees)
	if err != nil {
		return budget.Quote{}, err
	}
	q := budget.Quote{InputTokens: b.input, InputRate: inRate, Choices: max(b.choices, 1), OutputRate: outRate, Allowance: fixed, MinOutput: b.minOutput}
	if b.noOutput {
		return q, nil
	}
	if !m.Prices.HasOutput() {
		return q, refuse(pricing.ErrModelNotPriced, "No output price is known for %q.", m.ID)
	}
	if b.clientCap == 0 && b.defaultCap > 0 {
		q.MaxOutput = b.defaultCap
	} else {
		q.MaxOutput, err = outputBound(b.clientCap, m, b.input)
	}
	return q, err
}

// usageTracker reads the usage of one response, streamed or whole.
type usageTracker interface {
	// event meters one stream event of the given type (empty when the
	// event has no event: line) and reports whether the client must not
	// see it. Neither slice may be kept: both alias the stream's buffer.
	event(typ, data []byte) (hide bool)
	// whole meters a complete JSON response body.
	whole(body []byte)
	// result is the usage to charge and whether it can be trusted as the
	// request's whole usage. clean reports that the body ended normally.
	result(clean bool) (budget.Usage, bool)
}

// checkFields parses a JSON object body and refuses keys repeated in one
// object and top-level fields outside known and the provider's extras. The
// fields' values alias body (capacity capped, so an append copies); the
// body is walked by the byte scanner rather than decoded into a map by
// encoding/json, which cost an allocation per key and per value.
func checkFields(body []byte, known map[string]bool, prov *Provider) (map[string]json.RawMessage, error) {
	if err := checkDepth(body); err != nil {
		return nil, err
	}
	obj := body[skipSpace(body, 0):]
	if len(obj) == 0 || obj[0] != '{' || !json.Valid(body) {
		return nil, refuse(ErrBadRequest, "The body must be a JSON object.")
	}
	// Go's decoder keeps the last of duplicate keys and matches struct
	// fields regardless of case; a provider may do neither. Refusing both
	// makes hardcap and the provider read the same request.
	if err := checkKeys(body); err != nil {
		return nil, err
	}
	n := 0
	objectMembers(obj, func(member) bool { n++; return true })
	// Room for the members rewrite adds (a cap field, service_tier).
	fields := make(map[string]json.RawMessage, n+2)
	var unknown error
	objectMembers(obj, func(m member) bool {
		name := fieldName(obj, m.key)
		if !known[name] && !prov.ExtraParams[name] {
			unknown = refuse(ErrUnbounded, "hardcap does not know the parameter %q, so it cannot prove what it costs. An operator can allow it with the provider's extra_params setting.", name)
			return false
		}
		fields[name] = json.RawMessage(obj[m.start:m.end:m.end])
		return true
	})
	if unknown != nil {
		return nil, unknown
	}
	return fields, nil
}

// maxJSONDepth is the deepest nesting of objects and arrays a request body
// may have. Real requests stay far below it (OpenAI caps structured-output
// schemas at 10 levels); a deeper body is refused with a message that says
// so, rather than failing inside the decoder with a vague one.
const maxJSONDepth = 128

// checkDepth refuses a body whose objects and arrays nest deeper than
// maxJSONDepth. It scans bytes only (brackets inside strings do not count),
// so it costs one pass and no allocation whatever the body holds.
func checkDepth(body []byte) error {
	depth := 0
	inString, escaped := false, false
	for _, c := range body {
		switch {
		case inString:
			switch {
			case escaped:
				escaped = false
			case c == '\\':
				escaped = true
			case c == '"':
				inString = false
			}
		case c == '"':
			inString = true
		case c == '{' || c == '[':
			if depth++; depth > maxJSONDepth {
				return refuse(ErrBadRequest, "The body nests objects and arrays deeper than %d levels, the most hardcap reads.", maxJSONDepth)
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return nil
}

// cacheRetentions are OpenAI's prompt_cache_retention values. Both bill
// cached input at the same rates (the retention changes how long a prefix
// stays cached, not its price), and every input token is already bounded at
// the highest of the input, cache-read and cache-write rates. "in-memory"
// is how the SDKs spelled in_memory before their fix; it is passed on as
// sent, and the provider decides.
var cacheRetentions = map[string]bool{"in_memory": true, "in-memory": true, "24h": true}

// checkCacheRetention reads prompt_cache_retention (chat and Responses). A
// value OpenAI may add later, with a price of its own, is refused.
func checkCacheRetention(fields map[string]json.RawMessage) error {
	if !isSet(fields["prompt_cache_retention"]) {
		return nil
	}
	var v string
	if err := unmarshalField(fields, "prompt_cache_retention", &v); err != nil {
		return refuse(ErrBadRequest, "\"prompt_cache_retention\" must be a string.")
	}
	if v != "" && !cacheRetentions[v] {
		return refuse(ErrUnbounded, "prompt_cache_retention: only \"in_memory\" and \"24h\" have prices hardcap knows.")
	}
	return nil
}

// setCap writes outputCap into every field of names the request carries.
func setCap(fields map[string]json.RawMessage, outputCap int64, names ...string) {
	v := json.RawMessage(strconv.FormatInt(outputCap, 10))
	for _, name := range names {
		if _, ok := fields[name]; ok {
			fields[name] = v
		}
	}
}

type errString string

func (e errString) Error() string { return string(e) }

// unmarshalField decodes fields[name] into v; a missing or null field leaves
// v unchanged.
func unmarshalField(fields map[string]json.RawMessage, name string, v any) error {
	raw, ok := fields[name]
	if !ok || !isSet(raw) {
		return nil
	}
	if decodeScalar(bytes.TrimSpace(raw), v) {
		return nil
	}
	return json.Unmarshal(raw, v)
}

// decodeScalar decodes the commonest field values without reflection: a
// string without escapes, a boolean, an integer of digits. It reports false
// for anything else, which json.Unmarshal then decodes (or refuses) as
// before.
func decodeScalar(raw []byte, v any) bool {
	switch v := v.(type) {
	case *string:
		if len(raw) >= 2 && raw[0] == '"' {
			if end, plain := scanString(raw, 0); end == len(raw) && plain {
				*v = string(raw[1 : len(raw)-1])
				return true
			}
		}
	case *bool:
		switch string(raw) {
		case "true":
			*v = true
			return true
		case "false":
			*v = false
			return true
		}
	case **int64:
		if n, ok := digits(raw); ok {
			*v = &n
			return true
		}
	case *int64:
		if n, ok := digits(raw); ok {
			*v = n
			return true
		}
	}
	return false
}

// digits parses a JSON integer written as digits (an optional minus, no
// fraction or exponent) that fits an int64.
func digits(raw []byte) (int64, bool) {
	s := raw
	if len(s) > 0 && s[0] == '-' {
		s = s[1:]
	}
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0, false
		}
	}
	// At most 18 digits: the sum cannot overflow (and strconv would
	// allocate the string it may quote in an error).
	var n int64
	for _, c := range s {
		n = n*10 + int64(c-'0')
	}
	if len(s) < len(raw) {
		n = -n
	}
	return n, true
}

func isSet(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

// countArray is the number of elements of an array value, 0 for any other
// value.
func countArray(raw json.RawMessage) int {
	n := 0
	arrayElements(bytes.TrimSpace(raw), func(int, int) bool { n++; return true })
	return n
}

// modelField reads the required "model" string.
func modelField(fields map[string]json.RawMessage) (string, error) {
	// A plain string is copied once; anything else decodes as before.
	if s, ok := jsonString(bytes.TrimSpace(fields["model"])); ok && len(s) > 0 {
		return string(s), nil
	}
	var m string
	if err := unmarshalField(fields, "model", &m); err != nil || m == "" {
		return "", refuse(ErrBadRequest, "The body needs a \"model\" string.")
	}
	return m, nil
}

// positiveField reads an optional positive integer; 0 when absent.
func positiveField(fields map[string]json.RawMessage, name string) (int64, error) {
	raw := fields[name]
	if !isSet(raw) {
		return 0, nil
	}
	// Digits decode without reflection (and without a heap variable).
	if n, ok := digits(bytes.TrimSpace(raw)); ok && n > 0 {
		return n, nil
	}
	var v int64
	if err := json.Unmarshal(raw, &v); err != nil || v <= 0 {
		return 0, refuse(ErrBadRequest, "%q must be a positive integer.", name)
	}
	return v, nil
}
