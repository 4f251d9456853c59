package fakeopenai

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hardcap/hardcap/demo"
)

// MaxOutputTokens is the largest max_output_tokens the fake accepts. (The
// real API also rejects values below 16; the fake accepts any value >= 1 so
// tests can cap small replies.)
const MaxOutputTokens = 1 << 20

// responsesRequest is the part of a Responses API body the fake reads.
// Unknown fields are ignored; the others are checked for type and echoed.
type responsesRequest struct {
	Model              string           `json:"model"`
	Input              json.RawMessage  `json:"input"`
	Instructions       *string          `json:"instructions"`
	MaxOutputTokens    *int64           `json:"max_output_tokens"`
	Stream             bool             `json:"stream"`
	Reasoning          *reasoningParams `json:"reasoning"`
	Store              *bool            `json:"store"`
	Tools              json.RawMessage  `json:"tools"`
	ToolChoice         json.RawMessage  `json:"tool_choice"`
	Text               json.RawMessage  `json:"text"`
	Metadata           json.RawMessage  `json:"metadata"`
	Temperature        *float64         `json:"temperature"`
	TopP               *float64         `json:"top_p"`
	ParallelToolCalls  *bool            `json:"parallel_tool_calls"`
	PreviousResponseID *string          `json:"previous_response_id"`
	MaxToolCalls       *int64           `json:"max_tool_calls"`
	TopLogprobs        *int64           `json:"top_logprobs"`
	Truncation         *string          `json:"truncation"`
	User               *string          `json:"user"`
	PromptCacheKey     *string          `json:"prompt_cache_key"`
	SafetyIdentifier   *string          `json:"safety_identifier"`
}

// reasoningParams is the request's "reasoning" object.
type reasoningParams struct {
	Effort  *string `json:"effort"`
	Summary *string `json:"summary"`
}

// Response is the Responses API response object (object "response"), also
// carried by the stream's lifecycle events.
type Response struct {
	// ID is "resp_" followed by 50 hex digits.
	ID string `json:"id"`
	// Object is always "response".
	Object string `json:"object"`
	// CreatedAt is the Unix time in seconds.
	CreatedAt int64 `json:"created_at"`
	// Status is "in_progress", "completed", "incomplete" or "failed".
	Status string `json:"status"`
	// Background is always false.
	Background bool `json:"background"`
	// CompletedAt is the Unix time in seconds when Status is "completed",
	// else null.
	CompletedAt *int64 `json:"completed_at"`
	// Error is set when Status is "failed".
	Error *ResponseError `json:"error"`
	// IncompleteDetails is set when Status is "incomplete".
	IncompleteDetails *IncompleteDetails `json:"incomplete_details"`
	// The following fields echo the request, with the API's defaults.
	Instructions       *string         `json:"instructions"`
	MaxOutputTokens    *int64          `json:"max_output_tokens"`
	MaxToolCalls       *int64          `json:"max_tool_calls"`
	Model              string          `json:"model"`
	Output             []any           `json:"output"` // *ReasoningItem and *OutputMessage
	ParallelToolCalls  bool            `json:"parallel_tool_calls"`
	PreviousResponseID *string         `json:"previous_response_id"`
	PromptCacheKey     *string         `json:"prompt_cache_key"`
	Reasoning          reasoningParams `json:"reasoning"`
	SafetyIdentifier   *string         `json:"safety_identifier"`
	ServiceTier        string          `json:"service_tier"`
	Store              bool            `json:"store"`
	Temperature        float64         `json:"temperature"`
	Text               json.RawMessage `json:"text"`
	ToolChoice         json.RawMessage `json:"tool_choice"`
	Tools              json.RawMessage `json:"tools"`
	TopLogprobs        int64           `json:"top_logprobs"`
	TopP               float64         `json:"top_p"`
	Truncation         string          `json:"truncation"`
	// Usage is the billed usage; null until the final event of a stream.
	Usage    *ResponseUsage  `json:"usage"`
	User     *string         `json:"user"`
	Metadata json.RawMessage `json:"metadata"`

	omitUsage bool // leave "usage" out entirely (OmitUsage, non-stream)
}

// MarshalJSON writes the response, without "usage" for OmitUsage.
func (r Response) MarshalJSON() ([]byte, error) {
	type plain Response
	if !r.omitUsage {
		return json.Marshal(plain(r))
	}
	return json.Marshal(struct {
		plain
		Usage *ResponseUsage `json:"usage,omitempty"`
	}{plain(r), nil})
}

