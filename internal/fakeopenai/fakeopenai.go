// Package fakeopenai is a fake OpenAI upstream for hardcap's proxy tests. It
// serves POST /v1/chat/completions with the wire format and counting rule of
// package demo (whose building blocks it reuses), and POST /v1/completions
// (legacy completions), POST /v1/embeddings and POST /v1/responses (the
// Responses API) in OpenAI's wire format. It
// records every call, tracks what a real provider would bill, fails the test
// when a request leaks a hardcap key or lacks the real one, and can
// misbehave on demand (error statuses, cut or stalled streams, missing
// usage, malformed JSON).
//
// Legacy completions and embeddings count each prompt or input as
// ceil(len(text)/4)+1 tokens (len in bytes), or as its number of ids when
// given as token ids. The Responses API counts input_tokens as
// ceil(len(instructions)/4), plus ceil(len(text)/4)+4 per input item, plus 3,
// where an item's text is its string content or the concatenated "text" of
// its content parts, and a string input is one item (never more than the
// body's length).
package fakeopenai

import (
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"testing"

	"github.com/hardcap/hardcap/demo"
	"github.com/hardcap/hardcap/internal/fakeserver"
)

// DefaultCompletion is the completion size in tokens per choice (per
// candidate for legacy completions) used when Options.DefaultCompletion is
// zero.
const DefaultCompletion = 16

// Options configures New.
type Options struct {
	// APIKey is the real provider key the proxy must inject: every request
	// must carry exactly "Authorization: Bearer <APIKey>". Required; it must
	// not contain "hc_".
	APIKey string
	// DefaultCompletion is the completion size in tokens per choice when the
	// request has no cap (and the most generated under a cap unless
	// Behavior.BillAtCap). Zero means DefaultCompletion (16).
	DefaultCompletion int64
}

// Behavior tunes how the server answers; the zero value answers correctly.
type Behavior struct {
	// BillAtCap makes each choice generate exactly the request's cap in
	// tokens (max_completion_tokens, else max_tokens; DefaultCompletion when
	// uncapped), so completion_tokens is the cap times n: the worst case.
	// For legacy completions each of the max(n, best_of) candidates per
	// prompt generates exactly max_tokens (16 when absent). For responses
	// output_tokens is exactly max_output_tokens (DefaultCompletion when
	// absent) and a capped response is "incomplete". Every billed token of a
	// returned choice is also sent (reasoning tokens excepted), so keep caps
	// modest (say <= 100000). Embeddings have no completion to inflate.
	BillAtCap bool
	// PromptTokens overrides prompt_tokens (input_tokens for responses) with
	// a function of the raw request body, on every route; nil means the
	// counting rule of demo.PromptTokens for chat and the package's rules
	// for the other routes.
	PromptTokens func(body []byte) int64
	// Status, when non-zero, is an error status (4xx or 5xx) answered with an
	// OpenAI error body before any output; nothing is billed.
	Status int
	// CutAfterEvents, when positive, makes a stream write this many data
	// events (at most all events, never "[DONE]") and then drop the
	// connection abruptly; a non-stream response writes half its JSON body
	// (with the full Content-Length) and drops. The full reply is billed.
	// Embeddings are never streamed.
	CutAfterEvents int
	// OmitUsage never sends usage: no "usage" field in a non-stream
	// response, and no final usage chunk in a stream even when
	// include_usage asks for it; a responses stream ends with "usage": null
	// in its response.completed or response.incomplete event. The reply is
	// still billed.
	OmitUsage bool
	// StallAfterEvents, when positive, makes a stream write this many data
	// events (at most all chunks) and then block until the request context
	// ends or the server closes; a non-stream response sends its 200 headers
	// and blocks likewise. The full reply is billed.
	StallAfterEvents int
	// MalformedJSON makes a non-stream response a 200 whose body is not
	// valid JSON; ignored for streams. The reply is billed.
	MalformedJSON bool
	// ReasoningTokens is how many of a response's output_tokens are
	// reasoning (at most all of them), reported in
	// output_tokens_details.reasoning_tokens. They come first, as a
	// "reasoning" output item (id "rs_...", empty summary) ahead of the
	// message, and are not sent as text: the message holds the other
	// output tokens, and is left out when there are none. Responses only.
	ReasoningTokens int64
	// CachedTokens is how many of a response's input_tokens are reported
	// read from the prompt cache (at most all of them), in
	// input_tokens_details.cached_tokens. Responses only.
	CachedTokens int64
	// FailStream makes a responses stream fail after half its text deltas
	// (rounded up): it ends with response.failed (status "failed", a
	// server_error error object, empty output, "usage": null), as the API
	// does on a server error. Only the input and the output generated
	// before the failure (reasoning and the sent deltas) are billed.
	// Ignored for non-stream requests and other routes.
	FailStream bool
}

