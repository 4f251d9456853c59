package proxy

import (
	"bytes"
	"cmp"
	"encoding/json"
	"maps"
	"strconv"
	"strings"

	"github.com/hardcap/hardcap/budget"
)

// responsesAPI is OpenAI's POST /v1/responses.
type responsesAPI struct{}

var responsesParams = map[string]bool{
	"model": true, "input": true, "instructions": true, "max_output_tokens": true, "stream": true,
	"stream_options": true, "tools": true, "tool_choice": true, "parallel_tool_calls": true,
	"max_tool_calls": true, "store": true, "metadata": true, "temperature": true, "top_p": true,
	"top_logprobs": true, "text": true, "reasoning": true, "truncation": true, "user": true,
	"safety_identifier": true, "prompt_cache_key": true, "service_tier": true, "include": true,
	"prompt_cache_retention": true,
	// Refused, or allowed with an allowance, with a specific message.
	"background": true, "previous_response_id": true, "conversation": true, "prompt": true,
}

// Allowance names: what the config's providers.<name>.allowances may grant,
// in USD or tokens per request (AllowOpaque: per item).
const (
	// AllowStoredState covers input the request only refers to:
	// previous_response_id, conversation, item references and stored prompts.
	// The provider reports those tokens in the usage, so the allowance only
	// widens the reservation.
	AllowStoredState = "stored_state"
	// AllowFiles covers files and images referenced by file id; their tokens
	// are reported in the usage too.
	AllowFiles = "files"
	// AllowOpaque covers each opaque input item: ciphertext or a provider's
	// own encoding that is billed at the token count of what it stands for,
	// which its length does not bound (Responses reasoning with
	// encrypted_content, Anthropic thinking signatures and redacted
	// thinking). Its tokens are reported in the usage.
	AllowOpaque = "opaque"
)

// ServerTools are the tools that run on the provider's side and bill per
// call or per session on top of tokens, by allowance name. Granting one an
// allowance also charges the allowance at settlement, since the usage does
// not carry those fees.
var ServerTools = []string{"web_search", "file_search", "code_interpreter", "shell", "image_generation", "mcp"}

// callToolItems are the server tools billed per call, with the output item
// types their calls produce: each such item in the response is charged at
// the tool's price per call.
var callToolItems = map[string][]string{
	"web_search":       {"web_search_call"},
	"file_search":      {"file_search_call"},
	"image_generation": {"image_generation_call"},
	"mcp":              {"mcp_call"},
}

// fallbackCallPrices are the prices per call, in nano-USD, of the per-call
// tools a stored prompt may enable without the request naming them, when
// the config grants no allowance for the tool: OpenAI's dearest published
// prices (a search at the largest context size on a search-preview model,
// a file search, a high-quality 1536x1024 image). MCP calls bill tokens
// only.
var fallbackCallPrices = map[string]budget.Money{
	"web_search":       50_000_000,
	"file_search":      2_500_000,
	"image_generation": 250_000_000,
	"mcp":              0,
}

// DefaultMaxToolCalls is the max_tool_calls hardcap writes into a request
// with per-call server tools that sets none, unless the provider sets
// another (Provider.MaxToolCalls): the number of built-in tool calls must
// be bounded for their fees to be.
const DefaultMaxToolCalls = 8

// clientTools are the Responses tools that run on the client: priced as
// tokens only. A shell tool is client-run only with a local environment.
var clientTools = map[string]int64{
	"function": chatToolAllowance, "custom": chatToolAllowance,
	"local_shell": messagesDefinedAllowance, "computer_use_preview": messagesDefinedAllowance,
	"computer": messagesDefinedAllowance, "apply_patch": messagesDefinedAllowance,
}