// ResponseError is Response.Error.
type ResponseError struct {
	// Code is "server_error" here.
	Code string `json:"code"`
	// Message explains the failure.
	Message string `json:"message"`
}

// IncompleteDetails is Response.IncompleteDetails.
type IncompleteDetails struct {
	// Reason is "max_output_tokens" here.
	Reason string `json:"reason"`
}

// ResponseUsage is the Responses API usage object, in tokens.
type ResponseUsage struct {
	// InputTokens counts input tokens, cached ones included.
	InputTokens int64 `json:"input_tokens"`
	// InputTokensDetails breaks InputTokens down.
	InputTokensDetails InputTokensDetails `json:"input_tokens_details"`
	// OutputTokens counts output tokens, reasoning ones included.
	OutputTokens int64 `json:"output_tokens"`
	// OutputTokensDetails breaks OutputTokens down.
	OutputTokensDetails OutputTokensDetails `json:"output_tokens_details"`
	// TotalTokens is InputTokens + OutputTokens.
	TotalTokens int64 `json:"total_tokens"`
}

// InputTokensDetails is ResponseUsage.InputTokensDetails.
type InputTokensDetails struct {
	// CachedTokens is the part of the input read from the prompt cache.
	CachedTokens int64 `json:"cached_tokens"`
}

// OutputTokensDetails is ResponseUsage.OutputTokensDetails.
type OutputTokensDetails struct {
	// ReasoningTokens is the part of the output spent on reasoning.
	ReasoningTokens int64 `json:"reasoning_tokens"`
}

// OutputMessage is the assistant message output item.
type OutputMessage struct {
	// ID is "msg_" followed by 50 hex digits.
	ID string `json:"id"`
	// Type is always "message".
	Type string `json:"type"`
	// Status is "in_progress" while streaming, then "completed", or
	// "incomplete" when the reply was cut by max_output_tokens.
	Status string `json:"status"`
	// Content holds one output_text part once started; empty (never null)
	// in response.output_item.added.
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
	// Text is the text so far ("" in response.content_part.added).
	Text string `json:"text"`
}

// ReasoningItem is the "reasoning" output item sent when
// Behavior.ReasoningTokens is positive.
type ReasoningItem struct {
	// ID is "rs_" followed by 50 hex digits.
	ID string `json:"id"`
	// Type is always "reasoning".
	Type string `json:"type"`
	// Summary is always empty here.
	Summary []json.RawMessage `json:"summary"`
}

// Stream events, each written with its type as the SSE event name.
type (
	responseEvent struct {
		Type           string    `json:"type"`
		SequenceNumber int64     `json:"sequence_number"`
		Response       *Response `json:"response"`
	}
	itemEvent struct {
		Type           string `json:"type"`
		SequenceNumber int64  `json:"sequence_number"`
		OutputIndex    int    `json:"output_index"`
		Item           any    `json:"item"`
	}
	partEvent struct {
		Type           string     `json:"type"`
		SequenceNumber int64      `json:"sequence_number"`
		ItemID         string     `json:"item_id"`
		OutputIndex    int        `json:"output_index"`
		ContentIndex   int        `json:"content_index"`
		Part           OutputText `json:"part"`
	}
	textDeltaEvent struct {
		Type           string            `json:"type"`
		SequenceNumber int64             `json:"sequence_number"`
		ItemID         string            `json:"item_id"`
		OutputIndex    int               `json:"output_index"`
		ContentIndex   int               `json:"content_index"`
		Delta          string            `json:"delta"`
		Logprobs       []json.RawMessage `json:"logprobs"`
	}
	textDoneEvent struct {
		Type           string            `json:"type"`
		SequenceNumber int64             `json:"sequence_number"`
		ItemID         string            `json:"item_id"`
		OutputIndex    int               `json:"output_index"`
		ContentIndex   int               `json:"content_index"`
		Text           string            `json:"text"`
		Logprobs       []json.RawMessage `json:"logprobs"`
	}
)

// failedMessage is Response.Error.Message of a FailStream failure.
const failedMessage = "An error occurred while processing your request. You can retry your request, " +
	"or contact us through our help center at help.openai.com if the error persists. (fakeopenai: FailStream)"

