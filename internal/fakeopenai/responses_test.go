package fakeopenai

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/packages/ssestream"
	"github.com/openai/openai-go/v3/responses"
)

// responseBody is a Responses API body with input "Say hi" (sayHiResp
// input tokens) and extra fields.
func responseBody(extra string) string {
	return `{"model":"gpt-4o-mini","input":"Say hi"` + extra + `}`
}

// sayHiResp is the counting rule for the string input "Say hi": ceil(6/4)+4+3.
const sayHiResp = 2 + 4 + 3

// sseEvent is one server-sent event: its "event:" name and "data:" line.
type sseEvent struct{ name, data string }

// readSSE reads a stream to its end, returning its events; err is the read
// error, if the stream did not end cleanly.
func readSSE(resp *http.Response) (events []sseEvent, err error) {
	br := bufio.NewReader(resp.Body)
	var cur sseEvent
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && line == "" {
				return events, nil
			}
			return events, err
		}
		line = strings.TrimSuffix(line, "\n")
		switch {
		case strings.HasPrefix(line, "event: "):
			cur.name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			cur.data = strings.TrimPrefix(line, "data: ")
		case line == "":
			events = append(events, cur)
			cur = sseEvent{}
		}
	}
}

// sdkStream decodes a stream response with the openai-go SDK.
func sdkStream(t *testing.T, resp *http.Response) (events []responses.ResponseStreamEventUnion) {
	t.Helper()
	stream := ssestream.NewStream[responses.ResponseStreamEventUnion](ssestream.NewDecoder(resp), nil)
	for stream.Next() {
		events = append(events, stream.Current())
	}
	if err := stream.Err(); err != nil {
		t.Fatalf("SDK stream error: %v", err)
	}
	return events
}

func decodeResponse(t *testing.T, resp *http.Response) (responses.Response, []byte) {
	t.Helper()
	if resp.StatusCode != 200 {
		t.Fatalf("got status %d, want 200", resp.StatusCode)
	}
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var r responses.Response
	if err := json.Unmarshal(raw, &r); err != nil {
		t.Fatalf("SDK decode of %s: %v", raw, err)
	}
	return r, raw
}

func TestResponsesShape(t *testing.T) {
	s := New(t, Options{APIKey: realKey})
	body := responseBody(`,"instructions":"Be brief.","max_output_tokens":100,"reasoning":{"effort":"low"},` +
		`"store":false,"tools":[],"metadata":{"k":"v"},"temperature":0.5,"unknown_field":[1]`)
	resp := postTo(t, s, "/responses", body)
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", got)
	}
	r, raw := decodeResponse(t, resp)
	wantKeys := []string{"background", "completed_at", "created_at", "error", "id", "incomplete_details", "instructions",
		"max_output_tokens", "max_tool_calls", "metadata", "model", "object", "output", "parallel_tool_calls",
		"previous_response_id", "prompt_cache_key", "reasoning", "safety_identifier", "service_tier", "status",
		"store", "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "usage", "user"}
	if got := keys(t, raw); !slices.Equal(got, wantKeys) {
		t.Errorf("got keys %q, want %q", got, wantKeys)
	}
	for _, want := range []string{`"error":null`, `"incomplete_details":null`, `"object":"response"`, `"status":"completed"`,
		`"reasoning":{"effort":"low","summary":null}`, `"tool_choice":"auto"`, `"text":{"format":{"type":"text"},"verbosity":"medium"}`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("got %s, want it to contain %s", raw, want)
		}
	}
	if !strings.HasPrefix(r.ID, "resp_") || len(r.ID) != 55 || r.Object != "response" || r.CreatedAt == 0 || r.CompletedAt == 0 ||
		r.Model != "gpt-4o-mini" || r.Status != responses.ResponseStatusCompleted {
		t.Errorf("got id %q object %q created %v completed %v model %q status %q", r.ID, r.Object, r.CreatedAt, r.CompletedAt, r.Model, r.Status)
	}
	if r.Instructions.OfString != "Be brief." || r.MaxOutputTokens != 100 || !strings.Contains(string(raw), `"store":false`) || r.Temperature != 0.5 || r.TopP != 1 ||
		r.Reasoning.Effort != "low" || r.Metadata["k"] != "v" || !r.ParallelToolCalls || r.Truncation != "disabled" {
		t.Errorf("got echoed settings %s", raw)
	}
	if len(r.Output) != 1 {
		t.Fatalf("got %d output items, want 1", len(r.Output))
	}
	m := r.Output[0].AsMessage()
	if r.Output[0].Type != "message" || !strings.HasPrefix(m.ID, "msg_") || m.Status != "completed" || m.Role != "assistant" || len(m.Content) != 1 {
		t.Fatalf("got output %s", r.Output[0].RawJSON())
	}
	text := m.Content[0].AsOutputText()
	if m.Content[0].Type != "output_text" || text.Text != strings.Join(tokens(DefaultCompletion), "") || text.Annotations == nil {
		t.Errorf("got content %s", m.Content[0].RawJSON())
	}
	if r.OutputText() != text.Text {
		t.Errorf("got OutputText %q, want %q", r.OutputText(), text.Text)
	}
	in := int64((9+3)/4 + sayHiResp) // instructions "Be brief." is 9 bytes
	u := r.Usage
	if u.InputTokens != in || u.OutputTokens != DefaultCompletion || u.TotalTokens != in+DefaultCompletion ||
		!u.InputTokensDetails.JSON.CachedTokens.Valid() || !u.OutputTokensDetails.JSON.ReasoningTokens.Valid() {
		t.Errorf("got usage %s, want %d in and %d out", u.RawJSON(), in, DefaultCompletion)
	}
	if got, want := s.Billed(), (Usage{PromptTokens: in, CompletionTokens: DefaultCompletion}); got != want {
		t.Errorf("got billed %+v, want %+v", got, want)
	}
}

