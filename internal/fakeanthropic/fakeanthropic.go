// Package fakeanthropic is a fake Anthropic Messages API upstream for
// hardcap's proxy tests, the Anthropic twin of package fakeopenai. It speaks
// the real wire format (JSON messages, server-sent event streams, extended
// thinking, prompt-cache usage fields, token counting and error bodies),
// records every call, tracks what a real provider would bill, fails the
// test when a request leaks a hardcap key or lacks the real one, and can
// misbehave on demand (error statuses, cut or stalled streams, missing
// usage, malformed JSON).
//
// Input tokens follow a simple rule that keeps hardcap's byte-length bound
// true: the sum over messages of ceil(len(text)/4)+4, plus
// ceil(len(system)/4), plus 3, where text is the string content or the
// concatenated "text" of the text blocks. The result is at most the length
// of any accepted request body.
package fakeanthropic

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/hardcap/hardcap/internal/fakeserver"
)

// DefaultCompletion is the reply size in text tokens used when
// Options.DefaultCompletion is zero.
const DefaultCompletion = 16

// Stop reasons used in replies.
const (
	// StopEndTurn means the reply ended on its own.
	StopEndTurn = "end_turn"
	// StopMaxTokens means the reply was cut at the request's max_tokens.
	StopMaxTokens = "max_tokens"
)

// Paths served, relative to URL.
const (
	// MessagesPath is the Messages API route (JSON and streams).
	MessagesPath = "/v1/messages"
	// CountTokensPath is the token counting route; it bills nothing.
	CountTokensPath = "/v1/messages/count_tokens"
)

// MinThinkingBudget is the smallest thinking.budget_tokens the API accepts.
const MinThinkingBudget = 1024

// Options configures New.
type Options struct {
	// APIKey is the real provider key the proxy must inject: every request
	// must carry exactly "x-api-key: <APIKey>". Required; it must not
	// contain "hc_".
	APIKey string
	// DefaultCompletion is the reply size in text tokens when max_tokens
	// allows it (and the most generated unless Behavior.BillAtCap). Zero
	// means DefaultCompletion (16).
	DefaultCompletion int64
}

// Behavior tunes how the server answers; the zero value answers correctly.
type Behavior struct {
	// BillAtCap makes each reply generate exactly max_tokens output tokens,
	// thinking included, with stop_reason "max_tokens": the worst case.
	// Every billed token is also sent, so keep caps modest (say <= 100000).
	BillAtCap bool
	// InputTokens overrides the uncached input_tokens count with a function
	// of the raw request body, for messages and count_tokens alike; nil
	// means the package's counting rule.
	InputTokens func(body []byte) int64
	// CacheRead is the number of input tokens reported as read from the
	// prompt cache (cache_read_input_tokens), on top of InputTokens.
	CacheRead int64
	// CacheWrite5m is the number of input tokens reported as written to the
	// cache with the 5-minute lifetime (cache_creation.ephemeral_5m_input_tokens,
	// part of cache_creation_input_tokens), on top of InputTokens.
	CacheWrite5m int64
	// CacheWrite1h is the number of input tokens reported as written to the
	// cache with the 1-hour lifetime (cache_creation.ephemeral_1h_input_tokens,
	// part of cache_creation_input_tokens), on top of InputTokens.
	CacheWrite1h int64
	// StartOutputTokens is the output_tokens reported in a stream's
	// message_start event (the real API reports 1 or more there), capped at
	// the final count. Zero means 1.
	StartOutputTokens int64
	// Status, when non-zero, is an error status (4xx or 5xx) answered with
	// an Anthropic error body before any output, on every route; nothing is
	// billed. 529 answers overloaded_error.
	Status int
	// CutAfterEvents, when positive, makes a stream write this many events
	// (at most all of them but message_stop) and then drop the connection
	// abruptly; a non-stream response writes half its JSON body (with the
	// full Content-Length) and drops. The full reply is billed. It does not
	// apply to count_tokens.
	CutAfterEvents int
	// StallAfterEvents, when positive, makes a stream write this many events
	// (at most all of them but message_stop) and then block until the
	// request context ends or the server closes; a non-stream response
	// sends its 200 headers and blocks likewise. The full reply is billed.
	// It does not apply to count_tokens.
	StallAfterEvents int
	// OmitUsage never sends usage: no "usage" field in a non-stream
	// response, and none in a stream's message_start and message_delta
	// events. The reply is still billed. It does not apply to count_tokens.
	OmitUsage bool
	// MalformedJSON makes a non-stream response a 200 whose body is not
	// valid JSON; ignored for streams and count_tokens. The reply is billed.
	MalformedJSON bool
	// WorkspaceGeo is the workspace's default inference geo ("global",
	// "us"), used when a request has no inference_geo. The usage reports
	// where inference ran when either is set, and Usage.InferenceGeo
	// records it ("us" is billed at 1.1 times the token prices).
	WorkspaceGeo string
}