// responses answers POST /v1/responses. output_tokens is min(max_output_tokens,
// DefaultCompletion), or max_output_tokens with BillAtCap; when the cap cut
// the reply the response is "incomplete" with reason "max_output_tokens".
func (s *Server) responses(body []byte, b Behavior) (Usage, func(http.ResponseWriter, *http.Request), *demo.APIError) {
	var req responsesRequest
	if e := decodeRequest(body, &req); e != nil {
		return Usage{}, nil, e
	}
	if req.Model == "" {
		return Usage{}, nil, demo.BadRequest("model", "missing_required_parameter", "Missing required parameter: 'model'.")
	}
	texts, e := responseInput(req.Input)
	if e != nil {
		return Usage{}, nil, e
	}
	if e := intRange("max_output_tokens", req.MaxOutputTokens, 1, MaxOutputTokens); e != nil {
		return Usage{}, nil, e
	}
	for _, chk := range []struct {
		param string
		raw   json.RawMessage
		kinds string // the JSON kinds allowed, by first byte
		want  string
	}{
		{"tools", req.Tools, "[", "an array"},
		{"metadata", req.Metadata, "{", "an object"},
		{"text", req.Text, "{", "an object"},
		{"tool_choice", req.ToolChoice, `"{`, "a string or an object"},
	} {
		if raw := bytes.TrimSpace(chk.raw); len(raw) > 0 && !isNull(raw) && !strings.ContainsRune(chk.kinds, rune(raw[0])) {
			return Usage{}, nil, demo.BadRequest(chk.param, "invalid_type", fmt.Sprintf(
				"Invalid type for '%s': expected %s, but got %s instead.", chk.param, chk.want, kind(raw)))
		}
	}

	input := responseInputTokens(req.Instructions, texts)
	input = min(input, int64(len(body)))
	if b.PromptTokens != nil {
		input = b.PromptTokens(body)
	}
	output, incomplete := s.completion, false
	if req.MaxOutputTokens != nil && (b.BillAtCap || *req.MaxOutputTokens < output) {
		output, incomplete = *req.MaxOutputTokens, true
	}
	reasoning := min(max(b.ReasoningTokens, 0), output)
	cached := min(max(b.CachedTokens, 0), max(input, 0))
	toks := tokens(output - reasoning)
	usage := &ResponseUsage{
		InputTokens: input, InputTokensDetails: InputTokensDetails{CachedTokens: cached},
		OutputTokens: output, OutputTokensDetails: OutputTokensDetails{ReasoningTokens: reasoning},
		TotalTokens: input + output,
	}
	billed := Usage{PromptTokens: input, CompletionTokens: output, ReasoningTokens: reasoning, CachedTokens: cached}

	base := newResponse(&req)
	final := base
	final.Status = "completed"
	if incomplete {
		final.Status = "incomplete"
		final.IncompleteDetails = &IncompleteDetails{Reason: "max_output_tokens"}
	} else {
		done := time.Now().Unix()
		final.CompletedAt = &done
	}
	var rs *ReasoningItem
	if reasoning > 0 {
		rs = &ReasoningItem{ID: newItemID("rs_"), Type: "reasoning", Summary: []json.RawMessage{}}
		final.Output = append(final.Output, rs)
	}
	var msg *OutputMessage
	if len(toks) > 0 {
		msg = &OutputMessage{ID: newItemID("msg_"), Type: "message", Status: "completed", Role: "assistant",
			Content: []OutputText{outputText(strings.Join(toks, ""))}}
		if incomplete {
			msg.Status = "incomplete"
		}
		final.Output = append(final.Output, msg)
	}
	final.Usage = usage
	if b.OmitUsage {
		final.Usage = nil
	}

	if !req.Stream {
		final.omitUsage = b.OmitUsage
		prefix := `{"id":"` + final.ID + `","object":"response","output":[{`
		return billed, func(w http.ResponseWriter, r *http.Request) { s.complete(w, r, b, final, prefix) }, nil
	}

	// The stream: response.created and response.in_progress, the reasoning
	// item, the message item with its text part and one delta per token,
	// then the final response (or response.failed midway with FailStream).
	var events []any
	seq := int64(0)
	add := func(name string, ev any) {
		events = append(events, namedEvent{name: name, data: ev})
		seq++
	}
	lifecycle := func(name string, r Response) {
		add(name, responseEvent{Type: name, SequenceNumber: seq, Response: &r})
	}
	item := func(name string, index int, it any) {
		add(name, itemEvent{Type: name, SequenceNumber: seq, OutputIndex: index, Item: it})
	}
	lifecycle("response.created", base)
	lifecycle("response.in_progress", base)
	index := 0
	if rs != nil {
		item("response.output_item.added", index, rs)
		item("response.output_item.done", index, rs)
		index++
	}
	sent := len(toks) // deltas sent before a FailStream failure
	if b.FailStream {
		sent = (len(toks) + 1) / 2
	}
	if msg != nil {
		added := *msg
		added.Status, added.Content = "in_progress", []OutputText{}
		item("response.output_item.added", index, &added)
		part := func(name string, text string) {
			add(name, partEvent{Type: name, SequenceNumber: seq, ItemID: msg.ID, OutputIndex: index, Part: outputText(text)})
		}
		part("response.content_part.added", "")
		for _, tok := range toks[:sent] {
			add("response.output_text.delta", textDeltaEvent{Type: "response.output_text.delta", SequenceNumber: seq,
				ItemID: msg.ID, OutputIndex: index, Delta: tok, Logprobs: []json.RawMessage{}})
		}
		if !b.FailStream {
			text := msg.Content[0].Text
			add("response.output_text.done", textDoneEvent{Type: "response.output_text.done", SequenceNumber: seq,
				ItemID: msg.ID, OutputIndex: index, Text: text, Logprobs: []json.RawMessage{}})
			part("response.content_part.done", text)
			item("response.output_item.done", index, msg)
		}
	}
	switch {
	case b.FailStream:
		failed := base
		failed.Status = "failed"
		failed.Error = &ResponseError{Code: "server_error", Message: failedMessage}
		lifecycle("response.failed", failed)
		billed.CompletionTokens = reasoning + int64(sent)
	case incomplete:
		lifecycle("response.incomplete", final)
	default:
		lifecycle("response.completed", final)
	}
	return billed, func(w http.ResponseWriter, r *http.Request) { s.streamEvents(w, r, b, events, false) }, nil
}

