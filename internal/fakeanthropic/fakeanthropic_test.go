package fakeanthropic

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/hardcap/hardcap/internal/fakeserver"
)

const realKey = "sk-ant-real-provider-key"

// Wire types as documented by Anthropic, written independently of the
// server's own so that the tests check the shapes.

type wireUsage struct {
	InputTokens              *int64 `json:"input_tokens"`
	CacheCreationInputTokens *int64 `json:"cache_creation_input_tokens"`
	CacheReadInputTokens     *int64 `json:"cache_read_input_tokens"`
	CacheCreation            *struct {
		Ephemeral5m int64 `json:"ephemeral_5m_input_tokens"`
		Ephemeral1h int64 `json:"ephemeral_1h_input_tokens"`
	} `json:"cache_creation"`
	OutputTokens *int64 `json:"output_tokens"`
	ServiceTier  string `json:"service_tier"`
}

type wireBlock struct {
	Type      string  `json:"type"`
	Text      *string `json:"text"`
	Thinking  *string `json:"thinking"`
	Signature *string `json:"signature"`
}

type wireMessage struct {
	ID           string          `json:"id"`
	Type         string          `json:"type"`
	Role         string          `json:"role"`
	Model        string          `json:"model"`
	Content      []wireBlock     `json:"content"`
	StopReason   *string         `json:"stop_reason"`
	StopSequence json.RawMessage `json:"stop_sequence"`
	Usage        *wireUsage      `json:"usage"`
}

type wireEvent struct {
	Type         string       `json:"type"`
	Message      *wireMessage `json:"message"`
	Index        *int         `json:"index"`
	ContentBlock *wireBlock   `json:"content_block"`
	Delta        *struct {
		Type         string          `json:"type"`
		Text         string          `json:"text"`
		Thinking     string          `json:"thinking"`
		Signature    string          `json:"signature"`
		StopReason   *string         `json:"stop_reason"`
		StopSequence json.RawMessage `json:"stop_sequence"`
	} `json:"delta"`
	Usage *wireUsage `json:"usage"`
}

type wireError struct {
	Type  string `json:"type"`
	Error *struct {
		Type    string `json:"type"`
		Message string `json:"message"`
	} `json:"error"`
	RequestID string `json:"request_id"`
}

const userText = "Say hi in twelve words." // 23 bytes

func body(extra string) string {
	return `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"` + userText + `"}]` + extra + `}`
}

// input is the counting rule for body's single 23-byte message.
const input = (6 + 4) + 3

func newRequest(t *testing.T, s *Server, method, path, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Api-Key", realKey)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	req.Header.Set("Content-Type", "application/json")
	return req
}

func do(t *testing.T, req *http.Request) *http.Response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func post(t *testing.T, s *Server, body string) *http.Response {
	t.Helper()
	return do(t, newRequest(t, s, "POST", "/v1/messages", body))
}

// readEvents reads server-sent events until the stream ends, checking that
// each has an event line naming its data's type; err is the read error that
// ended it, nil on a clean end.
func readEvents(t *testing.T, resp *http.Response) (events []wireEvent, err error) {
	t.Helper()
	br := bufio.NewReader(resp.Body)
	name := ""
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && line == "" && name == "" {
				return events, nil
			}
			return events, err
		}
		line = strings.TrimSuffix(line, "\n")
		if n, ok := strings.CutPrefix(line, "event: "); ok {
			name = n
			continue
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var e wireEvent
			if err := json.Unmarshal([]byte(data), &e); err != nil {
				t.Fatalf("event %q: %v", data, err)
			}
			if e.Type != name {
				t.Errorf("got data type %q after event %q, want them equal", e.Type, name)
			}
			events = append(events, e)
			name = ""
		}
	}
}

// streamed summarizes a decoded stream.
type streamed struct {
	types                 []string
	start, final          *wireUsage // message_start and message_delta usage
	stop                  string
	text, thinking        string
	textDeltas, thinDelts int
	signed                bool
}

func summarize(t *testing.T, events []wireEvent) streamed {
	t.Helper()
	var s streamed
	blocks := map[int]string{}
	for _, e := range events {
		s.types = append(s.types, e.Type)
		switch e.Type {
		case "message_start":
			m := e.Message
			if m == nil || m.Type != "message" || m.Role != "assistant" || m.Content == nil || len(m.Content) != 0 || m.StopReason != nil {
				t.Errorf("got message_start message %+v, want an empty assistant message", m)
				continue
			}
			s.start = m.Usage
		case "content_block_start":
			blocks[*e.Index] = e.ContentBlock.Type
		case "content_block_delta":
			switch e.Delta.Type {
			case "text_delta":
				if blocks[*e.Index] != "text" {
					t.Errorf("got text_delta in a %q block", blocks[*e.Index])
				}
				s.text += e.Delta.Text
				s.textDeltas++
			case "thinking_delta":
				if blocks[*e.Index] != "thinking" {
					t.Errorf("got thinking_delta in a %q block", blocks[*e.Index])
				}
				s.thinking += e.Delta.Thinking
				s.thinDelts++
			case "signature_delta":
				s.signed = e.Delta.Signature != ""
			default:
				t.Errorf("got delta type %q", e.Delta.Type)
			}
		case "message_delta":
			if e.Delta == nil || e.Delta.StopReason == nil || string(e.Delta.StopSequence) != "null" {
				t.Errorf("got message_delta delta %+v, want a stop_reason and a null stop_sequence", e.Delta)
				continue
			}
			s.stop = *e.Delta.StopReason
			s.final = e.Usage
		}
	}
	return s
}

