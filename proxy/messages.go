package proxy

import (
	"bytes"
	"encoding/json"
	"strconv"
	"strings"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
)

// messagesAPI is Anthropic's POST /v1/messages.
type messagesAPI struct{}

// messagesParams are the Messages parameters hardcap knows the cost effect
// of. Others (the MCP connector, containers, context management) are
// refused unless a provider's extra_params allows them.
var messagesParams = map[string]bool{
	"model": true, "messages": true, "max_tokens": true, "system": true, "metadata": true,
	"stop_sequences": true, "stream": true, "temperature": true, "top_k": true, "top_p": true,
	"tools": true, "tool_choice": true, "thinking": true, "service_tier": true,
	"output_config": true, "inference_geo": true, "cache_control": true,
}

// minThinkingCap is the smallest max_tokens that leaves room for
// Anthropic's smallest thinking budget (1,024 tokens, below max_tokens).
const minThinkingCap = 1025

// Messages input bound allowances, in tokens. Claude's tokenizer, like the
// OpenAI ones, never makes a token of less than one byte, so the body's
// length bounds the text. When tools are given Anthropic adds a tool-use
// system prompt (a few hundred tokens, per its pricing docs) and renders
// each definition; Anthropic-defined client tools (bash, text editor,
// computer, memory) add more.
const (
	messagesBaseAllowance    = 32
	messagesToolsAllowance   = 1024 // once, when there are tools
	messagesToolAllowance    = 64   // per tool definition
	messagesDefinedAllowance = 1024 // per Anthropic-defined client tool
)

// anthropicClientTools are the type prefixes of Anthropic-defined tools
// that run on the client: priced as tokens only. Every other typed tool
// runs on Anthropic's side and bills per use (web search, web fetch, code
// execution), which the request cannot bound.
var anthropicClientTools = []string{"bash_", "text_editor_", "computer_", "memory_"}

// messagesBlocks are the content block types whose cost the body bounds.
var messagesBlocks = map[string]bool{
	"text": true, "tool_use": true, "tool_result": true, "thinking": true, "redacted_thinking": true,
}

type messagesRequest struct {
	// body is the client's body; fields its top-level members, which
	// parse and rewrite edit and rewrite patches into body.
	body   []byte
	fields map[string]json.RawMessage
	name   string
	b      bounds
}

// parse reads a Messages body. max_tokens is required by the API and bounds
// all output, extended thinking included.
func (messagesAPI) parse(body []byte, prov *Provider) (meteredRequest, error) {
	fields, err := checkFields(body, messagesParams, prov)
	if err != nil {
		return nil, err
	}
	req := &messagesRequest{body: body, fields: fields, b: bounds{choices: 1}}
	if req.name, err = modelField(fields); err != nil {
		return nil, err
	}
	if req.b.clientCap, err = positiveField(fields, "max_tokens"); err != nil {
		return nil, err
	}
	if req.b.clientCap == 0 {
		return nil, refuse(ErrBadRequest, "The body needs \"max_tokens\".")
	}
	var tier string
	_ = unmarshalField(fields, "service_tier", &tier)
	if tier != "" && tier != "auto" && tier != "standard_only" {
		return nil, refuse(ErrUnbounded, "service_tier %q has prices hardcap does not know.", tier)
	}
	req.b.input = int64(len(body)) + messagesBaseAllowance
	if _, ok := fields["output_config"]; ok {
		req.b.input += chatToolAllowance // a structured-output schema is rendered into the prompt
	}
	var thinking map[string]json.RawMessage
	var thinkingType string
	if unmarshalField(fields, "thinking", &thinking) == nil && unmarshalField(thinking, "type", &thinkingType) == nil && thinkingType == "enabled" {
		req.b.minOutput = minThinkingCap
	}
	var tools []map[string]json.RawMessage
	if err := unmarshalField(fields, "tools", &tools); err != nil {
		return nil, refuse(ErrBadRequest, "\"tools\" must be an array of objects.")
	}
	if len(tools) > 0 {
		req.b.input += messagesToolsAllowance
	}
	for i, t := range tools {
		var typ string
		_ = unmarshalField(t, "type", &typ)
		switch {
		case typ == "" || typ == "custom":
			req.b.input += messagesToolAllowance
		case hasAnyPrefix(typ, anthropicClientTools):
			req.b.input += messagesDefinedAllowance
		default:
			return nil, refuse(ErrUnbounded, "tools[%d]: the server tool %q is billed per use by Anthropic and cannot be bounded by the request.", i, typ)
		}
	}
	var msgs []map[string]json.RawMessage
	if err := unmarshalField(fields, "messages", &msgs); err != nil || len(msgs) == 0 {
		return nil, refuse(ErrBadRequest, "The body needs a non-empty \"messages\" array of objects.")
	}
	var images, opaque int64
	for i, m := range msgs {
		n, o, err := checkBlocks(m["content"])
		if err != nil {
			return nil, refuse(ErrUnbounded, "messages[%d]: %s", i, err.Error())
		}
		images, opaque = images+n, opaque+o
	}
	if _, _, err := checkBlocks(fields["system"]); err != nil {
		return nil, refuse(ErrUnbounded, "system: %s", err.Error())
	}
	req.b.images = images
	req.b.input += images * anthropicImageTokens
	if opaque > 0 {
		if err := req.b.grant(prov, AllowOpaque, "messages: "+strconv.FormatInt(opaque, 10)+" thinking block(s) carry a signature or redacted data, billed at the thinking they stand for", opaque, false); err != nil {
			return nil, err
		}
	}
	if err := req.checkGeo(prov); err != nil {
		return nil, err
	}
	if err := checkCacheControl(fields["cache_control"]); err != nil {
		return nil, err
	}
	// Any cache_control block may ask for a one-hour lifetime, however it
	// is spelled, and a one-hour write costs more than input: Messages input
	// is always bounded at that rate (Anthropic's own prices already make
	// it the highest input rate), and writes the usage does not place by
	// lifetime are charged as one-hour writes.
	req.b.cache1h = true
	return req, nil
}

