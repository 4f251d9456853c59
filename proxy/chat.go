package proxy

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"

	"github.com/hardcap/hardcap/budget"
)

// chatAPI is OpenAI's POST /v1/chat/completions, as spoken by OpenAI and
// every OpenAI-compatible provider.
type chatAPI struct{}

// chatRequest is a parsed chat completions body.
type chatRequest struct {
	// body is the client's body; fields its top-level members, which
	// parse and rewrite edit and rewrite patches into body.
	body   []byte
	fields map[string]json.RawMessage
	name   string
	// stream is true for "stream": true.
	stream bool
	// wantsUsage is true when the client itself asked for the usage chunk.
	wantsUsage bool
	// hideUsage is set by rewrite when hardcap asked for the usage chunk
	// the client did not.
	hideUsage bool
	b         bounds
}

// Chat input bound allowances, in tokens. Every token of the tokenizers
// OpenAI-compatible models use is at least one byte of its text, and the text
// a chat prompt is built from is a subset of the JSON body (decoding JSON
// never makes a string longer), so the body's byte length bounds the text's
// tokens. The per-message framing (about 4 special tokens a message and 3 to
// prime the reply) is smaller than the JSON punctuation each message needs
// (at least 28 bytes). What the body does not contain is the text providers
// wrap around tool definitions and response schemas; these allowances cover
// it generously.
const (
	chatBaseAllowance = 32
	chatToolAllowance = 64 // per tool or function definition, plus once
)

// chatParams are the chat completion parameters hardcap knows the cost
// effect of. Any other parameter is refused: a provider-specific option
// (model fallbacks, search plugins, prompt templates) can change the cost in
// ways the request does not bound.
var chatParams = map[string]bool{
	"model": true, "messages": true, "stream": true, "stream_options": true,
	"max_tokens": true, "max_completion_tokens": true, "n": true,
	"temperature": true, "top_p": true, "frequency_penalty": true, "presence_penalty": true,
	"logit_bias": true, "logprobs": true, "top_logprobs": true, "stop": true, "seed": true,
	"user": true, "tools": true, "tool_choice": true, "parallel_tool_calls": true,
	"functions": true, "function_call": true, "response_format": true, "service_tier": true,
	"store": true, "metadata": true, "reasoning_effort": true, "verbosity": true,
	"prompt_cache_key": true, "safety_identifier": true, "modalities": true,
	"prompt_cache_retention": true,
	// Refused by checkChatUnbounded with a specific message.
	"web_search_options": true, "prediction": true, "audio": true,
}

// parse reads a chat completions body. It refuses what hardcap cannot
// bound: non-text inputs, audio, predicted outputs, web search, premium
// service tiers and unknown parameters.
func (chatAPI) parse(body []byte, prov *Provider) (meteredRequest, error) {
	fields, err := checkFields(body, chatParams, prov)
	if err != nil {
		return nil, err
	}
	req := &chatRequest{body: body, fields: fields, b: bounds{choices: 1}}
	if req.name, err = modelField(fields); err != nil {
		return nil, err
	}
	if err := req.readStream(); err != nil {
		return nil, err
	}
	for _, name := range []string{"max_completion_tokens", "max_tokens"} {
		v, err := positiveField(fields, name)
		if err != nil {
			return nil, err
		}
		if v > 0 && (req.b.clientCap == 0 || v < req.b.clientCap) {
			req.b.clientCap = v
		}
	}
	if req.b.choices, err = choicesField(fields, "n"); err != nil {
		return nil, err
	}
	if err := req.checkSearch(); err != nil {
		return nil, err
	}
	if err := checkChatUnbounded(fields, req.b.searchEveryCall); err != nil {
		return nil, err
	}
	if err := checkServiceTier(fields, prov); err != nil {
		return nil, err
	}
	if err := checkCacheRetention(fields); err != nil {
		return nil, err
	}
	images, err := checkChatMessages(fields["messages"])
	if err != nil {
		return nil, err
	}
	tools, err := checkChatTools(fields["tools"])
	if err != nil {
		return nil, err
	}
	tools += countArray(fields["functions"])
	req.b.input = int64(len(body)) + chatBaseAllowance
	if tools > 0 {
		req.b.input += chatToolAllowance * int64(tools+1)
	}
	if _, ok := fields["response_format"]; ok {
		req.b.input += chatToolAllowance
	}
	req.b.images = images
	req.b.input += images * openAIImageTokens(req.name)
	return req, nil
}