func TestKeyCheck(t *testing.T) {
	tests := []struct {
		name       string
		url        string // appended to /v1/messages
		header     map[string]string
		rawHeader  map[string][]string
		wantErrs   []string // substrings, one per expected error
		wantStatus int
		wantType   string
	}{
		{name: "real key", wantStatus: 200},
		{name: "missing x-api-key", rawHeader: map[string][]string{"X-Api-Key": nil},
			wantErrs: []string{`"X-Api-Key" is missing`}, wantStatus: 401, wantType: "authentication_error"},
		{name: "wrong key", header: map[string]string{"X-Api-Key": "sk-ant-other-SECRET"},
			wantErrs: []string{`"X-Api-Key" is not`}, wantStatus: 401, wantType: "authentication_error"},
		{name: "two x-api-key headers", rawHeader: map[string][]string{"X-Api-Key": {realKey, realKey}},
			wantErrs: []string{`"X-Api-Key" appears 2 times`}, wantStatus: 401, wantType: "authentication_error"},
		{name: "hardcap key forwarded", header: map[string]string{"X-Api-Key": "hc_SECRET"},
			wantErrs: []string{`"X-Api-Key" is not`, `"X-Api-Key" contains a hardcap key`}, wantStatus: 401, wantType: "authentication_error"},
		{name: "Authorization", header: map[string]string{"Authorization": "Bearer " + realKey},
			wantErrs: []string{`"Authorization" must not`}, wantStatus: 401, wantType: "authentication_error"},
		{name: "api-key", header: map[string]string{"api-key": "whatever"},
			wantErrs: []string{`"Api-Key" must not`}, wantStatus: 401, wantType: "authentication_error"},
		{name: "hc_ in another header", header: map[string]string{"X-Trace": "abc hc_SECRET"},
			wantErrs: []string{`"X-Trace" contains a hardcap key`}, wantStatus: 401, wantType: "authentication_error"},
		{name: "hc_ in query", url: "?key=hc_SECRET",
			wantErrs: []string{"URL contains"}, wantStatus: 401, wantType: "authentication_error"},
		{name: "escaped hc_ in query", url: "?key=hc%5FSECRET",
			wantErrs: []string{"URL contains"}, wantStatus: 401, wantType: "authentication_error"},
		{name: "missing anthropic-version", rawHeader: map[string][]string{"Anthropic-Version": nil},
			wantErrs: []string{`"Anthropic-Version" is missing`}, wantStatus: 400, wantType: "invalid_request_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &fakeserver.RecordingTB{TB: t}
			s := New(rec, Options{APIKey: realKey})
			req := newRequest(t, s, "POST", "/v1/messages"+tt.url, body(""))
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			for k, v := range tt.rawHeader {
				req.Header[k] = v
			}
			resp := do(t, req)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("got status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			errs := rec.Errors()
			if len(errs) != len(tt.wantErrs) {
				t.Fatalf("got %d test errors %q, want %d", len(errs), errs, len(tt.wantErrs))
			}
			for i, want := range tt.wantErrs {
				if !strings.Contains(errs[i], want) {
					t.Errorf("error %d: got %q, want it to contain %q", i, errs[i], want)
				}
				for _, secret := range []string{"SECRET", realKey, "whatever"} {
					if strings.Contains(errs[i], secret) {
						t.Errorf("error %d: got %q, want no header value in it", i, errs[i])
					}
				}
			}
			if tt.wantStatus != 200 {
				var e wireError
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Type != "error" || e.Error == nil || e.Error.Type != tt.wantType {
					t.Errorf("got error body %+v (%v), want an Anthropic %s", e, err, tt.wantType)
				}
				if got := s.Billed(); got != (Usage{}) {
					t.Errorf("got billed %+v, want zero", got)
				}
			}
			if calls := s.Calls(); len(calls) != 1 || calls[0].Status != tt.wantStatus || calls[0].Path != "/v1/messages" {
				t.Errorf("got calls %+v, want one on /v1/messages with status %d", calls, tt.wantStatus)
			}
		})
	}
}

func TestNewRejectsBadKeys(t *testing.T) {
	for _, key := range []string{"", "hc_live_123"} {
		t.Run(fmt.Sprintf("%q", key), func(t *testing.T) {
			rec := &fakeserver.RecordingTB{TB: t}
			fakeserver.CatchFatal(func() { New(rec, Options{APIKey: key}) })
			if got := len(rec.Errors()); got != 1 {
				t.Errorf("got %d fatal errors, want 1", got)
			}
		})
	}
}

