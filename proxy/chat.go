package proxy

import (
	"bytes"
	"encoding/json"
	"slices"
	"strconv"
	"strings"
)

// chatRequest is a parsed POST /v1/chat/completions body: what metering
// needs, and the body's fields for rewriting.
type chatRequest struct {
	fields map[string]json.RawMessage

	model string
	// stream is true for "stream": true.
	stream bool
	// wantsUsage is true when the client itself asked for the usage chunk.
	wantsUsage bool
	// clientCap is the smaller of max_completion_tokens and max_tokens; 0
	// when the client set neither.
	clientCap int64
	// choices is n, at least 1.
	choices int64
	// inputBound is the proven upper bound of the prompt's tokens before the
	// context-window cap; see chatInputBound.
	inputBound int64
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

// parseChat reads a chat completions body. It refuses what hardcap cannot
// bound: non-text inputs, audio output, predicted outputs, web search and
// premium service tiers.
func parseChat(body []byte, extraParams map[string]bool) (*chatRequest, error) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, refuse(ErrBadRequest, "The body must be a JSON object.")
	}
	// Go's decoder keeps the last of duplicate keys and matches struct
	// fields regardless of case; a provider may do neither. Refusing both
	// makes hardcap and the provider read the same request.
	if err := checkKeys(body); err != nil {
		return nil, err
	}
	for name := range fields {
		if !chatParams[name] && !extraParams[name] {
			return nil, refuse(ErrUnbounded, "hardcap does not know the parameter %q, so it cannot prove what it costs. An operator can allow it with the provider's extra_params setting.", name)
		}
	}
	req := &chatRequest{fields: fields, choices: 1}
	if err := unmarshalField(fields, "model", &req.model); err != nil || req.model == "" {
		return nil, refuse(ErrBadRequest, "The body needs a \"model\" string.")
	}
	if err := unmarshalField(fields, "stream", &req.stream); err != nil {
		return nil, refuse(ErrBadRequest, "\"stream\" must be a boolean.")
	}
	var opts map[string]json.RawMessage
	if err := unmarshalField(fields, "stream_options", &opts); err != nil {
		return nil, refuse(ErrBadRequest, "\"stream_options\" must be an object.")
	}
	if err := unmarshalField(opts, "include_usage", &req.wantsUsage); err != nil {
		return nil, refuse(ErrBadRequest, "\"stream_options.include_usage\" must be a boolean.")
	}
	for _, name := range []string{"max_completion_tokens", "max_tokens"} {
		var v *int64
		if err := unmarshalField(fields, name, &v); err != nil || (v != nil && *v <= 0) {
			return nil, refuse(ErrBadRequest, "%q must be a positive integer.", name)
		}
		if v != nil && (req.clientCap == 0 || *v < req.clientCap) {
			req.clientCap = *v
		}
	}
	var n *int64
	if err := unmarshalField(fields, "n", &n); err != nil || (n != nil && (*n < 1 || *n > 128)) {
		return nil, refuse(ErrBadRequest, "\"n\" must be an integer from 1 to 128.")
	}
	if n != nil {
		req.choices = *n
	}
	if err := checkChatUnbounded(fields); err != nil {
		return nil, err
	}
	var msgs []map[string]json.RawMessage
	if err := unmarshalField(fields, "messages", &msgs); err != nil || len(msgs) == 0 {
		return nil, refuse(ErrBadRequest, "The body needs a non-empty \"messages\" array of objects.")
	}
	for i, m := range msgs {
		if _, ok := m["audio"]; ok {
			return nil, refuse(ErrUnbounded, "messages[%d]: audio references are not metered by this version of hardcap.", i)
		}
		if err := checkTextContent(m["content"]); err != nil {
			return nil, refuse(ErrUnbounded, "messages[%d]: %s", i, err.Error())
		}
	}
	tools := countArray(fields["tools"]) + countArray(fields["functions"])
	req.inputBound = int64(len(body)) + chatBaseAllowance
	if tools > 0 {
		req.inputBound += chatToolAllowance * int64(tools+1)
	}
	if _, ok := fields["response_format"]; ok {
		req.inputBound += chatToolAllowance
	}
	return req, nil
}

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
	// Refused by checkChatUnbounded with a specific message.
	"web_search_options": true, "prediction": true, "audio": true,
}