// cacheTTLs are the cache lifetimes Anthropic prices: a write is billed at
// 1.25 (5 minutes, the default) or 2 (one hour) times the input price, and
// hardcap bounds all Messages input at the one-hour rate.
var cacheTTLs = map[string]bool{"": true, "5m": true, "1h": true}

// checkCacheControl reads the top-level cache_control (automatic caching:
// Anthropic places the breakpoint on the last cacheable block). It writes
// at most the whole prompt to the cache, at most at the one-hour rate, which
// the Messages bound already takes for every input token; a type or
// lifetime Anthropic could price differently is refused.
func checkCacheControl(raw json.RawMessage) error {
	if !isSet(raw) {
		return nil
	}
	var cc struct {
		Type *string `json:"type"`
		TTL  string  `json:"ttl"`
	}
	if json.Unmarshal(raw, &cc) != nil || cc.Type == nil {
		return refuse(ErrBadRequest, "\"cache_control\" must be an object with a \"type\".")
	}
	if *cc.Type != "ephemeral" || !cacheTTLs[cc.TTL] {
		return refuse(ErrUnbounded, "cache_control: only {\"type\": \"ephemeral\"} with a ttl of \"5m\" or \"1h\" has prices hardcap knows.")
	}
	return nil
}

func hasAnyPrefix(s string, prefixes []string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(s, p) {
			return true
		}
	}
	return false
}

// checkBlocks accepts a string, null, or an array of content blocks whose
// types the body bounds, and returns how many images it holds and how many
// opaque blocks (thinking with a signature, redacted thinking: billed at the
// thinking they stand for, which their bytes do not bound); tool results
// are checked inside. An image given by file id refers to stored state the
// body does not bound.
func checkBlocks(raw json.RawMessage) (images, opaque int64, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return 0, 0, nil
	}
	var blocks []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return 0, 0, errString("content blocks must be objects with a \"type\"")
	}
	for _, b := range blocks {
		var typ string
		_ = json.Unmarshal(b["type"], &typ)
		switch {
		case typ == "image":
			var src map[string]json.RawMessage
			var srcType string
			if json.Unmarshal(b["source"], &src) != nil || json.Unmarshal(src["type"], &srcType) != nil || (srcType != "base64" && srcType != "url") {
				return 0, 0, errString("image blocks must carry a base64 or url source; files by id are not metered")
			}
			images++
		case !messagesBlocks[typ]:
			return 0, 0, errString("content blocks of type " + strconv.Quote(typ) + " are not metered by this version of hardcap")
		case typ == "redacted_thinking":
			opaque++
		case typ == "thinking" && isSet(b["signature"]) && string(bytes.TrimSpace(b["signature"])) != `""`:
			opaque++
		case typ == "tool_result":
			n, o, err := checkBlocks(b["content"])
			if err != nil {
				return 0, 0, err
			}
			images, opaque = images+n, opaque+o
		}
	}
	return images, opaque, nil
}