func TestURL(t *testing.T) {
	s := New(t, Options{APIKey: realKey})
	if got := s.URL(); !strings.HasPrefix(got, "http://") || strings.Contains(strings.TrimPrefix(got, "http://"), "/") {
		t.Errorf("got URL %q, want http://host:port without a path", got)
	}
}

func TestJSONShape(t *testing.T) {
	s := New(t, Options{APIKey: realKey})
	resp := post(t, s, body(""))
	if resp.StatusCode != 200 {
		t.Fatalf("got status %d, want 200", resp.StatusCode)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", got)
	}
	if got := resp.Header.Get("Request-Id"); !strings.HasPrefix(got, "req_") {
		t.Errorf("got request-id %q, want req_...", got)
	}
	var m wireMessage
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(m.ID, "msg_") || m.Type != "message" || m.Role != "assistant" || m.Model != "claude-sonnet-4-5" {
		t.Errorf("got id %q type %q role %q model %q, want msg_..., message, assistant, claude-sonnet-4-5", m.ID, m.Type, m.Role, m.Model)
	}
	if len(m.Content) != 1 || m.Content[0].Type != "text" || m.Content[0].Text == nil || len(strings.Fields(*m.Content[0].Text)) != DefaultCompletion {
		t.Errorf("got content %+v, want one text block of %d words", m.Content, DefaultCompletion)
	}
	if m.StopReason == nil || *m.StopReason != "end_turn" || string(m.StopSequence) != "null" {
		t.Errorf("got stop_reason %v stop_sequence %s, want end_turn and null", m.StopReason, m.StopSequence)
	}
	u := m.Usage
	if u == nil || u.InputTokens == nil || u.CacheCreationInputTokens == nil || u.CacheReadInputTokens == nil || u.CacheCreation == nil || u.OutputTokens == nil {
		t.Fatalf("got usage %+v, want every field", u)
	}
	if *u.InputTokens != input || *u.OutputTokens != DefaultCompletion || *u.CacheCreationInputTokens != 0 || *u.CacheReadInputTokens != 0 || u.ServiceTier != "standard" {
		t.Errorf("got usage %+v, want %d in, %d out, no cache, standard tier", *u, input, DefaultCompletion)
	}
}

func TestStreamShape(t *testing.T) {
	s := New(t, Options{APIKey: realKey, DefaultCompletion: 3})
	resp := post(t, s, body(`,"stream":true`))
	if resp.StatusCode != 200 {
		t.Fatalf("got status %d, want 200", resp.StatusCode)
	}
	if got := resp.Header.Get("Content-Type"); !strings.HasPrefix(got, "text/event-stream") {
		t.Errorf("got Content-Type %q, want text/event-stream", got)
	}
	events, err := readEvents(t, resp)
	if err != nil {
		t.Fatal(err)
	}
	sum := summarize(t, events)
	want := []string{"message_start", "content_block_start", "ping", "content_block_delta", "content_block_delta", "content_block_delta",
		"content_block_stop", "message_delta", "message_stop"}
	if fmt.Sprint(sum.types) != fmt.Sprint(want) {
		t.Errorf("got events %v, want %v", sum.types, want)
	}
	if sum.text != "w1 w2 w3" || sum.stop != "end_turn" {
		t.Errorf("got text %q stop %q, want %q and end_turn", sum.text, sum.stop, "w1 w2 w3")
	}
	if sum.start == nil || sum.start.CacheCreation == nil || *sum.start.InputTokens != input || *sum.start.OutputTokens != 1 || sum.start.ServiceTier != "standard" {
		t.Errorf("got message_start usage %+v, want %d in, 1 out, a cache_creation object", sum.start, input)
	}
	f := sum.final
	if f == nil || f.InputTokens == nil || f.CacheReadInputTokens == nil || f.CacheCreationInputTokens == nil || f.OutputTokens == nil {
		t.Fatalf("got message_delta usage %+v, want input, cache and output fields", f)
	}
	if *f.InputTokens != input || *f.OutputTokens != 3 {
		t.Errorf("got message_delta usage %d in %d out, want %d and 3", *f.InputTokens, *f.OutputTokens, input)
	}
}

