package demo

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

// responsesRequest is the part of a Responses body the simulator reads;
// unknown fields are ignored, a few are echoed.
type responsesRequest struct {
	Model           string          `json:"model"`
	Input           json.RawMessage `json:"input"`
	Instructions    *string         `json:"instructions"`
	MaxOutputTokens *int64          `json:"max_output_tokens"`
	Stream          bool            `json:"stream"`
	Store           *bool           `json:"store"`
	Metadata        json.RawMessage `json:"metadata"`
	Tools           json.RawMessage `json:"tools"`
	ToolChoice      json.RawMessage `json:"tool_choice"`
	Text            json.RawMessage `json:"text"`
}

// Response is the Responses API response object (object "response"), also
// carried by a stream's lifecycle events.
type Response struct {
	// ID is "resp_" followed by 50 hex digits.
	ID string `json:"id"`
	// Object is always "response".
	Object string `json:"object"`
	// CreatedAt is the Unix time in seconds.
	CreatedAt int64 `json:"created_at"`
	// Status is "in_progress", "completed" or "incomplete".
	Status string `json:"status"`
	// Background is always false.
	Background bool `json:"background"`
	// Error is always null here.
	Error json.RawMessage `json:"error"`
	// IncompleteDetails is set when Status is "incomplete".
	IncompleteDetails *IncompleteDetails `json:"incomplete_details"`
	// Instructions echoes the request.
	Instructions *string `json:"instructions"`
	// MaxOutputTokens echoes the request.
	MaxOutputTokens *int64 `json:"max_output_tokens"`
	// Model echoes the request model.
	Model string `json:"model"`
	// Output holds the assistant message once generated; empty while in
	// progress.
	Output []OutputMessage `json:"output"`
	// ParallelToolCalls is always true here.
	ParallelToolCalls bool `json:"parallel_tool_calls"`
	// PreviousResponseID is always null here.
	PreviousResponseID *string `json:"previous_response_id"`
	// Reasoning is always empty here.
	Reasoning json.RawMessage `json:"reasoning"`
	// ServiceTier is "default".
	ServiceTier string `json:"service_tier"`
	// Store echoes the request (true when absent).
	Store bool `json:"store"`
	// Temperature and TopP are the API's defaults.
	Temperature float64 `json:"temperature"`
	TopP        float64 `json:"top_p"`
	// Text, ToolChoice and Tools echo the request, with the API's
	// defaults.
	Text       json.RawMessage `json:"text"`
	ToolChoice json.RawMessage `json:"tool_choice"`
	Tools      json.RawMessage `json:"tools"`
	// Truncation is "disabled".
	Truncation string `json:"truncation"`
	// Usage is the billed usage; null until the final event of a stream.
	Usage *ResponseUsage `json:"usage"`
	// Metadata echoes the request ({} when absent).
	Metadata json.RawMessage `json:"metadata"`
}

// IncompleteDetails is Response.IncompleteDetails.
type IncompleteDetails struct {
	// Reason is "max_output_tokens" here.
	Reason string `json:"reason"`
}