// checkGeo reads inference_geo. "us" (US-only inference) is billed at 1.1
// times every token price on the models that support it; hardcap reserves
// and charges it so whatever the model. Without the parameter Anthropic
// uses the workspace default, which may be "us": on Anthropic's own API
// hardcap writes "global" for the models that accept the parameter.
func (r *messagesRequest) checkGeo(prov *Provider) error {
	var geo string
	if err := unmarshalField(r.fields, "inference_geo", &geo); err != nil {
		return refuse(ErrBadRequest, "\"inference_geo\" must be a string.")
	}
	switch geo {
	case "":
		if prov.Prices == "anthropic" && geoModel(r.name) {
			r.fields["inference_geo"] = json.RawMessage(`"global"`)
		}
	case "global":
	case "us":
		r.b.geoUplift = true
	default:
		return refuse(ErrUnbounded, "inference_geo %q has prices hardcap does not know.", geo)
	}
	return nil
}

// legacyClaude are the model name prefixes released before Claude Opus 4.6,
// which refuse inference_geo (and bill no geographic uplift). Every other
// Claude model accepts it.
var legacyClaude = []string{
	"claude-2", "claude-v1", "claude-instant", "claude-3",
	"claude-4-opus", "claude-4-sonnet", "claude-4-0", "claude-4-1", "claude-4-5", "claude-4.0", "claude-4.1", "claude-4.5",
	"claude-opus-4-0", "claude-opus-4-1", "claude-opus-4-5", "claude-opus-4.0", "claude-opus-4.1", "claude-opus-4.5",
	"claude-opus-4-2025", "claude-opus-4@",
	"claude-sonnet-4-0", "claude-sonnet-4-5", "claude-sonnet-4.0", "claude-sonnet-4.5", "claude-sonnet-4-2025", "claude-sonnet-4@",
	"claude-haiku-4-5", "claude-haiku-4.5",
}

// geoModel reports whether a Claude model accepts inference_geo.
func geoModel(name string) bool {
	n := strings.ToLower(name)
	if n == "claude-opus-4" || n == "claude-sonnet-4" || !strings.HasPrefix(n, "claude-") {
		return false
	}
	return !hasAnyPrefix(n, legacyClaude)
}

func (r *messagesRequest) model() string  { return r.name }
func (r *messagesRequest) bounds() bounds { return r.b }

// rewrite sets max_tokens to the reserved cap. When clamping lowers it to
// or below a thinking budget, the budget is lowered too (the API requires it
// to be smaller than max_tokens, except with interleaved thinking, where a
// budget above the client's own max_tokens is left alone).
func (r *messagesRequest) rewrite(outputCap int64, _ *Provider) ([]byte, error) {
	setCapField(r.fields, "max_tokens", outputCap)
	var thinking map[string]json.RawMessage
	if outputCap < r.b.clientCap && unmarshalField(r.fields, "thinking", &thinking) == nil && thinking != nil {
		var budgetTokens int64
		if unmarshalField(thinking, "budget_tokens", &budgetTokens) == nil && budgetTokens >= outputCap {
			// Clamping keeps outputCap at minThinkingCap or more, so this
			// stays at or above the API's minimum budget of 1,024.
			orig := r.fields["thinking"]
			setCapField(thinking, "budget_tokens", outputCap-1)
			b, err := marshalPatched(orig, thinking)
			if err != nil {
				return nil, err
			}
			r.fields["thinking"] = b
		}
	}
	return marshalPatched(r.body, r.fields)
}

func (r *messagesRequest) tracker() usageTracker {
	return &anthropicTracker{cache1h: r.b.cache1h}
}

// anthropicUsage is the usage object of Messages responses, message_start
// and message_delta. Pointers tell a missing count from a zero one.
type anthropicUsage struct {
	InputTokens              *int64 `json:"input_tokens"`
	CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
	CacheCreation            *struct {
		Ephemeral5m *int64 `json:"ephemeral_5m_input_tokens"`
		Ephemeral1h *int64 `json:"ephemeral_1h_input_tokens"`
	} `json:"cache_creation"`
	OutputTokens *int64 `json:"output_tokens"`
	// InferenceGeo is where inference ran ("global", "us").
	InferenceGeo  *string `json:"inference_geo"`
	ServerToolUse *struct {
		WebSearchRequests int64 `json:"web_search_requests"`
		WebFetchRequests  int64 `json:"web_fetch_requests"`
	} `json:"server_tool_use"`
}

