package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
)

// recorder is an upstream that answers 200 {} to everything and records
// which provider got which request.
type recorder struct {
	mu   sync.Mutex
	hits []hit
}

type hit struct {
	provider, method, path, query, key string
}

func (rec *recorder) upstream(t *testing.T, provider string) *url.URL {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("X-Api-Key")
		if key == "" {
			key = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
		}
		rec.mu.Lock()
		rec.hits = append(rec.hits, hit{provider, r.Method, r.URL.Path, r.URL.RawQuery, key})
		rec.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{}`))
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL)
	return u
}

func (rec *recorder) last() (hit, int) {
	rec.mu.Lock()
	defer rec.mu.Unlock()
	if len(rec.hits) == 0 {
		return hit{}, 0
	}
	return rec.hits[len(rec.hits)-1], len(rec.hits)
}

// TestRoutes_FreeRoutes sends every free route the SDKs call, the way each
// SDK sends it, and checks which provider and upstream path it reached (or
// that it was refused), that it needs a token, and that nothing is charged.
func TestRoutes_FreeRoutes(t *testing.T) {
	rec := &recorder{}
	h := newHarness(t, harnessOptions{noSync: true, providers: func([]*proxy.Provider) []*proxy.Provider {
		openaiBase := rec.upstream(t, "openai")
		openaiBase.Path = "/v1"
		groqBase := rec.upstream(t, "groq")
		groqBase.Path = "/openai/v1"
		return []*proxy.Provider{
			{Name: "openai", Kind: proxy.KindOpenAI, BaseURL: openaiBase, Key: proxy.StaticKey("sk-openai"), Prices: "openai"},
			{Name: "groq", Kind: proxy.KindOpenAI, BaseURL: groqBase, Key: proxy.StaticKey("gsk-groq"), Prices: "groq"},
			{Name: "anthropic", Kind: proxy.KindAnthropic, BaseURL: rec.upstream(t, "anthropic"), Key: proxy.StaticKey("sk-ant"), Prices: "anthropic"},
			{Name: "claude", Kind: proxy.KindAnthropic, BaseURL: rec.upstream(t, "claude"), Key: proxy.StaticKey("sk-claude"), Prices: "anthropic"},
		}
	}})
	openAIClient := func(token string) http.Header {
		return http.Header{"Authorization": {"Bearer " + token}}
	}
	anthropicClient := func(token string) http.Header {
		return http.Header{"X-Api-Key": {token}, "Anthropic-Version": {"2023-06-01"}}
	}
	cases := []struct {
		name         string
		method, path string
		body         string
		header       func(string) http.Header
		// want is "provider path" of the upstream call; "" means refused
		// with wantStatus.
		want       string
		wantStatus int
	}{
		{"openai models", "GET", "/v1/models", "", openAIClient, "openai /v1/models", 200},
		{"openai models.retrieve", "GET", "/v1/models/gpt-4o-mini", "", openAIClient, "openai /v1/models/gpt-4o-mini", 200},
		{"openai fine-tune id", "GET", "/v1/models/ft:gpt-4o-mini-2024-07-18:org::abc123", "", openAIClient, "openai /v1/models/ft:gpt-4o-mini-2024-07-18:org::abc123", 200},
		{"openai input_tokens", "POST", "/v1/responses/input_tokens?beta=true", `{"model":"gpt-4o-mini","input":"hi"}`, openAIClient, "openai /v1/responses/input_tokens", 200},
		{"openai moderations", "POST", "/v1/moderations", `{"model":"omni-moderation-latest","input":"hi"}`, openAIClient, "openai /v1/moderations", 200},
		{"anthropic models", "GET", "/v1/models?limit=20", "", anthropicClient, "anthropic /v1/models", 200},
		{"anthropic models.retrieve", "GET", "/v1/models/claude-haiku-4-5", "", anthropicClient, "anthropic /v1/models/claude-haiku-4-5", 200},
		{"anthropic version header alone", "GET", "/v1/models", "", func(tok string) http.Header {
			return http.Header{"Authorization": {"Bearer " + tok}, "Anthropic-Version": {"2023-06-01"}}
		}, "anthropic /v1/models", 200},
		{"named anthropic models", "GET", "/p/claude/v1/models", "", anthropicClient, "claude /v1/models", 200},
		{"named anthropic models.retrieve", "GET", "/p/claude/v1/models/claude-haiku-4-5", "", anthropicClient, "claude /v1/models/claude-haiku-4-5", 200},
		{"named openai-compatible models", "GET", "/p/groq/v1/models/llama-3.3-70b", "", openAIClient, "groq /openai/v1/models/llama-3.3-70b", 200},
		// Free only at OpenAI: an OpenAI-compatible provider may bill them.
		{"compatible moderations", "POST", "/p/groq/v1/moderations", `{"input":"hi"}`, openAIClient, "", 403},
		{"compatible input_tokens", "POST", "/p/groq/v1/responses/input_tokens", `{"model":"m","input":"hi"}`, openAIClient, "", 403},
		// Any token could read any stored response through the shared key.
		{"stored response", "GET", "/v1/responses/resp_123", "", openAIClient, "", 403},
		{"model id with a dot segment", "GET", "/v1/models/..", "", openAIClient, "", 403},
		{"model id with two segments", "GET", "/v1/models/a/b", "", openAIClient, "", 403},
		{"models by POST", "POST", "/v1/models/gpt-4o", `{}`, openAIClient, "", 403},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			send := func(token string) (*http.Response, string) {
				var body *strings.Reader
				if c.body != "" {
					body = strings.NewReader(c.body)
				} else {
					body = strings.NewReader("")
				}
				req, err := http.NewRequest(c.method, h.srv.URL+c.path, body)
				if err != nil {
					t.Fatal(err)
				}
				for k, v := range c.header(token) {
					req.Header[k] = v
				}
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				return resp, readAll(t, resp)
			}
			_, before := rec.last()
			resp, body := send(h.token)
			got, after := rec.last()
			if c.want == "" {
				if resp.StatusCode != c.wantStatus || after != before {
					t.Fatalf("got %d (%d upstream calls), want %d and none: %s", resp.StatusCode, after-before, c.wantStatus, body)
				}
				return
			}
			if resp.StatusCode != c.wantStatus || after != before+1 {
				t.Fatalf("got %d with %d upstream calls, want %d and one: %s", resp.StatusCode, after-before, c.wantStatus, body)
			}
			if g := got.provider + " " + got.path; g != c.want {
				t.Fatalf("reached %q, want %q", g, c.want)
			}
			if strings.HasPrefix(got.key, "hc_") || got.key == "" {
				t.Fatal("the upstream did not get the real key")
			}
			if _, q, _ := strings.Cut(c.path, "?"); got.query != q {
				t.Fatalf("query %q, want %q", got.query, q)
			}
			// Without a token: 401, nothing forwarded.
			resp, body = send("")
			if _, n := rec.last(); resp.StatusCode != 401 || n != after {
				t.Fatalf("without a token got %d: %s", resp.StatusCode, body)
			}
		})
	}
	flushLedger(t, h.db) // the settlement commits after the response ends
	if u, _ := h.db.Usage(storage.RecordFilter{}); len(u.Records) != 0 {
		t.Fatalf("free routes were charged: %d records", len(u.Records))
	}
}

// TestRoutes_AnthropicModelsErrorShape: a refused model list from an
// Anthropic client is answered in Anthropic's error shape.
func TestRoutes_AnthropicModelsErrorShape(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	req, _ := http.NewRequest("GET", h.srv.URL+"/v1/models", nil)
	req.Header.Set("X-Api-Key", "hc_wrong")
	req.Header.Set("Anthropic-Version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != 401 || !strings.Contains(body, `"type":"error"`) || !strings.Contains(body, "authentication_error") {
		t.Fatalf("got %d: %s", resp.StatusCode, body)
	}
}