func TestStartOutputTokens(t *testing.T) {
	tests := []struct {
		name      string
		start     int64
		maxTokens int
		wantStart int64
		wantFinal int64
	}{
		{"default", 0, 100, 1, DefaultCompletion},
		{"several", 5, 100, 5, DefaultCompletion},
		{"capped at final", 50, 100, DefaultCompletion, DefaultCompletion},
		{"capped at small max_tokens", 5, 2, 2, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			s.SetBehavior(Behavior{StartOutputTokens: tt.start})
			b := strings.Replace(body(`,"stream":true`), `"max_tokens":100`, fmt.Sprintf(`"max_tokens":%d`, tt.maxTokens), 1)
			events, err := readEvents(t, post(t, s, b))
			if err != nil {
				t.Fatal(err)
			}
			sum := summarize(t, events)
			if sum.start == nil || sum.final == nil {
				t.Fatal("got no usage, want message_start and message_delta usage")
			}
			if got := *sum.start.OutputTokens; got != tt.wantStart {
				t.Errorf("got message_start output_tokens %d, want %d", got, tt.wantStart)
			}
			if got := *sum.final.OutputTokens; got != tt.wantFinal || got < *sum.start.OutputTokens {
				t.Errorf("got message_delta output_tokens %d, want %d and >= message_start's", got, tt.wantFinal)
			}
		})
	}
}

func TestBilling(t *testing.T) {
	tests := []struct {
		name       string
		opts       Options
		behavior   Behavior
		maxTokens  int
		wantOutput int64
		wantStop   string
	}{
		{"default", Options{}, Behavior{}, 100, DefaultCompletion, "end_turn"},
		{"custom default", Options{DefaultCompletion: 3}, Behavior{}, 100, 3, "end_turn"},
		{"max_tokens equals default", Options{}, Behavior{}, DefaultCompletion, DefaultCompletion, "end_turn"},
		{"max_tokens below default", Options{}, Behavior{}, 5, 5, "max_tokens"},
		{"bill at cap", Options{}, Behavior{BillAtCap: true}, 100, 100, "max_tokens"},
		{"bill at cap of 1", Options{}, Behavior{BillAtCap: true}, 1, 1, "max_tokens"},
	}
	for _, tt := range tests {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", tt.name, stream), func(t *testing.T) {
				opts := tt.opts
				opts.APIKey = realKey
				s := New(t, opts)
				s.SetBehavior(tt.behavior)
				extra := ""
				if stream {
					extra = `,"stream":true`
				}
				b := strings.Replace(body(extra), `"max_tokens":100`, fmt.Sprintf(`"max_tokens":%d`, tt.maxTokens), 1)
				resp := post(t, s, b)
				if resp.StatusCode != 200 {
					t.Fatalf("got status %d, want 200", resp.StatusCode)
				}
				var in, out, words int64
				var stop string
				if stream {
					events, err := readEvents(t, resp)
					if err != nil {
						t.Fatal(err)
					}
					sum := summarize(t, events)
					if sum.final == nil {
						t.Fatal("got no message_delta usage, want one")
					}
					in, out, stop, words = *sum.final.InputTokens, *sum.final.OutputTokens, sum.stop, int64(sum.textDeltas)
					if got := sum.types[len(sum.types)-1]; got != "message_stop" {
						t.Errorf("got last event %q, want message_stop", got)
					}
				} else {
					var m wireMessage
					if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
						t.Fatal(err)
					}
					in, out, stop = *m.Usage.InputTokens, *m.Usage.OutputTokens, *m.StopReason
					words = int64(len(strings.Fields(*m.Content[0].Text)))
				}
				if in != input || out != tt.wantOutput || words != tt.wantOutput {
					t.Errorf("got %d in, %d out, %d text tokens, want %d, %d, %d", in, out, words, input, tt.wantOutput, tt.wantOutput)
				}
				if stop != tt.wantStop {
					t.Errorf("got stop_reason %q, want %q", stop, tt.wantStop)
				}
				want := Usage{InputTokens: input, OutputTokens: tt.wantOutput}
				if got := s.Billed(); got != want {
					t.Errorf("got billed %+v, want %+v", got, want)
				}
				calls := s.Calls()
				if len(calls) != 1 || calls[0].Usage != want || calls[0].Stream != stream || calls[0].Status != 200 {
					t.Errorf("got calls %+v, want one 200 call with usage %+v, stream %v", calls, want, stream)
				}
			})
		}
	}
}

func TestInputCounting(t *testing.T) {
	tests := []struct {
		name, body string
		want       int64
	}{
		{"string content", body(""), input},
		{"text blocks", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"Say hi in "},` +
			`{"type":"image","source":{"type":"base64","media_type":"image/png","data":"AAAA"}},{"type":"text","text":"twelve words."}]}]}`, input},
		{"string system", `{"model":"m","max_tokens":5,"system":"Be brief.","messages":[{"role":"user","content":"` + userText + `"}]}`, input + 3},
		{"block system", `{"model":"m","max_tokens":5,"system":[{"type":"text","text":"Be brief.","cache_control":{"type":"ephemeral"}}],` +
			`"messages":[{"role":"user","content":"` + userText + `"}]}`, input + 3},
		{"two messages", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":""}]}`, (1 + 4) + (0 + 4) + 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			var m wireMessage
			if err := json.NewDecoder(post(t, s, tt.body).Body).Decode(&m); err != nil || m.Usage == nil {
				t.Fatalf("got %+v (%v), want a message with usage", m, err)
			}
			if got := *m.Usage.InputTokens; got != tt.want || got > int64(len(tt.body)) {
				t.Errorf("got input_tokens %d, want %d and at most the body length %d", got, tt.want, len(tt.body))
			}
		})
	}
}

