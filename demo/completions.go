package demo

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"strings"
	"time"
)

// CompletionsDefaultMaxTokens is the legacy completions cap when a request
// sets no max_tokens, as in the OpenAI API.
const CompletionsDefaultMaxTokens = 16

// EmbeddingDimensions is the length of the vectors NewOpenAI returns when a
// request sets no dimensions.
const EmbeddingDimensions = 8

// prompt is one prompt of a legacy completions request or one input of an
// embeddings request: a text, or token ids.
type prompt struct {
	text   string
	tokens int64
}

// parsePrompts reads a prompt or input field: a string, an array of
// strings, an array of token ids, or an array of such arrays. Each text is
// ceil(len/4)+1 tokens; token ids count one each.
func parsePrompts(param string, raw json.RawMessage) ([]prompt, *APIError) {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []prompt{{s, textTokens(s) + 1}}, nil
	}
	var strs []string
	if json.Unmarshal(raw, &strs) == nil && len(strs) > 0 {
		out := make([]prompt, len(strs))
		for i, s := range strs {
			out[i] = prompt{s, textTokens(s) + 1}
		}
		return out, nil
	}
	var ids []int64
	if json.Unmarshal(raw, &ids) == nil && len(ids) > 0 {
		return []prompt{{"", int64(len(ids))}}, nil
	}
	var lists [][]int64
	if json.Unmarshal(raw, &lists) == nil && len(lists) > 0 {
		out := make([]prompt, len(lists))
		for i, l := range lists {
			out[i] = prompt{"", int64(len(l))}
		}
		return out, nil
	}
	return nil, BadRequest(param, "invalid_type", fmt.Sprintf(
		"Invalid type for '%s': expected a string, an array of strings, or token ids.", param))
}

// completionsRequest is the part of a legacy completions body the
// simulator reads; unknown fields are ignored.
type completionsRequest struct {
	Model         string          `json:"model"`
	Prompt        json.RawMessage `json:"prompt"`
	MaxTokens     *int64          `json:"max_tokens"`
	N             *int64          `json:"n"`
	BestOf        *int64          `json:"best_of"`
	Stream        bool            `json:"stream"`
	StreamOptions *StreamOptions  `json:"stream_options"`
	Echo          bool            `json:"echo"`
}

// TextCompletion is a legacy completions response or stream chunk (object
// "text_completion").
type TextCompletion struct {
	// ID is "cmpl-" followed by a random suffix.
	ID string `json:"id"`
	// Object is always "text_completion".
	Object string `json:"object"`
	// Created is the Unix time in seconds.
	Created int64 `json:"created"`
	// Model echoes the request model.
	Model string `json:"model"`
	// SystemFingerprint is "fp_" followed by 10 hex digits.
	SystemFingerprint string `json:"system_fingerprint"`
	// Choices holds one entry per prompt and choice; empty in the usage
	// chunk.
	Choices []TextChoice `json:"choices"`
	// Usage is the billed usage; in a stream only the last chunk has it.
	Usage *Usage `json:"usage,omitempty"`
}

// TextChoice is one entry of TextCompletion.Choices.
type TextChoice struct {
	// Text is the completion text (or its increment in a stream).
	Text string `json:"text"`
	// Index is the choice's position over all prompts, from 0.
	Index int `json:"index"`
	// Logprobs is always null here.
	Logprobs json.RawMessage `json:"logprobs"`
	// FinishReason is null until the choice's last chunk.
	FinishReason *string `json:"finish_reason"`
}

// completions answers POST /v1/completions: for each prompt and each of n
// choices a canned reply cut at max_tokens (16 when absent). Usage bills
// every one of the max(n, best_of) candidates per prompt, as the API does.
func (h *handler) completions(w http.ResponseWriter, r *http.Request) {
	body, ok := h.body(w, r)
	if !ok {
		return
	}
	var req completionsRequest
	if err := json.Unmarshal(body, &req); err != nil {
		WriteError(w, BadRequest("", "", "We could not parse the JSON body of your request."))
		return
	}
	if !h.legacy[req.Model] {
		WriteError(w, modelNotFound(req.Model))
		return
	}
	prompts, apiErr := parsePrompts("prompt", req.Prompt)
	if apiErr != nil {
		WriteError(w, apiErr)
		return
	}
	limit := int64(CompletionsDefaultMaxTokens)
	if req.MaxTokens != nil {
		limit = *req.MaxTokens
	}
	n, bestOf := optInt(req.N, 1), optInt(req.BestOf, 1)
	if n < 1 || n > MaxChoices || bestOf < n || bestOf > MaxChoices || limit < 0 {
		WriteError(w, BadRequest("n", "invalid_value", "n and best_of must be between 1 and 128, with best_of >= n, and max_tokens >= 0."))
		return
	}
	var usage Usage
	var choices [][]string
	var finishes []string
	for _, p := range prompts {
		usage.PromptTokens += p.tokens
		for c := range bestOf {
			toks, cut := capTokens(ReplyTokens(userMessage(p.text), int(c)), limit)
			usage.CompletionTokens += int64(len(toks))
			if c < n {
				choices = append(choices, toks)
				finishes = append(finishes, finish(cut))
			}
		}
	}
	usage.TotalTokens = usage.PromptTokens + usage.CompletionTokens
	base := TextCompletion{ID: "cmpl-" + rand.Text(), Object: "text_completion", Created: time.Now().Unix(),
		Model: req.Model, SystemFingerprint: Fingerprint(req.Model)}
	echo := func(i int) string {
		if req.Echo {
			return prompts[i/int(n)].text
		}
		return ""
	}
	if !req.Stream {
		out := base
		for i, toks := range choices {
			out.Choices = append(out.Choices, TextChoice{Text: echo(i) + strings.Join(toks, ""), Index: i, FinishReason: &finishes[i]})
		}
		out.Usage = &usage
		WriteJSON(w, http.StatusOK, out)
		return
	}
	var events []event
	add := func(c TextChoice, token bool) {
		chunk := base
		chunk.Choices = []TextChoice{c}
		events = append(events, event{data: chunk, token: token})
	}
	for i := range choices {
		if e := echo(i); e != "" {
			add(TextChoice{Text: e, Index: i}, false)
		}
	}
	for k := 0; ; k++ {
		sent := false
		for i, toks := range choices {
			if k < len(toks) {
				add(TextChoice{Text: toks[k], Index: i}, true)
				sent = true
			}
		}
		if !sent {
			break
		}
	}
	for i := range choices {
		add(TextChoice{Index: i, FinishReason: &finishes[i]}, false)
	}
	if req.StreamOptions != nil && req.StreamOptions.IncludeUsage {
		chunk := base
		chunk.Choices = []TextChoice{}
		chunk.Usage = &usage
		events = append(events, event{data: chunk})
	}
	streamEvents(w, r, h.delay, events, true)
}

