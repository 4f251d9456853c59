package demo

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/http"
	"strings"
	"time"
)

// MaxChoices is the largest n a chat completion request may ask for, as in
// the OpenAI API.
const MaxChoices = 128

// Finish reasons used in Choice.FinishReason and ChunkChoice.FinishReason.
const (
	// FinishStop means the reply ended on its own.
	FinishStop = "stop"
	// FinishLength means the reply was cut at the request's completion cap.
	FinishLength = "length"
)

// ChatRequest is the subset of an OpenAI Chat Completions request body that
// the simulated providers read. Unknown fields are ignored.
type ChatRequest struct {
	// Model is the requested model id; required.
	Model string `json:"model"`
	// Messages is the conversation; required, at least one element.
	Messages []Message `json:"messages"`
	// Stream asks for a server-sent event stream of chunks.
	Stream bool `json:"stream"`
	// StreamOptions tunes the stream; only allowed when Stream is true.
	StreamOptions *StreamOptions `json:"stream_options"`
	// N is the number of choices to generate; nil means 1.
	N *int `json:"n"`
	// MaxTokens is the legacy completion cap in tokens; nil means none.
	MaxTokens *int64 `json:"max_tokens"`
	// MaxCompletionTokens is the completion cap in tokens; nil means none.
	// It takes precedence over MaxTokens.
	MaxCompletionTokens *int64 `json:"max_completion_tokens"`
}

// StreamOptions is the request's "stream_options" object.
type StreamOptions struct {
	// IncludeUsage asks for a final chunk with empty choices that carries
	// the usage object; every other chunk then carries "usage": null.
	IncludeUsage bool `json:"include_usage"`
}

// Message is one request message. Content is kept raw: it may be a string,
// null, absent, or an array of content parts.
type Message struct {
	// Role is the author role ("system", "user", ...); required.
	Role string `json:"role"`
	// Content is the raw JSON content.
	Content json.RawMessage `json:"content"`
}

// contentPart is one element of an array content.
type contentPart struct {
	Type string  `json:"type"`
	Text *string `json:"text"`
}

// Text returns the message's text content: the string content, or the
// concatenated "text" fields of its content parts. It returns "" for null,
// absent or malformed content (ParseChatRequest rejects the malformed kind).
func (m Message) Text() string {
	raw := bytes.TrimSpace(m.Content)
	if len(raw) == 0 {
		return ""
	}
	switch raw[0] {
	case '"':
		var s string
		if json.Unmarshal(raw, &s) == nil {
			return s
		}
	case '[':
		var parts []contentPart
		if json.Unmarshal(raw, &parts) == nil {
			var b strings.Builder
			for _, p := range parts {
				if p.Text != nil {
					b.WriteString(*p.Text)
				}
			}
			return b.String()
		}
	}
	return ""
}

// PromptTokens counts prompt tokens with hardcap's simulated rule: the sum
// over messages of ceil(len(text)/4)+4, plus 3, where len(text) is the byte
// length of Message.Text. For any body accepted by ParseChatRequest the
// result is at most len(body), the proxy's input bound.
func PromptTokens(msgs []Message) int64 {
	n := int64(3)
	for _, m := range msgs {
		n += (int64(len(m.Text()))+3)/4 + 4
	}
	return n
}

// PromptTokens returns PromptTokens(r.Messages).
func (r *ChatRequest) PromptTokens() int64 { return PromptTokens(r.Messages) }

// Choices returns the number of choices asked for: N, or 1 when unset.
func (r *ChatRequest) Choices() int {
	if r.N == nil {
		return 1
	}
	return *r.N
}

// CompletionCap returns the per-choice completion cap in tokens:
// MaxCompletionTokens if set, else MaxTokens if set. ok is false when the
// request has no cap.
func (r *ChatRequest) CompletionCap() (limit int64, ok bool) {
	switch {
	case r.MaxCompletionTokens != nil:
		return *r.MaxCompletionTokens, true
	case r.MaxTokens != nil:
		return *r.MaxTokens, true
	}
	return 0, false
}

// IncludeUsage reports whether a stream must end with a usage chunk.
func (r *ChatRequest) IncludeUsage() bool {
	return r.Stream && r.StreamOptions != nil && r.StreamOptions.IncludeUsage
}

