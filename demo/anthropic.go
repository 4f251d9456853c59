package demo

import (
	"encoding/json"
	"net/http"
	"slices"
	"strings"
	"time"
)

// DefaultAnthropicModels are the Claude model ids NewAnthropic serves when
// Options.AnthropicModels is empty.
var DefaultAnthropicModels = []string{"claude-haiku-4-5", "claude-sonnet-4-5", "claude-opus-4-5"}

// anthropicModelsCreated is the created_at reported for every Claude model.
const anthropicModelsCreated = "2025-10-01T00:00:00Z"

// NewAnthropic returns an http.Handler that simulates the Anthropic API
// under /v1 (its base URL is the server's root, as for
// https://api.anthropic.com):
//
//   - POST /v1/messages answers with the canned reply as one text block,
//     cut at max_tokens (required) with stop_reason "max_tokens". Usage
//     reports input_tokens by the rule of MessagesInputTokens and one
//     output token per word. "stream": true sends Anthropic's named events
//     (message_start with the input usage, content_block_start, ping, one
//     text_delta per token, content_block_stop, message_delta with the
//     output count, message_stop).
//   - POST /v1/messages/count_tokens answers {"input_tokens": N}.
//   - GET /v1/models and GET /v1/models/{id} list the known models.
//
// Every request must carry a non-empty x-api-key; the key itself is not
// checked. Errors use Anthropic's error shape and statuses.
func NewAnthropic(opts Options) http.Handler {
	models := opts.AnthropicModels
	if len(models) == 0 {
		models = DefaultAnthropicModels
	}
	delay := opts.TokenDelay
	if delay == 0 {
		delay = DefaultTokenDelay
	}
	return &anthropicHandler{delay: delay, models: slices.Compact(slices.Clone(models))}
}

type anthropicHandler struct {
	delay  time.Duration
	models []string
}

// writeAnthropicError writes Anthropic's {"type":"error","error":{...}}.
func writeAnthropicError(w http.ResponseWriter, status int, typ, msg string) {
	WriteJSON(w, status, map[string]any{"type": "error", "error": map[string]string{"type": typ, "message": msg}})
}

func (h *anthropicHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := r.URL.Path
	var serve func(http.ResponseWriter, *http.Request)
	method := http.MethodPost
	switch {
	case path == "/v1/messages":
		serve = func(w http.ResponseWriter, r *http.Request) { h.messages(w, r, false) }
	case path == "/v1/messages/count_tokens":
		serve = func(w http.ResponseWriter, r *http.Request) { h.messages(w, r, true) }
	case path == "/v1/models":
		serve, method = h.list, http.MethodGet
	case strings.HasPrefix(path, "/v1/models/") && len(path) > len("/v1/models/"):
		serve, method = h.model, http.MethodGet
	default:
		writeAnthropicError(w, http.StatusNotFound, "not_found_error", "Not found")
		return
	}
	if strings.TrimSpace(r.Header.Get("X-Api-Key")) == "" {
		writeAnthropicError(w, http.StatusUnauthorized, "authentication_error",
			"x-api-key header is required. hardcap's demo provider accepts any non-empty key.")
		return
	}
	if r.Method != method {
		writeAnthropicError(w, http.StatusMethodNotAllowed, "invalid_request_error", "Method not allowed")
		return
	}
	// As Anthropic does (see handler.ServeHTTP).
	w.Header().Set("request-id", "req_"+randomHex(12))
	serve(w, r)
}

// AnthropicModel is one entry of the Anthropic model list.
type AnthropicModel struct {
	// Type is always "model".
	Type string `json:"type"`
	// ID is the model id.
	ID string `json:"id"`
	// DisplayName is a human-readable name.
	DisplayName string `json:"display_name"`
	// CreatedAt is an RFC 3339 time.
	CreatedAt string `json:"created_at"`
}

func anthropicModel(id string) AnthropicModel {
	return AnthropicModel{Type: "model", ID: id, DisplayName: id + " (demo)", CreatedAt: anthropicModelsCreated}
}

func (h *anthropicHandler) list(w http.ResponseWriter, _ *http.Request) {
	data := make([]AnthropicModel, len(h.models))
	for i, m := range h.models {
		data[i] = anthropicModel(m)
	}
	WriteJSON(w, http.StatusOK, map[string]any{"data": data, "has_more": false, "first_id": h.models[0], "last_id": h.models[len(h.models)-1]})
}

func (h *anthropicHandler) model(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/v1/models/")
	if !slices.Contains(h.models, id) {
		writeAnthropicError(w, http.StatusNotFound, "not_found_error", "model: "+truncate(id, 64))
		return
	}
	WriteJSON(w, http.StatusOK, anthropicModel(id))
}

