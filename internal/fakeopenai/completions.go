package fakeopenai

import (
	"crypto/rand"
	"encoding/json"
	"net/http"
	"strings"
	"time"

	"github.com/hardcap/hardcap/demo"
)

// CompletionsDefaultMaxTokens is the legacy completions API's documented
// max_tokens default.
const CompletionsDefaultMaxTokens = 16

// completionsRequest is the part of a legacy completions body the fake
// reads. Unknown fields are ignored.
type completionsRequest struct {
	Model         string              `json:"model"`
	Prompt        json.RawMessage     `json:"prompt"`
	MaxTokens     *int64              `json:"max_tokens"`
	N             *int64              `json:"n"`
	BestOf        *int64              `json:"best_of"`
	Stream        bool                `json:"stream"`
	StreamOptions *demo.StreamOptions `json:"stream_options"`
	Echo          bool                `json:"echo"`
	Suffix        *string             `json:"suffix"`
}

// TextCompletion is a legacy completions response (object
// "text_completion"), and also each chunk of its stream.
type TextCompletion struct {
	// ID is "cmpl-" followed by a random suffix, shared by a stream's chunks.
	ID string `json:"id"`
	// Object is always "text_completion".
	Object string `json:"object"`
	// Created is the Unix time in seconds.
	Created int64 `json:"created"`
	// Model echoes the request model.
	Model string `json:"model"`
	// Choices holds n choices per prompt, indexed prompt*n+j; a stream
	// chunk holds one, and the usage chunk none (an empty array).
	Choices []TextChoice `json:"choices"`
	// Usage is the billed usage; in a stream, set only in the usage chunk.
	Usage *CompletionUsage `json:"usage"`
	// IncludeUsage is not on the wire: when true "usage" is always written
	// (null when Usage is nil), as for include_usage stream chunks; when
	// false "usage" is written only if Usage is non-nil.
	IncludeUsage bool `json:"-"`
}

// MarshalJSON writes the completion, omitting "usage" as IncludeUsage says.
func (c TextCompletion) MarshalJSON() ([]byte, error) {
	type plain TextCompletion
	if c.IncludeUsage {
		return json.Marshal(plain(c))
	}
	return json.Marshal(struct {
		plain
		Usage *CompletionUsage `json:"usage,omitempty"`
	}{plain(c), c.Usage})
}

// TextChoice is one entry of TextCompletion.Choices.
type TextChoice struct {
	// Text is the completion (after the prompt when echo is set); in a
	// stream, one token, the echoed prompt, or "" in a closing chunk.
	Text string `json:"text"`
	// Index is the choice's position.
	Index int `json:"index"`
	// Logprobs is always null here.
	Logprobs json.RawMessage `json:"logprobs"`
	// FinishReason is demo.FinishStop or demo.FinishLength; null in stream
	// chunks before the choice's closing one.
	FinishReason *string `json:"finish_reason"`
}

// CompletionUsage is the legacy completions usage object, in tokens.
type CompletionUsage struct {
	// PromptTokens counts the prompt tokens of every prompt.
	PromptTokens int64 `json:"prompt_tokens"`
	// CompletionTokens counts every generated candidate, best_of included.
	CompletionTokens int64 `json:"completion_tokens"`
	// TotalTokens is PromptTokens + CompletionTokens.
	TotalTokens int64 `json:"total_tokens"`
}

// completions answers POST /v1/completions. Every prompt gets max(n,
// best_of) candidates, all billed, of which n are returned. A candidate is
// min(max_tokens, DefaultCompletion) tokens long, or max_tokens with
// BillAtCap; max_tokens defaults to 16 and may be 0. The suffix is checked
// for type and otherwise ignored (neither returned nor counted).
func (s *Server) completions(body []byte, b Behavior) (Usage, func(http.ResponseWriter, *http.Request), *demo.APIError) {
	var req completionsRequest
	if e := decodeRequest(body, &req); e != nil {
		return Usage{}, nil, e
	}
	if req.Model == "" {
		return Usage{}, nil, noModel()
	}
	prompts, e := parseInputs("prompt", req.Prompt)
	if e != nil {
		return Usage{}, nil, e
	}
	for _, chk := range []struct {
		param  string
		v      *int64
		lo, hi int64
	}{{"max_tokens", req.MaxTokens, 0, 1 << 20}, {"n", req.N, 1, demo.MaxChoices}, {"best_of", req.BestOf, 1, demo.MaxChoices}} {
		if e := intRange(chk.param, chk.v, chk.lo, chk.hi); e != nil {
			return Usage{}, nil, e
		}
	}
	if req.StreamOptions != nil && !req.Stream {
		return Usage{}, nil, demo.BadRequest("stream_options", "",
			"The 'stream_options' parameter is only allowed when 'stream' is enabled.")
	}

	limit := orDefault(req.MaxTokens, CompletionsDefaultMaxTokens)
	n := orDefault(req.N, 1)
	candidates := max(n, orDefault(req.BestOf, 1))
	size, finish := s.completion, demo.FinishStop
	if b.BillAtCap || limit < size {
		size, finish = limit, demo.FinishLength
	}
	prompt := promptTokens(prompts)
	if b.PromptTokens != nil {
		prompt = b.PromptTokens(body)
	}
	billed := Usage{PromptTokens: prompt, CompletionTokens: size * candidates * int64(len(prompts))}
	usage := &CompletionUsage{billed.PromptTokens, billed.CompletionTokens, billed.PromptTokens + billed.CompletionTokens}

	toks := tokens(size)
	base := TextCompletion{ID: "cmpl-" + rand.Text(), Object: "text_completion", Created: time.Now().Unix(), Model: req.Model}
	includeUsage := req.Stream && req.StreamOptions != nil && req.StreamOptions.IncludeUsage

	if !req.Stream {
		out := base
		text := strings.Join(toks, "")
		for _, p := range prompts {
			for range n {
				t := text
				if req.Echo {
					t = p.String() + text
				}
				out.Choices = append(out.Choices, TextChoice{Text: t, Index: len(out.Choices), FinishReason: &finish})
			}
		}
		if !b.OmitUsage {
			out.Usage = usage
		}
		prefix := `{"id":"` + out.ID + `","object":"text_completion","choices":[{`
		return billed, func(w http.ResponseWriter, r *http.Request) { s.complete(w, r, b, out, prefix) }, nil
	}

	// Stream: the echoed prompts, then the tokens of all choices round-robin,
	// then one closing chunk per choice, then the usage chunk if asked for.
	choices := len(prompts) * int(n)
	var events []any
	add := func(c TextChoice) {
		chunk := base
		chunk.Choices = []TextChoice{c}
		chunk.IncludeUsage = includeUsage
		events = append(events, chunk)
	}
	if req.Echo {
		for i := range choices {
			add(TextChoice{Text: prompts[i/int(n)].String(), Index: i})
		}
	}
	for _, tok := range toks {
		for i := range choices {
			add(TextChoice{Text: tok, Index: i})
		}
	}
	for i := range choices {
		add(TextChoice{Index: i, FinishReason: &finish})
	}
	if includeUsage && !b.OmitUsage {
		chunk := base
		chunk.Choices = []TextChoice{}
		chunk.Usage = usage
		chunk.IncludeUsage = true
		events = append(events, chunk)
	}
	return billed, func(w http.ResponseWriter, r *http.Request) { s.stream(w, r, b, events) }, nil
}