func TestResponsesSDKClient(t *testing.T) {
	s := New(t, Options{APIKey: realKey})
	s.SetBehavior(Behavior{ReasoningTokens: 3, CachedTokens: 2})
	client := openai.NewClient(option.WithBaseURL(s.URL()), option.WithAPIKey(realKey), option.WithMaxRetries(0))
	params := responses.ResponseNewParams{
		Model:           "gpt-5",
		Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("Say hi")},
		MaxOutputTokens: openai.Int(10),
	}
	r, err := client.Responses.New(t.Context(), params)
	if err != nil {
		t.Fatal(err)
	}
	if r.Status != "incomplete" || r.IncompleteDetails.Reason != "max_output_tokens" || r.OutputText() != "w1 w2 w3 w4 w5 w6 w7" ||
		r.Usage.OutputTokens != 10 || r.Usage.OutputTokensDetails.ReasoningTokens != 3 || r.Usage.InputTokensDetails.CachedTokens != 2 {
		t.Errorf("got %s", r.RawJSON())
	}
	stream := client.Responses.NewStreaming(t.Context(), params)
	var text strings.Builder
	var last responses.ResponseStreamEventUnion
	for stream.Next() {
		last = stream.Current()
		if last.Type == "response.output_text.delta" {
			text.WriteString(last.AsResponseOutputTextDelta().Delta)
		}
	}
	if err := stream.Err(); err != nil {
		t.Fatal(err)
	}
	if text.String() != "w1 w2 w3 w4 w5 w6 w7" || last.Type != "response.incomplete" || last.AsResponseIncomplete().Response.Usage.OutputTokens != 10 {
		t.Errorf("got text %q and last event %s", text.String(), last.RawJSON())
	}
	want := Usage{PromptTokens: 2 * sayHiResp, CompletionTokens: 20, ReasoningTokens: 6, CachedTokens: 4}
	if got := s.Billed(); got != want {
		t.Errorf("got billed %+v, want %+v", got, want)
	}
}