// Cap truncates tokens (one completion token each) to the request's
// completion cap and returns the resulting choice, with FinishLength when
// tokens were dropped and FinishStop otherwise.
func (r *ChatRequest) Cap(tokens []string) ReplyChoice {
	if limit, ok := r.CompletionCap(); ok && int64(len(tokens)) > limit {
		return ReplyChoice{Tokens: tokens[:limit], FinishReason: FinishLength}
	}
	return ReplyChoice{Tokens: tokens, FinishReason: FinishStop}
}

// ParseChatRequest decodes and validates a Chat Completions request body the
// way the OpenAI API does for the fields in ChatRequest. On failure it
// returns a 400 APIError in OpenAI's wording.
func ParseChatRequest(body []byte) (*ChatRequest, *APIError) {
	var req ChatRequest
	if err := json.Unmarshal(body, &req); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, BadRequest(te.Field, "invalid_type",
				fmt.Sprintf("Invalid type for '%s': expected %s, but got %s instead.", te.Field, te.Type, te.Value))
		}
		return nil, BadRequest("", "", "We could not parse the JSON body of your request. "+
			"(HINT: This likely means you aren't using your HTTP library correctly. "+
			"The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)")
	}
	if req.Model == "" {
		return nil, BadRequest("", "", "you must provide a model parameter")
	}
	if req.Messages == nil {
		return nil, BadRequest("messages", "missing_required_parameter", "Missing required parameter: 'messages'.")
	}
	if len(req.Messages) == 0 {
		return nil, BadRequest("messages", "empty_array",
			"Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.")
	}
	for i, m := range req.Messages {
		if m.Role == "" {
			p := fmt.Sprintf("messages[%d].role", i)
			return nil, BadRequest(p, "missing_required_parameter", "Missing required parameter: '"+p+"'.")
		}
		if err := checkContent(m.Content); err != nil {
			p := fmt.Sprintf("messages[%d].content", i)
			return nil, BadRequest(p, "invalid_type",
				fmt.Sprintf("Invalid type for '%s': expected one of a string or array of objects, but got %s instead.", p, err))
		}
	}
	if req.N != nil && (*req.N < 1 || *req.N > MaxChoices) {
		return nil, BadRequest("n", "invalid_value",
			fmt.Sprintf("Invalid 'n': integer %d out of range. Expected a value between 1 and %d.", *req.N, MaxChoices))
	}
	for _, f := range []struct {
		name string
		v    *int64
	}{{"max_tokens", req.MaxTokens}, {"max_completion_tokens", req.MaxCompletionTokens}} {
		if f.v != nil && *f.v < 1 {
			return nil, BadRequest(f.name, "integer_below_min_value",
				fmt.Sprintf("Invalid '%s': integer below minimum value. Expected a value >= 1, but got %d instead.", f.name, *f.v))
		}
	}
	if req.StreamOptions != nil && !req.Stream {
		return nil, BadRequest("stream_options", "", "The 'stream_options' parameter is only allowed when 'stream' is enabled.")
	}
	return &req, nil
}

// checkContent validates a raw message content and describes what it got
// when it is invalid.
func checkContent(raw json.RawMessage) error {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return nil
	}
	switch raw[0] {
	case '"', 'n':
		return nil
	case '[':
		var parts []contentPart
		if json.Unmarshal(raw, &parts) != nil {
			return errors.New("an array with an invalid content part")
		}
		return nil
	case '{':
		return errors.New("an object")
	case 't', 'f':
		return errors.New("a boolean")
	}
	return errors.New("a number")
}

// Usage is OpenAI's chat completion usage object. Token counts are in tokens.
type Usage struct {
	// PromptTokens counts input tokens.
	PromptTokens int64 `json:"prompt_tokens"`
	// CompletionTokens counts output tokens over all choices.
	CompletionTokens int64 `json:"completion_tokens"`
	// TotalTokens is PromptTokens + CompletionTokens.
	TotalTokens int64 `json:"total_tokens"`
	// PromptTokensDetails breaks PromptTokens down; always zero here.
	PromptTokensDetails PromptTokensDetails `json:"prompt_tokens_details"`
	// CompletionTokensDetails breaks CompletionTokens down; always zero here.
	CompletionTokensDetails CompletionTokensDetails `json:"completion_tokens_details"`
}