func TestInputTokensOverride(t *testing.T) {
	s := New(t, Options{APIKey: realKey})
	s.SetBehavior(Behavior{InputTokens: func(b []byte) int64 { return int64(len(b)) * 2 }})
	b := body("")
	var m wireMessage
	if err := json.NewDecoder(post(t, s, b).Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if got, want := *m.Usage.InputTokens, int64(len(b))*2; got != want {
		t.Errorf("got input_tokens %d, want %d", got, want)
	}
}

func TestCache(t *testing.T) {
	beh := Behavior{CacheRead: 1000, CacheWrite5m: 200, CacheWrite1h: 30}
	want := Usage{InputTokens: input, CacheReadInputTokens: 1000, CacheCreation5m: 200, CacheCreation1h: 30, OutputTokens: DefaultCompletion}
	check := func(t *testing.T, where string, u *wireUsage, breakdown bool) {
		t.Helper()
		if u == nil || u.InputTokens == nil || u.CacheReadInputTokens == nil || u.CacheCreationInputTokens == nil {
			t.Fatalf("%s: got usage %+v, want input and cache fields", where, u)
		}
		if *u.InputTokens != input || *u.CacheReadInputTokens != 1000 || *u.CacheCreationInputTokens != 230 {
			t.Errorf("%s: got input %d read %d creation %d, want %d, 1000, 230", where, *u.InputTokens, *u.CacheReadInputTokens, *u.CacheCreationInputTokens, input)
		}
		switch {
		case breakdown && (u.CacheCreation == nil || u.CacheCreation.Ephemeral5m != 200 || u.CacheCreation.Ephemeral1h != 30):
			t.Errorf("%s: got cache_creation %+v, want 200 (5m) and 30 (1h)", where, u.CacheCreation)
		case !breakdown && u.CacheCreation != nil:
			t.Errorf("%s: got cache_creation %+v, want none", where, u.CacheCreation)
		}
	}
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			s.SetBehavior(beh)
			if stream {
				events, err := readEvents(t, post(t, s, body(`,"stream":true`)))
				if err != nil {
					t.Fatal(err)
				}
				sum := summarize(t, events)
				check(t, "message_start", sum.start, true)
				check(t, "message_delta", sum.final, false)
			} else {
				var m wireMessage
				if err := json.NewDecoder(post(t, s, body("")).Body).Decode(&m); err != nil {
					t.Fatal(err)
				}
				check(t, "message", m.Usage, true)
			}
			if got := s.Billed(); got != want {
				t.Errorf("got billed %+v, want %+v", got, want)
			}
		})
	}
}

func TestThinking(t *testing.T) {
	tests := []struct {
		name         string
		behavior     Behavior
		maxTokens    int
		thinking     string
		beta         string
		wantThinking int
		wantText     int
		wantStop     string
	}{
		{"enabled", Behavior{}, 2000, `{"type":"enabled","budget_tokens":1024}`, "", DefaultCompletion, DefaultCompletion, "end_turn"},
		{"enabled, cut", Behavior{}, 20, `{"type":"enabled","budget_tokens":1024}`, "interleaved-thinking-2025-05-14", DefaultCompletion, 4, "max_tokens"},
		{"bill at cap", Behavior{BillAtCap: true}, 1100, `{"type":"enabled","budget_tokens":1024}`, "", 1024, 76, "max_tokens"},
		{"bill at cap, interleaved budget above cap", Behavior{BillAtCap: true}, 1050, `{"type":"enabled","budget_tokens":5000}`, "interleaved-thinking-2025-05-14", 1050, 0, "max_tokens"},
		{"adaptive", Behavior{}, 100, `{"type":"adaptive"}`, "", DefaultCompletion, DefaultCompletion, "end_turn"},
		{"disabled", Behavior{}, 100, `{"type":"disabled"}`, "", -1, DefaultCompletion, "end_turn"},
	}
	for _, tt := range tests {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", tt.name, stream), func(t *testing.T) {
				s := New(t, Options{APIKey: realKey})
				s.SetBehavior(tt.behavior)
				extra := `,"thinking":` + tt.thinking
				if stream {
					extra += `,"stream":true`
				}
				b := strings.Replace(body(extra), `"max_tokens":100`, fmt.Sprintf(`"max_tokens":%d`, tt.maxTokens), 1)
				req := newRequest(t, s, "POST", "/v1/messages", b)
				if tt.beta != "" {
					req.Header.Set("Anthropic-Beta", tt.beta)
				}
				resp := do(t, req)
				if resp.StatusCode != 200 {
					t.Fatalf("got status %d, want 200", resp.StatusCode)
				}
				thinking, text := -1, 0
				var out int64
				var stop string
				signed := false
				if stream {
					events, err := readEvents(t, resp)
					if err != nil {
						t.Fatal(err)
					}
					sum := summarize(t, events)
					if sum.thinDelts > 0 || sum.signed {
						thinking = sum.thinDelts
					}
					text, out, stop, signed = sum.textDeltas, *sum.final.OutputTokens, sum.stop, sum.signed
					if thinking >= 0 && (sum.types[1] != "content_block_start" || events[1].ContentBlock.Type != "thinking") {
						t.Errorf("got first block %+v, want thinking", events[1].ContentBlock)
					}
				} else {
					var m wireMessage
					if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
						t.Fatal(err)
					}
					for i, c := range m.Content {
						switch c.Type {
						case "thinking":
							if i != 0 {
								t.Errorf("got thinking block at %d, want 0", i)
							}
							thinking = len(strings.Fields(*c.Thinking))
							signed = c.Signature != nil && *c.Signature != ""
						case "text":
							text = len(strings.Fields(*c.Text))
						}
					}
					out, stop = *m.Usage.OutputTokens, *m.StopReason
				}
				if thinking != tt.wantThinking || text != tt.wantText {
					t.Errorf("got %d thinking and %d text tokens, want %d and %d", thinking, text, tt.wantThinking, tt.wantText)
				}
				if want := int64(max(thinking, 0) + text); out != want || out > int64(tt.maxTokens) {
					t.Errorf("got output_tokens %d, want %d and at most max_tokens %d", out, want, tt.maxTokens)
				}
				if thinking >= 0 && !signed {
					t.Error("got an unsigned thinking block, want a signature")
				}
				if stop != tt.wantStop {
					t.Errorf("got stop_reason %q, want %q", stop, tt.wantStop)
				}
				if got := s.Billed().OutputTokens; got != out {
					t.Errorf("got billed output %d, want %d", got, out)
				}
			})
		}
	}
}