// searchModel reports whether a model searches the web on every call
// (gpt-4o-search-preview, gpt-5-search-api, their snapshots): each call
// pays a search fee the usage does not report.
func searchModel(name string) bool {
	n := strings.ToLower(name)
	return strings.Contains(n, "search-preview") || strings.Contains(n, "search-api")
}

// checkSearch reads web_search_options. A search model may carry them (they
// fix the search context size it is billed at); any other model's web
// search is refused by checkChatUnbounded.
func (r *chatRequest) checkSearch() error {
	if !searchModel(r.name) {
		return nil
	}
	r.b.searchEveryCall = true
	var opts map[string]json.RawMessage
	if err := unmarshalField(r.fields, "web_search_options", &opts); err != nil {
		return refuse(ErrBadRequest, "\"web_search_options\" must be an object.")
	}
	if err := unmarshalField(opts, "search_context_size", &r.b.searchSize); err != nil {
		return refuse(ErrBadRequest, "\"web_search_options.search_context_size\" must be a string.")
	}
	return nil
}

// chatTools are the chat tool types the client runs: priced as tokens.
// Any other type (a provider's built-in browser search or code interpreter)
// runs on the provider's side and bills per call, which the request does
// not bound.
var chatTools = map[string]bool{"function": true, "custom": true}

// checkChatTools refuses tools that are not client-run and returns how
// many there are. Like every walk of a body here, it reads the value as
// bytes; a tool's type is the decoded "type" string, "" when it is missing
// or not a string, as json.Unmarshal into a string left it.
func checkChatTools(raw json.RawMessage) (int, error) {
	if !isSet(raw) {
		return 0, nil
	}
	raw = bytes.TrimSpace(raw)
	if !arrayOfObjects(raw) {
		return 0, refuse(ErrBadRequest, "\"tools\" must be an array of objects.")
	}
	n := 0
	var err error
	arrayElements(raw, func(start, end int) bool {
		if typ := memberString(raw[start:end], "type"); !chatTools[string(typ)] {
			err = refuse(ErrUnbounded, "tools[%d]: the tool type %q is not one the client runs (function, custom); a provider-run tool bills per call, which hardcap cannot bound.", n, typ)
			return false
		}
		n++
		return true
	})
	return n, err
}

// arrayOfObjects reports whether raw (valid JSON, no surrounding
// whitespace) is an array whose elements are objects or null: what
// json.Unmarshal into a []map accepted.
func arrayOfObjects(raw []byte) bool {
	ok := true
	isArray := arrayElements(raw, func(start, end int) bool {
		ok = raw[start] == '{' || isNull(raw[start:end])
		return ok
	})
	return isArray && ok
}

// memberString is the decoded string value of obj's member name; nil when
// obj is not an object, has no such member or its value is not a string.
func memberString(obj []byte, name string) []byte {
	var s []byte
	objectMembers(obj, func(m member) bool {
		if !keyIs(obj, m.key, name) {
			return true
		}
		s, _ = jsonString(obj[m.start:m.end])
		return false
	})
	return s
}

// checkChatMessages reads the "messages" array: a non-empty array of
// objects (or nulls), none with an audio reference and each content
// bounded by checkChatContent. It returns how many images they hold.
func checkChatMessages(raw json.RawMessage) (int64, error) {
	raw = bytes.TrimSpace(raw)
	n := 0
	if arrayElements(raw, func(int, int) bool { n++; return true }); n == 0 || !arrayOfObjects(raw) {
		return 0, refuse(ErrBadRequest, "The body needs a non-empty \"messages\" array of objects.")
	}
	var images int64
	var err error
	i := 0
	arrayElements(raw, func(start, end int) bool {
		msg := raw[start:end]
		var content []byte
		audio := false
		objectMembers(msg, func(m member) bool {
			switch {
			case keyIs(msg, m.key, "audio"):
				audio = true
			case keyIs(msg, m.key, "content"):
				content = msg[m.start:m.end]
			}
			return true
		})
		if audio {
			err = refuse(ErrUnbounded, "messages[%d]: audio references are not metered by this version of hardcap.", i)
			return false
		}
		n, cerr := checkChatContent(content)
		if cerr != nil {
			err = refuse(ErrUnbounded, "messages[%d]: %s", i, cerr.Error())
			return false
		}
		images += n
		i++
		return true
	})
	return images, err
}