// responsesItems are the input item types whose cost the body bounds. Their
// "content" or "output", when an array of parts, is checked like a
// message's content.
var responsesItems = map[string]bool{
	"message": true, "function_call": true, "function_call_output": true,
	"custom_tool_call": true, "custom_tool_call_output": true, "reasoning": true,
	"local_shell_call": true, "local_shell_call_output": true, "shell_call": true, "shell_call_output": true,
	"apply_patch_call": true, "apply_patch_call_output": true, "computer_call": true, "computer_call_output": true,
	// Earlier server tool calls sent back as history (input += output):
	// their text is in the body. An image generation call carries its
	// image, counted as one.
	"web_search_call": true, "file_search_call": true, "image_generation_call": true,
	"code_interpreter_call": true, "mcp_call": true, "mcp_list_tools": true,
	"mcp_approval_request": true, "mcp_approval_response": true,
}

// minResponsesCap is the smallest max_output_tokens the Responses API
// accepts.
const minResponsesCap = 16

type responsesRequest struct {
	// body is the client's body; fields its top-level members, which
	// parse and rewrite edit and rewrite patches into body.
	body   []byte
	fields map[string]json.RawMessage
	name   string
	b      bounds
	prov   *Provider
	// granted holds the allowances already added, each at most once.
	granted map[string]bool
	// opaque counts input items billed by what they stand for.
	opaque int64
}

// grant adds the provider's allowance named key once per request (see
// bounds.grant), or refuses the request when the config grants none.
func (r *responsesRequest) grant(key, what string, surcharge bool) error {
	if r.granted[key] {
		return nil
	}
	r.granted[key] = true
	return r.b.grant(r.prov, key, what, 1, surcharge)
}