// PromptTokensDetails is usage.prompt_tokens_details.
type PromptTokensDetails struct {
	// CachedTokens is the part of the prompt read from the prompt cache.
	CachedTokens int64 `json:"cached_tokens"`
	// AudioTokens is the part of the prompt that was audio.
	AudioTokens int64 `json:"audio_tokens"`
}

// CompletionTokensDetails is usage.completion_tokens_details.
type CompletionTokensDetails struct {
	// ReasoningTokens is the part of the completion spent on reasoning.
	ReasoningTokens int64 `json:"reasoning_tokens"`
	// AudioTokens is the part of the completion that was audio.
	AudioTokens int64 `json:"audio_tokens"`
	// AcceptedPredictionTokens counts predicted-output tokens that were used.
	AcceptedPredictionTokens int64 `json:"accepted_prediction_tokens"`
	// RejectedPredictionTokens counts predicted-output tokens that were not.
	RejectedPredictionTokens int64 `json:"rejected_prediction_tokens"`
}

// ChatCompletion is a non-streaming response (object "chat.completion").
type ChatCompletion struct {
	// ID is "chatcmpl-" followed by a random suffix.
	ID string `json:"id"`
	// Object is always "chat.completion".
	Object string `json:"object"`
	// Created is the Unix time in seconds.
	Created int64 `json:"created"`
	// Model echoes the request model.
	Model string `json:"model"`
	// Choices holds one entry per requested choice.
	Choices []Choice `json:"choices"`
	// Usage is the billed usage; nil omits the field.
	Usage *Usage `json:"usage,omitempty"`
	// ServiceTier is "default".
	ServiceTier string `json:"service_tier"`
	// SystemFingerprint is "fp_" followed by 10 hex digits.
	SystemFingerprint string `json:"system_fingerprint"`
}

// Choice is one entry of ChatCompletion.Choices.
type Choice struct {
	// Index is the choice's position, from 0.
	Index int `json:"index"`
	// Message is the assistant reply.
	Message ResponseMessage `json:"message"`
	// Logprobs is always null here.
	Logprobs json.RawMessage `json:"logprobs"`
	// FinishReason is FinishStop or FinishLength.
	FinishReason string `json:"finish_reason"`
}

// ResponseMessage is the assistant message of a Choice.
type ResponseMessage struct {
	// Role is "assistant".
	Role string `json:"role"`
	// Content is the reply text.
	Content string `json:"content"`
	// Refusal is always null here.
	Refusal *string `json:"refusal"`
	// Annotations is always an empty array here.
	Annotations []json.RawMessage `json:"annotations"`
}

// ChatCompletionChunk is one streamed event (object "chat.completion.chunk").
type ChatCompletionChunk struct {
	// ID is shared by all chunks of a stream.
	ID string `json:"id"`
	// Object is always "chat.completion.chunk".
	Object string `json:"object"`
	// Created is the Unix time in seconds, shared by all chunks.
	Created int64 `json:"created"`
	// Model echoes the request model.
	Model string `json:"model"`
	// ServiceTier is "default".
	ServiceTier string `json:"service_tier"`
	// SystemFingerprint is "fp_" followed by 10 hex digits.
	SystemFingerprint string `json:"system_fingerprint"`
	// Choices holds the delta; it is empty (never null) in the usage chunk.
	Choices []ChunkChoice `json:"choices"`
	// Usage is set only in the final usage chunk.
	Usage *Usage `json:"usage"`
	// IncludeUsage is not on the wire: when true "usage" is always written
	// (null when Usage is nil), as OpenAI does for include_usage streams;
	// when false "usage" is written only if Usage is non-nil.
	IncludeUsage bool `json:"-"`
}

// MarshalJSON writes the chunk, omitting "usage" as IncludeUsage says.
func (c ChatCompletionChunk) MarshalJSON() ([]byte, error) {
	type plain ChatCompletionChunk
	if c.IncludeUsage {
		return json.Marshal(plain(c))
	}
	return json.Marshal(struct {
		plain
		Usage *Usage `json:"usage,omitempty"`
	}{plain(c), c.Usage})
}

// ChunkChoice is one entry of ChatCompletionChunk.Choices.
type ChunkChoice struct {
	// Index is the choice this delta belongs to.
	Index int `json:"index"`
	// Delta is the increment of the assistant message.
	Delta Delta `json:"delta"`
	// Logprobs is always null here.
	Logprobs json.RawMessage `json:"logprobs"`
	// FinishReason is null until the choice's last chunk.
	FinishReason *string `json:"finish_reason"`
}