// Usage is what a real provider would bill for a call, in tokens.
type Usage struct {
	// InputTokens counts uncached input tokens (the wire's input_tokens).
	InputTokens int64
	// CacheReadInputTokens counts input tokens read from the prompt cache.
	CacheReadInputTokens int64
	// CacheCreation5m counts input tokens written to the cache with the
	// 5-minute lifetime.
	CacheCreation5m int64
	// CacheCreation1h counts input tokens written to the cache with the
	// 1-hour lifetime.
	CacheCreation1h int64
	// OutputTokens counts output tokens, thinking included.
	OutputTokens int64
	// InferenceGeo is where inference ran ("global" or "us"), empty when
	// neither the request nor the workspace says; Billed leaves it empty.
	InferenceGeo string
}

// add returns the field-wise sum of u and v.
func (u Usage) add(v Usage) Usage {
	return Usage{
		InputTokens:          u.InputTokens + v.InputTokens,
		CacheReadInputTokens: u.CacheReadInputTokens + v.CacheReadInputTokens,
		CacheCreation5m:      u.CacheCreation5m + v.CacheCreation5m,
		CacheCreation1h:      u.CacheCreation1h + v.CacheCreation1h,
		OutputTokens:         u.OutputTokens + v.OutputTokens,
	}
}

// Call records one request the server received.
type Call struct {
	// Header is a copy of the request headers.
	Header http.Header
	// Body is the raw request body.
	Body []byte
	// Usage is what the request generated and a real provider would bill,
	// whatever was delivered (cut stream, client gone, usage omitted). It is
	// zero for count_tokens and when Status is not 200.
	Usage Usage
	// Stream reports whether the request asked for a stream.
	Stream bool
	// Status is the HTTP status answered.
	Status int
	// Path is the request URL path, e.g. MessagesPath.
	Path string
}

// Server is a running fake upstream. Its methods are safe for concurrent use.
type Server struct {
	base       *fakeserver.Server[Behavior, Call]
	keys       fakeserver.KeyRule
	completion int64
}

// New starts a fake upstream for t, closed by t.Cleanup, which first
// releases stalled handlers. It calls t.Fatal when opts.APIKey is empty or
// contains "hc_".
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{
		keys: fakeserver.KeyRule{
			Header:    "X-Api-Key",
			Value:     opts.APIKey,
			Describe:  "the real API key",
			Forbidden: []string{"Authorization", "Api-Key"},
			Provider:  "Anthropic",
		},
		completion: opts.DefaultCompletion,
	}
	if s.completion <= 0 {
		s.completion = DefaultCompletion
	}
	s.base = fakeserver.Start[Behavior, Call](t, "fakeanthropic", opts.APIKey, http.HandlerFunc(s.serve))
	return s
}

// URL returns the API base URL without "/v1", like https://api.anthropic.com.
func (s *Server) URL() string { return s.base.URL() }

// SetBehavior sets the behavior of subsequent requests.
func (s *Server) SetBehavior(b Behavior) { s.base.SetBehavior(b) }

// Calls returns a copy of the calls received so far, in arrival order.
func (s *Server) Calls() []Call { return s.base.Calls() }

// Billed returns the usage summed over every call answered with status 200,
// including cut, stalled and abandoned ones, which bill their full reply.
func (s *Server) Billed() Usage {
	var u Usage
	for _, c := range s.base.Calls() {
		if c.Status == http.StatusOK {
			u = u.add(c.Usage)
		}
	}
	return u
}

// faults returns the misbehaviors of b that package fakeserver implements.
func (b Behavior) faults() fakeserver.Faults {
	return fakeserver.Faults{CutAfterEvents: b.CutAfterEvents, StallAfterEvents: b.StallAfterEvents, MalformedJSON: b.MalformedJSON}
}

// apiError is an error answered with an Anthropic error body.
type apiError struct {
	status  int
	typ     string
	message string
}