// newResponse returns the in-progress response for req: a fresh id, no
// output, no usage, and the request's settings with the API's defaults.
func newResponse(req *responsesRequest) Response {
	r := Response{
		ID: newItemID("resp_"), Object: "response", CreatedAt: time.Now().Unix(), Status: "in_progress",
		Instructions: req.Instructions, MaxOutputTokens: req.MaxOutputTokens, MaxToolCalls: req.MaxToolCalls,
		Model: req.Model, Output: []any{}, ParallelToolCalls: true, PreviousResponseID: req.PreviousResponseID,
		PromptCacheKey: req.PromptCacheKey, SafetyIdentifier: req.SafetyIdentifier, ServiceTier: "default",
		Store: true, Temperature: 1, Text: rawOr(req.Text, `{"format":{"type":"text"},"verbosity":"medium"}`),
		ToolChoice: rawOr(req.ToolChoice, `"auto"`), Tools: rawOr(req.Tools, `[]`), TopP: 1, Truncation: "disabled",
		User: req.User, Metadata: rawOr(req.Metadata, `{}`),
	}
	if req.Reasoning != nil {
		r.Reasoning = *req.Reasoning
	}
	if req.ParallelToolCalls != nil {
		r.ParallelToolCalls = *req.ParallelToolCalls
	}
	if req.Store != nil {
		r.Store = *req.Store
	}
	if req.Temperature != nil {
		r.Temperature = *req.Temperature
	}
	if req.TopP != nil {
		r.TopP = *req.TopP
	}
	if req.TopLogprobs != nil {
		r.TopLogprobs = *req.TopLogprobs
	}
	if req.Truncation != nil {
		r.Truncation = *req.Truncation
	}
	return r
}

func outputText(text string) OutputText {
	return OutputText{Type: "output_text", Annotations: []json.RawMessage{}, Logprobs: []json.RawMessage{}, Text: text}
}

