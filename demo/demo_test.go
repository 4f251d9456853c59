package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"
)

const userText = "How much would a very long essay about budgets cost me?"

// chatBody returns a request body with a fixed conversation plus extra
// top-level fields (each starting with a comma).
func chatBody(extra string) string {
	return `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"Be brief."},` +
		`{"role":"user","content":"` + userText + `"}]` + extra + `}`
}

// wantPrompt is the counting rule applied by hand to chatBody's messages:
// "Be brief." is 9 bytes and userText is 56 bytes.
const wantPrompt = (3 + 4) + (14 + 4) + 3

func newServer(t *testing.T, opts Options) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(NewOpenAI(opts))
	t.Cleanup(srv.Close)
	return srv
}

func do(t *testing.T, srv *httptest.Server, method, path, key, body string) *http.Response {
	t.Helper()
	req, err := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func keys(m map[string]any) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func checkKeys(t *testing.T, what string, v any, want ...string) map[string]any {
	t.Helper()
	m, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("%s: got %T, want an object", what, v)
	}
	slices.Sort(want)
	if got := keys(m); !slices.Equal(got, want) {
		t.Errorf("%s keys: got %v, want %v", what, got, want)
	}
	return m
}

func checkUsageShape(t *testing.T, v any) {
	t.Helper()
	u := checkKeys(t, "usage", v, "prompt_tokens", "completion_tokens", "total_tokens", "prompt_tokens_details", "completion_tokens_details")
	checkKeys(t, "prompt_tokens_details", u["prompt_tokens_details"], "cached_tokens", "audio_tokens")
	checkKeys(t, "completion_tokens_details", u["completion_tokens_details"],
		"reasoning_tokens", "audio_tokens", "accepted_prediction_tokens", "rejected_prediction_tokens")
}

func TestChatCompletionShape(t *testing.T) {
	srv := newServer(t, Options{TokenDelay: -1})
	resp := do(t, srv, "POST", "/v1/chat/completions", "hc_placeholder", chatBody(""))
	if resp.StatusCode != 200 {
		t.Fatalf("got status %d, want 200", resp.StatusCode)
	}
	if got := resp.Header.Get("Content-Type"); got != "application/json" {
		t.Errorf("got Content-Type %q, want application/json", got)
	}
	raw, _ := io.ReadAll(resp.Body)

	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	checkKeys(t, "completion", m, "id", "object", "created", "model", "choices", "usage", "service_tier", "system_fingerprint")
	checkUsageShape(t, m["usage"])
	choices := m["choices"].([]any)
	if len(choices) != 1 {
		t.Fatalf("got %d choices, want 1", len(choices))
	}
	c := checkKeys(t, "choice", choices[0], "index", "message", "logprobs", "finish_reason")
	msg := checkKeys(t, "message", c["message"], "role", "content", "refusal", "annotations")
	if c["logprobs"] != nil || msg["refusal"] != nil {
		t.Errorf("got logprobs %v refusal %v, want null, null", c["logprobs"], msg["refusal"])
	}
	if a, ok := msg["annotations"].([]any); !ok || len(a) != 0 {
		t.Errorf("got annotations %v, want []", msg["annotations"])
	}

	var cc ChatCompletion
	if err := json.Unmarshal(raw, &cc); err != nil {
		t.Fatal(err)
	}
	content := cc.Choices[0].Message.Content
	words := int64(len(strings.Fields(content)))
	for _, check := range []struct {
		name      string
		got, want any
	}{
		{"id prefix", strings.HasPrefix(cc.ID, "chatcmpl-"), true},
		{"object", cc.Object, "chat.completion"},
		{"model", cc.Model, "gpt-4o-mini"},
		{"created recent", time.Since(time.Unix(cc.Created, 0)) < time.Minute, true},
		{"service_tier", cc.ServiceTier, "default"},
		{"fingerprint prefix", strings.HasPrefix(cc.SystemFingerprint, "fp_"), true},
		{"role", cc.Choices[0].Message.Role, "assistant"},
		{"finish_reason", cc.Choices[0].FinishReason, FinishStop},
		{"quotes the user", strings.Contains(content, `Demo reply to "How much would a very long...":`), true},
		{"words in range", words >= MinReplyWords && words <= MaxReplyWords, true},
		{"prompt_tokens", cc.Usage.PromptTokens, int64(wantPrompt)},
		{"completion_tokens", cc.Usage.CompletionTokens, words},
		{"total_tokens", cc.Usage.TotalTokens, int64(wantPrompt) + words},
	} {
		if check.got != check.want {
			t.Errorf("%s: got %v, want %v", check.name, check.got, check.want)
		}
	}
}