// choicesField reads an optional count of outputs (n, best_of) from 1 to
// 128; 1 when absent.
func choicesField(fields map[string]json.RawMessage, name string) (int64, error) {
	var n *int64
	if err := unmarshalField(fields, name, &n); err != nil || (n != nil && (*n < 1 || *n > 128)) {
		return 0, refuse(ErrBadRequest, "%q must be an integer from 1 to 128.", name)
	}
	if n == nil {
		return 1, nil
	}
	return *n, nil
}

// checkChatUnbounded refuses parameters whose cost the request does not
// bound. Web search options pass only for a search model, whose search fee
// priceRequest adds.
func checkChatUnbounded(fields map[string]json.RawMessage, searchModel bool) error {
	if isSet(fields["web_search_options"]) && !searchModel {
		return refuse(ErrUnbounded, "Web search is billed per call by the provider and cannot be bounded by the request.")
	}
	if isSet(fields["prediction"]) {
		return refuse(ErrUnbounded, "Predicted outputs are billed beyond the output cap and cannot be bounded.")
	}
	if isSet(fields["modalities"]) {
		// Declared here, so a body without modalities does not pay for
		// the variable json.Unmarshal needs on the heap.
		var modalities []string
		if err := unmarshalField(fields, "modalities", &modalities); err != nil {
			return refuse(ErrBadRequest, "\"modalities\" must be an array of strings.")
		}
		if slices.Contains(modalities, "audio") {
			return refuse(ErrUnbounded, "Audio output is not metered by this version of hardcap.")
		}
	}
	if isSet(fields["audio"]) {
		return refuse(ErrUnbounded, "Audio output is not metered by this version of hardcap.")
	}
	return nil
}

// checkServiceTier refuses service tiers whose prices hardcap does not
// know. On OpenAI's own API "auto" (and no tier) means the project's
// default, which may be a dearer tier: hardcap writes "default" there.
func checkServiceTier(fields map[string]json.RawMessage, prov *Provider) error {
	var tier string
	if raw := bytes.TrimSpace(fields["service_tier"]); isSet(raw) {
		if s, ok := jsonString(raw); ok {
			tier = string(s)
		}
	}
	switch tier {
	case "", "auto":
		if prov.Prices == "openai" {
			fields["service_tier"] = defaultTier
		}
	case "default", "flex":
	default:
		return refuse(ErrUnbounded, "service_tier %q has prices hardcap does not know.", tier)
	}
	return nil
}

// defaultTier is the service_tier hardcap writes for OpenAI's "auto"; shared,
// never written to.
var defaultTier = json.RawMessage(`"default"`)

// checkChatContent accepts a message content that is a string, null, or an
// array of text and image parts, and returns how many images it holds.
// Audio and file parts are not bounded by this version of hardcap.
func checkChatContent(raw json.RawMessage) (images int64, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return 0, nil
	}
	if !arrayOfObjects(raw) {
		return 0, errString("content parts must be objects with a \"type\"")
	}
	arrayElements(raw, func(start, end int) bool {
		switch typ := memberString(raw[start:end], "type"); string(typ) {
		case "text", "refusal":
		case "image_url":
			images++
		default:
			err = errString("content parts of type " + strconv.Quote(string(typ)) + " are not metered by this version of hardcap; text and images are")
			return false
		}
		return true
	})
	if err != nil {
		return 0, err
	}
	return images, nil
}