// parse reads a Responses body. max_output_tokens bounds all output,
// reasoning included; inputs and tools the body does not bound need an
// allowance from the config.
func (responsesAPI) parse(body []byte, prov *Provider) (meteredRequest, error) {
	fields, err := checkFields(body, responsesParams, prov)
	if err != nil {
		return nil, err
	}
	r := &responsesRequest{body: body, fields: fields, prov: prov, b: bounds{choices: 1, minOutput: minResponsesCap}, granted: map[string]bool{}}
	if r.name, err = modelField(fields); err != nil {
		return nil, err
	}
	if r.b.clientCap, err = positiveField(fields, "max_output_tokens"); err != nil {
		return nil, err
	}
	var background bool
	if unmarshalField(fields, "background", &background) != nil || background {
		return nil, refuse(ErrUnbounded, "Background responses report their usage later, outside this request; hardcap cannot meter them.")
	}
	if err := checkServiceTier(fields, prov); err != nil {
		return nil, err
	}
	if err := checkCacheRetention(fields); err != nil {
		return nil, err
	}
	for _, name := range []string{"previous_response_id", "conversation", "prompt"} {
		if isSet(fields[name]) {
			if err := r.grant(AllowStoredState, "\""+name+"\" refers to stored input", false); err != nil {
				return nil, err
			}
		}
	}
	r.b.input = int64(len(body)) + chatBaseAllowance
	if isSet(fields["text"]) {
		r.b.input += chatToolAllowance // a text.format schema is rendered into the prompt
	}
	var tools []map[string]json.RawMessage
	if err := unmarshalField(fields, "tools", &tools); err != nil {
		return nil, refuse(ErrBadRequest, "\"tools\" must be an array of objects.")
	}
	if len(tools) > 0 {
		r.b.input += chatToolAllowance
	}
	for i, t := range tools {
		if err := r.checkTool(i, t); err != nil {
			return nil, err
		}
	}
	if isSet(fields["prompt"]) {
		// A stored prompt may enable server tools the request does not
		// name: each per-call tool it could use is priced (its allowance,
		// else the dearest published price) and bounded like a declared one.
		r.b.serverTools = true
		for tool, items := range callToolItems {
			ct := callTool{allowance: fallbackCallPrices[tool], search: tool == "web_search"}
			if a, ok := prov.Allowances[tool]; ok && a.USD > 0 {
				ct.allowance = a.USD
			}
			if r.b.callTools == nil {
				r.b.callTools = map[string]callTool{}
			}
			for _, item := range items {
				if old, dup := r.b.callTools[item]; !dup || old.allowance < ct.allowance {
					r.b.callTools[item] = ct
				}
			}
		}
	}
	if len(r.b.callTools) > 0 {
		if r.b.maxToolCalls, err = positiveField(fields, "max_tool_calls"); err != nil {
			return nil, err
		}
		if r.b.maxToolCalls == 0 {
			r.b.maxToolCalls = cmp.Or(prov.MaxToolCalls, DefaultMaxToolCalls)
			fields["max_tool_calls"] = json.RawMessage(strconv.FormatInt(r.b.maxToolCalls, 10))
		}
	}
	images, err := r.checkInput(fields["input"])
	if err != nil {
		return nil, err
	}
	r.b.images = images
	r.b.input += images * openAIImageTokens(r.name)
	if r.opaque > 0 {
		if err := r.b.grant(prov, AllowOpaque, "input: "+strconv.FormatInt(r.opaque, 10)+" reasoning item(s) carry encrypted content, billed at the tokens it stands for", r.opaque, false); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// checkTool bounds one tool. Client-run tools add tokens. A tool with a
// provider-side environment or container runs on OpenAI's side, whatever
// its type: it needs its allowance, and each container it may start adds
// its session fee.
func (r *responsesRequest) checkTool(i int, t map[string]json.RawMessage) error {
	var typ string
	_ = unmarshalField(t, "type", &typ)
	where := "tools[" + strconv.Itoa(i) + "]"
	container, hosted, local, err := hostedContainer(t)
	if err != nil {
		return refuse(ErrBadRequest, "%s: %s", where, err.Error())
	}
	if tokens, ok := clientTools[typ]; ok && !hosted {
		r.b.input += tokens
		return nil
	}
	if typ == "shell" && local {
		r.b.input += messagesDefinedAllowance
		return nil
	}
	if typ == "shell" && !hosted {
		return refuse(ErrUnbounded, "%s: a shell tool without a local environment may run in a hosted container; set \"environment\": {\"type\": \"local\"} if your app runs the commands.", where)
	}
	server := ""
	for _, s := range ServerTools {
		if typ == s || strings.HasPrefix(typ, s+"_") {
			server = s
		}
	}
	if server == "" {
		if hosted {
			return refuse(ErrUnbounded, "%s: the tool %q runs in a hosted environment, which hardcap does not meter for this type.", where, typ)
		}
		return refuse(ErrUnbounded, "%s: hardcap does not know the tool type %q.", where, typ)
	}
	r.b.serverTools = true
	if items, ok := callToolItems[server]; ok && !hosted {
		a, ok := r.prov.Allowances[server]
		if !ok || a.USD == 0 {
			return refuse(ErrUnbounded, "%s: the server tool %q bills per call. An operator can allow it with providers.%s.allowances.%s (USD per call; the price data's per-call price is used when higher).", where, typ, r.prov.Name, server)
		}
		ct := callTool{allowance: a.USD, search: server == "web_search"}
		_ = unmarshalField(t, "search_context_size", &ct.searchSize)
		if r.b.callTools == nil {
			r.b.callTools = map[string]callTool{}
		}
		for _, item := range items {
			if old, dup := r.b.callTools[item]; dup && old.searchSize != ct.searchSize {
				ct.searchSize = "" // two sizes: the dearest
			}
			r.b.callTools[item] = ct
		}
		return nil
	}
	if err := r.grant(server, where+": the server tool "+strconv.Quote(typ)+" runs on the provider's side", true); err != nil {
		return err
	}
	if server == "code_interpreter" && !hosted {
		hosted, container = true, dearestContainerFee
	}
	if hosted {
		r.b.containers = append(r.b.containers, container)
	}
	return nil
}

// hostedContainer reports whether a tool runs in a provider-side
// environment ("environment" other than {"type": "local"}, or any
// "container"), and the session fee of that container: by its memory_limit
// when it creates one, the dearest when it refers to one by id or does not
// say. local reports an explicit {"type": "local"} environment.
func hostedContainer(t map[string]json.RawMessage) (fee budget.Money, hosted, local bool, err error) {
	for _, field := range []string{"environment", "container"} {
		raw := t[field]
		if !isSet(raw) {
			continue
		}
		raw = bytes.TrimSpace(raw)
		if raw[0] == '"' {
			if field == "environment" {
				// computer_use_preview names the client's own environment.
				continue
			}
			return dearestContainerFee, true, false, nil // a container id
		}
		var env struct {
			Type        string `json:"type"`
			MemoryLimit string `json:"memory_limit"`
		}
		if json.Unmarshal(raw, &env) != nil {
			return 0, false, false, errString("\"" + field + "\" must be an object or a string")
		}
		if field == "environment" && env.Type == "local" {
			local = true
			continue
		}
		fee := dearestContainerFee
		if env.Type == "auto" || env.Type == "container_auto" {
			fee = containerFee(env.MemoryLimit)
		}
		return fee, true, false, nil
	}
	return 0, false, local, nil
}

// checkInput checks the input items and counts the images among them.
func (r *responsesRequest) checkInput(raw json.RawMessage) (images int64, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		var s string
		if isSet(raw) && json.Unmarshal(raw, &s) != nil {
			return 0, refuse(ErrBadRequest, "\"input\" must be a string or an array of items.")
		}
		return 0, nil
	}
	var items []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &items); err != nil {
		return 0, refuse(ErrBadRequest, "\"input\" items must be objects.")
	}
	for i, it := range items {
		typ := "message"
		_ = unmarshalField(it, "type", &typ)
		switch {
		case typ == "item_reference":
			if err := r.grant(AllowStoredState, "input["+strconv.Itoa(i)+"] refers to a stored item", false); err != nil {
				return 0, err
			}
		case !responsesItems[typ]:
			return 0, refuse(ErrUnbounded, "input[%d]: items of type %q are not metered by this version of hardcap.", i, typ)
		case typ == "reasoning" && !isSet(it["encrypted_content"]):
			// Without its encrypted content a reasoning item refers to
			// reasoning stored with the provider.
			if err := r.grant(AllowStoredState, "input["+strconv.Itoa(i)+"] refers to stored reasoning", false); err != nil {
				return 0, err
			}
		case typ == "reasoning":
			// Ciphertext: its length does not bound the tokens it is
			// billed as.
			r.opaque++
		case typ == "computer_call_output", typ == "image_generation_call":
			images++ // its output is a screenshot, or the generated image
		}
		for _, field := range []string{"content", "output"} {
			n, err := r.checkParts(i, it[field])
			if err != nil {
				return 0, err
			}
			images += n
		}
	}
	return images, nil
}