func TestReplyTokens(t *testing.T) {
	prompts := []string{"", "hi", userText, strings.Repeat("long words everywhere ", 50), "\x00\"\"\"", "ünïcödé " + strings.Repeat("é", 40)}
	for _, p := range prompts {
		for choice := range 3 {
			msgs := []Message{{Role: "user", Content: json.RawMessage(mustJSON(t, p))}}
			got := ReplyTokens(msgs, choice)
			if n := len(got); n < MinReplyWords || n > MaxReplyWords {
				t.Errorf("prompt %q choice %d: got %d tokens, want %d..%d", p, choice, n, MinReplyWords, MaxReplyWords)
			}
			if again := ReplyTokens(msgs, choice); !slices.Equal(got, again) {
				t.Errorf("prompt %q choice %d: got %q then %q, want the same reply", p, choice, got, again)
			}
			text := strings.Join(got, "")
			if n := len(strings.Fields(text)); n != len(got) {
				t.Errorf("prompt %q: got %d words in %q, want one per token (%d)", p, n, text, len(got))
			}
		}
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// sseEvents reads a whole event stream and returns the data payloads.
func sseEvents(t *testing.T, r io.Reader) []string {
	t.Helper()
	raw, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("reading stream: %v", err)
	}
	s := string(raw)
	if !strings.HasSuffix(s, "\n\n") {
		t.Errorf("stream does not end with a blank line: %q", s[max(0, len(s)-40):])
	}
	var out []string
	for ev := range strings.SplitSeq(strings.TrimSuffix(s, "\n\n"), "\n\n") {
		data, ok := strings.CutPrefix(ev, "data: ")
		if !ok || strings.Contains(data, "\n") {
			t.Fatalf("got event %q, want a single data line", ev)
		}
		out = append(out, data)
	}
	return out
}

type streamResult struct {
	content      []string // per choice
	finish       []string
	usage        *Usage
	usageChunks  int
	nullUsage    int // chunks carrying "usage": null
	chunks       int
	roleFirst    bool
	lastWasDone  bool
	contentDelta int // token chunks
}

func readStream(t *testing.T, resp *http.Response, n int) streamResult {
	t.Helper()
	if got := resp.Header.Get("Content-Type"); got != "text/event-stream" {
		t.Errorf("got Content-Type %q, want text/event-stream", got)
	}
	events := sseEvents(t, resp.Body)
	res := streamResult{content: make([]string, n), finish: make([]string, n), roleFirst: true}
	seenRole := make([]bool, n)
	for i, data := range events {
		if data == "[DONE]" {
			res.lastWasDone = i == len(events)-1
			continue
		}
		res.chunks++
		var m map[string]any
		if err := json.Unmarshal([]byte(data), &m); err != nil {
			t.Fatalf("chunk %d: %v", i, err)
		}
		if u, ok := m["usage"]; ok && u == nil {
			res.nullUsage++
		}
		var c ChatCompletionChunk
		if err := json.Unmarshal([]byte(data), &c); err != nil {
			t.Fatal(err)
		}
		if c.Object != "chat.completion.chunk" || !strings.HasPrefix(c.ID, "chatcmpl-") {
			t.Errorf("chunk %d: got object %q id %q, want chat.completion.chunk chatcmpl-...", i, c.Object, c.ID)
		}
		if c.Usage != nil {
			res.usageChunks++
			res.usage = c.Usage
			checkUsageShape(t, m["usage"])
			if ch, ok := m["choices"].([]any); !ok || len(ch) != 0 {
				t.Errorf("usage chunk: got choices %v, want []", m["choices"])
			}
			continue
		}
		if len(c.Choices) != 1 {
			t.Fatalf("chunk %d: got %d choices, want 1", i, len(c.Choices))
		}
		ch := c.Choices[0]
		d := ch.Delta
		switch {
		case d.Role != "":
			delta := checkKeys(t, "role delta", m["choices"].([]any)[0].(map[string]any)["delta"], "role", "content", "refusal")
			if d.Role != "assistant" || delta["content"] != "" || delta["refusal"] != nil {
				t.Errorf("got role delta %v, want assistant, \"\", null", delta)
			}
			seenRole[ch.Index] = true
		case d.Content != nil:
			checkKeys(t, "token delta", m["choices"].([]any)[0].(map[string]any)["delta"], "content")
			if !seenRole[ch.Index] {
				res.roleFirst = false
			}
			res.content[ch.Index] += *d.Content
			res.contentDelta++
		default:
			checkKeys(t, "final delta", m["choices"].([]any)[0].(map[string]any)["delta"])
			if ch.FinishReason == nil {
				t.Fatalf("chunk %d: got empty delta without finish_reason", i)
			}
			res.finish[ch.Index] = *ch.FinishReason
		}
	}
	return res
}

func TestStream(t *testing.T) {
	tests := []struct {
		name      string
		extra     string
		wantUsage bool
	}{
		{"without include_usage", `,"stream":true`, false},
		{"include_usage false", `,"stream":true,"stream_options":{"include_usage":false}`, false},
		{"include_usage true", `,"stream":true,"stream_options":{"include_usage":true}`, true},
	}
	srv := newServer(t, Options{TokenDelay: -1})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(t, srv, "POST", "/v1/chat/completions", "k", chatBody(tt.extra))
			if resp.StatusCode != 200 {
				t.Fatalf("got status %d, want 200", resp.StatusCode)
			}
			res := readStream(t, resp, 1)
			words := len(strings.Fields(res.content[0]))
			if !res.lastWasDone {
				t.Errorf("got [DONE] last = false, want true")
			}
			if !res.roleFirst {
				t.Errorf("got a token before the role chunk, want role first")
			}
			if res.contentDelta != words {
				t.Errorf("got %d token chunks, want one per word (%d)", res.contentDelta, words)
			}
			if res.finish[0] != FinishStop {
				t.Errorf("got finish_reason %q, want stop", res.finish[0])
			}
			wantUsageChunks, wantNull := 0, 0
			if tt.wantUsage {
				wantUsageChunks, wantNull = 1, res.chunks-1
			}
			if res.usageChunks != wantUsageChunks || res.nullUsage != wantNull {
				t.Errorf("got %d usage chunks and %d null usages, want %d and %d", res.usageChunks, res.nullUsage, wantUsageChunks, wantNull)
			}
			if tt.wantUsage {
				want := Usage{PromptTokens: wantPrompt, CompletionTokens: int64(words), TotalTokens: wantPrompt + int64(words)}
				if *res.usage != want {
					t.Errorf("got usage %+v, want %+v", *res.usage, want)
				}
			}
		})
	}
}

