package proxy

import (
	"encoding/json"
)

// completionsAPI is OpenAI's legacy POST /v1/completions.
type completionsAPI struct{}

// completionsParams are the legacy completions parameters hardcap knows
// the cost effect of.
var completionsParams = map[string]bool{
	"model": true, "prompt": true, "suffix": true, "max_tokens": true, "temperature": true,
	"top_p": true, "n": true, "best_of": true, "stream": true, "stream_options": true,
	"logprobs": true, "echo": true, "stop": true, "presence_penalty": true,
	"frequency_penalty": true, "logit_bias": true, "user": true, "seed": true,
}

// completionsDefaultCap is the API's documented max_tokens default.
const completionsDefaultCap = 16

// completionsRequest reuses the chat request's stream and cap handling.
type completionsRequest struct{ chatRequest }

// parse reads a completions body. The prompt may be a string, an array of
// strings, an array of tokens or an array of token arrays; every prompt is
// completed n times, or best_of times when that is larger (the provider
// bills every candidate). Token ids are written as decimal numbers of at
// least one digit, so the body's length bounds them as it bounds text.
func (completionsAPI) parse(body []byte, prov *Provider) (meteredRequest, error) {
	fields, err := checkFields(body, completionsParams, prov)
	if err != nil {
		return nil, err
	}
	req := &completionsRequest{chatRequest{body: body, fields: fields}}
	if req.name, err = modelField(fields); err != nil {
		return nil, err
	}
	if err := req.readStream(); err != nil {
		return nil, err
	}
	if req.b.clientCap, err = positiveField(fields, "max_tokens"); err != nil {
		return nil, err
	}
	req.b.defaultCap = completionsDefaultCap
	n, err := choicesField(fields, "n")
	if err != nil {
		return nil, err
	}
	bestOf, err := choicesField(fields, "best_of")
	if err != nil {
		return nil, err
	}
	prompts, err := promptCount(fields["prompt"])
	if err != nil {
		return nil, err
	}
	req.b.choices = max(n, bestOf) * prompts
	// Each prompt is billed on its own, and a suffix with each of them.
	var suffix string
	if err := unmarshalField(fields, "suffix", &suffix); err != nil {
		return nil, refuse(ErrBadRequest, "\"suffix\" must be a string.")
	}
	req.b.input = int64(len(body)) + (chatBaseAllowance+int64(len(suffix)))*prompts
	return req, nil
}

// promptCount is how many prompts a prompt field holds.
func promptCount(raw json.RawMessage) (int64, error) {
	if !isSet(raw) {
		return 0, refuse(ErrBadRequest, "The body needs a \"prompt\".")
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return 1, nil
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil || len(list) == 0 {
		return 0, refuse(ErrBadRequest, "\"prompt\" must be a string, an array of strings, or an array of token arrays.")
	}
	// Every element must be text or token ids: anything else (an image
	// object on a multimodal provider) is input the body does not bound.
	var tok int64
	if json.Unmarshal(list[0], &tok) == nil {
		var ids []int64
		if json.Unmarshal(raw, &ids) != nil {
			return 0, refuse(ErrBadRequest, "a token-id prompt must hold only integers.")
		}
		return 1, nil
	}
	for _, el := range list {
		var s string
		var ids []int64
		if json.Unmarshal(el, &s) != nil && json.Unmarshal(el, &ids) != nil {
			return 0, refuse(ErrBadRequest, "prompts and inputs must be strings, token ids or arrays of token ids.")
		}
	}
	return int64(len(list)), nil
}

// rewrite sets max_tokens to the reserved cap (the API's default of 16
// included) and asks streams for their usage.
func (r *completionsRequest) rewrite(outputCap int64, _ *Provider) ([]byte, error) {
	setCapField(r.fields, "max_tokens", outputCap)
	if err := r.askForUsage(); err != nil {
		return nil, err
	}
	return marshalPatched(r.body, r.fields)
}