// readStream reads "stream" and whether the client asked for the usage
// chunk (stream_options.include_usage).
func (r *chatRequest) readStream() error {
	if err := unmarshalField(r.fields, "stream", &r.stream); err != nil {
		return refuse(ErrBadRequest, "\"stream\" must be a boolean.")
	}
	if !isSet(r.fields["stream_options"]) {
		return nil
	}
	var opts map[string]json.RawMessage
	if err := unmarshalField(r.fields, "stream_options", &opts); err != nil {
		return refuse(ErrBadRequest, "\"stream_options\" must be an object.")
	}
	if err := unmarshalField(opts, "include_usage", &r.wantsUsage); err != nil {
		return refuse(ErrBadRequest, "\"stream_options.include_usage\" must be a boolean.")
	}
	return nil
}

func (r *chatRequest) model() string  { return r.name }
func (r *chatRequest) bounds() bounds { return r.b }

// rewrite returns the body to send upstream. Every output cap field the
// request carries is set to outputCap, the per-choice cap the reservation
// was quoted for (never above the client's own), and the provider's
// CapField is added when absent; so the provider never runs with a cap above
// the quote, whichever field it reads. The one exception: OpenAI's own API
// (CapField max_completion_tokens) honours a client's max_tokens and refuses
// requests that carry both. For streams include_usage is turned on so the
// usage can be metered, and the extra chunk is hidden from a client that did
// not ask for it.
func (r *chatRequest) rewrite(outputCap int64, prov *Provider) ([]byte, error) {
	setCap(r.fields, outputCap, "max_tokens", "max_completion_tokens")
	if _, ok := r.fields[prov.CapField]; !ok {
		if _, legacy := r.fields["max_tokens"]; !(legacy && prov.CapField == "max_completion_tokens") {
			setCapField(r.fields, prov.CapField, outputCap)
		}
	}
	if err := r.askForUsage(); err != nil {
		return nil, err
	}
	return marshalPatched(r.body, r.fields)
}

// askForUsage turns on stream_options.include_usage for streams whose
// client did not.
func (r *chatRequest) askForUsage() error {
	if !r.stream || r.wantsUsage {
		return nil
	}
	var opts map[string]json.RawMessage
	_ = unmarshalField(r.fields, "stream_options", &opts)
	orig := []byte("{}")
	if opts == nil {
		opts = map[string]json.RawMessage{}
	} else {
		orig = r.fields["stream_options"]
	}
	opts["include_usage"] = json.RawMessage("true")
	b, err := marshalPatched(orig, opts)
	if err != nil {
		return err
	}
	r.fields["stream_options"] = b
	r.hideUsage = true
	return nil
}

func (r *chatRequest) tracker() usageTracker { return &openAITracker{hideUsage: r.hideUsage} }

// setCapField sets one cap field, present or not.
func setCapField(fields map[string]json.RawMessage, name string, outputCap int64) {
	fields[name] = json.RawMessage(strconv.FormatInt(outputCap, 10))
}

// openAITracker reads the usage of chat and legacy completions responses:
// the "usage" object of a whole body, or of the stream chunk that
// include_usage adds.
type openAITracker struct {
	hideUsage bool
	usage     *budget.Usage
	// final is set when the usage came in the usage-only chunk, or the
	// stream ended with [DONE] after it. Some providers report running
	// totals in every chunk; a stream cut after one of those has not
	// reported what it will bill.
	final bool
	// placed is set when the usage counts cache writes.
	placed bool
}

func (t *openAITracker) event(_, data []byte) bool {
	if bytes.Equal(bytes.TrimSpace(data), doneMarker) {
		t.final = t.usage != nil
		return false
	}
	u, placed, found, usageOnly := openAIUsageFromChunk(data)
	if !found {
		return false
	}
	// A later usage replaces an earlier one; it never adds to it.
	t.usage, t.placed, t.final = &u, placed, usageOnly
	return usageOnly && t.hideUsage
}

func (t *openAITracker) whole(body []byte) {
	if u, placed, ok := openAIUsageFromJSON(body); ok {
		t.usage, t.placed, t.final = &u, placed, true
	}
}

// unplacedWrites reports usage that does not say how many input tokens
// were written to the cache.
func (t *openAITracker) unplacedWrites() bool { return t.usage != nil && !t.placed }

func (t *openAITracker) result(bool) (budget.Usage, bool) {
	if t.usage == nil || !t.final {
		return budget.Usage{}, false
	}
	return *t.usage, true
}

// doneMarker is the data of the event that ends an OpenAI stream.
var doneMarker = []byte("[DONE]")