func TestCompletionCapRespected(t *testing.T) {
	tests := []struct {
		name       string
		stream     bool
		extra      string
		limit      int
		wantFinish string
	}{
		{"non-stream max_tokens", false, `,"max_tokens":5`, 5, FinishLength},
		{"non-stream max_completion_tokens wins", false, `,"max_tokens":500,"max_completion_tokens":1`, 1, FinishLength},
		{"non-stream high cap", false, `,"max_completion_tokens":1000`, MaxReplyWords, FinishStop},
		{"stream max_tokens", true, `,"max_tokens":5`, 5, FinishLength},
		{"stream max_completion_tokens", true, `,"max_completion_tokens":3`, 3, FinishLength},
		{"stream high cap", true, `,"max_tokens":1000`, MaxReplyWords, FinishStop},
	}
	srv := newServer(t, Options{TokenDelay: -1})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			extra := `,"n":2` + tt.extra
			if tt.stream {
				extra += `,"stream":true,"stream_options":{"include_usage":true}`
			}
			resp := do(t, srv, "POST", "/v1/chat/completions", "k", chatBody(extra))
			if resp.StatusCode != 200 {
				t.Fatalf("got status %d, want 200", resp.StatusCode)
			}
			var contents, finishes []string
			var usage Usage
			if tt.stream {
				res := readStream(t, resp, 2)
				contents, finishes = res.content, res.finish
				if res.usage == nil {
					t.Fatal("got no usage chunk, want one")
				}
				usage = *res.usage
			} else {
				var cc ChatCompletion
				if err := json.NewDecoder(resp.Body).Decode(&cc); err != nil {
					t.Fatal(err)
				}
				if len(cc.Choices) != 2 {
					t.Fatalf("got %d choices, want 2", len(cc.Choices))
				}
				for i, c := range cc.Choices {
					if c.Index != i {
						t.Errorf("got index %d, want %d", c.Index, i)
					}
					contents = append(contents, c.Message.Content)
					finishes = append(finishes, c.FinishReason)
				}
				usage = *cc.Usage
			}
			var sum int64
			for i := range 2 {
				words := len(strings.Fields(contents[i]))
				sum += int64(words)
				if words > tt.limit {
					t.Errorf("choice %d: got %d tokens, want <= %d", i, words, tt.limit)
				}
				if finishes[i] == FinishLength && words != tt.limit {
					t.Errorf("choice %d: got %d tokens with finish length, want exactly %d", i, words, tt.limit)
				}
				if tt.wantFinish == FinishLength && finishes[i] != FinishLength {
					t.Errorf("choice %d: got finish %q, want %q", i, finishes[i], FinishLength)
				}
			}
			want := Usage{PromptTokens: wantPrompt, CompletionTokens: sum, TotalTokens: wantPrompt + sum}
			if usage.PromptTokens != want.PromptTokens || usage.CompletionTokens != want.CompletionTokens || usage.TotalTokens != want.TotalTokens {
				t.Errorf("got usage %+v, want %+v", usage, want)
			}
		})
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name       string
		method     string
		path       string
		key        string
		body       string
		wantStatus int
		wantCode   string // "" means null
	}{
		{"bad json", "POST", "/v1/chat/completions", "k", `{"model":`, 400, ""},
		{"missing model", "POST", "/v1/chat/completions", "k", `{"messages":[{"role":"user","content":"x"}]}`, 400, ""},
		{"missing messages", "POST", "/v1/chat/completions", "k", `{"model":"gpt-4o"}`, 400, "missing_required_parameter"},
		{"no key", "POST", "/v1/chat/completions", "", chatBody(""), 401, ""},
		{"unknown model", "POST", "/v1/chat/completions", "k", `{"model":"gpt-9","messages":[{"role":"user","content":"x"}]}`, 404, "model_not_found"},
		{"unknown path", "POST", "/v1/audio/speech", "k", `{}`, 404, ""},
		{"unknown path without key", "GET", "/nope", "", ``, 404, ""},
		{"wrong method", "GET", "/v1/chat/completions", "k", ``, 405, ""},
		{"unknown model id", "GET", "/v1/models/gpt-9", "k", ``, 404, "model_not_found"},
	}
	srv := newServer(t, Options{TokenDelay: -1})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := do(t, srv, tt.method, tt.path, tt.key, tt.body)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("got status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			var m map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
				t.Fatal(err)
			}
			checkKeys(t, "body", m, "error")
			e := checkKeys(t, "error", m["error"], "message", "type", "param", "code")
			if e["type"] != "invalid_request_error" {
				t.Errorf("got type %v, want invalid_request_error", e["type"])
			}
			if msg, _ := e["message"].(string); msg == "" {
				t.Errorf("got message %v, want a non-empty string", e["message"])
			}
			var wantCode any
			if tt.wantCode != "" {
				wantCode = tt.wantCode
			}
			if e["code"] != wantCode {
				t.Errorf("got code %v, want %v", e["code"], wantCode)
			}
		})
	}
}