// merge takes every count later reports: a later value replaces an earlier
// one, it never adds to it.
func (u *anthropicUsage) merge(later *anthropicUsage) {
	if later == nil {
		return
	}
	if later.InputTokens != nil {
		u.InputTokens = later.InputTokens
	}
	if later.CacheCreationInputTokens != nil {
		u.CacheCreationInputTokens = later.CacheCreationInputTokens
	}
	if later.CacheReadInputTokens != nil {
		u.CacheReadInputTokens = later.CacheReadInputTokens
	}
	if later.CacheCreation != nil {
		u.CacheCreation = later.CacheCreation
	}
	if later.OutputTokens != nil {
		u.OutputTokens = later.OutputTokens
	}
	if later.ServerToolUse != nil {
		u.ServerToolUse = later.ServerToolUse
	}
	if later.InferenceGeo != nil {
		u.InferenceGeo = later.InferenceGeo
	}
}

// normalize converts the usage. Input counts every input token: uncached,
// cache reads and cache writes. Cache writes are split by lifetime from the
// cache_creation breakdown; writes the breakdown does not place (it is
// missing, or message_delta updated the total without it) are counted as
// one-hour writes when the request asked for any, the dearer price. Usage
// that shows server tool use (never allowed through) is not trusted.
func (u *anthropicUsage) normalize(cache1h bool) (budget.Usage, bool) {
	if u.InputTokens == nil || u.OutputTokens == nil {
		return budget.Usage{}, false
	}
	if s := u.ServerToolUse; s != nil && (s.WebSearchRequests > 0 || s.WebFetchRequests > 0) {
		return budget.Usage{}, false
	}
	val := func(p *int64) int64 {
		if p == nil {
			return 0
		}
		return *p
	}
	creation := val(u.CacheCreationInputTokens)
	var w5, w1 int64
	if c := u.CacheCreation; c != nil {
		w1 = min(val(c.Ephemeral1h), creation)
		w5 = min(val(c.Ephemeral5m), creation-w1)
	}
	if rest := creation - w5 - w1; rest > 0 {
		if cache1h {
			w1 += rest
		} else {
			w5 += rest
		}
	}
	return budget.Usage{
		InputTokens:        val(u.InputTokens) + creation + val(u.CacheReadInputTokens),
		CacheReadTokens:    val(u.CacheReadInputTokens),
		CacheWriteTokens:   w5,
		CacheWrite1hTokens: w1,
		OutputTokens:       val(u.OutputTokens),
	}, true
}

// anthropicTracker reads Messages usage: the whole body's usage, or
// message_start's usage updated by message_delta's. Only a stream that
// reached message_delta has reported its final output count.
type anthropicTracker struct {
	cache1h bool
	usage   anthropicUsage
	final   bool
}

func (t *anthropicTracker) event(_, data []byte) bool {
	// Only message_start and message_delta carry usage; the content
	// events in between, most of a stream, are not decoded.
	if !mayHoldUsage(data) {
		return false
	}
	var ev struct {
		Type    string `json:"type"`
		Message *struct {
			Usage *anthropicUsage `json:"usage"`
		} `json:"message"`
		Usage *anthropicUsage `json:"usage"`
	}
	if json.Unmarshal(data, &ev) != nil {
		return false
	}
	switch ev.Type {
	case "message_start":
		if ev.Message != nil {
			t.usage.merge(ev.Message.Usage)
		}
	case "message_delta":
		if ev.Usage != nil {
			t.usage.merge(ev.Usage)
			t.final = true
		}
	}
	return false
}

func (t *anthropicTracker) whole(body []byte) {
	var v struct {
		Usage *anthropicUsage `json:"usage"`
	}
	if json.Unmarshal(body, &v) == nil && v.Usage != nil {
		t.usage.merge(v.Usage)
		t.final = true
	}
}

// uplift is the price factor the usage reports beyond the request's own:
// US-only inference, which the workspace default can choose.
func (t *anthropicTracker) uplift() pricing.Multiplier {
	if g := t.usage.InferenceGeo; g != nil && *g == "us" {
		return usInferenceUplift
	}
	return pricing.Multiplier{}
}

func (t *anthropicTracker) result(bool) (budget.Usage, bool) {
	if !t.final {
		return budget.Usage{}, false
	}
	return t.usage.normalize(t.cache1h)
}
