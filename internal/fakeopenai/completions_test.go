package fakeopenai

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/hardcap/hardcap/demo"
)

// postTo posts body to path (under /v1) with the real key.
func postTo(t *testing.T, s *Server, path, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest("POST", s.URL()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+realKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

// keys returns the sorted keys of a JSON object.
func keys(t *testing.T, raw []byte) []string {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func completionBody(extra string) string {
	return `{"model":"gpt-3.5-turbo-instruct","prompt":"Say hi"` + extra + `}`
}

// sayHi is the counting rule for the 6-byte prompt "Say hi".
const sayHi = 2 + 1

func TestCompletionsShape(t *testing.T) {
	s := New(t, Options{APIKey: realKey})
	resp := postTo(t, s, "/completions", completionBody(`,"max_tokens":3,"n":2`))
	if resp.StatusCode != 200 {
		t.Fatalf("got status %d, want 200", resp.StatusCode)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", got)
	}
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if got, want := keys(t, raw), []string{"choices", "created", "id", "model", "object", "usage"}; !slices.Equal(got, want) {
		t.Errorf("got keys %q, want %q", got, want)
	}
	var tc struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		Model   string `json:"model"`
		Choices []json.RawMessage
		Usage   json.RawMessage
	}
	if err := json.Unmarshal(raw, &tc); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(tc.ID, "cmpl-") || tc.Object != "text_completion" || tc.Created == 0 || tc.Model != "gpt-3.5-turbo-instruct" {
		t.Errorf("got id %q object %q created %d model %q", tc.ID, tc.Object, tc.Created, tc.Model)
	}
	if len(tc.Choices) != 2 {
		t.Fatalf("got %d choices, want 2", len(tc.Choices))
	}
	for i, c := range tc.Choices {
		if got, want := keys(t, c), []string{"finish_reason", "index", "logprobs", "text"}; !slices.Equal(got, want) {
			t.Errorf("choice %d: got keys %q, want %q", i, got, want)
		}
		var ch TextChoice
		json.Unmarshal(c, &ch)
		if ch.Text != "w1 w2 w3" || ch.Index != i || string(ch.Logprobs) != "null" || ch.FinishReason == nil || *ch.FinishReason != demo.FinishLength {
			t.Errorf("choice %d: got %s", i, c)
		}
	}
	if got, want := string(tc.Usage), `{"prompt_tokens":3,"completion_tokens":6,"total_tokens":9}`; got != want {
		t.Errorf("got usage %s, want %s", got, want)
	}
}

func TestCompletionsBilling(t *testing.T) {
	tests := []struct {
		name           string
		opts           Options
		behavior       Behavior
		body           string
		wantPrompt     int64
		wantCompletion int64
		wantChoices    int
		wantFinish     string
	}{
		{"default max_tokens", Options{}, Behavior{}, completionBody(``), sayHi, 16, 1, demo.FinishStop},
		{"default max_tokens caps a longer reply", Options{DefaultCompletion: 40}, Behavior{}, completionBody(``), sayHi, 16, 1, demo.FinishLength},
		{"cap above default", Options{}, Behavior{}, completionBody(`,"max_tokens":100`), sayHi, 16, 1, demo.FinishStop},
		{"cap below default", Options{}, Behavior{}, completionBody(`,"max_tokens":5`), sayHi, 5, 1, demo.FinishLength},
		{"max_tokens 0", Options{}, Behavior{}, completionBody(`,"max_tokens":0`), sayHi, 0, 1, demo.FinishLength},
		{"n", Options{}, Behavior{}, completionBody(`,"max_tokens":5,"n":3`), sayHi, 15, 3, demo.FinishLength},
		{"best_of bills every candidate", Options{}, Behavior{}, completionBody(`,"max_tokens":5,"n":2,"best_of":5`), sayHi, 25, 2, demo.FinishLength},
		{"best_of below n", Options{}, Behavior{}, completionBody(`,"max_tokens":5,"n":3,"best_of":2`), sayHi, 15, 3, demo.FinishLength},
		{"string prompts", Options{}, Behavior{}, `{"model":"m","prompt":["","abcd","abcde"],"n":2,"best_of":3,"max_tokens":4}`,
			1 + 2 + 3, 3 * 3 * 4, 6, demo.FinishLength},
		{"token-id prompt", Options{}, Behavior{}, `{"model":"m","prompt":[15339,1917,0],"max_tokens":4}`, 3, 4, 1, demo.FinishLength},
		{"token-id prompts", Options{}, Behavior{}, `{"model":"m","prompt":[[1,2],[3],[4,5,6,7]],"max_tokens":4}`, 7, 12, 3, demo.FinishLength},
		{"bill at cap", Options{}, Behavior{BillAtCap: true}, completionBody(`,"max_tokens":100`), sayHi, 100, 1, demo.FinishLength},
		{"bill at cap best_of", Options{}, Behavior{BillAtCap: true}, completionBody(`,"max_tokens":50,"best_of":3`), sayHi, 150, 1, demo.FinishLength},
		{"bill at default cap", Options{DefaultCompletion: 5}, Behavior{BillAtCap: true}, completionBody(``), sayHi, 16, 1, demo.FinishLength},
		{"prompt override", Options{}, Behavior{PromptTokens: func([]byte) int64 { return 1234 }}, completionBody(`,"max_tokens":2`), 1234, 2, 1, demo.FinishLength},
	}
	for _, tt := range tests {
		for _, stream := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/stream=%v", tt.name, stream), func(t *testing.T) {
				opts := tt.opts
				opts.APIKey = realKey
				s := New(t, opts)
				s.SetBehavior(tt.behavior)
				b := tt.body
				if stream {
					b = strings.TrimSuffix(b, "}") + `,"stream":true,"stream_options":{"include_usage":true}}`
				}
				resp := postTo(t, s, "/completions", b)
				if resp.StatusCode != 200 {
					t.Fatalf("got status %d, want 200", resp.StatusCode)
				}
				var usage *CompletionUsage
				texts := map[int]string{}
				finishes := map[int]string{}
				if stream {
					events, err := readEvents(resp)
					if err != nil {
						t.Fatal(err)
					}
					if events[len(events)-1] != "[DONE]" {
						t.Errorf("got last event %q, want [DONE]", events[len(events)-1])
					}
					for _, e := range events[:len(events)-1] {
						var c TextCompletion
						if err := json.Unmarshal([]byte(e), &c); err != nil {
							t.Fatal(err)
						}
						if c.Usage != nil {
							usage = c.Usage
						}
						for _, ch := range c.Choices {
							texts[ch.Index] += ch.Text
							if ch.FinishReason != nil {
								finishes[ch.Index] = *ch.FinishReason
							}
						}
					}
				} else {
					var c TextCompletion
					if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
						t.Fatal(err)
					}
					usage = c.Usage
					for i, ch := range c.Choices {
						if ch.Index != i {
							t.Errorf("choice %d: got index %d", i, ch.Index)
						}
						texts[ch.Index] = ch.Text
						finishes[ch.Index] = *ch.FinishReason
					}
				}
				if usage == nil {
					t.Fatal("got no usage, want one")
				}
				want := Usage{PromptTokens: tt.wantPrompt, CompletionTokens: tt.wantCompletion}
				if *usage != (CompletionUsage{want.PromptTokens, want.CompletionTokens, want.PromptTokens + want.CompletionTokens}) {
					t.Errorf("got usage %+v, want %+v", *usage, want)
				}
				if len(texts) != tt.wantChoices || len(finishes) != tt.wantChoices {
					t.Errorf("got %d texts and %d finishes, want %d choices", len(texts), len(finishes), tt.wantChoices)
				}
				for i, f := range finishes {
					if f != tt.wantFinish {
						t.Errorf("choice %d: got finish %q, want %q", i, f, tt.wantFinish)
					}
				}
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

func TestCompletionsStreamUsageChunk(t *testing.T) {
	for _, tt := range []struct {
		name, extra string
		behavior    Behavior
		wantNull    bool // "usage":null on every chunk but the usage chunk
		wantUsage   bool // the usage chunk
	}{
		{"no stream_options", ``, Behavior{}, false, false},
		{"include_usage false", `,"stream_options":{"include_usage":false}`, Behavior{}, false, false},
		{"include_usage", `,"stream_options":{"include_usage":true}`, Behavior{}, true, true},
		{"include_usage omitted", `,"stream_options":{"include_usage":true}`, Behavior{OmitUsage: true}, true, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			s.SetBehavior(tt.behavior)
			resp := postTo(t, s, "/completions", completionBody(`,"max_tokens":2,"stream":true`+tt.extra))
			if got := resp.Header.Get("Content-Type"); got != "text/event-stream" {
				t.Errorf("got Content-Type %q, want text/event-stream", got)
			}
			events, err := readEvents(resp)
			if err != nil {
				t.Fatal(err)
			}
			// two token chunks, one closing chunk, maybe the usage chunk, [DONE]
			wantEvents := 4
			if tt.wantUsage {
				wantEvents++
			}
			if len(events) != wantEvents || events[len(events)-1] != "[DONE]" {
				t.Fatalf("got events %q, want %d ending in [DONE]", events, wantEvents)
			}
			chunks := events[:len(events)-1]
			wantKeys := []string{"choices", "created", "id", "model", "object"}
			if tt.wantNull {
				wantKeys = []string{"choices", "created", "id", "model", "object", "usage"}
			}
			for i, e := range chunks {
				if got := keys(t, []byte(e)); !slices.Equal(got, wantKeys) {
					t.Errorf("chunk %d: got keys %q, want %q", i, got, wantKeys)
				}
			}
			for i, e := range chunks[:3] {
				var c struct {
					Object  string
					Choices []json.RawMessage
					Usage   json.RawMessage
				}
				json.Unmarshal([]byte(e), &c)
				if c.Object != "text_completion" || len(c.Choices) != 1 || (tt.wantNull && string(c.Usage) != "null") {
					t.Errorf("chunk %d: got %s", i, e)
				}
				if got, want := keys(t, c.Choices[0]), []string{"finish_reason", "index", "logprobs", "text"}; !slices.Equal(got, want) {
					t.Errorf("chunk %d: got choice keys %q, want %q", i, got, want)
				}
			}
			want := `"choices":[{"text":"w1","index":0,"logprobs":null,"finish_reason":null}]`
			if !strings.Contains(chunks[0], want) {
				t.Errorf("got first chunk %s, want it to contain %s", chunks[0], want)
			}
			want = `"choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"length"}]`
			if !strings.Contains(chunks[2], want) {
				t.Errorf("got closing chunk %s, want it to contain %s", chunks[2], want)
			}
			if tt.wantUsage {
				want := `"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":2,"total_tokens":5}`
				if !strings.Contains(chunks[3], want) {
					t.Errorf("got usage chunk %s, want it to contain %s", chunks[3], want)
				}
			}
			if got, want := s.Billed(), (Usage{PromptTokens: sayHi, CompletionTokens: 2}); got != want {
				t.Errorf("got billed %+v, want %+v", got, want)
			}
		})
	}
}

func TestCompletionsOmitUsage(t *testing.T) {
	s := New(t, Options{APIKey: realKey})
	s.SetBehavior(Behavior{OmitUsage: true})
	resp := postTo(t, s, "/completions", completionBody(`,"best_of":2`))
	var m map[string]json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if u, ok := m["usage"]; ok {
		t.Errorf("got usage %s, want no usage field", u)
	}
	if got, want := s.Billed(), (Usage{PromptTokens: sayHi, CompletionTokens: 2 * DefaultCompletion}); got != want {
		t.Errorf("got billed %+v, want %+v", got, want)
	}
}

func TestCompletionsEcho(t *testing.T) {
	for _, stream := range []bool{false, true} {
		t.Run(fmt.Sprintf("stream=%v", stream), func(t *testing.T) {
			s := New(t, Options{APIKey: realKey})
			extra := `,"prompt":["Hi","Yo"],"echo":true,"max_tokens":2,"suffix":"!"`
			if stream {
				extra += `,"stream":true`
			}
			resp := postTo(t, s, "/completions", `{"model":"m"`+extra+`}`)
			texts := map[int]string{}
			if stream {
				events, err := readEvents(resp)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range events[:len(events)-1] {
					var c TextCompletion
					if err := json.Unmarshal([]byte(e), &c); err != nil {
						t.Fatal(err)
					}
					for _, ch := range c.Choices {
						texts[ch.Index] += ch.Text
					}
				}
			} else {
				var c TextCompletion
				if err := json.NewDecoder(resp.Body).Decode(&c); err != nil {
					t.Fatal(err)
				}
				for _, ch := range c.Choices {
					texts[ch.Index] = ch.Text
				}
			}
			if want := map[int]string{0: "Hiw1 w2", 1: "Yow1 w2"}; fmt.Sprint(texts) != fmt.Sprint(want) {
				t.Errorf("got texts %v, want %v", texts, want)
			}
			if got, want := s.Billed(), (Usage{PromptTokens: 2 * 2, CompletionTokens: 2 * 2}); got != want {
				t.Errorf("got billed %+v, want %+v", got, want)
			}
		})
	}
}

func TestCompletionsCutAndStall(t *testing.T) {
	want := Usage{PromptTokens: sayHi, CompletionTokens: 3 * 5}
	t.Run("cut stream", func(t *testing.T) {
		s := New(t, Options{APIKey: realKey})
		s.SetBehavior(Behavior{CutAfterEvents: 2})
		resp := postTo(t, s, "/completions", completionBody(`,"max_tokens":5,"best_of":3,"stream":true`))
		events, err := readEvents(resp)
		if err == nil || len(events) != 2 {
			t.Errorf("got %d events and error %v, want 2 and a read error", len(events), err)
		}
		if got := s.Billed(); got != want {
			t.Errorf("got billed %+v, want %+v", got, want)
		}
	})
	t.Run("stall stream", func(t *testing.T) {
		s := New(t, Options{APIKey: realKey})
		s.SetBehavior(Behavior{StallAfterEvents: 1})
		testStall(t, s, "/completions", completionBody(`,"max_tokens":5,"best_of":3,"stream":true`), 2)
		if got := s.Billed(); got != want {
			t.Errorf("got billed %+v, want %+v", got, want)
		}
	})
}