// Delta is a streamed message increment. The opening delta has Role set and
// then always carries "refusal" (null when Refusal is nil); token deltas
// carry only Content; the closing delta is empty.
type Delta struct {
	// Role is "assistant" in a choice's first chunk, empty afterwards.
	Role string `json:"role,omitempty"`
	// Content is the text increment; nil omits it.
	Content *string `json:"content,omitempty"`
	// Refusal is always nil here.
	Refusal *string `json:"refusal,omitempty"`
}

// MarshalJSON writes the delta, with "refusal" present when Role is set.
func (d Delta) MarshalJSON() ([]byte, error) {
	type plain Delta
	if d.Role == "" {
		return json.Marshal(plain(d))
	}
	return json.Marshal(struct {
		plain
		Refusal *string `json:"refusal"`
	}{plain(d), d.Refusal})
}

// Reply is a generated answer to one request, before it is rendered as a
// ChatCompletion or as a stream of chunks.
type Reply struct {
	// ID is the completion id shared by the response or all its chunks.
	ID string
	// Created is the Unix time in seconds.
	Created int64
	// Model echoes the request model.
	Model string
	// SystemFingerprint is "fp_" followed by 10 hex digits.
	SystemFingerprint string
	// PromptTokens is the prompt size in tokens.
	PromptTokens int64
	// Choices holds the generated tokens of each choice.
	Choices []ReplyChoice
}

// ReplyChoice is one generated choice: one string per completion token.
type ReplyChoice struct {
	// Tokens are the completion tokens; their concatenation is the content.
	Tokens []string
	// FinishReason is FinishStop or FinishLength.
	FinishReason string
}

// NewReply returns a Reply for req with a fresh id, the current time, the
// request's model and PromptTokens(req.Messages).
func NewReply(req *ChatRequest, choices []ReplyChoice) *Reply {
	return &Reply{
		ID:                NewCompletionID(),
		Created:           time.Now().Unix(),
		Model:             req.Model,
		SystemFingerprint: Fingerprint(req.Model),
		PromptTokens:      req.PromptTokens(),
		Choices:           choices,
	}
}

// NewCompletionID returns a random id of the form "chatcmpl-...".
func NewCompletionID() string { return "chatcmpl-" + rand.Text() }

// Fingerprint returns a stable system fingerprint for model: "fp_" followed
// by 10 hex digits.
func Fingerprint(model string) string {
	h := fnv.New64a()
	h.Write([]byte(model))
	return fmt.Sprintf("fp_%010x", h.Sum64()&0xffffffffff)
}

// Usage returns the reply's usage: completion tokens summed over choices.
func (r *Reply) Usage() Usage {
	var c int64
	for _, ch := range r.Choices {
		c += int64(len(ch.Tokens))
	}
	return Usage{PromptTokens: r.PromptTokens, CompletionTokens: c, TotalTokens: r.PromptTokens + c}
}

// Completion renders the reply as a non-streaming response with usage.
func (r *Reply) Completion() ChatCompletion {
	u := r.Usage()
	out := ChatCompletion{
		ID: r.ID, Object: "chat.completion", Created: r.Created, Model: r.Model,
		Choices: make([]Choice, len(r.Choices)), Usage: &u,
		ServiceTier: "default", SystemFingerprint: r.SystemFingerprint,
	}
	for i, ch := range r.Choices {
		out.Choices[i] = Choice{
			Index: i,
			Message: ResponseMessage{
				Role: "assistant", Content: strings.Join(ch.Tokens, ""),
				Annotations: []json.RawMessage{},
			},
			FinishReason: ch.FinishReason,
		}
	}
	return out
}

