package main

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/testlog"
)

// startDemo starts `hardcap serve --demo` with no config in this process
// and returns it with a token of a project "demo".
func startDemo(t *testing.T) (*server, string) {
	t.Helper()
	t.Setenv("HARDCAP_ADMIN_TOKEN", "")
	t.Setenv("HARDCAP_CONFIG", "")
	// No real key anywhere: the demo must not need one.
	t.Setenv("OPENAI_API_KEY", "")
	t.Setenv("ANTHROPIC_API_KEY", "")
	cfg, err := loadConfig("")
	if err != nil {
		t.Fatal(err)
	}
	cfg.Listen = "127.0.0.1:0"
	s := &server{t: t, dataDir: t.TempDir(), logs: &testlog.Buffer{}}
	s.main = &Main{Config: cfg, DataDir: s.dataDir, LogOutput: s.logs, Demo: true}
	if err := s.main.Open(); err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + s.main.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() { s.done <- s.main.Run(ctx) }()
	t.Cleanup(s.stop)
	s.mustCLI("project", "create", "demo", "--budget", "5")
	var created struct {
		Token string `json:"token"`
	}
	decodeJSON(t, s.mustCLI("token", "create", "--project", "demo", "--json"), &created)
	return s, created.Token
}

// TestDemo_EveryRoute sends every route the demo lists through a running
// `hardcap serve --demo`, as the OpenAI and Anthropic SDKs send them
// (streamed and not where the API streams), and checks each answer's shape
// and that each metered call is charged the exact catalog price of the
// usage the simulator reported.
func TestDemo_EveryRoute(t *testing.T) {
	s, token := startDemo(t)
	openai := http.Header{"Authorization": {"Bearer " + token}, "Content-Type": {"application/json"}}
	anthropic := http.Header{"X-Api-Key": {token}, "Anthropic-Version": {"2023-06-01"}, "Content-Type": {"application/json"}}
	cases := []struct {
		name, method, path, body string
		header                   http.Header
		// want are substrings of the answer; metered marks a charged route.
		want    []string
		metered bool
	}{
		{"chat", "POST", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}`, openai, []string{`"object":"chat.completion"`, `"prompt_tokens"`}, true},
		{"chat stream", "POST", "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hello"}]}`, openai, []string{`"chat.completion.chunk"`, "data: [DONE]"}, true},
		{"completions", "POST", "/v1/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":"Say hi","max_tokens":8}`, openai, []string{`"object":"text_completion"`, `"finish_reason":"length"`, `"completion_tokens":8`}, true},
		{"completions stream", "POST", "/v1/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":["a","b"],"stream":true}`, openai, []string{`"text_completion"`, "data: [DONE]"}, true},
		{"embeddings", "POST", "/v1/embeddings", `{"model":"text-embedding-3-small","input":["one","two"]}`, openai, []string{`"object":"embedding"`, `"index":1`, `"prompt_tokens":4`}, true},
		{"embeddings base64", "POST", "/v1/embeddings", `{"model":"text-embedding-3-small","input":"one","encoding_format":"base64","dimensions":4}`, openai, []string{`"embedding":"`}, true},
		{"responses", "POST", "/v1/responses", `{"model":"gpt-4o-mini","input":"Hello"}`, openai, []string{`"object":"response"`, `"status":"completed"`, `"output_text"`, `"input_tokens"`}, true},
		{"responses capped", "POST", "/v1/responses", `{"model":"gpt-4o-mini","input":"Hello","max_output_tokens":16}`, openai, []string{`"status":"incomplete"`, `"output_tokens":16`}, true},
		{"responses stream", "POST", "/v1/responses", `{"model":"gpt-4o-mini","input":[{"role":"user","content":"Hello"}],"stream":true}`, openai, []string{"event: response.created", "event: response.output_text.delta", "event: response.completed"}, true},
		{"models", "GET", "/v1/models", "", openai, []string{`"object":"list"`, `"gpt-4o-mini"`, `"text-embedding-3-small"`}, false},
		{"models.retrieve", "GET", "/v1/models/gpt-4o-mini", "", openai, []string{`"id":"gpt-4o-mini"`, `"object":"model"`}, false},
		{"input_tokens", "POST", "/v1/responses/input_tokens", `{"model":"gpt-4o-mini","input":"Hello"}`, openai, []string{`"object":"response.input_tokens"`, `"input_tokens":`}, false},
		{"moderations", "POST", "/v1/moderations", `{"input":"Hello"}`, openai, []string{`"flagged":false`, `"omni-moderation-latest"`}, false},
		{"messages", "POST", "/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":100,"messages":[{"role":"user","content":"Hello"}]}`, anthropic, []string{`"type":"message"`, `"stop_reason":"end_turn"`, `"input_tokens"`}, true},
		{"messages capped", "POST", "/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":5,"system":"Be brief.","messages":[{"role":"user","content":[{"type":"text","text":"Hello"}]}]}`, anthropic, []string{`"stop_reason":"max_tokens"`, `"output_tokens":5`}, true},
		{"messages stream", "POST", "/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"Hello"}]}`, anthropic, []string{"event: message_start", "event: content_block_delta", "event: message_delta", "event: message_stop"}, true},
		{"count_tokens", "POST", "/v1/messages/count_tokens", `{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"Hello"}]}`, anthropic, []string{`"input_tokens":`}, false},
		{"anthropic models", "GET", "/v1/models", "", anthropic, []string{`"claude-haiku-4-5"`, `"has_more":false`}, false},
		{"anthropic models.retrieve", "GET", "/v1/models/claude-haiku-4-5", "", anthropic, []string{`"type":"model"`, `"id":"claude-haiku-4-5"`}, false},
	}
	metered := 0
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, s.url+c.path, strings.NewReader(c.body))
			req.Header = c.header.Clone()
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("got %d: %s", resp.StatusCode, b)
			}
			for _, w := range c.want {
				if !strings.Contains(string(b), w) {
					t.Errorf("the answer lacks %s: %s", w, b)
				}
			}
		})
		if c.metered {
			metered++
		}
	}

	// Exact catalog prices, in nano-USD per token.
	rates := map[string][2]int64{
		"gpt-4o-mini": {150, 600}, "gpt-3.5-turbo-instruct": {1500, 2000},
		"text-embedding-3-small": {20, 0}, "claude-haiku-4-5": {1000, 5000},
	}
	var usage struct {
		Records []budget.Record `json:"records"`
	}
	waitFor(t, "every metered request recorded", func() bool {
		decodeJSON(t, s.mustCLI("usage", "--json"), &usage)
		return len(usage.Records) >= metered
	})
	if len(usage.Records) != metered {
		t.Fatalf("got %d records, want %d (free routes are not charged)", len(usage.Records), metered)
	}
	routes := map[string]bool{}
	for _, r := range usage.Records {
		routes[r.Route] = true
		rate, ok := rates[r.Model]
		if !ok {
			t.Fatalf("record for unexpected model %q", r.Model)
		}
		want := budget.Money(r.Usage.InputTokens*rate[0] + r.Usage.OutputTokens*rate[1])
		if r.Outcome != budget.Complete || r.Usage.InputTokens == 0 || r.Charged != want || r.Charged > r.Reserved {
			t.Errorf("%s %s: outcome %s, usage %+v, charged %s (want %s), reserved %s", r.Route, r.Model, r.Outcome, r.Usage, r.Charged, want, r.Reserved)
		}
	}
	for _, route := range []string{"POST /v1/chat/completions", "POST /v1/completions", "POST /v1/embeddings", "POST /v1/responses", "POST /v1/messages"} {
		if !routes[route] {
			t.Errorf("no record for %s: %v", route, routes)
		}
	}
}
