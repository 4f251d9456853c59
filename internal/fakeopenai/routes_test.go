package fakeopenai

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hardcap/hardcap/demo"
	"github.com/hardcap/hardcap/internal/fakeserver"
)

// testStall posts body to path, reads lines lines, checks the response then
// blocks, and that cancelling the request releases it.
func testStall(t *testing.T, s *Server, path, body string, lines int) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", s.URL()+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+realKey)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("got status %d, want 200", resp.StatusCode)
	}
	fakeserver.ExpectStall(t, resp.Body, lines, cancel)
}

// newRoutes are the routes added beside chat, with a valid body and what it
// bills (the DefaultCompletion of 16 for the completion).
var newRoutes = []struct {
	path, body string
	billed     Usage
}{
	{"/completions", completionBody(``), Usage{PromptTokens: sayHi, CompletionTokens: DefaultCompletion}},
	{"/embeddings", embeddingBody(`"Say hi"`), Usage{PromptTokens: sayHi}},
	{"/responses", responseBody(``), Usage{PromptTokens: sayHiResp, CompletionTokens: DefaultCompletion}},
}

func TestRoutesKnobs(t *testing.T) {
	for _, rt := range newRoutes {
		t.Run(rt.path+"/key check", func(t *testing.T) {
			rec := &fakeserver.RecordingTB{TB: t}
			s := New(rec, Options{APIKey: realKey})
			req, _ := http.NewRequest("POST", s.URL()+rt.path, strings.NewReader(rt.body))
			req.Header.Set("Authorization", "Bearer hc_SECRET")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 401 || len(rec.Errors()) != 2 {
				t.Errorf("got status %d and test errors %q, want 401 and two errors", resp.StatusCode, rec.Errors())
			}
			if got := s.Billed(); got != (Usage{}) {
				t.Errorf("got billed %+v, want zero", got)
			}
		})
		t.Run(rt.path+"/status", func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			s.SetBehavior(Behavior{Status: 429})
			resp := postTo(t, s, rt.path, rt.body)
			var e demo.ErrorResponse
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Error == nil || resp.StatusCode != 429 {
				t.Errorf("got status %d body %+v (%v), want a 429 OpenAI error", resp.StatusCode, e, err)
			}
			if calls := s.Calls(); len(calls) != 1 || calls[0].Status != 429 || s.Billed() != (Usage{}) {
				t.Errorf("got calls %+v billed %+v, want one 429 call billing nothing", calls, s.Billed())
			}
		})
		t.Run(rt.path+"/prompt override", func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			s.SetBehavior(Behavior{PromptTokens: func(b []byte) int64 { return int64(len(b)) }})
			postTo(t, s, rt.path, rt.body)
			want := rt.billed
			want.PromptTokens = int64(len(rt.body))
			if got := s.Billed(); got != want {
				t.Errorf("got billed %+v, want %+v", got, want)
			}
		})
		t.Run(rt.path+"/omit usage", func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			s.SetBehavior(Behavior{OmitUsage: true})
			resp := postTo(t, s, rt.path, rt.body)
			var m map[string]json.RawMessage
			if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
				t.Fatal(err)
			}
			if u, ok := m["usage"]; ok || m["object"] == nil {
				t.Errorf("got usage %s in %q, want a response without usage", u, m)
			}
			if got := s.Billed(); got != rt.billed {
				t.Errorf("got billed %+v, want %+v", got, rt.billed)
			}
		})
		t.Run(rt.path+"/malformed", func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			s.SetBehavior(Behavior{MalformedJSON: true})
			resp := postTo(t, s, rt.path, rt.body)
			got, err := io.ReadAll(resp.Body)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != 200 || json.Valid(got) || !strings.HasPrefix(string(got), `{"`) {
				t.Errorf("got status %d body %s, want 200 and invalid JSON", resp.StatusCode, got)
			}
			if got := s.Billed(); got != rt.billed {
				t.Errorf("got billed %+v, want %+v", got, rt.billed)
			}
		})
		t.Run(rt.path+"/cut", func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			s.SetBehavior(Behavior{CutAfterEvents: 1})
			resp := postTo(t, s, rt.path, rt.body)
			got, err := io.ReadAll(resp.Body)
			if !errors.Is(err, io.ErrUnexpectedEOF) || len(got) == 0 || int64(len(got)) >= resp.ContentLength {
				t.Errorf("got %d of %d bytes and error %v, want a prefix and unexpected EOF", len(got), resp.ContentLength, err)
			}
			if got := s.Billed(); got != rt.billed {
				t.Errorf("got billed %+v, want %+v", got, rt.billed)
			}
		})
		t.Run(rt.path+"/stall", func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			s.SetBehavior(Behavior{StallAfterEvents: 1})
			testStall(t, s, rt.path, rt.body, 0)
			if got := s.Billed(); got != rt.billed {
				t.Errorf("got billed %+v, want %+v", got, rt.billed)
			}
		})
	}
}