// newError returns an apiError whose type is the one the API uses for
// status.
func newError(status int, message string) *apiError {
	return &apiError{status: status, typ: errorType(status), message: message}
}

// badRequest returns a 400 invalid_request_error.
func badRequest(message string) *apiError { return newError(http.StatusBadRequest, message) }

// errorType returns the Anthropic error type for an HTTP status.
func errorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusPaymentRequired:
		return "billing_error"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusNotFound:
		return "not_found_error"
	case http.StatusRequestEntityTooLarge:
		return "request_too_large"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	case http.StatusGatewayTimeout:
		return "timeout_error"
	case 529:
		return "overloaded_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// errorBody is the body of an Anthropic error response.
type errorBody struct {
	Type      string      `json:"type"`
	Error     errorDetail `json:"error"`
	RequestID string      `json:"request_id"`
}

type errorDetail struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

func newRequestID() string { return "req_" + rand.Text() }

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	w.Write(b)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	b := s.base.Behavior()
	reqID := newRequestID()
	w.Header().Set("Request-Id", reqID)
	body, _ := io.ReadAll(r.Body)
	var probe struct {
		Stream bool `json:"stream"`
	}
	json.Unmarshal(body, &probe)
	idx := s.base.Record(Call{Header: r.Header.Clone(), Body: body, Stream: probe.Stream, Path: r.URL.Path})
	fail := func(e *apiError) {
		s.base.Update(idx, func(c *Call) { c.Status = e.status })
		writeJSON(w, e.status, errorBody{Type: "error", Error: errorDetail{Type: e.typ, Message: e.message}, RequestID: reqID})
	}

	if e := s.checkHeaders(idx, r); e != nil {
		fail(e)
		return
	}
	if b.Status != 0 {
		fail(newError(b.Status, "fakeanthropic: injected status "+strconv.Itoa(b.Status)))
		return
	}
	if r.URL.Path != MessagesPath && r.URL.Path != CountTokensPath {
		fail(newError(http.StatusNotFound, "Not found: "+r.URL.Path))
		return
	}
	if r.Method != http.MethodPost {
		fail(newError(http.StatusMethodNotAllowed, "Method Not Allowed: "+r.Method+" "+r.URL.Path))
		return
	}
	count := r.URL.Path == CountTokensPath
	req, e := parseRequest(body, count, strings.Contains(r.Header.Get("Anthropic-Beta"), "interleaved-thinking"))
	if e != nil {
		fail(e)
		return
	}
	input := req.inputTokens()
	if b.InputTokens != nil {
		input = b.InputTokens(body)
	}
	if count {
		s.base.Update(idx, func(c *Call) { c.Status = http.StatusOK })
		writeJSON(w, http.StatusOK, struct {
			InputTokens int64 `json:"input_tokens"`
		}{input})
		return
	}

	rep := s.plan(req, b, input)
	s.base.Update(idx, func(c *Call) {
		c.Status = http.StatusOK
		c.Usage = rep.usage
	})
	if req.Stream {
		s.stream(w, r, b, rep)
		return
	}
	s.complete(w, r, b, rep)
}

// checkHeaders checks the credentials and version header of call idx,
// reporting each problem through t.Errorf without printing any header
// value. It returns the error to answer, nil when all is well.
func (s *Server) checkHeaders(idx int, r *http.Request) *apiError {
	bad := func(format string, args ...any) {
		s.base.Errorf("call %d (%s %s): "+format, append([]any{idx, r.Method, r.URL.Path}, args...)...)
	}
	if !s.keys.Check(r, bad) {
		return newError(http.StatusUnauthorized, "invalid x-api-key")
	}
	if r.Header.Get("Anthropic-Version") == "" {
		bad("header %q is missing", "Anthropic-Version")
		return badRequest("anthropic-version: header is required")
	}
	return nil
}

// request is the subset of a Messages or count_tokens request body the
// server reads. Unknown fields are ignored.
type request struct {
	Model     *string         `json:"model"`
	MaxTokens *int64          `json:"max_tokens"`
	Messages  []messageParam  `json:"messages"`
	System    json.RawMessage `json:"system"`
	Stream    bool            `json:"stream"`
	Thinking  *thinkingParam  `json:"thinking"`
	// InferenceGeo is where inference must run; nil means the workspace
	// default (Behavior.WorkspaceGeo).
	InferenceGeo *string `json:"inference_geo"`
}