func TestResponsesInputTokens(t *testing.T) {
	tests := []struct {
		name, body string
		want       int64
	}{
		{"string", `{"model":"m","input":"Say hi"}`, sayHiResp},
		{"empty string", `{"model":"m","input":""}`, 0 + 4 + 3},
		{"multi-byte", `{"model":"m","input":"h\u00e9llo"}`, 2 + 4 + 3}, // 6 bytes
		{"no input", `{"model":"m"}`, 3},
		{"null input", `{"model":"m","input":null,"instructions":null}`, 3},
		{"instructions", `{"model":"m","input":"Say hi","instructions":"abcde"}`, 2 + sayHiResp},
		{"empty array", `{"model":"m","input":[]}`, 3},
		{"string contents", `{"model":"m","input":[{"role":"user","content":"abcd"},{"role":"assistant","content":"abcdefgh"}]}`, (1 + 4) + (2 + 4) + 3},
		{"content parts", `{"model":"m","input":[{"role":"user","content":[{"type":"input_text","text":"abc"},` +
			`{"type":"input_image","image_url":"https://example.com/a.png","detail":"auto"},{"type":"input_text","text":"de"}]}]}`, 2 + 4 + 3},
		{"message items", `{"model":"m","input":[{"type":"message","role":"developer","content":"abcd"},` +
			`{"type":"message","role":"assistant","content":[{"type":"output_text","text":"abcde","annotations":[]}]}]}`, (1 + 4) + (2 + 4) + 3},
		{"function items", `{"model":"m","input":[{"type":"function_call","call_id":"c","name":"f","arguments":"{\"a\":1}"},` +
			`{"type":"function_call_output","call_id":"c","output":"sunny"}]}`, (2 + 4) + (2 + 4) + 3},
		{"other items", `{"model":"m","input":[{"type":"item_reference","id":"msg_1"},{"type":"reasoning","id":"rs_1","summary":[]}]}`, 4 + 4 + 3},
		{"image only", `{"model":"m","input":[{"role":"user","content":[{"type":"input_image","file_id":"file-1"}]}]}`, 4 + 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			r, _ := decodeResponse(t, postTo(t, s, "/responses", tt.body))
			if r.Usage.InputTokens != tt.want || s.Billed().PromptTokens != tt.want {
				t.Errorf("got input_tokens %d, billed %d, want %d", r.Usage.InputTokens, s.Billed().PromptTokens, tt.want)
			}
			if tt.want > int64(len(tt.body)) {
				t.Errorf("input_tokens %d exceed the body's %d bytes", tt.want, len(tt.body))
			}
		})
	}
}