func TestModels(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want []string
	}{
		// Every route's models are listed, the chat models first.
		{"default", Options{}, slices.Concat(DefaultModels, CompletionsModels, EmbeddingModels, ModerationModels)},
		{"custom", Options{Models: []string{"a", "b", "a"}}, slices.Concat([]string{"a", "b"}, CompletionsModels, EmbeddingModels, ModerationModels)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newServer(t, tt.opts)
			resp := do(t, srv, "GET", "/v1/models", "k", "")
			if resp.StatusCode != 200 {
				t.Fatalf("got status %d, want 200", resp.StatusCode)
			}
			var m map[string]any
			if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
				t.Fatal(err)
			}
			checkKeys(t, "list", m, "object", "data")
			if m["object"] != "list" {
				t.Errorf("got object %v, want list", m["object"])
			}
			var ids []string
			for _, d := range m["data"].([]any) {
				e := checkKeys(t, "model", d, "id", "object", "created", "owned_by")
				if e["object"] != "model" {
					t.Errorf("got object %v, want model", e["object"])
				}
				ids = append(ids, e["id"].(string))
			}
			if !slices.Equal(ids, tt.want) {
				t.Errorf("got models %v, want %v", ids, tt.want)
			}
			resp = do(t, srv, "GET", "/v1/models/"+tt.want[0], "k", "")
			var one Model
			if err := json.NewDecoder(resp.Body).Decode(&one); err != nil || resp.StatusCode != 200 || one.ID != tt.want[0] {
				t.Errorf("GET model: got %d %+v %v, want 200 %s", resp.StatusCode, one, err, tt.want[0])
			}
		})
	}
}