// newItemID returns prefix followed by 50 random hex digits, as the API's
// resp_, msg_ and rs_ ids.
func newItemID(prefix string) string {
	b := make([]byte, 25)
	rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// rawOr returns raw, or def when raw is absent or null.
func rawOr(raw json.RawMessage, def string) json.RawMessage {
	if raw = bytes.TrimSpace(raw); len(raw) == 0 || isNull(raw) {
		return json.RawMessage(def)
	}
	return raw
}

func isNull(raw []byte) bool { return string(raw) == "null" }

// responseInputTokens counts input tokens: ceil(len(instructions)/4), plus
// ceil(len(text)/4)+4 per item text, plus 3 (lengths in bytes).
func responseInputTokens(instructions *string, texts []string) int64 {
	n := int64(3)
	if instructions != nil {
		n += (int64(len(*instructions)) + 3) / 4
	}
	for _, t := range texts {
		n += (int64(len(t))+3)/4 + 4
	}
	return n
}

// inputItem is the part of one input item the fake reads.
type inputItem struct {
	Type      string          `json:"type"`
	Role      *string         `json:"role"`
	Content   json.RawMessage `json:"content"`
	Output    json.RawMessage `json:"output"`
	Arguments string          `json:"arguments"`
}

// responseInput reads the input field and returns the text of each item: a
// string input is one item; an array holds items, whose text is a
// message's content (string, or the "text" of its parts), a
// function_call_output's output or a function_call's arguments, and ""
// for any other item type. An absent or null input has no items.
func responseInput(raw json.RawMessage) ([]string, *demo.APIError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || isNull(raw) {
		return nil, nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []string{s}, nil
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return nil, demo.BadRequest("input", "invalid_type", fmt.Sprintf(
			"Invalid type for 'input': expected one of a string or an array of input items, but got %s instead.", kind(raw)))
	}
	texts := make([]string, len(list))
	for i, el := range list {
		param := fmt.Sprintf("input[%d]", i)
		var it inputItem
		if el = bytes.TrimSpace(el); len(el) == 0 || el[0] != '{' {
			return nil, demo.BadRequest(param, "invalid_type", fmt.Sprintf(
				"Invalid type for '%s': expected an input item object, but got %s instead.", param, kind(el)))
		}
		if err := json.Unmarshal(el, &it); err != nil {
			p, what := param, "an input item object"
			var te *json.UnmarshalTypeError
			if errors.As(err, &te) && te.Field != "" {
				p, what = param+"."+te.Field, te.Type.String()
			}
			return nil, demo.BadRequest(p, "invalid_type", fmt.Sprintf(
				"Invalid type for '%s': expected %s, but got %s instead.", p, what, kindOf(err)))
		}
		switch it.Type {
		case "", "message":
			if it.Role == nil {
				return nil, demo.BadRequest(param+".role", "missing_required_parameter",
					"Missing required parameter: '"+param+".role'.")
			}
			if len(bytes.TrimSpace(it.Content)) == 0 {
				return nil, demo.BadRequest(param+".content", "missing_required_parameter",
					"Missing required parameter: '"+param+".content'.")
			}
			text, ok := contentText(it.Content)
			if !ok {
				p := param + ".content"
				return nil, demo.BadRequest(p, "invalid_type", fmt.Sprintf(
					"Invalid type for '%s': expected one of a string or an array of content parts, but got %s instead.", p, kind(it.Content)))
			}
			texts[i] = text
		case "function_call_output":
			texts[i], _ = contentText(it.Output)
		case "function_call":
			texts[i] = it.Arguments
		}
	}
	return texts, nil
}

// contentText returns a content's text: the string, or the concatenated
// "text" strings of its parts (input_text, output_text; other parts such as
// input_image have none). ok is false when raw is neither a string nor an
// array of objects.
func contentText(raw json.RawMessage) (text string, ok bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "", false
	}
	if json.Unmarshal(raw, &text) == nil {
		return text, true
	}
	var parts []map[string]json.RawMessage
	if json.Unmarshal(raw, &parts) != nil {
		return "", false
	}
	var b strings.Builder
	for _, p := range parts {
		if p == nil {
			return "", false
		}
		var t string
		if json.Unmarshal(p["text"], &t) == nil {
			b.WriteString(t)
		}
	}
	return b.String(), true
}

// kindOf describes the JSON value a decoding error is about.
func kindOf(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Value
	}
	return "an invalid value"
}

// kind describes a JSON value's type as OpenAI's error messages do.
func kind(raw []byte) string {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 {
		return "nothing"
	}
	switch raw[0] {
	case '"':
		return "a string"
	case '{':
		return "an object"
	case '[':
		return "an array"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}