func TestResponsesBilling(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		behavior   Behavior
		extra      string
		want       Usage
		wantText   int // text tokens sent
		incomplete bool
	}{
		{"uncapped", Options{}, Behavior{}, ``, Usage{sayHiResp, 16, 0, 0}, 16, false},
		{"uncapped larger default", Options{DefaultCompletion: 40}, Behavior{}, ``, Usage{sayHiResp, 40, 0, 0}, 40, false},
		{"cap above default", Options{}, Behavior{}, `,"max_output_tokens":100`, Usage{sayHiResp, 16, 0, 0}, 16, false},
		{"cap at default", Options{}, Behavior{}, `,"max_output_tokens":16`, Usage{sayHiResp, 16, 0, 0}, 16, false},
		{"cap below default", Options{}, Behavior{}, `,"max_output_tokens":5`, Usage{sayHiResp, 5, 0, 0}, 5, true},
		{"null cap", Options{}, Behavior{}, `,"max_output_tokens":null`, Usage{sayHiResp, 16, 0, 0}, 16, false},
		{"bill at cap", Options{}, Behavior{BillAtCap: true}, `,"max_output_tokens":100`, Usage{sayHiResp, 100, 0, 0}, 100, true},
		{"bill at cap uncapped", Options{DefaultCompletion: 5}, Behavior{BillAtCap: true}, ``, Usage{sayHiResp, 5, 0, 0}, 5, false},
		{"reasoning", Options{}, Behavior{ReasoningTokens: 10}, `,"reasoning":{"effort":"high"}`, Usage{sayHiResp, 16, 10, 0}, 6, false},
		{"reasoning fills the cap", Options{}, Behavior{ReasoningTokens: 50, BillAtCap: true}, `,"max_output_tokens":20`, Usage{sayHiResp, 20, 20, 0}, 0, true},
		{"cached", Options{}, Behavior{CachedTokens: 5}, ``, Usage{sayHiResp, 16, 0, 5}, 16, false},
		{"cached above input", Options{}, Behavior{CachedTokens: 100}, ``, Usage{sayHiResp, 16, 0, sayHiResp}, 16, false},
		{"prompt override", Options{}, Behavior{PromptTokens: func([]byte) int64 { return 1234 }, CachedTokens: 1000}, ``, Usage{1234, 16, 0, 1000}, 16, false},
	}
	for _, tt := range tests {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", tt.name, stream), func(t *testing.T) {
				opts := tt.opts
				opts.APIKey = realKey
				s := New(t, opts)
				s.SetBehavior(tt.behavior)
				extra := tt.extra
				if stream {
					extra += `,"stream":true`
				}
				resp := postTo(t, s, "/responses", responseBody(extra))
				var r responses.Response
				var streamed strings.Builder
				if stream {
					events := sdkStream(t, resp)
					for _, e := range events {
						if e.Type == "response.output_text.delta" {
							streamed.WriteString(e.AsResponseOutputTextDelta().Delta)
						}
					}
					last := events[len(events)-1]
					wantLast := "response.completed"
					if tt.incomplete {
						wantLast = "response.incomplete"
					}
					if last.Type != wantLast {
						t.Fatalf("got last event %q, want %q", last.Type, wantLast)
					}
					r = last.Response
				} else {
					r, _ = decodeResponse(t, resp)
				}
				wantStatus, wantReason := responses.ResponseStatusCompleted, ""
				if tt.incomplete {
					wantStatus, wantReason = responses.ResponseStatusIncomplete, "max_output_tokens"
				}
				if r.Status != wantStatus || r.IncompleteDetails.Reason != wantReason || (r.CompletedAt != 0) == tt.incomplete {
					t.Errorf("got status %q reason %q completed_at %v, want %q %q", r.Status, r.IncompleteDetails.Reason, r.CompletedAt, wantStatus, wantReason)
				}
				u := r.Usage
				got := Usage{u.InputTokens, u.OutputTokens, u.OutputTokensDetails.ReasoningTokens, u.InputTokensDetails.CachedTokens}
				if got != tt.want || u.TotalTokens != u.InputTokens+u.OutputTokens {
					t.Errorf("got usage %s, want %+v", u.RawJSON(), tt.want)
				}
				// Output: a reasoning item when reasoning, then the message
				// unless reasoning took every token.
				var types []string
				for _, o := range r.Output {
					types = append(types, o.Type)
				}
				var wantTypes []string
				if tt.want.ReasoningTokens > 0 {
					wantTypes = append(wantTypes, "reasoning")
				}
				if tt.wantText > 0 {
					wantTypes = append(wantTypes, "message")
				}
				if !slices.Equal(types, wantTypes) {
					t.Fatalf("got output types %q, want %q", types, wantTypes)
				}
				wantText := strings.Join(tokens(int64(tt.wantText)), "")
				if r.OutputText() != wantText || (stream && streamed.String() != wantText) {
					t.Errorf("got text %q (streamed %q), want %d tokens", r.OutputText(), streamed.String(), tt.wantText)
				}
				if tt.wantText > 0 {
					wantMsg := responses.ResponseOutputMessageStatusCompleted
					if tt.incomplete {
						wantMsg = responses.ResponseOutputMessageStatusIncomplete
					}
					if m := r.Output[len(r.Output)-1].AsMessage(); m.Status != wantMsg {
						t.Errorf("got message status %q, want %q", m.Status, wantMsg)
					}
				}
				if got := s.Billed(); got != tt.want {
					t.Errorf("got billed %+v, want %+v", got, tt.want)
				}
				calls := s.Calls()
				if len(calls) != 1 || calls[0].Usage != tt.want || calls[0].Stream != stream || calls[0].Status != 200 {
					t.Errorf("got calls %+v, want one 200 call with usage %+v, stream %v", calls, tt.want, stream)
				}
			})
		}
	}
}