func TestRoutesBadRequests(t *testing.T) {
	tests := []struct {
		path, body, wantParam string
		wantStatus            int
	}{
		{"/completions", `{"model":`, "", 400},
		{"/completions", `{"prompt":"x"}`, "", 400},
		{"/completions", `{"model":"m"}`, "prompt", 400},
		{"/completions", `{"model":"m","prompt":null}`, "prompt", 400},
		{"/completions", `{"model":"m","prompt":[]}`, "prompt", 400},
		{"/completions", `{"model":"m","prompt":7}`, "prompt", 400},
		{"/completions", `{"model":"m","prompt":["a",1]}`, "prompt", 400},
		{"/completions", `{"model":"m","prompt":[1,-2]}`, "prompt", 400},
		{"/completions", `{"model":"m","prompt":[1.5]}`, "prompt", 400},
		{"/completions", `{"model":"m","prompt":[[1],[]]}`, "prompt", 400},
		{"/completions", completionBody(`,"max_tokens":-1`), "max_tokens", 400},
		{"/completions", completionBody(`,"max_tokens":"5"`), "max_tokens", 400},
		{"/completions", completionBody(`,"n":0`), "n", 400},
		{"/completions", completionBody(`,"best_of":129`), "best_of", 400},
		{"/completions", completionBody(`,"suffix":3`), "suffix", 400},
		{"/completions", completionBody(`,"stream_options":{"include_usage":true}`), "stream_options", 400},
		{"/completions", ``, "", 400},
		{"/embeddings", `{"input":"x"}`, "", 400},
		{"/embeddings", `{"model":"m"}`, "input", 400},
		{"/embeddings", embeddingBody(`""`), "input", 400},
		{"/embeddings", embeddingBody(`["a",""]`), "input", 400},
		{"/embeddings", embeddingBody(`{"a":1}`), "input", 400},
		{"/embeddings", embeddingBody(`"x","dimensions":0`), "dimensions", 400},
		{"/embeddings", embeddingBody(`"x","dimensions":5000`), "dimensions", 400},
		{"/embeddings", embeddingBody(`"x","encoding_format":"hex"`), "encoding_format", 400},
		{"/embeddings", `{"model":"m","input":[` + strings.Repeat(`"a",`, MaxEmbeddingInputs) + `"a"]}`, "input", 400},
		{"/responses", `{"model":`, "", 400},
		{"/responses", `{"input":"x"}`, "model", 400},
		{"/responses", `{"model":5,"input":"x"}`, "model", 400},
		{"/responses", `{"model":"m","input":7}`, "input", 400},
		{"/responses", `{"model":"m","input":{"role":"user"}}`, "input", 400},
		{"/responses", `{"model":"m","input":["x"]}`, "input[0]", 400},
		{"/responses", `{"model":"m","input":[{"content":"x"}]}`, "input[0].role", 400},
		{"/responses", `{"model":"m","input":[{"role":"user"}]}`, "input[0].content", 400},
		{"/responses", `{"model":"m","input":[{"role":"user","content":"x"},{"role":"user","content":5}]}`, "input[1].content", 400},
		{"/responses", `{"model":"m","input":[{"role":"user","content":["x"]}]}`, "input[0].content", 400},
		{"/responses", `{"model":"m","input":[{"role":7,"content":"x"}]}`, "input[0].role", 400},
		{"/responses", responseBody(`,"instructions":3`), "instructions", 400},
		{"/responses", responseBody(`,"max_output_tokens":0`), "max_output_tokens", 400},
		{"/responses", responseBody(`,"max_output_tokens":"5"`), "max_output_tokens", 400},
		{"/responses", responseBody(`,"max_output_tokens":2000000`), "max_output_tokens", 400},
		{"/responses", responseBody(`,"stream":"yes"`), "stream", 400},
		{"/responses", responseBody(`,"reasoning":"high"`), "reasoning", 400},
		{"/responses", responseBody(`,"tools":{}`), "tools", 400},
		{"/responses", responseBody(`,"metadata":[]`), "metadata", 400},
	}
	for _, tt := range tests {
		t.Run(tt.path+" "+tt.body[:min(len(tt.body), 60)], func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			resp := postTo(t, s, tt.path, tt.body)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("got status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			var e demo.ErrorResponse
			if err := json.NewDecoder(resp.Body).Decode(&e); err != nil || e.Error == nil {
				t.Fatalf("got error body %+v (%v), want an OpenAI error", e, err)
			}
			if got := fmt.Sprint(e.Error.Param != nil && *e.Error.Param == tt.wantParam); tt.wantParam != "" && got != "true" {
				t.Errorf("got param %v, want %q (%s)", e.Error.Param, tt.wantParam, e.Error.Message)
			}
			if calls := s.Calls(); len(calls) != 1 || calls[0].Status != tt.wantStatus || s.Billed() != (Usage{}) {
				t.Errorf("got calls %+v billed %+v, want one %d call billing nothing", calls, s.Billed(), tt.wantStatus)
			}
		})
	}
	for _, path := range []string{"/completions", "/embeddings", "/responses"} {
		t.Run("GET "+path, func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			req, _ := http.NewRequest("GET", s.URL()+path, nil)
			req.Header.Set("Authorization", "Bearer "+realKey)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 405 {
				t.Errorf("got status %d, want 405", resp.StatusCode)
			}
		})
	}
}