// ResponseUsage is the Responses usage object, in tokens.
type ResponseUsage struct {
	// InputTokens counts input tokens.
	InputTokens int64 `json:"input_tokens"`
	// InputTokensDetails breaks InputTokens down; always zero here.
	InputTokensDetails struct {
		CachedTokens int64 `json:"cached_tokens"`
	} `json:"input_tokens_details"`
	// OutputTokens counts output tokens.
	OutputTokens int64 `json:"output_tokens"`
	// OutputTokensDetails breaks OutputTokens down; always zero here.
	OutputTokensDetails struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"output_tokens_details"`
	// TotalTokens is InputTokens + OutputTokens.
	TotalTokens int64 `json:"total_tokens"`
}

// OutputMessage is the assistant message output item.
type OutputMessage struct {
	// ID is "msg_" followed by 50 hex digits.
	ID string `json:"id"`
	// Type is always "message".
	Type string `json:"type"`
	// Status is "in_progress" while streaming, then "completed", or
	// "incomplete" when max_output_tokens cut the reply.
	Status string `json:"status"`
	// Content holds one output_text part; empty in
	// response.output_item.added.
	Content []OutputText `json:"content"`
	// Role is always "assistant".
	Role string `json:"role"`
}

// OutputText is an "output_text" content part.
type OutputText struct {
	// Type is always "output_text".
	Type string `json:"type"`
	// Annotations is always empty here.
	Annotations []json.RawMessage `json:"annotations"`
	// Logprobs is always empty here.
	Logprobs []json.RawMessage `json:"logprobs"`
	// Text is the text so far.
	Text string `json:"text"`
}

func outputText(text string) OutputText {
	return OutputText{Type: "output_text", Annotations: []json.RawMessage{}, Logprobs: []json.RawMessage{}, Text: text}
}

// newItemID returns prefix followed by 50 random hex digits, like the
// API's resp_ and msg_ ids.
func newItemID(prefix string) string {
	b := make([]byte, 25)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

func rawOr(raw json.RawMessage, def string) json.RawMessage {
	if raw = bytes.TrimSpace(raw); len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage(def)
	}
	return raw
}

// responseInput returns the conversation of a Responses input (a string,
// or items whose text is a message's content, a function call's arguments
// or a tool output's text) and its input tokens: ceil(len(instructions)/4),
// plus ceil(len(text)/4)+4 per item, plus 3, never more than the body's
// length.
func responseInput(instructions *string, raw json.RawMessage, bodyLen int) ([]Message, int64) {
	var msgs []Message
	n := int64(3)
	if instructions != nil {
		n += textTokens(*instructions)
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		msgs = userMessage(s)
	} else {
		var items []struct {
			Role      string          `json:"role"`
			Content   json.RawMessage `json:"content"`
			Output    json.RawMessage `json:"output"`
			Arguments string          `json:"arguments"`
		}
		_ = json.Unmarshal(raw, &items)
		for _, it := range items {
			m := Message{Role: it.Role, Content: it.Content}
			if it.Role == "" {
				m = Message{Role: "tool", Content: it.Output}
				if it.Arguments != "" {
					m = userMessage(it.Arguments)[0]
					m.Role = "assistant"
				}
			}
			msgs = append(msgs, m)
		}
	}
	for _, m := range msgs {
		n += textTokens(m.Text()) + 4
	}
	return msgs, min(n, int64(bodyLen))
}

// responses answers POST /v1/responses with the canned reply as one
// assistant message, cut at max_output_tokens (status "incomplete"); with
// "stream": true it sends the API's named events, from response.created to
// response.completed (or response.incomplete), which carries the usage.
func (h *handler) responses(w http.ResponseWriter, r *http.Request) {
	body, ok := h.body(w, r)
	if !ok {
		return
	}
	var req responsesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		WriteError(w, BadRequest("", "", "We could not parse the JSON body of your request."))
		return
	}
	if !h.known[req.Model] {
		WriteError(w, modelNotFound(req.Model))
		return
	}
	if req.MaxOutputTokens != nil && *req.MaxOutputTokens < 16 {
		WriteError(w, BadRequest("max_output_tokens", "integer_below_min_value", "Invalid 'max_output_tokens': integer below minimum value. Expected a value >= 16."))
		return
	}
	msgs, input := responseInput(req.Instructions, req.Input, len(body))
	toks, cut := capTokens(ReplyTokens(msgs, 0), optInt(req.MaxOutputTokens, 0))
	usage := &ResponseUsage{InputTokens: input, OutputTokens: int64(len(toks)), TotalTokens: input + int64(len(toks))}

	base := Response{
		ID: newItemID("resp_"), Object: "response", CreatedAt: time.Now().Unix(), Status: "in_progress",
		Error: json.RawMessage("null"), Instructions: req.Instructions, MaxOutputTokens: req.MaxOutputTokens,
		Model: req.Model, Output: []OutputMessage{}, ParallelToolCalls: true, Reasoning: json.RawMessage(`{"effort":null,"summary":null}`),
		ServiceTier: "default", Store: req.Store == nil || *req.Store, Temperature: 1, TopP: 1,
		Text: rawOr(req.Text, `{"format":{"type":"text"},"verbosity":"medium"}`), ToolChoice: rawOr(req.ToolChoice, `"auto"`),
		Tools: rawOr(req.Tools, `[]`), Truncation: "disabled", Metadata: rawOr(req.Metadata, `{}`),
	}
	msg := OutputMessage{ID: newItemID("msg_"), Type: "message", Status: "completed", Role: "assistant",
		Content: []OutputText{outputText(strings.Join(toks, ""))}}
	final := base
	final.Status, final.Usage = "completed", usage
	if cut {
		final.Status, msg.Status = "incomplete", "incomplete"
		final.IncompleteDetails = &IncompleteDetails{Reason: "max_output_tokens"}
	}
	final.Output = []OutputMessage{msg}
	if !req.Stream {
		WriteJSON(w, http.StatusOK, final)
		return
	}

	var events []event
	seq := 0
	add := func(typ string, token bool, fields map[string]any) {
		fields["type"], fields["sequence_number"] = typ, seq
		events = append(events, event{name: typ, data: fields, token: token})
		seq++
	}
	add("response.created", false, map[string]any{"response": base})
	add("response.in_progress", false, map[string]any{"response": base})
	added := msg
	added.Status, added.Content = "in_progress", []OutputText{}
	add("response.output_item.added", false, map[string]any{"output_index": 0, "item": added})
	part := map[string]any{"item_id": msg.ID, "output_index": 0, "content_index": 0}
	with := func(extra map[string]any) map[string]any {
		m := map[string]any{}
		for k, v := range part {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	add("response.content_part.added", false, with(map[string]any{"part": outputText("")}))
	for _, tok := range toks {
		add("response.output_text.delta", true, with(map[string]any{"delta": tok, "logprobs": []any{}}))
	}
	text := msg.Content[0].Text
	add("response.output_text.done", false, with(map[string]any{"text": text, "logprobs": []any{}}))
	add("response.content_part.done", false, with(map[string]any{"part": outputText(text)}))
	add("response.output_item.done", false, map[string]any{"output_index": 0, "item": msg})
	if cut {
		add("response.incomplete", false, map[string]any{"response": final})
	} else {
		add("response.completed", false, map[string]any{"response": final})
	}
	streamEvents(w, r, h.delay, events, false)
}

// inputTokens answers POST /v1/responses/input_tokens (free at OpenAI)
// with the input count a Responses request would be billed.
func (h *handler) inputTokens(w http.ResponseWriter, r *http.Request) {
	body, ok := h.body(w, r)
	if !ok {
		return
	}
	var req responsesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		WriteError(w, BadRequest("", "", "We could not parse the JSON body of your request."))
		return
	}
	_, input := responseInput(req.Instructions, req.Input, len(body))
	WriteJSON(w, http.StatusOK, map[string]any{"object": "response.input_tokens", "input_tokens": input})
}

// moderationCategories are the categories of OpenAI's moderation models.
var moderationCategories = []string{
	"harassment", "harassment/threatening", "hate", "hate/threatening", "illicit", "illicit/violent",
	"self-harm", "self-harm/instructions", "self-harm/intent", "sexual", "sexual/minors", "violence", "violence/graphic",
}

// moderations answers POST /v1/moderations (free at OpenAI): nothing is
// ever flagged, one result per input.
func (h *handler) moderations(w http.ResponseWriter, r *http.Request) {
	body, ok := h.body(w, r)
	if !ok {
		return
	}
	var req struct {
		Model string          `json:"model"`
		Input json.RawMessage `json:"input"`
	}
	if err := json.Unmarshal(body, &req); err != nil {
		WriteError(w, BadRequest("", "", "We could not parse the JSON body of your request."))
		return
	}
	if req.Model == "" {
		req.Model = ModerationModels[0]
	}
	inputs := 1
	var list []json.RawMessage
	if json.Unmarshal(req.Input, &list) == nil && len(list) > 0 {
		inputs = len(list)
		var first map[string]any
		if json.Unmarshal(list[0], &first) == nil {
			inputs = 1 // an array of content parts is one input
		}
	}
	results := make([]map[string]any, inputs)
	for i := range results {
		cats, scores, types := map[string]bool{}, map[string]float64{}, map[string][]string{}
		for _, c := range moderationCategories {
			cats[c], scores[c], types[c] = false, 0.0001, []string{"text"}
		}
		results[i] = map[string]any{"flagged": false, "categories": cats, "category_scores": scores, "category_applied_input_types": types}
	}
	WriteJSON(w, http.StatusOK, map[string]any{"id": "modr-" + rand.Text(), "model": req.Model, "results": results})
}