// eventTypes returns the data "type" of each event, checking that it is
// also the event name and that sequence numbers count from 0.
func eventTypes(t *testing.T, events []sseEvent) []string {
	t.Helper()
	var types []string
	for i, e := range events {
		var head struct {
			Type           string `json:"type"`
			SequenceNumber *int   `json:"sequence_number"`
		}
		if err := json.Unmarshal([]byte(e.data), &head); err != nil {
			t.Fatalf("event %d: %q: %v", i, e.data, err)
		}
		if head.Type != e.name || head.SequenceNumber == nil || *head.SequenceNumber != i {
			t.Errorf("event %d: got name %q type %q sequence_number %v", i, e.name, head.Type, head.SequenceNumber)
		}
		types = append(types, head.Type)
	}
	return types
}

func TestResponsesStreamWire(t *testing.T) {
	for _, tt := range []struct {
		name     string
		behavior Behavior
		want     []string
	}{
		{"plain", Behavior{}, []string{"response.created", "response.in_progress", "response.output_item.added",
			"response.content_part.added", "response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
			"response.output_text.done", "response.content_part.done", "response.output_item.done", "response.incomplete"}},
		{"reasoning", Behavior{ReasoningTokens: 1}, []string{"response.created", "response.in_progress",
			"response.output_item.added", "response.output_item.done", "response.output_item.added",
			"response.content_part.added", "response.output_text.delta", "response.output_text.delta",
			"response.output_text.done", "response.content_part.done", "response.output_item.done", "response.incomplete"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			s.SetBehavior(tt.behavior)
			resp := postTo(t, s, "/responses", responseBody(`,"max_output_tokens":3,"stream":true`))
			if got := resp.Header.Get("Content-Type"); got != "text/event-stream" {
				t.Errorf("got Content-Type %q, want text/event-stream", got)
			}
			events, err := readSSE(resp)
			if err != nil {
				t.Fatal(err)
			}
			if got := eventTypes(t, events); !slices.Equal(got, tt.want) {
				t.Fatalf("got events %q, want %q", got, tt.want)
			}
			created := events[0].data
			for _, want := range []string{`"status":"in_progress"`, `"usage":null`, `"output":[]`, `"completed_at":null`} {
				if !strings.Contains(created, want) {
					t.Errorf("got response.created %s, want it to contain %s", created, want)
				}
			}
			msgIndex := slices.Index(tt.want, "response.content_part.added") - 1 // the message's output_item.added
			if tt.behavior.ReasoningTokens > 0 {
				for _, e := range events[2:4] {
					if !strings.Contains(e.data, `"output_index":0,"item":{"id":"rs_`) || !strings.Contains(e.data, `"type":"reasoning","summary":[]}`) {
						t.Errorf("got reasoning event %s", e.data)
					}
				}
			}
			added := events[msgIndex].data
			if !strings.Contains(added, `"status":"in_progress","content":[],"role":"assistant"`) {
				t.Errorf("got output_item.added %s", added)
			}
			delta := events[msgIndex+2].data
			if got, want := keys(t, []byte(delta)), []string{"content_index", "delta", "item_id", "logprobs", "output_index", "sequence_number", "type"}; !slices.Equal(got, want) {
				t.Errorf("got delta keys %q, want %q", got, want)
			}
			if !strings.Contains(delta, `"delta":"w1"`) {
				t.Errorf("got first delta %s", delta)
			}
			final := events[len(events)-1].data
			for _, want := range []string{`"status":"incomplete"`, `"incomplete_details":{"reason":"max_output_tokens"}`, `"input_tokens_details":{"cached_tokens":0}`} {
				if !strings.Contains(final, want) {
					t.Errorf("got final event %s, want it to contain %s", final, want)
				}
			}
		})
	}
}

func TestResponsesOmitUsageStream(t *testing.T) {
	s := New(t, Options{APIKey: realKey})
	s.SetBehavior(Behavior{OmitUsage: true, ReasoningTokens: 2})
	events, err := readSSE(postTo(t, s, "/responses", responseBody(`,"stream":true`)))
	if err != nil {
		t.Fatal(err)
	}
	final := events[len(events)-1]
	if final.name != "response.completed" || !strings.Contains(final.data, `"usage":null`) {
		t.Errorf("got final event %s %s, want response.completed with usage null", final.name, final.data)
	}
	if got, want := s.Billed(), (Usage{PromptTokens: sayHiResp, CompletionTokens: 16, ReasoningTokens: 2}); got != want {
		t.Errorf("got billed %+v, want %+v", got, want)
	}
}