// Usage is a billed token count, in tokens.
type Usage struct {
	// PromptTokens counts input tokens, cached ones included.
	PromptTokens int64
	// CompletionTokens counts output tokens over all choices, reasoning
	// ones included.
	CompletionTokens int64
	// ReasoningTokens is the part of CompletionTokens spent on reasoning
	// (responses only; billed at the output price).
	ReasoningTokens int64
	// CachedTokens is the part of PromptTokens read from the prompt cache
	// (responses only; billed at the cache price).
	CachedTokens int64
}

// Call records one request the server received.
type Call struct {
	// Header is a copy of the request headers.
	Header http.Header
	// Body is the raw request body.
	Body []byte
	// Usage is what the request generated and a real provider would bill,
	// whatever was delivered (cut stream, client gone, usage omitted). It is
	// zero when Status is not 200.
	Usage Usage
	// Stream reports whether the request asked for a stream.
	Stream bool
	// Status is the HTTP status answered.
	Status int
}

// Server is a running fake upstream. Its methods are safe for concurrent use.
type Server struct {
	base       *fakeserver.Server[Behavior, Call]
	keys       fakeserver.KeyRule
	completion int64
}

// New starts a fake upstream for t, closed by t.Cleanup. It calls t.Fatal
// when opts.APIKey is empty or contains "hc_".
func New(t testing.TB, opts Options) *Server {
	t.Helper()
	s := &Server{
		keys: fakeserver.KeyRule{
			Header:    "Authorization",
			Value:     "Bearer " + opts.APIKey,
			Describe:  `"Bearer " followed by the real API key`,
			Forbidden: []string{"X-Api-Key", "Api-Key"},
			Provider:  "OpenAI",
		},
		completion: opts.DefaultCompletion,
	}
	if s.completion <= 0 {
		s.completion = DefaultCompletion
	}
	s.base = fakeserver.Start[Behavior, Call](t, "fakeopenai", opts.APIKey, http.HandlerFunc(s.serve))
	return s
}

// URL returns the API base URL, ending in "/v1".
func (s *Server) URL() string { return s.base.URL() + "/v1" }

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
			u.PromptTokens += c.Usage.PromptTokens
			u.CompletionTokens += c.Usage.CompletionTokens
			u.ReasoningTokens += c.Usage.ReasoningTokens
			u.CachedTokens += c.Usage.CachedTokens
		}
	}
	return u
}

// faults returns the misbehaviors of b that package fakeserver implements.
func (b Behavior) faults() fakeserver.Faults {
	return fakeserver.Faults{CutAfterEvents: b.CutAfterEvents, StallAfterEvents: b.StallAfterEvents, MalformedJSON: b.MalformedJSON}
}

// handler answers one routed POST request, after the checks common to all
// routes: it returns an error to answer instead, or what the request bills
// and a function writing the 200 response.
type handler func(s *Server, body []byte, b Behavior) (Usage, func(http.ResponseWriter, *http.Request), *demo.APIError)

// routes maps each served path to its handler.
var routes = map[string]handler{
	"/v1/chat/completions": (*Server).chat,
	"/v1/completions":      (*Server).completions,
	"/v1/embeddings":       (*Server).embeddings,
	"/v1/responses":        (*Server).responses,
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	b := s.base.Behavior()
	body, _ := io.ReadAll(r.Body)
	var probe struct {
		Stream bool `json:"stream"`
	}
	if r.URL.Path != "/v1/embeddings" { // embeddings never stream
		json.Unmarshal(body, &probe)
	}
	idx := s.base.Record(Call{Header: r.Header.Clone(), Body: body, Stream: probe.Stream})
	fail := func(e *demo.APIError) {
		s.base.Update(idx, func(c *Call) { c.Status = e.Status })
		demo.WriteError(w, e)
	}

	if !s.keyOK(idx, r) {
		fail(demo.NewAPIError(http.StatusUnauthorized, "invalid_request_error", "invalid_api_key",
			"Incorrect API key provided (fakeopenai)."))
		return
	}
	if b.Status != 0 {
		fail(statusError(b.Status))
		return
	}
	h, ok := routes[r.URL.Path]
	if !ok {
		fail(demo.NewAPIError(http.StatusNotFound, "invalid_request_error", "",
			"Invalid URL ("+r.Method+" "+r.URL.Path+")"))
		return
	}
	if r.Method != http.MethodPost {
		fail(demo.NewAPIError(http.StatusMethodNotAllowed, "invalid_request_error", "",
			"Invalid method for URL ("+r.Method+" "+r.URL.Path+")"))
		return
	}
	u, write, apiErr := h(s, body, b)
	if apiErr != nil {
		fail(apiErr)
		return
	}
	s.base.Update(idx, func(c *Call) {
		c.Status = http.StatusOK
		c.Usage = u
	})
	write(w, r)
}

