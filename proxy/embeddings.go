package proxy

import (
	"encoding/json"

	"github.com/hardcap/hardcap/budget"
)

// embeddingsAPI is OpenAI's POST /v1/embeddings: priced on input only.
type embeddingsAPI struct{}

var embeddingsParams = map[string]bool{
	"model": true, "input": true, "dimensions": true, "encoding_format": true, "user": true,
}

// embeddingsAllowance covers the special tokens an embedding model may add
// to each input.
const embeddingsAllowance = 16

type embeddingsRequest struct {
	body []byte
	name string
	b    bounds
}

// parse reads an embeddings body. The input may be a string, an array of
// strings, an array of tokens or an array of token arrays; the body's length
// bounds all of them.
func (embeddingsAPI) parse(body []byte, prov *Provider) (meteredRequest, error) {
	fields, err := checkFields(body, embeddingsParams, prov)
	if err != nil {
		return nil, err
	}
	req := &embeddingsRequest{body: body, b: bounds{noOutput: true, choices: 1}}
	if req.name, err = modelField(fields); err != nil {
		return nil, err
	}
	inputs, err := promptCount(fields["input"])
	if err != nil {
		return nil, refuse(ErrBadRequest, "\"input\" must be a string, an array of strings, or an array of token arrays.")
	}
	req.b.input = int64(len(body)) + embeddingsAllowance*inputs
	return req, nil
}

func (r *embeddingsRequest) model() string  { return r.name }
func (r *embeddingsRequest) bounds() bounds { return r.b }

// rewrite sends the body as it came: embeddings produce no output to cap.
func (r *embeddingsRequest) rewrite(int64, *Provider) ([]byte, error) { return r.body, nil }

func (r *embeddingsRequest) tracker() usageTracker { return &embeddingsTracker{} }

// embeddingsTracker reads {"usage":{"prompt_tokens":N,"total_tokens":N}}.
type embeddingsTracker struct{ usage *budget.Usage }

func (t *embeddingsTracker) event(_, _ []byte) bool { return false }

func (t *embeddingsTracker) whole(body []byte) {
	var v struct {
		Usage *struct {
			PromptTokens *int64 `json:"prompt_tokens"`
		} `json:"usage"`
	}
	if json.Unmarshal(body, &v) == nil && v.Usage != nil && v.Usage.PromptTokens != nil {
		t.usage = &budget.Usage{InputTokens: *v.Usage.PromptTokens}
	}
}

func (t *embeddingsTracker) result(bool) (budget.Usage, bool) {
	if t.usage == nil {
		return budget.Usage{}, false
	}
	return *t.usage, true
}
