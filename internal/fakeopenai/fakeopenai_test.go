package fakeopenai

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

	"github.com/hardcap/hardcap/demo"
	"github.com/hardcap/hardcap/internal/fakeserver"
)

const realKey = "sk-real-provider-key"

func body(extra string) string {
	return `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hi in twelve words."}]` + extra + `}`
}

// prompt is the counting rule for body's single 23-byte message.
const prompt = (6 + 4) + 3

func post(t *testing.T, s *Server, body string, header map[string]string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("POST", s.URL()+"/chat/completions", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+realKey)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// readEvents reads data events until the stream ends; err is the read error
// that ended it, nil on a clean end.
func readEvents(resp *http.Response) (events []string, err error) {
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && line == "" {
				return events, nil
			}
			return events, err
		}
		if data, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "data: "); ok {
			events = append(events, data)
		}
	}
}

func TestKeyCheck(t *testing.T) {
	tests := []struct {
		name       string
		url        string // appended to /chat/completions
		header     map[string]string
		rawHeader  map[string][]string
		wantErrs   []string // substrings, one per expected error
		wantStatus int
	}{
		{name: "real key", wantStatus: 200},
		{name: "missing Authorization", rawHeader: map[string][]string{"Authorization": nil},
			wantErrs: []string{`"Authorization" is missing`}, wantStatus: 401},
		{name: "wrong key", header: map[string]string{"Authorization": "Bearer sk-other-SECRET"},
			wantErrs: []string{`"Authorization" is not`}, wantStatus: 401},
		{name: "lowercase scheme", header: map[string]string{"Authorization": "bearer " + realKey},
			wantErrs: []string{`"Authorization" is not`}, wantStatus: 401},
		{name: "two Authorization headers", rawHeader: map[string][]string{"Authorization": {"Bearer " + realKey, "Bearer " + realKey}},
			wantErrs: []string{`"Authorization" appears 2 times`}, wantStatus: 401},
		{name: "hardcap key forwarded", header: map[string]string{"Authorization": "Bearer hc_SECRET"},
			wantErrs: []string{`"Authorization" is not`, `"Authorization" contains a hardcap key`}, wantStatus: 401},
		{name: "x-api-key", header: map[string]string{"x-api-key": realKey},
			wantErrs: []string{`"X-Api-Key" must not`}, wantStatus: 401},
		{name: "api-key", header: map[string]string{"api-key": "whatever"},
			wantErrs: []string{`"Api-Key" must not`}, wantStatus: 401},
		{name: "hc_ in another header", header: map[string]string{"X-Trace": "abc hc_SECRET"},
			wantErrs: []string{`"X-Trace" contains a hardcap key`}, wantStatus: 401},
		{name: "hc_ in query", url: "?key=hc_SECRET",
			wantErrs: []string{"URL contains"}, wantStatus: 401},
		{name: "escaped hc_ in query", url: "?key=hc%5FSECRET",
			wantErrs: []string{"URL contains"}, wantStatus: 401},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &fakeserver.RecordingTB{TB: t}
			s := New(rec, Options{APIKey: realKey})
			req, err := http.NewRequest("POST", s.URL()+"/chat/completions"+tt.url, strings.NewReader(body("")))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+realKey)
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			for k, v := range tt.rawHeader {
				req.Header[k] = v
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
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
			if tt.wantStatus == 401 {
				var e demo.ErrorResponse
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Error == nil || e.Error.Type != "invalid_request_error" {
					t.Errorf("got error body %+v (%v), want an OpenAI error", e, err)
				}
				if got := s.Billed(); got != (Usage{}) {
					t.Errorf("got billed %+v, want zero", got)
				}
			}
			if calls := s.Calls(); len(calls) != 1 || calls[0].Status != tt.wantStatus {
				t.Errorf("got calls %+v, want one with status %d", calls, tt.wantStatus)
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
	if got := s.URL(); !strings.HasPrefix(got, "http://") || !strings.HasSuffix(got, "/v1") {
		t.Errorf("got URL %q, want http://.../v1", got)
	}
}

func TestBilling(t *testing.T) {
	tests := []struct {
		name           string
		opts           Options
		behavior       Behavior
		extra          string
		wantCompletion int64
		wantFinish     string
	}{
		{"default, no cap", Options{}, Behavior{}, ``, DefaultCompletion, demo.FinishStop},
		{"custom default", Options{DefaultCompletion: 3}, Behavior{}, ``, 3, demo.FinishStop},
		{"cap above default", Options{}, Behavior{}, `,"max_tokens":100`, DefaultCompletion, demo.FinishStop},
		{"cap below default", Options{}, Behavior{}, `,"max_tokens":5`, 5, demo.FinishLength},
		{"n=2 under cap", Options{}, Behavior{}, `,"n":2,"max_tokens":5`, 10, demo.FinishLength},
		{"bill at cap", Options{}, Behavior{BillAtCap: true}, `,"max_tokens":100`, 100, demo.FinishLength},
		{"bill at cap n=3", Options{}, Behavior{BillAtCap: true}, `,"n":3,"max_tokens":100,"max_completion_tokens":40`, 120, demo.FinishLength},
		{"bill at cap without cap", Options{}, Behavior{BillAtCap: true}, ``, DefaultCompletion, demo.FinishStop},
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
					extra += `,"stream":true,"stream_options":{"include_usage":true}`
				}
				resp := post(t, s, body(extra), nil)
				if resp.StatusCode != 200 {
					t.Fatalf("got status %d, want 200", resp.StatusCode)
				}
				var usage *demo.Usage
				var finishes []string
				if stream {
					events, err := readEvents(resp)
					if err != nil {
						t.Fatal(err)
					}
					if events[len(events)-1] != "[DONE]" {
						t.Errorf("got last event %q, want [DONE]", events[len(events)-1])
					}
					for _, e := range events[:len(events)-1] {
						var c demo.ChatCompletionChunk
						if err := json.Unmarshal([]byte(e), &c); err != nil {
							t.Fatal(err)
						}
						if c.Usage != nil {
							usage = c.Usage
						}
						for _, ch := range c.Choices {
							if ch.FinishReason != nil {
								finishes = append(finishes, *ch.FinishReason)
							}
						}
					}
				} else {
					var cc demo.ChatCompletion
					if err := json.NewDecoder(resp.Body).Decode(&cc); err != nil {
						t.Fatal(err)
					}
					usage = cc.Usage
					for _, ch := range cc.Choices {
						finishes = append(finishes, ch.FinishReason)
					}
				}
				if usage == nil {
					t.Fatal("got no usage, want one")
				}
				if usage.PromptTokens != prompt || usage.CompletionTokens != tt.wantCompletion {
					t.Errorf("got usage %d+%d, want %d+%d", usage.PromptTokens, usage.CompletionTokens, prompt, tt.wantCompletion)
				}
				for i, f := range finishes {
					if f != tt.wantFinish {
						t.Errorf("choice %d: got finish %q, want %q", i, f, tt.wantFinish)
					}
				}
				want := Usage{PromptTokens: prompt, CompletionTokens: tt.wantCompletion}
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

func TestPromptTokensOverride(t *testing.T) {
	s := New(t, Options{APIKey: realKey})
	s.SetBehavior(Behavior{PromptTokens: func(b []byte) int64 { return int64(len(b)) * 2 }})
	b := body("")
	resp := post(t, s, b, nil)
	var cc demo.ChatCompletion
	if err := json.NewDecoder(resp.Body).Decode(&cc); err != nil {
		t.Fatal(err)
	}
	if got, want := cc.Usage.PromptTokens, int64(len(b))*2; got != want {
		t.Errorf("got prompt_tokens %d, want %d", got, want)
	}
}

func TestCutAfterEvents(t *testing.T) {
	tests := []struct {
		name       string
		cut        int
		wantEvents int
	}{
		{"after role chunk", 1, 1},
		{"mid tokens", 3, 3},
		{"after every chunk", 1000, 1 + 5 + 1 + 1}, // role, 5 tokens, finish, usage
	}
	for _, tt := range tests {
		t.Run("stream/"+tt.name, func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			s.SetBehavior(Behavior{CutAfterEvents: tt.cut})
			resp := post(t, s, body(`,"max_tokens":5,"stream":true,"stream_options":{"include_usage":true}`), nil)
			if resp.StatusCode != 200 {
				t.Fatalf("got status %d, want 200", resp.StatusCode)
			}
			events, err := readEvents(resp)
			if err == nil {
				t.Errorf("got a clean end of stream, want a read error")
			}
			if len(events) != tt.wantEvents {
				t.Errorf("got %d events, want %d", len(events), tt.wantEvents)
			}
			for _, e := range events {
				if e == "[DONE]" {
					t.Errorf("got [DONE], want none")
				}
			}
			if got, want := s.Billed(), (Usage{PromptTokens: prompt, CompletionTokens: 5}); got != want {
				t.Errorf("got billed %+v, want %+v", got, want)
			}
		})
	}
	t.Run("non-stream", func(t *testing.T) {
		s := New(t, Options{APIKey: realKey})
		s.SetBehavior(Behavior{CutAfterEvents: 1})
		resp := post(t, s, body(`,"max_tokens":5`), nil)
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
		if got, want := s.Billed(), (Usage{PromptTokens: prompt, CompletionTokens: 5}); got != want {
			t.Errorf("got billed %+v, want %+v", got, want)
		}
	})
}

func TestOmitUsage(t *testing.T) {
	tests := []struct {
		name   string
		stream bool
	}{
		{"non-stream", false},
		{"stream with include_usage", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			s.SetBehavior(Behavior{OmitUsage: true})
			extra := ""
			if tt.stream {
				extra = `,"stream":true,"stream_options":{"include_usage":true}`
			}
			resp := post(t, s, body(extra), nil)
			if resp.StatusCode != 200 {
				t.Fatalf("got status %d, want 200", resp.StatusCode)
			}
			if tt.stream {
				events, err := readEvents(resp)
				if err != nil {
					t.Fatal(err)
				}
				if events[len(events)-1] != "[DONE]" {
					t.Errorf("got last event %q, want [DONE]", events[len(events)-1])
				}
				for _, e := range events[:len(events)-1] {
					var c demo.ChatCompletionChunk
					if err := json.Unmarshal([]byte(e), &c); err != nil {
						t.Fatal(err)
					}
					if c.Usage != nil || len(c.Choices) == 0 {
						t.Errorf("got chunk %s, want no usage chunk", e)
					}
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
			if got, want := s.Billed(), (Usage{PromptTokens: prompt, CompletionTokens: DefaultCompletion}); got != want {
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
		{401, "invalid_request_error"},
		{429, "requests"},
		{500, "server_error"},
		{503, "server_error"},
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
				resp := post(t, s, body(extra), nil)
				if resp.StatusCode != tt.status {
					t.Errorf("got status %d, want %d", resp.StatusCode, tt.status)
				}
				if got := resp.Header.Get("Content-Type"); got != "application/json" {
					t.Errorf("got Content-Type %q, want application/json", got)
				}
				var e demo.ErrorResponse
				if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Error == nil {
					t.Fatalf("got error body %+v (%v), want an OpenAI error", e, err)
				}
				if e.Error.Type != tt.wantType || e.Error.Message == "" {
					t.Errorf("got type %q message %q, want %q and a message", e.Error.Type, e.Error.Message, tt.wantType)
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
	req, _ := http.NewRequestWithContext(ctx, "POST", s.URL()+"/chat/completions", strings.NewReader(body(`,"stream":true`)))
	req.Header.Set("Authorization", "Bearer "+realKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	fakeserver.ExpectStall(t, resp.Body, 4, cancel) // two events
	if got, want := s.Billed(), (Usage{PromptTokens: prompt, CompletionTokens: DefaultCompletion}); got != want {
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
			req, _ := http.NewRequest("POST", s.URL()+"/chat/completions", strings.NewReader(body(extra)))
			req.Header.Set("Authorization", "Bearer "+realKey)
			var err error
			if resp, err = http.DefaultClient.Do(req); err != nil {
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
	resp := post(t, s, body(""), nil)
	got, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != 200 || json.Valid(got) {
		t.Errorf("got status %d valid JSON %v, want 200 and invalid JSON", resp.StatusCode, json.Valid(got))
	}
}

func TestBadRequestAndPaths(t *testing.T) {
	tests := []struct {
		name, method, path, body string
		wantStatus               int
	}{
		{"bad json", "POST", "/chat/completions", `{"model":`, 400},
		{"missing messages", "POST", "/chat/completions", `{"model":"m"}`, 400},
		{"unknown path", "POST", "/audio/speech", `{}`, 404},
		{"wrong method", "GET", "/chat/completions", ``, 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			req, _ := http.NewRequest(tt.method, s.URL()+tt.path, strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+realKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("got status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			var e demo.ErrorResponse
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Error == nil {
				t.Errorf("got error body %+v (%v), want an OpenAI error", e, err)
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
			req, _ := http.NewRequest("POST", s.URL()+"/chat/completions", strings.NewReader(body(`,"max_tokens":4,"stream":true`)))
			req.Header.Set("Authorization", "Bearer "+realKey)
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
	if got, want := s.Billed(), (Usage{PromptTokens: 8 * prompt, CompletionTokens: 8 * 4}); got != want {
		t.Errorf("got billed %+v, want %+v", got, want)
	}
}