type messageParam struct {
	Role    string          `json:"role"`
	Content json.RawMessage `json:"content"`
}

type thinkingParam struct {
	Type         string `json:"type"`
	BudgetTokens *int64 `json:"budget_tokens"`
}

// parseRequest decodes and validates a request body; count selects the
// count_tokens rules (no max_tokens). interleaved lifts the rule that the
// thinking budget be below max_tokens, as the interleaved-thinking beta
// does.
func parseRequest(body []byte, count, interleaved bool) (*request, *apiError) {
	var req request
	if err := json.Unmarshal(body, &req); err != nil {
		return nil, badRequest("invalid request body: " + err.Error())
	}
	if req.Model == nil || *req.Model == "" {
		return nil, badRequest("model: Field required")
	}
	if !count {
		if req.MaxTokens == nil {
			return nil, badRequest("max_tokens: Field required")
		}
		if *req.MaxTokens < 1 {
			return nil, badRequest("max_tokens: Input should be greater than or equal to 1")
		}
	}
	if req.Messages == nil {
		return nil, badRequest("messages: Field required")
	}
	if len(req.Messages) == 0 {
		return nil, badRequest("messages: at least one message is required")
	}
	for i, m := range req.Messages {
		if m.Role != "user" && m.Role != "assistant" {
			return nil, badRequest(fmt.Sprintf("messages.%d.role: Input should be 'user' or 'assistant'", i))
		}
		if _, ok := blocksText(m.Content); !ok {
			return nil, badRequest(fmt.Sprintf("messages.%d.content: Input should be a valid string or list of content blocks", i))
		}
	}
	if len(req.System) > 0 && string(req.System) != "null" {
		if _, ok := blocksText(req.System); !ok {
			return nil, badRequest("system: Input should be a valid string or list of text blocks")
		}
	}
	if t := req.Thinking; t != nil {
		switch t.Type {
		case "disabled", "adaptive":
		case "enabled":
			switch {
			case t.BudgetTokens == nil:
				return nil, badRequest("thinking.enabled.budget_tokens: Field required")
			case *t.BudgetTokens < MinThinkingBudget:
				return nil, badRequest("thinking.enabled.budget_tokens: Input should be greater than or equal to 1024")
			case !count && !interleaved && *t.BudgetTokens >= *req.MaxTokens:
				return nil, badRequest("`max_tokens` must be greater than `thinking.budget_tokens`")
			}
		default:
			return nil, badRequest("thinking.type: Input should be 'enabled', 'adaptive' or 'disabled'")
		}
	}
	return &req, nil
}

// blocksText returns the text of a content or system value: the string
// itself, or the concatenated "text" of the text blocks of an array. ok is
// false when raw is neither a string nor an array of objects.
func blocksText(raw json.RawMessage) (text string, ok bool) {
	if len(raw) > 0 && raw[0] == '"' {
		var str string
		err := json.Unmarshal(raw, &str)
		return str, err == nil
	}
	var blocks []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if len(raw) == 0 || raw[0] != '[' || json.Unmarshal(raw, &blocks) != nil {
		return "", false
	}
	var b strings.Builder
	for _, blk := range blocks {
		if blk.Type == "text" {
			b.WriteString(blk.Text)
		}
	}
	return b.String(), true
}

// inputTokens applies the package's counting rule to a validated request.
func (r *request) inputTokens() int64 {
	n := int64(3)
	for _, m := range r.Messages {
		text, _ := blocksText(m.Content)
		n += ceilQuarter(len(text)) + 4
	}
	if len(r.System) > 0 {
		system, _ := blocksText(r.System)
		n += ceilQuarter(len(system))
	}
	return n
}

func ceilQuarter(n int) int64 { return (int64(n) + 3) / 4 }

// thinkingBudget reports whether the request enables thinking and its
// budget; adaptive thinking has no budget but max_tokens.
func (r *request) thinkingBudget() (int64, bool) {
	switch {
	case r.Thinking == nil:
		return 0, false
	case r.Thinking.Type == "enabled":
		return *r.Thinking.BudgetTokens, true
	case r.Thinking.Type == "adaptive":
		return *r.MaxTokens, true
	}
	return 0, false
}

// reply is one planned answer.
type reply struct {
	id, model string
	thinking  bool
	thought   []string // thinking tokens
	text      []string // text tokens
	signature string
	stop      string
	usage     Usage
}