// chat answers POST /v1/chat/completions.
func (s *Server) chat(body []byte, b Behavior) (Usage, func(http.ResponseWriter, *http.Request), *demo.APIError) {
	req, apiErr := demo.ParseChatRequest(body)
	if apiErr != nil {
		return Usage{}, nil, apiErr
	}

	reply := demo.NewReply(req, make([]demo.ReplyChoice, req.Choices()))
	if b.PromptTokens != nil {
		reply.PromptTokens = b.PromptTokens(body)
	}
	size := s.completion
	limit, capped := req.CompletionCap()
	atCap := capped && b.BillAtCap
	if atCap {
		size = limit
	}
	for i := range reply.Choices {
		reply.Choices[i] = req.Cap(tokens(size))
		if atCap {
			reply.Choices[i].FinishReason = demo.FinishLength // cut by the cap, not ended
		}
	}
	u := reply.Usage()
	billed := Usage{PromptTokens: u.PromptTokens, CompletionTokens: u.CompletionTokens}

	if req.Stream {
		chunks := reply.Chunks(req.IncludeUsage())
		if b.OmitUsage && req.IncludeUsage() {
			chunks = chunks[:len(chunks)-1]
		}
		events := make([]any, len(chunks))
		for i, c := range chunks {
			events[i] = c
		}
		return billed, func(w http.ResponseWriter, r *http.Request) { s.stream(w, r, b, events) }, nil
	}
	cc := reply.Completion()
	if b.OmitUsage {
		cc.Usage = nil
	}
	prefix := `{"id":"` + cc.ID + `","object":"chat.completion","choices":[{`
	return billed, func(w http.ResponseWriter, r *http.Request) { s.complete(w, r, b, cc, prefix) }, nil
}

// keyOK checks the credentials of call idx, reporting each problem through
// t.Errorf without printing any header value.
func (s *Server) keyOK(idx int, r *http.Request) bool {
	return s.keys.Check(r, func(format string, args ...any) {
		s.base.Errorf("call %d (%s): "+format, append([]any{idx, r.Method}, args...)...)
	})
}

// statusError returns an OpenAI-shaped error for an injected status.
func statusError(status int) *demo.APIError {
	msg := "fakeopenai: injected status " + strconv.Itoa(status)
	switch {
	case status == http.StatusUnauthorized:
		return demo.NewAPIError(status, "invalid_request_error", "invalid_api_key", msg)
	case status == http.StatusTooManyRequests:
		return demo.NewAPIError(status, "requests", "rate_limit_exceeded", msg)
	case status >= 500:
		return demo.NewAPIError(status, "server_error", "", msg)
	}
	return demo.NewAPIError(status, "invalid_request_error", "", msg)
}

// tokens returns n completion tokens "w1", " w2", ... " wn".
func tokens(n int64) []string { return fakeserver.Tokens("w", n) }

// complete writes v as a non-stream 200 response, misbehaving as b says.
// With MalformedJSON the body is v's JSON after prefix, an unclosed opening
// of the same kind of object.
func (s *Server) complete(w http.ResponseWriter, r *http.Request, b Behavior, v any, prefix string) {
	s.base.Complete(w, r, b.faults(), v, prefix)
}

// stream writes events as a server-sent event stream ended by "[DONE]",
// misbehaving as b says. Any usage chunk OmitUsage hides is already gone.
func (s *Server) stream(w http.ResponseWriter, r *http.Request, b Behavior, events []any) {
	s.streamEvents(w, r, b, events, true)
}

// namedEvent is a server-sent event written with an "event:" line before its
// data, as the Responses API does.
type namedEvent struct {
	name string
	data any
}

// streamEvents writes events as a server-sent event stream, ended by
// "[DONE]" when done is set, misbehaving as b says. A namedEvent is written
// as "event: <name>\ndata: <json>\n\n", anything else as "data: <json>\n\n".
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request, b Behavior, events []any, done bool) {
	if demo.StartStream(w) != nil {
		return
	}
	if s.base.Stream(w, r, b.faults(), len(events), func(i int) error { return writeEvent(w, events[i]) }) && done {
		demo.WriteDone(w)
	}
}

// writeEvent writes and flushes one event of streamEvents.
func writeEvent(w http.ResponseWriter, e any) error {
	if ne, ok := e.(namedEvent); ok {
		return fakeserver.WriteEvent(w, ne.name, ne.data)
	}
	return demo.WriteEvent(w, e)
}