// checkParts checks one message's content parts.
func (r *responsesRequest) checkParts(item int, raw json.RawMessage) (images int64, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return 0, nil
	}
	var parts []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil {
		return 0, refuse(ErrBadRequest, "input[%d]: content parts must be objects.", item)
	}
	for _, p := range parts {
		var typ string
		_ = unmarshalField(p, "type", &typ)
		switch typ {
		case "input_text", "output_text", "refusal", "summary_text", "reasoning_text":
		case "input_image":
			if isSet(p["file_id"]) {
				if err := r.grant(AllowFiles, "input["+strconv.Itoa(item)+"]: an image by file id", false); err != nil {
					return 0, err
				}
			}
			images++
		case "input_file":
			if err := r.grant(AllowFiles, "input["+strconv.Itoa(item)+"]: a file", false); err != nil {
				return 0, err
			}
		default:
			return 0, refuse(ErrUnbounded, "input[%d]: content parts of type %q are not metered by this version of hardcap.", item, typ)
		}
	}
	return images, nil
}

func (r *responsesRequest) model() string  { return r.name }
func (r *responsesRequest) bounds() bounds { return r.b }

// rewrite sets max_output_tokens to the reserved cap.
func (r *responsesRequest) rewrite(outputCap int64, _ *Provider) ([]byte, error) {
	setCapField(r.fields, "max_output_tokens", outputCap)
	return marshalPatched(r.body, r.fields)
}

func (r *responsesRequest) tracker() usageTracker { return &responsesTracker{} }

// responsesUsage is the usage object of a Response.
type responsesUsage struct {
	InputTokens        *int64 `json:"input_tokens"`
	OutputTokens       *int64 `json:"output_tokens"`
	InputTokensDetails *struct {
		CachedTokens     int64  `json:"cached_tokens"`
		CacheWriteTokens *int64 `json:"cache_write_tokens"`
	} `json:"input_tokens_details"`
	OutputTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
}