// Chunks renders the reply as the stream OpenAI would send, without the
// final "[DONE]": for each choice an opening role chunk, then one chunk per
// token (choices interleaved round-robin), then for each choice a closing
// chunk with an empty delta and the finish reason. With includeUsage every
// chunk carries "usage": null and one last chunk with empty choices carries
// the usage.
func (r *Reply) Chunks(includeUsage bool) []ChatCompletionChunk {
	var out []ChatCompletionChunk
	add := func(c ChunkChoice) {
		out = append(out, r.chunk([]ChunkChoice{c}, includeUsage))
	}
	empty := ""
	for i := range r.Choices {
		add(ChunkChoice{Index: i, Delta: Delta{Role: "assistant", Content: &empty}})
	}
	for k := 0; ; k++ {
		sent := false
		for i, ch := range r.Choices {
			if k < len(ch.Tokens) {
				add(ChunkChoice{Index: i, Delta: Delta{Content: &ch.Tokens[k]}})
				sent = true
			}
		}
		if !sent {
			break
		}
	}
	for i, ch := range r.Choices {
		reason := ch.FinishReason
		add(ChunkChoice{Index: i, FinishReason: &reason})
	}
	if includeUsage {
		u := r.Usage()
		c := r.chunk([]ChunkChoice{}, true)
		c.Usage = &u
		out = append(out, c)
	}
	return out
}

func (r *Reply) chunk(choices []ChunkChoice, includeUsage bool) ChatCompletionChunk {
	return ChatCompletionChunk{
		ID: r.ID, Object: "chat.completion.chunk", Created: r.Created, Model: r.Model,
		ServiceTier: "default", SystemFingerprint: r.SystemFingerprint,
		Choices: choices, IncludeUsage: includeUsage,
	}
}

// APIError is the "error" object of an OpenAI error response.
type APIError struct {
	// Status is the HTTP status to answer with; not on the wire.
	Status int `json:"-"`
	// Message is the human-readable explanation.
	Message string `json:"message"`
	// Type is the error class, e.g. "invalid_request_error".
	Type string `json:"type"`
	// Param names the offending request parameter; nil writes null.
	Param *string `json:"param"`
	// Code is a machine-readable code such as "model_not_found"; nil writes
	// null.
	Code *string `json:"code"`
}

// Error returns the message, so an APIError can be used as an error.
func (e *APIError) Error() string { return e.Message }

// ErrorResponse is the body of an OpenAI error response.
type ErrorResponse struct {
	// Error is the error object.
	Error *APIError `json:"error"`
}

// NewAPIError returns an APIError with the given status, type, message and
// code; an empty code writes null.
func NewAPIError(status int, typ, code, message string) *APIError {
	return &APIError{Status: status, Type: typ, Message: message, Code: optional(code)}
}

// BadRequest returns a 400 invalid_request_error; an empty param or code
// writes null.
func BadRequest(param, code, message string) *APIError {
	e := NewAPIError(http.StatusBadRequest, "invalid_request_error", code, message)
	e.Param = optional(param)
	return e
}

func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// WriteJSON writes v as a JSON response with the given status.
func WriteJSON(w http.ResponseWriter, status int, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, err = w.Write(append(b, '\n'))
	return err
}

// WriteError writes e as an OpenAI error response with status e.Status.
func WriteError(w http.ResponseWriter, e *APIError) error {
	return WriteJSON(w, e.Status, ErrorResponse{Error: e})
}

// StartStream sends the 200 headers of a server-sent event stream and
// flushes them.
func StartStream(w http.ResponseWriter) error {
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	return http.NewResponseController(w).Flush()
}

// WriteEvent writes v as one "data: {json}\n\n" event and flushes it.
func WriteEvent(w http.ResponseWriter, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return writeData(w, b)
}

// WriteDone writes the terminating "data: [DONE]\n\n" event and flushes it.
func WriteDone(w http.ResponseWriter) error { return writeData(w, []byte("[DONE]")) }

func writeData(w http.ResponseWriter, data []byte) error {
	buf := make([]byte, 0, len(data)+8)
	buf = append(buf, "data: "...)
	buf = append(buf, data...)
	buf = append(buf, "\n\n"...)
	if _, err := w.Write(buf); err != nil {
		return err
	}
	return http.NewResponseController(w).Flush()
}

// Model is one entry of the GET /v1/models list.
type Model struct {
	// ID is the model id.
	ID string `json:"id"`
	// Object is always "model".
	Object string `json:"object"`
	// Created is the Unix time in seconds the model was published.
	Created int64 `json:"created"`
	// OwnedBy is the owning organization, e.g. "system".
	OwnedBy string `json:"owned_by"`
}

// ModelList is the GET /v1/models response.
type ModelList struct {
	// Object is always "list".
	Object string `json:"object"`
	// Data holds the models.
	Data []Model `json:"data"`
}

// randomHex returns n random bytes, hex-encoded.
func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}