func TestCutAfterEvents(t *testing.T) {
	// max_tokens 5: message_start, content_block_start, ping, 5 deltas,
	// content_block_stop, message_delta, then message_stop.
	tests := []struct {
		name       string
		cut        int
		wantEvents int
	}{
		{"after message_start", 1, 1},
		{"mid deltas", 4, 4},
		{"after every event but message_stop", 1000, 10},
	}
	for _, tt := range tests {
		t.Run("stream/"+tt.name, func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			s.SetBehavior(Behavior{CutAfterEvents: tt.cut})
			resp := post(t, s, strings.Replace(body(`,"stream":true`), `"max_tokens":100`, `"max_tokens":5`, 1))
			if resp.StatusCode != 200 {
				t.Fatalf("got status %d, want 200", resp.StatusCode)
			}
			events, err := readEvents(t, resp)
			if err == nil {
				t.Errorf("got a clean end of stream, want a read error")
			}
			if len(events) != tt.wantEvents {
				t.Errorf("got %d events, want %d", len(events), tt.wantEvents)
			}
			for _, e := range events {
				if e.Type == "message_stop" {
					t.Errorf("got message_stop, want none")
				}
			}
			if got, want := s.Billed(), (Usage{InputTokens: input, OutputTokens: 5}); got != want {
				t.Errorf("got billed %+v, want %+v", got, want)
			}
		})
	}
	t.Run("non-stream", func(t *testing.T) {
		s := New(t, Options{APIKey: realKey})
		s.SetBehavior(Behavior{CutAfterEvents: 1})
		resp := post(t, s, body(""))
		if resp.StatusCode != 200 {
			t.Fatalf("got status %d, want 200", resp.StatusCode)
		}
		got, err := io.ReadAll(resp.Body)
		if !errors.Is(err, io.ErrUnexpectedEOF) {
			t.Errorf("got read error %v, want unexpected EOF", err)
		}
		if json.Valid(got) || len(got) == 0 || int64(len(got)) >= resp.ContentLength {
			t.Errorf("got %d of %d bytes, want a non-empty invalid prefix", len(got), resp.ContentLength)
		}
		if got, want := s.Billed(), (Usage{InputTokens: input, OutputTokens: DefaultCompletion}); got != want {
			t.Errorf("got billed %+v, want %+v", got, want)
		}
	})
}

func TestOmitUsage(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			s.SetBehavior(Behavior{OmitUsage: true, CacheRead: 7})
			extra := ""
			if stream {
				extra = `,"stream":true`
			}
			resp := post(t, s, body(extra))
			if resp.StatusCode != 200 {
				t.Fatalf("got status %d, want 200", resp.StatusCode)
			}
			if stream {
				events, err := readEvents(t, resp)
				if err != nil {
					t.Fatal(err)
				}
				sum := summarize(t, events)
				if sum.start != nil || sum.final != nil {
					t.Errorf("got usage %+v and %+v, want none", sum.start, sum.final)
				}
				if sum.stop != "end_turn" || sum.types[len(sum.types)-1] != "message_stop" {
					t.Errorf("got stop %q and events %v, want a complete stream", sum.stop, sum.types)
				}
			} else {
				var m map[string]json.RawMessage
				if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
					t.Fatal(err)
				}
				if u, ok := m["usage"]; ok {
					t.Errorf("got usage %s, want no usage field", u)
				}
			}
			if got, want := s.Billed(), (Usage{InputTokens: input, CacheReadInputTokens: 7, OutputTokens: DefaultCompletion}); got != want {
				t.Errorf("got billed %+v, want %+v", got, want)
			}
		})
	}
}