func TestResponsesFailStream(t *testing.T) {
	s := New(t, Options{APIKey: realKey})
	s.SetBehavior(Behavior{FailStream: true, ReasoningTokens: 5})
	resp := postTo(t, s, "/responses", responseBody(`,"stream":true`))
	events := sdkStream(t, resp)
	var types []string
	deltas := 0
	for _, e := range events {
		types = append(types, e.Type)
		if e.Type == "response.output_text.delta" {
			deltas++
		}
	}
	// 16 output tokens: 5 reasoning, 11 text of which 6 are sent.
	want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.output_item.done",
		"response.output_item.added", "response.content_part.added"}
	for range 6 {
		want = append(want, "response.output_text.delta")
	}
	want = append(want, "response.failed")
	if !slices.Equal(types, want) {
		t.Fatalf("got events %q, want %q", types, want)
	}
	r := events[len(events)-1].AsResponseFailed().Response
	if r.Status != "failed" || r.Error.Code != "server_error" || r.Error.Message == "" || len(r.Output) != 0 ||
		!strings.Contains(r.RawJSON(), `"usage":null`) {
		t.Errorf("got failed response %s", r.RawJSON())
	}
	if got, want := s.Billed(), (Usage{PromptTokens: sayHiResp, CompletionTokens: 5 + 6, ReasoningTokens: 5}); got != want {
		t.Errorf("got billed %+v, want %+v", got, want)
	}

	t.Run("ignored without stream", func(t *testing.T) {
		s := New(t, Options{APIKey: realKey})
		s.SetBehavior(Behavior{FailStream: true})
		r, _ := decodeResponse(t, postTo(t, s, "/responses", responseBody(``)))
		if r.Status != "completed" || s.Billed() != (Usage{PromptTokens: sayHiResp, CompletionTokens: 16}) {
			t.Errorf("got status %q billed %+v", r.Status, s.Billed())
		}
	})
	t.Run("no text", func(t *testing.T) {
		s := New(t, Options{APIKey: realKey})
		s.SetBehavior(Behavior{FailStream: true, ReasoningTokens: 100})
		events, err := readSSE(postTo(t, s, "/responses", responseBody(`,"stream":true`)))
		if err != nil {
			t.Fatal(err)
		}
		got := eventTypes(t, events)
		want := []string{"response.created", "response.in_progress", "response.output_item.added", "response.output_item.done", "response.failed"}
		if !slices.Equal(got, want) {
			t.Errorf("got events %q, want %q", got, want)
		}
		if got, want := s.Billed(), (Usage{PromptTokens: sayHiResp, CompletionTokens: 16, ReasoningTokens: 16}); got != want {
			t.Errorf("got billed %+v, want %+v", got, want)
		}
	})
}

func TestResponsesCutAndStallStream(t *testing.T) {
	full := Usage{PromptTokens: sayHiResp, CompletionTokens: 16}
	const all = 24 // 2 lifecycle, 2 item, 2 part, 16 delta, 1 text done, 1 final
	for _, n := range []int{1, 3, all - 1, all, 100} {
		t.Run(fmt.Sprintf("cut after %d", n), func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			s.SetBehavior(Behavior{CutAfterEvents: n})
			events, err := readSSE(postTo(t, s, "/responses", responseBody(`,"stream":true`)))
			if !errors.Is(err, io.ErrUnexpectedEOF) || len(events) != min(n, all) {
				t.Errorf("got %d events and error %v, want %d and unexpected EOF", len(events), err, min(n, all))
			}
			eventTypes(t, events)
			if got := s.Billed(); got != full {
				t.Errorf("got billed %+v, want %+v", got, full)
			}
		})
	}
	t.Run("stall", func(t *testing.T) {
		s := New(t, Options{APIKey: realKey})
		s.SetBehavior(Behavior{StallAfterEvents: 2})
		testStall(t, s, "/responses", responseBody(`,"stream":true`), 6) // two events of 3 lines
		if got := s.Billed(); got != full {
			t.Errorf("got billed %+v, want %+v", got, full)
		}
	})
}