func optInt(v *int64, def int64) int64 {
	if v == nil {
		return def
	}
	return *v
}

func finish(cut bool) string {
	if cut {
		return FinishLength
	}
	return FinishStop
}

// embeddingsRequest is the part of an embeddings body the simulator reads.
type embeddingsRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	Dimensions     *int64          `json:"dimensions"`
	EncodingFormat string          `json:"encoding_format"`
}

// EmbeddingList is the embeddings response (object "list").
type EmbeddingList struct {
	// Object is always "list".
	Object string `json:"object"`
	// Data holds one embedding per input.
	Data []Embedding `json:"data"`
	// Model echoes the request model.
	Model string `json:"model"`
	// Usage counts the input; embeddings have no output.
	Usage EmbeddingUsage `json:"usage"`
}

// Embedding is one entry of EmbeddingList.Data.
type Embedding struct {
	// Object is always "embedding".
	Object string `json:"object"`
	// Index is the input's position, from 0.
	Index int `json:"index"`
	// Embedding is an array of numbers, or a base64 string of
	// little-endian float32 values with encoding_format "base64".
	Embedding any `json:"embedding"`
}

// EmbeddingUsage is the embeddings usage object, in tokens.
type EmbeddingUsage struct {
	// PromptTokens counts the input tokens.
	PromptTokens int64 `json:"prompt_tokens"`
	// TotalTokens equals PromptTokens.
	TotalTokens int64 `json:"total_tokens"`
}

// embeddings answers POST /v1/embeddings with a deterministic unit vector
// per input (EmbeddingDimensions values unless dimensions says), each
// input billed ceil(len/4)+1 tokens (token ids one each).
func (h *handler) embeddings(w http.ResponseWriter, r *http.Request) {
	body, ok := h.body(w, r)
	if !ok {
		return
	}
	var req embeddingsRequest
	if err := json.Unmarshal(body, &req); err != nil {
		WriteError(w, BadRequest("", "", "We could not parse the JSON body of your request."))
		return
	}
	if !h.embedding[req.Model] {
		WriteError(w, modelNotFound(req.Model))
		return
	}
	inputs, apiErr := parsePrompts("input", req.Input)
	if apiErr != nil {
		WriteError(w, apiErr)
		return
	}
	dims := optInt(req.Dimensions, EmbeddingDimensions)
	if dims < 1 || dims > 4096 {
		WriteError(w, BadRequest("dimensions", "invalid_value", "dimensions must be between 1 and 4096 for the demo provider."))
		return
	}
	out := EmbeddingList{Object: "list", Model: req.Model, Data: make([]Embedding, len(inputs))}
	for i, in := range inputs {
		out.Usage.PromptTokens += in.tokens
		out.Data[i] = Embedding{Object: "embedding", Index: i, Embedding: vector(in.text, int(dims), req.EncodingFormat == "base64")}
	}
	out.Usage.TotalTokens = out.Usage.PromptTokens
	WriteJSON(w, http.StatusOK, out)
}

// vector returns a deterministic unit vector of dims values for text, as
// numbers or as base64 of little-endian float32 values.
func vector(text string, dims int, b64 bool) any {
	h := fnv64(text)
	vals := make([]float32, dims)
	var norm float64
	for i := range vals {
		h = mix64(h + uint64(i))
		vals[i] = float32(int64(h>>40)-(1<<23)) / (1 << 23)
		norm += float64(vals[i]) * float64(vals[i])
	}
	if norm > 0 {
		s := float32(1 / math.Sqrt(norm))
		for i := range vals {
			vals[i] *= s
		}
	}
	if !b64 {
		return vals
	}
	buf := make([]byte, 4*dims)
	for i, v := range vals {
		binary.LittleEndian.PutUint32(buf[4*i:], math.Float32bits(v))
	}
	return base64.StdEncoding.EncodeToString(buf)
}

func fnv64(s string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(s))
	return h.Sum64()
}