func TestTokenDelayDefault(t *testing.T) {
	tests := []struct {
		in, want time.Duration
	}{
		{0, DefaultTokenDelay},
		{-1, -1},
		{time.Second, time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.in.String(), func(t *testing.T) {
			if got := NewOpenAI(Options{TokenDelay: tt.in}).(*handler).delay; got != tt.want {
				t.Errorf("got delay %v, want %v", got, tt.want)
			}
		})
	}
}

func TestStreamStopsWhenClientLeaves(t *testing.T) {
	done := make(chan struct{})
	h := NewOpenAI(Options{TokenDelay: time.Hour})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer close(done)
		h.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "POST", srv.URL+"/v1/chat/completions", strings.NewReader(chatBody(`,"stream":true`)))
	req.Header.Set("Authorization", "Bearer k")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	// Read the role chunk and the first token; the second token waits an hour.
	br := bufio.NewReader(resp.Body)
	for range 4 { // two events, each a data line and a blank line
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("handler still running 5s after the client left, want it to return")
	}
}

func TestTokenDelayPaces(t *testing.T) {
	srv := newServer(t, Options{TokenDelay: 5 * time.Millisecond})
	start := time.Now()
	resp := do(t, srv, "POST", "/v1/chat/completions", "k", chatBody(`,"stream":true,"max_tokens":5`))
	res := readStream(t, resp, 1)
	// Five tokens mean four pauses.
	if got, want := time.Since(start), 4*5*time.Millisecond; got < want {
		t.Errorf("got stream time %v, want >= %v", got, want)
	}
	if res.contentDelta != 5 {
		t.Errorf("got %d tokens, want 5", res.contentDelta)
	}
}

// TestErrors_NoUnboundedEcho: an unknown model's error quotes at most 64
// bytes of its name, on both simulators.
func TestErrors_NoUnboundedEcho(t *testing.T) {
	long := strings.Repeat("m", 10_000)
	srv := newServer(t, Options{TokenDelay: -1})
	resp := do(t, srv, "POST", "/v1/chat/completions", "k", `{"model":"`+long+`","messages":[{"role":"user","content":"x"}]}`)
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 404 || len(b) > 400 {
		t.Fatalf("got %d with a %d-byte body", resp.StatusCode, len(b))
	}
	ant := httptest.NewServer(NewAnthropic(Options{TokenDelay: -1}))
	defer ant.Close()
	req, _ := http.NewRequest("POST", ant.URL+"/v1/messages", strings.NewReader(`{"model":"`+long+`","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`))
	req.Header.Set("X-Api-Key", "k")
	r2, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(r2.Body)
	r2.Body.Close()
	if r2.StatusCode != 404 || len(b) > 400 || !strings.Contains(string(b), `"type":"error"`) {
		t.Fatalf("got %d: %.200s", r2.StatusCode, b)
	}
}

// TestRequestIDs: the demo answers carry a provider request id in each
// API's own header, different on every request, as the real APIs do.
func TestRequestIDs(t *testing.T) {
	oa := newServer(t, Options{})
	body := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`
	a := do(t, oa, http.MethodPost, "/v1/chat/completions", "k", body).Header.Get("x-request-id")
	b := do(t, oa, http.MethodPost, "/v1/chat/completions", "k", body).Header.Get("x-request-id")
	if !strings.HasPrefix(a, "req_") || len(a) != 36 || a == b {
		t.Errorf("OpenAI x-request-id: %q then %q", a, b)
	}
	an := httptest.NewServer(NewAnthropic(Options{}))
	t.Cleanup(an.Close)
	req, _ := http.NewRequest(http.MethodPost, an.URL+"/v1/messages", strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`))
	req.Header.Set("x-api-key", "k")
	req.Header.Set("anthropic-version", "2023-06-01")
	resp, err := an.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if id := resp.Header.Get("request-id"); !strings.HasPrefix(id, "req_") {
		t.Errorf("Anthropic request-id: %q (status %d)", id, resp.StatusCode)
	}
}