// checkKeys refuses a body with an object that repeats a key, exactly or in
// another case.
func checkKeys(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil // the body already parsed; the end of input ends the scan
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, &frame{object: true, keys: map[string]bool{}, key: true})
				continue
			case '[':
				stack = append(stack, &frame{})
				continue
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.object && top.key {
				k := strings.ToLower(v)
				if top.keys[k] {
					return refuse(ErrBadRequest, "The key %q appears twice in one object.", v)
				}
				top.keys[k] = true
				top.key = false
				continue
			}
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true
		}
	}
}

// checkChatUnbounded refuses parameters whose cost the request does not
// bound.
func checkChatUnbounded(fields map[string]json.RawMessage) error {
	if isSet(fields["web_search_options"]) {
		return refuse(ErrUnbounded, "Web search is billed per call by the provider and cannot be bounded by the request.")
	}
	if isSet(fields["prediction"]) {
		return refuse(ErrUnbounded, "Predicted outputs are billed beyond the output cap and cannot be bounded.")
	}
	var modalities []string
	if err := unmarshalField(fields, "modalities", &modalities); err != nil {
		return refuse(ErrBadRequest, "\"modalities\" must be an array of strings.")
	}
	if isSet(fields["audio"]) || slices.Contains(modalities, "audio") {
		return refuse(ErrUnbounded, "Audio output is not metered by this version of hardcap.")
	}
	var tier string
	_ = unmarshalField(fields, "service_tier", &tier)
	switch tier {
	case "", "auto", "default", "flex":
	default:
		return refuse(ErrUnbounded, "service_tier %q has prices hardcap does not know.", tier)
	}
	return nil
}

// checkTextContent accepts a message content that is a string, null, or an
// array of text parts. Other parts (images, audio, files) are not bounded by
// this version of hardcap.
func checkTextContent(raw json.RawMessage) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return nil
	}
	var parts []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil {
		return errString("content parts must be objects with a \"type\"")
	}
	for _, p := range parts {
		var typ string
		if err := json.Unmarshal(p["type"], &typ); err != nil || (typ != "text" && typ != "refusal") {
			return errString("content parts of type " + strconv.Quote(typ) + " are not metered by this version of hardcap; only text is")
		}
	}
	return nil
}

type errString string

func (e errString) Error() string { return string(e) }

// rewrite returns the body to send upstream. Every output cap field the
// request carries is set to outputCap, the per-choice cap the reservation
// was quoted for (never above the client's own), and capField is added when
// absent; so the provider never runs with a cap above the quote, whichever
// field it reads. The one exception: OpenAI's own API (capField
// max_completion_tokens) honours a client's max_tokens and refuses requests
// that carry both. For streams include_usage is turned on so the usage can
// be metered; hideUsage reports that the client did not ask for it.
func (r *chatRequest) rewrite(outputCap int64, capField string) (body []byte, hideUsage bool, err error) {
	v := json.RawMessage(strconv.FormatInt(outputCap, 10))
	for _, name := range []string{"max_tokens", "max_completion_tokens"} {
		if _, ok := r.fields[name]; ok {
			r.fields[name] = v
		}
	}
	if _, ok := r.fields[capField]; !ok {
		if _, legacy := r.fields["max_tokens"]; !(legacy && capField == "max_completion_tokens") {
			r.fields[capField] = v
		}
	}
	if r.stream && !r.wantsUsage {
		var opts map[string]json.RawMessage
		_ = unmarshalField(r.fields, "stream_options", &opts)
		if opts == nil {
			opts = map[string]json.RawMessage{}
		}
		opts["include_usage"] = json.RawMessage("true")
		b, err := json.Marshal(opts)
		if err != nil {
			return nil, false, err
		}
		r.fields["stream_options"] = b
		hideUsage = true
	}
	body, err = json.Marshal(r.fields)
	return body, hideUsage, err
}

// unmarshalField decodes fields[name] into v; a missing or null field leaves
// v unchanged.
func unmarshalField(fields map[string]json.RawMessage, name string, v any) error {
	raw, ok := fields[name]
	if !ok || !isSet(raw) {
		return nil
	}
	return json.Unmarshal(raw, v)
}

func isSet(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 0 && !bytes.Equal(raw, []byte("null"))
}

func countArray(raw json.RawMessage) int {
	var a []json.RawMessage
	if json.Unmarshal(raw, &a) != nil {
		return 0
	}
	return len(a)
}