func TestStatus(t *testing.T) {
	tests := []struct {
		status   int
		wantType string
	}{
		{400, "invalid_request_error"},
		{401, "authentication_error"},
		{403, "permission_error"},
		{404, "not_found_error"},
		{413, "request_too_large"},
		{429, "rate_limit_error"},
		{500, "api_error"},
		{503, "api_error"},
		{529, "overloaded_error"},
	}
	for _, tt := range tests {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%d/stream=%v", tt.status, stream), func(t *testing.T) {
				s := New(t, Options{APIKey: realKey})
				s.SetBehavior(Behavior{Status: tt.status})
				extra := ""
				if stream {
					extra = `,"stream":true`
				}
				resp := post(t, s, body(extra))
				if resp.StatusCode != tt.status {
					t.Errorf("got status %d, want %d", resp.StatusCode, tt.status)
				}
				if got := resp.Header.Get("Content-Type"); got != "application/json" {
					t.Errorf("got Content-Type %q, want application/json", got)
				}
				var e wireError
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Type != "error" || e.Error == nil {
					t.Fatalf("got error body %+v (%v), want an Anthropic error", e, err)
				}
				if e.Error.Type != tt.wantType || e.Error.Message == "" || !strings.HasPrefix(e.RequestID, "req_") {
					t.Errorf("got type %q message %q request_id %q, want %q, a message and req_...", e.Error.Type, e.Error.Message, e.RequestID, tt.wantType)
				}
				if got := s.Billed(); got != (Usage{}) {
					t.Errorf("got billed %+v, want zero", got)
				}
				if calls := s.Calls(); len(calls) != 1 || calls[0].Status != tt.status || calls[0].Stream != stream {
					t.Errorf("got calls %+v, want one with status %d stream %v", calls, tt.status, stream)
				}
			})
		}
	}
}

func TestStallAfterEvents(t *testing.T) {
	s := New(t, Options{APIKey: realKey})
	s.SetBehavior(Behavior{StallAfterEvents: 2})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req := newRequest(t, s, "POST", "/v1/messages", body(`,"stream":true`)).WithContext(ctx)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	fakeserver.ExpectStall(t, resp.Body, 6, cancel) // two events of three lines
	if got, want := s.Billed(), (Usage{InputTokens: input, OutputTokens: DefaultCompletion}); got != want {
		t.Errorf("got billed %+v, want %+v", got, want)
	}
}

func TestStallReleasedOnCleanup(t *testing.T) {
	// A stalled handler whose client is still connected must not hang the
	// server's cleanup: the client body is closed only after it (cleanups
	// run last-registered first).
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			var resp *http.Response
			t.Cleanup(func() {
				if resp != nil {
					resp.Body.Close()
				}
			})
			s := New(t, Options{APIKey: realKey})
			s.SetBehavior(Behavior{StallAfterEvents: 1})
			extra := ""
			if stream {
				extra = `,"stream":true`
			}
			var err error
			if resp, err = http.DefaultClient.Do(newRequest(t, s, "POST", "/v1/messages", body(extra))); err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 {
				t.Errorf("got status %d, want 200", resp.StatusCode)
			}
		})
	}
}

func TestMalformedJSON(t *testing.T) {
	s := New(t, Options{APIKey: realKey})
	s.SetBehavior(Behavior{MalformedJSON: true})
	resp := post(t, s, body(""))
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || json.Valid(got) {
		t.Errorf("got status %d valid JSON %v, want 200 and invalid JSON", resp.StatusCode, json.Valid(got))
	}
	if got, want := s.Billed(), (Usage{InputTokens: input, OutputTokens: DefaultCompletion}); got != want {
		t.Errorf("got billed %+v, want %+v", got, want)
	}
}

func TestCountTokens(t *testing.T) {
	tests := []struct {
		name       string
		behavior   Behavior
		body       string
		wantStatus int
		want       int64
	}{
		{"plain", Behavior{}, `{"model":"claude-sonnet-4-5","messages":[{"role":"user","content":"` + userText + `"}]}`, 200, input},
		{"with system and thinking", Behavior{}, `{"model":"m","system":"Be brief.","thinking":{"type":"enabled","budget_tokens":2048},` +
			`"messages":[{"role":"user","content":"` + userText + `"}]}`, 200, input + 3},
		{"override and cache ignored", Behavior{InputTokens: func([]byte) int64 { return 42 }, CacheRead: 9, BillAtCap: true}, body(""), 200, 42},
		{"injected status", Behavior{Status: 529}, body(""), 529, 0},
		{"missing messages", Behavior{}, `{"model":"m"}`, 400, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			s.SetBehavior(tt.behavior)
			resp := do(t, newRequest(t, s, "POST", "/v1/messages/count_tokens", tt.body))
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("got status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if tt.wantStatus == 200 {
				var got map[string]int64
				if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
					t.Fatal(err)
				}
				if len(got) != 1 || got["input_tokens"] != tt.want {
					t.Errorf("got %v, want {input_tokens: %d}", got, tt.want)
				}
			}
			if got := s.Billed(); got != (Usage{}) {
				t.Errorf("got billed %+v, want zero", got)
			}
			if calls := s.Calls(); len(calls) != 1 || calls[0].Path != "/v1/messages/count_tokens" || calls[0].Status != tt.wantStatus {
				t.Errorf("got calls %+v, want one on count_tokens with status %d", calls, tt.wantStatus)
			}
		})
	}
}