func (u *responsesUsage) normalize() (budget.Usage, bool) {
	if u == nil || u.InputTokens == nil || u.OutputTokens == nil {
		return budget.Usage{}, false
	}
	out := budget.Usage{InputTokens: *u.InputTokens, OutputTokens: *u.OutputTokens}
	if d := u.InputTokensDetails; d != nil {
		out.CacheReadTokens = d.CachedTokens
		if d.CacheWriteTokens != nil {
			out.CacheWriteTokens = *d.CacheWriteTokens
		}
	}
	if d := u.OutputTokensDetails; d != nil {
		out.ReasoningTokens = d.ReasoningTokens
	}
	return out, true
}

// responsesTracker reads the usage of the whole Response, or of the
// response.completed, response.incomplete or response.failed event that
// ends a stream, and counts the tool call items of its output.
type responsesTracker struct {
	usage *budget.Usage
	// calls counts the response's output items by type; seen is set when
	// the response carried its output array.
	calls map[string]int64
	seen  bool
	// streamed counts the output items the stream's
	// response.output_item.done events ended, by type.
	streamed map[string]int64
	// placed is set when the usage counts cache writes.
	placed bool
}

// unplacedWrites reports usage that does not say how many input tokens
// were written to the cache.
func (t *responsesTracker) unplacedWrites() bool { return t.usage != nil && !t.placed }

// responsesResult is the part of a Response the tracker reads.
type responsesResult struct {
	Usage  *responsesUsage `json:"usage"`
	Output *[]struct {
		Type string `json:"type"`
	} `json:"output"`
}

// take records a final Response.
func (t *responsesTracker) take(r *responsesResult) {
	u, ok := r.Usage.normalize()
	if !ok {
		return
	}
	t.usage = &u
	t.placed = r.Usage.InputTokensDetails != nil && r.Usage.InputTokensDetails.CacheWriteTokens != nil
	t.calls, t.seen = map[string]int64{}, r.Output != nil
	if r.Output != nil {
		for _, it := range *r.Output {
			t.calls[it.Type]++
		}
	}
}

// outputItemDone marks the stream event that ends one output item.
var outputItemDone = []byte(`"response.output_item.done"`)

func (t *responsesTracker) event(_, data []byte) bool {
	// Only output_item.done events (tool calls are counted from them) and
	// the final response (usage) are decoded; the text deltas, most of a
	// stream, are passed over unless an escape could spell either.
	if !bytes.Contains(data, outputItemDone) && !mayHoldUsage(data) {
		return false
	}
	var ev struct {
		Type string `json:"type"`
		Item *struct {
			Type string `json:"type"`
		} `json:"item"`
		Response *responsesResult `json:"response"`
	}
	if json.Unmarshal(data, &ev) != nil {
		return false
	}
	switch ev.Type {
	case "response.output_item.done":
		if ev.Item != nil {
			if t.streamed == nil {
				t.streamed = map[string]int64{}
			}
			t.streamed[ev.Item.Type]++
		}
	case "response.completed", "response.incomplete", "response.failed":
		if ev.Response != nil {
			t.take(ev.Response)
		}
	}
	return false
}

func (t *responsesTracker) whole(body []byte) {
	var v responsesResult
	if json.Unmarshal(body, &v) == nil {
		t.take(&v)
	}
}

// toolCalls returns the response's output items by type, the larger of
// what the final response lists and what the stream's output_item.done
// events showed, and whether the response showed its output at all.
func (t *responsesTracker) toolCalls() (map[string]int64, bool) {
	out := maps.Clone(t.calls)
	if out == nil {
		out = map[string]int64{}
	}
	for typ, n := range t.streamed {
		out[typ] = max(out[typ], n)
	}
	return out, t.seen || len(t.streamed) > 0
}

func (t *responsesTracker) result(bool) (budget.Usage, bool) {
	if t.usage == nil {
		return budget.Usage{}, false
	}
	return *t.usage, true
}