// truncate shortens s to at most n bytes of valid UTF-8, so an error never
// echoes unbounded input.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return strings.ToValidUTF8(s[:n], "") + "..."
}

// messagesRequest is the part of a Messages body the simulator reads;
// unknown fields are ignored.
type messagesRequest struct {
	Model     string          `json:"model"`
	Messages  []Message       `json:"messages"`
	System    json.RawMessage `json:"system"`
	MaxTokens *int64          `json:"max_tokens"`
	Stream    bool            `json:"stream"`
}

// MessagesInputTokens counts a Messages request's input with the
// simulator's rule: the sum over messages of ceil(len(text)/4)+4, plus
// ceil(len(system)/4), plus 3, where text is the string content or the
// concatenated "text" of the blocks (lengths in bytes). It never exceeds
// the body's length, hardcap's input bound.
func MessagesInputTokens(msgs []Message, system json.RawMessage) int64 {
	n := int64(3) + textTokens(Message{Content: system}.Text())
	for _, m := range msgs {
		n += textTokens(m.Text()) + 4
	}
	return n
}

// anthropicUsage is the usage object of Messages responses.
type anthropicUsage struct {
	InputTokens              int64  `json:"input_tokens"`
	CacheCreationInputTokens int64  `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64  `json:"cache_read_input_tokens"`
	OutputTokens             int64  `json:"output_tokens"`
	ServiceTier              string `json:"service_tier,omitempty"`
}

func (h *anthropicHandler) messages(w http.ResponseWriter, r *http.Request, count bool) {
	body, ok := readBody(w, r, func(status int, typ, msg string) {
		if status == http.StatusRequestEntityTooLarge {
			typ = "request_too_large"
		}
		writeAnthropicError(w, status, typ, msg)
	})
	if !ok {
		return
	}
	var req messagesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", "The request body is not valid JSON of the Messages shape.")
		return
	}
	if !slices.Contains(h.models, req.Model) {
		writeAnthropicError(w, http.StatusNotFound, "not_found_error", "model: "+truncate(req.Model, 64))
		return
	}
	if len(req.Messages) == 0 {
		writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", "messages: at least one message is required")
		return
	}
	input := min(MessagesInputTokens(req.Messages, req.System), int64(len(body)))
	if count {
		WriteJSON(w, http.StatusOK, map[string]int64{"input_tokens": input})
		return
	}
	if req.MaxTokens == nil || *req.MaxTokens < 1 {
		writeAnthropicError(w, http.StatusBadRequest, "invalid_request_error", "max_tokens: Field required (a positive integer)")
		return
	}
	toks, cut := capTokens(ReplyTokens(req.Messages, 0), *req.MaxTokens)
	stop := "end_turn"
	if cut {
		stop = "max_tokens"
	}
	id := "msg_" + strings.ToLower(newItemID("")[:24])
	usage := anthropicUsage{InputTokens: input, OutputTokens: int64(len(toks)), ServiceTier: "standard"}
	message := func(content []any, stopReason *string, u anthropicUsage) map[string]any {
		return map[string]any{"id": id, "type": "message", "role": "assistant", "model": req.Model, "content": content,
			"stop_reason": stopReason, "stop_sequence": nil, "usage": u}
	}
	if !req.Stream {
		WriteJSON(w, http.StatusOK, message([]any{map[string]string{"type": "text", "text": strings.Join(toks, "")}}, &stop, usage))
		return
	}
	start := usage
	start.OutputTokens = min(1, usage.OutputTokens)
	events := []event{
		{name: "message_start", data: map[string]any{"type": "message_start", "message": message([]any{}, nil, start)}},
		{name: "content_block_start", data: map[string]any{"type": "content_block_start", "index": 0, "content_block": map[string]string{"type": "text", "text": ""}}},
		{name: "ping", data: map[string]string{"type": "ping"}},
	}
	for _, tok := range toks {
		events = append(events, event{name: "content_block_delta", token: true,
			data: map[string]any{"type": "content_block_delta", "index": 0, "delta": map[string]string{"type": "text_delta", "text": tok}}})
	}
	events = append(events,
		event{name: "content_block_stop", data: map[string]any{"type": "content_block_stop", "index": 0}},
		event{name: "message_delta", data: map[string]any{"type": "message_delta",
			"delta": map[string]any{"stop_reason": stop, "stop_sequence": nil},
			"usage": map[string]int64{"output_tokens": usage.OutputTokens}}},
		event{name: "message_stop", data: map[string]string{"type": "message_stop"}},
	)
	streamEvents(w, r, h.delay, events, false)
}