func TestBadRequestAndPaths(t *testing.T) {
	msgs := `"messages":[{"role":"user","content":"hi"}]`
	tests := []struct {
		name, method, path, body string
		wantStatus               int
		wantType                 string
	}{
		{"bad json", "POST", "/v1/messages", `{"model":`, 400, "invalid_request_error"},
		{"missing model", "POST", "/v1/messages", `{"max_tokens":5,` + msgs + `}`, 400, "invalid_request_error"},
		{"missing max_tokens", "POST", "/v1/messages", `{"model":"m",` + msgs + `}`, 400, "invalid_request_error"},
		{"zero max_tokens", "POST", "/v1/messages", `{"model":"m","max_tokens":0,` + msgs + `}`, 400, "invalid_request_error"},
		{"fractional max_tokens", "POST", "/v1/messages", `{"model":"m","max_tokens":1.5,` + msgs + `}`, 400, "invalid_request_error"},
		{"missing messages", "POST", "/v1/messages", `{"model":"m","max_tokens":5}`, 400, "invalid_request_error"},
		{"empty messages", "POST", "/v1/messages", `{"model":"m","max_tokens":5,"messages":[]}`, 400, "invalid_request_error"},
		{"system role", "POST", "/v1/messages", `{"model":"m","max_tokens":5,"messages":[{"role":"system","content":"hi"}]}`, 400, "invalid_request_error"},
		{"object content", "POST", "/v1/messages", `{"model":"m","max_tokens":5,"messages":[{"role":"user","content":{}}]}`, 400, "invalid_request_error"},
		{"bad system", "POST", "/v1/messages", `{"model":"m","max_tokens":5,"system":5,` + msgs + `}`, 400, "invalid_request_error"},
		{"thinking budget too small", "POST", "/v1/messages", `{"model":"m","max_tokens":5000,"thinking":{"type":"enabled","budget_tokens":1000},` + msgs + `}`, 400, "invalid_request_error"},
		{"thinking budget at max_tokens", "POST", "/v1/messages", `{"model":"m","max_tokens":2000,"thinking":{"type":"enabled","budget_tokens":2000},` + msgs + `}`, 400, "invalid_request_error"},
		{"thinking without budget", "POST", "/v1/messages", `{"model":"m","max_tokens":2000,"thinking":{"type":"enabled"},` + msgs + `}`, 400, "invalid_request_error"},
		{"unknown thinking type", "POST", "/v1/messages", `{"model":"m","max_tokens":2000,"thinking":{"type":"deep"},` + msgs + `}`, 400, "invalid_request_error"},
		{"unknown path", "POST", "/v1/complete", `{}`, 404, "not_found_error"},
		{"path without /v1", "POST", "/messages", `{}`, 404, "not_found_error"},
		{"wrong method", "GET", "/v1/messages", ``, 405, "invalid_request_error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			resp := do(t, newRequest(t, s, tt.method, tt.path, tt.body))
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("got status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			var e wireError
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Error == nil || e.Error.Type != tt.wantType || e.Error.Message == "" {
				t.Errorf("got error body %+v (%v), want an Anthropic %s", e, err, tt.wantType)
			}
			if got := s.Billed(); got != (Usage{}) {
				t.Errorf("got billed %+v, want zero", got)
			}
		})
	}
}

func TestConcurrentUse(t *testing.T) {
	s := New(t, Options{APIKey: realKey})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			s.SetBehavior(Behavior{BillAtCap: i%2 == 0})
			req, _ := http.NewRequest("POST", s.URL()+"/v1/messages", strings.NewReader(
				strings.Replace(body(`,"stream":true`), `"max_tokens":100`, `"max_tokens":4`, 1)))
			req.Header.Set("X-Api-Key", realKey)
			req.Header.Set("Anthropic-Version", "2023-06-01")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			s.Calls()
			s.Billed()
		})
	}
	wg.Wait()
	if got := len(s.Calls()); got != 8 {
		t.Errorf("got %d calls, want 8", got)
	}
	if got, want := s.Billed(), (Usage{InputTokens: 8 * input, OutputTokens: 8 * 4}); got != want {
		t.Errorf("got billed %+v, want %+v", got, want)
	}
}
