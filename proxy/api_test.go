package proxy_test

import (
	"net/http"
	"strings"
	"testing"
)

// TestNesting_DeepBodiesRefusedWithTheLimit sends, on every metered route,
// a body whose one parameter nests past the 128-level limit: it is refused
// 400 invalid_request with a message naming the limit, nothing reaches the
// provider and nothing is charged. A body at the limit still parses.
func TestNesting_DeepBodiesRefusedWithTheLimit(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	deep := func(levels int) string {
		return strings.Repeat("[", levels) + strings.Repeat("]", levels)
	}
	routes := []struct {
		name, path, body string
		anthropic        bool
	}{
		{"chat", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"metadata":%s}`, false},
		{"completions", "/v1/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":"hi","stop":%s}`, false},
		{"embeddings", "/v1/embeddings", `{"model":"text-embedding-3-small","input":%s}`, false},
		{"responses", "/v1/responses", `{"model":"gpt-4o-mini","input":"hi","metadata":%s}`, false},
		{"messages", "/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"metadata":%s}`, true},
	}
	for _, rt := range routes {
		for _, c := range []struct {
			name    string
			levels  int
			refused bool
		}{{"100k levels", 100_000, true}, {"129 levels", 128, true}} {
			t.Run(rt.name+"/"+c.name, func(t *testing.T) {
				// The outer object is one level, so levels+1 in all.
				body := strings.Replace(rt.body, "%s", deep(c.levels), 1)
				calls := len(h.up.Calls()) + len(h.ant.Calls())
				post := h.post
				if rt.anthropic {
					post = func(path, body string) *http.Response { return h.postAnthropic(path, body) }
				}
				resp := post(rt.path, body)
				got := readAll(t, resp)
				if resp.StatusCode != 400 {
					t.Fatalf("got %d, want 400: %s", resp.StatusCode, got)
				}
				if !strings.Contains(got, "deeper than 128 levels") || !strings.Contains(got, "invalid_request") {
					t.Fatalf("the message does not name the limit: %s", got)
				}
				if n := len(h.up.Calls()) + len(h.ant.Calls()); n != calls {
					t.Fatal("a refused body reached the provider")
				}
			})
		}
	}
	// 128 levels in all (the outer object and 127 arrays) is within the limit.
	resp := h.post("/v1/embeddings", `{"model":"text-embedding-3-small","input":`+deep(127)+`}`)
	if got := readAll(t, resp); strings.Contains(got, "deeper than") {
		t.Fatalf("a body at the limit was refused for its depth: %s", got)
	}
}