// geo is where the request's inference runs: its inference_geo, else the
// workspace default; "" (reported as nothing) when neither is set.
func (r *request) geo(b Behavior) string {
	if r.InferenceGeo != nil {
		return *r.InferenceGeo
	}
	return b.WorkspaceGeo
}

// plan sizes the reply to req: DefaultCompletion text tokens after up to
// DefaultCompletion thinking tokens (never above the budget), cut at
// max_tokens; or exactly max_tokens under BillAtCap, thinking first.
func (s *Server) plan(req *request, b Behavior, input int64) *reply {
	limit := *req.MaxTokens
	budget, thinking := req.thinkingBudget()
	var think, total int64
	stop := StopMaxTokens
	if b.BillAtCap {
		total = limit
		if thinking {
			think = min(budget, total)
		}
	} else {
		if thinking {
			think = min(budget, s.completion)
		}
		want := think + s.completion
		total = min(want, limit)
		think = min(think, total)
		if want <= limit {
			stop = StopEndTurn
		}
	}
	return &reply{
		id:        "msg_" + rand.Text(),
		model:     *req.Model,
		thinking:  thinking,
		thought:   fakeserver.Tokens("t", think),
		text:      fakeserver.Tokens("w", total-think),
		signature: "fakesig" + rand.Text(),
		stop:      stop,
		usage: Usage{
			InputTokens:          input,
			CacheReadInputTokens: b.CacheRead,
			CacheCreation5m:      b.CacheWrite5m,
			CacheCreation1h:      b.CacheWrite1h,
			OutputTokens:         total,
			InferenceGeo:         req.geo(b),
		},
	}
}

// Wire types.

type usageJSON struct {
	InputTokens              int64          `json:"input_tokens"`
	CacheCreationInputTokens int64          `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     int64          `json:"cache_read_input_tokens"`
	CacheCreation            *cacheCreation `json:"cache_creation,omitempty"`
	OutputTokens             int64          `json:"output_tokens"`
	ServiceTier              string         `json:"service_tier,omitempty"`
	InferenceGeo             string         `json:"inference_geo,omitempty"`
}

type cacheCreation struct {
	Ephemeral5m int64 `json:"ephemeral_5m_input_tokens"`
	Ephemeral1h int64 `json:"ephemeral_1h_input_tokens"`
}

// message returns the usage object of a message, with output_tokens set to
// output.
func (u Usage) message(output int64) *usageJSON {
	return &usageJSON{
		InputTokens:              u.InputTokens,
		CacheCreationInputTokens: u.CacheCreation5m + u.CacheCreation1h,
		CacheReadInputTokens:     u.CacheReadInputTokens,
		CacheCreation:            &cacheCreation{Ephemeral5m: u.CacheCreation5m, Ephemeral1h: u.CacheCreation1h},
		OutputTokens:             output,
		ServiceTier:              "standard",
		InferenceGeo:             u.InferenceGeo,
	}
}

// delta is the cumulative usage object of a message_delta event, which
// carries no cache_creation breakdown nor service_tier.
func (u Usage) delta() *usageJSON {
	return &usageJSON{
		InputTokens:              u.InputTokens,
		CacheCreationInputTokens: u.CacheCreation5m + u.CacheCreation1h,
		CacheReadInputTokens:     u.CacheReadInputTokens,
		OutputTokens:             u.OutputTokens,
	}
}

type messageJSON struct {
	ID           string     `json:"id"`
	Type         string     `json:"type"`
	Role         string     `json:"role"`
	Model        string     `json:"model"`
	Content      []any      `json:"content"`
	StopReason   *string    `json:"stop_reason"`
	StopSequence *string    `json:"stop_sequence"`
	Usage        *usageJSON `json:"usage,omitempty"`
}

type textBlock struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type thinkingBlock struct {
	Type      string `json:"type"`
	Thinking  string `json:"thinking"`
	Signature string `json:"signature"`
}

type messageStartEvent struct {
	Type    string      `json:"type"`
	Message messageJSON `json:"message"`
}

type contentBlockStartEvent struct {
	Type         string `json:"type"`
	Index        int    `json:"index"`
	ContentBlock any    `json:"content_block"`
}

type contentBlockDeltaEvent struct {
	Type  string `json:"type"`
	Index int    `json:"index"`
	Delta any    `json:"delta"`
}

type textDelta struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type thinkingDelta struct {
	Type     string `json:"type"`
	Thinking string `json:"thinking"`
}

type signatureDelta struct {
	Type      string `json:"type"`
	Signature string `json:"signature"`
}

type indexEvent struct {
	Type  string `json:"type"`
	Index int    `json:"index"`
}

type messageDeltaEvent struct {
	Type  string            `json:"type"`
	Delta messageDeltaDelta `json:"delta"`
	Usage *usageJSON        `json:"usage,omitempty"`
}

type messageDeltaDelta struct {
	StopReason   string  `json:"stop_reason"`
	StopSequence *string `json:"stop_sequence"`
}

type typeOnly struct {
	Type string `json:"type"`
}

// message returns the complete non-stream message.
func (rep *reply) message(omitUsage bool) messageJSON {
	m := messageJSON{ID: rep.id, Type: "message", Role: "assistant", Model: rep.model, Content: []any{}, StopReason: &rep.stop}
	if rep.thinking {
		m.Content = append(m.Content, thinkingBlock{Type: "thinking", Thinking: strings.Join(rep.thought, ""), Signature: rep.signature})
	}
	if len(rep.text) > 0 {
		m.Content = append(m.Content, textBlock{Type: "text", Text: strings.Join(rep.text, "")})
	}
	if !omitUsage {
		m.Usage = rep.usage.message(rep.usage.OutputTokens)
	}
	return m
}

// event is one server-sent event; data's "type" is name.
type event struct {
	name string
	data any
}

// events returns the stream of rep: message_start, the thinking block if
// any, the text block if any (a ping after the first content_block_start),
// message_delta and message_stop.
func (rep *reply) events(b Behavior) []event {
	start := messageJSON{ID: rep.id, Type: "message", Role: "assistant", Model: rep.model, Content: []any{}}
	if !b.OmitUsage {
		first := b.StartOutputTokens
		if first <= 0 {
			first = 1
		}
		start.Usage = rep.usage.message(min(first, rep.usage.OutputTokens))
	}
	evs := []event{{"message_start", messageStartEvent{Type: "message_start", Message: start}}}
	index := 0
	block := func(content any, deltas []any) {
		evs = append(evs, event{"content_block_start", contentBlockStartEvent{Type: "content_block_start", Index: index, ContentBlock: content}})
		if index == 0 {
			evs = append(evs, event{"ping", typeOnly{Type: "ping"}})
		}
		for _, d := range deltas {
			evs = append(evs, event{"content_block_delta", contentBlockDeltaEvent{Type: "content_block_delta", Index: index, Delta: d}})
		}
		evs = append(evs, event{"content_block_stop", indexEvent{Type: "content_block_stop", Index: index}})
		index++
	}
	if rep.thinking {
		deltas := make([]any, 0, len(rep.thought)+1)
		for _, t := range rep.thought {
			deltas = append(deltas, thinkingDelta{Type: "thinking_delta", Thinking: t})
		}
		deltas = append(deltas, signatureDelta{Type: "signature_delta", Signature: rep.signature})
		block(thinkingBlock{Type: "thinking"}, deltas)
	}
	if len(rep.text) > 0 {
		deltas := make([]any, 0, len(rep.text))
		for _, t := range rep.text {
			deltas = append(deltas, textDelta{Type: "text_delta", Text: t})
		}
		block(textBlock{Type: "text"}, deltas)
	}
	md := messageDeltaEvent{Type: "message_delta", Delta: messageDeltaDelta{StopReason: rep.stop}}
	if !b.OmitUsage {
		md.Usage = rep.usage.delta()
	}
	return append(evs, event{"message_delta", md}, event{"message_stop", typeOnly{Type: "message_stop"}})
}

func (s *Server) complete(w http.ResponseWriter, r *http.Request, b Behavior, rep *reply) {
	prefix := `{"id":"` + rep.id + `","type":"message","content":[{`
	s.base.Complete(w, r, b.faults(), rep.message(b.OmitUsage), prefix)
}

func (s *Server) stream(w http.ResponseWriter, r *http.Request, b Behavior, rep *reply) {
	evs := rep.events(b)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	w.WriteHeader(http.StatusOK)
	if http.NewResponseController(w).Flush() != nil {
		return
	}
	last := len(evs) - 1 // message_stop, never sent when cut or stalled
	write := func(i int) error { return fakeserver.WriteEvent(w, evs[i].name, evs[i].data) }
	if s.base.Stream(w, r, b.faults(), last, write) {
		write(last)
	}
}
