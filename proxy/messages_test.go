package proxy_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/fakeanthropic"
	"github.com/hardcap/hardcap/storage"
)

// postAnthropic sends a Messages request the way Anthropic's clients do:
// the token in x-api-key (or as a Bearer token) and anthropic-version.
func (h *harness) postAnthropic(path, body string, header ...string) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("X-Api-Key", h.token)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

// haiku prices claude-haiku-4-5 by hand: 1 USD/Mtok input (1,000 nano-USD
// a token), cache reads 0.1 (100), 5-minute writes 1.25 (1,250), one-hour
// writes 2 (2,000), output 5 (5,000).
func haiku(u fakeanthropic.Usage) budget.Money {
	return budget.Money(u.InputTokens*1_000 + u.CacheReadInputTokens*100 + u.CacheCreation5m*1_250 + u.CacheCreation1h*2_000 + u.OutputTokens*5_000)
}

const haikuBody = `{"model":"claude-haiku-4-5","max_tokens":64,"messages":[{"role":"user","content":"Hello, Claude"}]}`

func TestMessages_ExactChargeWithCache(t *testing.T) {
	for _, stream := range []bool{false, true} {
		name := "json"
		body := haikuBody
		if stream {
			name = "stream"
			body = strings.Replace(body, `"max_tokens":64`, `"max_tokens":64,"stream":true`, 1)
		}
		t.Run(name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{noSync: true})
			// message_start reports 3 output tokens; message_delta's final
			// count replaces it, it does not add.
			h.ant.SetBehavior(fakeanthropic.Behavior{CacheRead: 1000, CacheWrite5m: 100, CacheWrite1h: 200, StartOutputTokens: 3})
			resp := h.postAnthropic("/v1/messages", body, "Anthropic-Beta", "extended-cache-ttl-2025-04-11")
			if out := readAll(t, resp); resp.StatusCode != 200 {
				t.Fatalf("got %d: %s", resp.StatusCode, out)
			}
			call := h.ant.Calls()[0]
			if call.Header.Get("Anthropic-Beta") != "extended-cache-ttl-2025-04-11" || call.Header.Get("Anthropic-Version") != "2023-06-01" {
				t.Fatal("anthropic-version or anthropic-beta did not pass through")
			}
			rec := h.records(1)[0]
			want := haiku(call.Usage)
			if rec.Charged != want || rec.Outcome != budget.Complete {
				t.Fatalf("got charged %s (%s), want %s for %+v", rec.Charged, rec.Outcome, want, call.Usage)
			}
			u := rec.Usage
			if u.CacheReadTokens != 1000 || u.CacheWriteTokens != 100 || u.CacheWrite1hTokens != 200 || u.InputTokens != call.Usage.InputTokens+1300 {
				t.Fatalf("record usage %+v", u)
			}
			if rec.Route != "POST /v1/messages" || rec.Provider != "anthropic" {
				t.Fatalf("record %+v", rec)
			}
		})
	}
}

func TestMessages_BearerAndNamedProvider(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	req, _ := http.NewRequest("POST", h.srv.URL+"/p/claude/v1/messages", strings.NewReader(haikuBody))
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("got %d: %s", resp.StatusCode, body)
	}
	if rec := h.records(1)[0]; rec.Provider != "claude" {
		t.Fatalf("got provider %q, want claude", rec.Provider)
	}
}

func TestMessages_CountTokensIsFreeButAuthenticated(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	resp := h.postAnthropic("/v1/messages/count_tokens", `{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"Hello"}]}`)
	if body := readAll(t, resp); resp.StatusCode != 200 || !strings.Contains(body, "input_tokens") {
		t.Fatalf("got %d: %s", resp.StatusCode, body)
	}
	req, _ := http.NewRequest("POST", h.srv.URL+"/v1/messages/count_tokens", strings.NewReader(`{}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	readAll(t, resp)
	if resp.StatusCode != 401 {
		t.Fatalf("without a token got %d, want 401", resp.StatusCode)
	}
	flushLedger(t, h.db) // the settlement commits after the response ends
	if u, _ := h.db.Usage(storage.RecordFilter{}); len(u.Records) != 0 {
		t.Fatal("count_tokens was charged")
	}
}

func TestMessages_AnthropicErrorShape(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true, token: budget.Limit{Amount: 1}, onLow: budget.Reject})
	tests := []struct {
		name, body, key string
		status          int
		typ             string
	}{
		{"no token", haikuBody, "", 401, "authentication_error"},
		{"budget", haikuBody, h.token, 402, "budget_exhausted"},
		{"no max_tokens", `{"model":"claude-haiku-4-5","messages":[{"role":"user","content":"x"}]}`, h.token, 400, "invalid_request_error"},
		{"server tool", `{"model":"claude-haiku-4-5","max_tokens":5,"tools":[{"type":"web_search_20250305","name":"web_search"}],"messages":[{"role":"user","content":"x"}]}`, h.token, 400, "unbounded_cost"},
		{"document block", `{"model":"claude-haiku-4-5","max_tokens":5,"messages":[{"role":"user","content":[{"type":"document","source":{"type":"url","url":"https://x/a.pdf"}}]}]}`, h.token, 400, "unbounded_cost"},
		{"mcp servers", `{"model":"claude-haiku-4-5","max_tokens":5,"mcp_servers":[],"messages":[{"role":"user","content":"x"}]}`, h.token, 400, "unbounded_cost"},
		{"unpriced model", `{"model":"claude-unknown","max_tokens":5,"messages":[{"role":"user","content":"x"}]}`, h.token, 403, "model_not_priced"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequest("POST", h.srv.URL+"/v1/messages", strings.NewReader(tt.body))
			if tt.key != "" {
				req.Header.Set("X-Api-Key", tt.key)
			}
			req.Header.Set("Anthropic-Version", "2023-06-01")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.StatusCode != tt.status {
				t.Fatalf("got %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			var e struct {
				Type  string `json:"type"`
				Error struct{ Type, Message string }
			}
			decode(t, body, &e)
			if e.Type != "error" || e.Error.Type != tt.typ || e.Error.Message == "" {
				t.Fatalf("got %s, want an Anthropic error of type %s", body, tt.typ)
			}
		})
	}
	if n := len(h.ant.Calls()); n != 0 {
		t.Fatalf("%d refused requests reached the upstream", n)
	}
}

// TestMessages_TieredAboveThreshold sends claude-sonnet-4-5 more than
// 200,000 input tokens, where its price doubles for the whole request.
func TestMessages_TieredAboveThreshold(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	big := strings.Repeat("abcd", 210_000) // 840,000 bytes: about 210,000 tokens by the fake's count
	resp := h.postAnthropic("/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"`+big+`"}]}`)
	if body := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("got %d: %s", resp.StatusCode, body)
	}
	u := h.ant.Calls()[0].Usage
	if u.InputTokens <= 200_000 {
		t.Fatalf("the test needs more than 200,000 input tokens, got %d", u.InputTokens)
	}
	// Above 200k: 6 USD/Mtok input (6,000 nano-USD a token), 22.5 output.
	want := budget.Money(u.InputTokens*6_000 + u.OutputTokens*22_500)
	if rec := h.records(1)[0]; rec.Charged != want {
		t.Fatalf("got charged %s, want %s (tier price)", rec.Charged, want)
	}
}

// TestMessages_DateBoundPrice prices claude-sonnet-4-6 above 200,000 input
// tokens on both sides of 2026-03-13, when its long-context surcharge ended.
func TestMessages_DateBoundPrice(t *testing.T) {
	big := strings.Repeat("abcd", 210_000)
	for _, tc := range []struct {
		day         time.Time
		in, outNano int64
	}{
		{time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC), 6_000, 22_500},
		{time.Date(2026, 4, 1, 12, 0, 0, 0, time.UTC), 3_000, 15_000},
	} {
		t.Run(tc.day.Format("2006-01-02"), func(t *testing.T) {
			h := newHarness(t, harnessOptions{noSync: true, now: func() time.Time { return tc.day }})
			resp := h.postAnthropic("/v1/messages", `{"model":"claude-sonnet-4-6","max_tokens":100,"messages":[{"role":"user","content":"`+big+`"}]}`)
			if body := readAll(t, resp); resp.StatusCode != 200 {
				t.Fatalf("got %d: %s", resp.StatusCode, body)
			}
			u := h.ant.Calls()[0].Usage
			want := budget.Money(u.InputTokens*tc.in + u.OutputTokens*tc.outNano)
			if rec := h.records(1)[0]; rec.Charged != want {
				t.Fatalf("got charged %s, want %s", rec.Charged, want)
			}
		})
	}
}

func TestMessages_ThinkingCountsInsideMaxTokens(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true, token: budget.Limit{Amount: 10_000_000}})
	h.ant.SetBehavior(fakeanthropic.Behavior{BillAtCap: true})
	// Worst case 2,000 output tokens of haiku = 0.01 USD; the 0.01 USD
	// budget also holds the input, so the cap is clamped and the thinking
	// budget lowered under it.
	resp := h.postAnthropic("/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":2000,"thinking":{"type":"enabled","budget_tokens":1500},"messages":[{"role":"user","content":"Think."}]}`)
	body := readAll(t, resp)
	call := h.ant.Calls()[0]
	var sent struct {
		MaxTokens int64 `json:"max_tokens"`
		Thinking  struct {
			Budget int64 `json:"budget_tokens"`
		} `json:"thinking"`
	}
	decode(t, string(call.Body), &sent)
	if sent.MaxTokens >= 2000 || sent.Thinking.Budget >= sent.MaxTokens && sent.MaxTokens > 1 {
		t.Fatalf("sent max_tokens %d with thinking budget %d: %s", sent.MaxTokens, sent.Thinking.Budget, body)
	}
	rec := h.records(1)[0]
	if rec.Charged > rec.Reserved || rec.Reserved > 10_000_000 {
		t.Fatalf("charged %s reserved %s", rec.Charged, rec.Reserved)
	}
}

// TestMessages_HardStopUnderConcurrency is the invariant on /v1/messages.
func TestMessages_HardStopUnderConcurrency(t *testing.T) {
	limit := budget.Limit{Amount: 5_000_000}
	h := newHarness(t, harnessOptions{project: limit})
	h.ant.SetBehavior(fakeanthropic.Behavior{BillAtCap: true})
	body := `{"model":"claude-haiku-4-5","max_tokens":100,"stream":true,"messages":[{"role":"user","content":"A long story, please."}]}`
	stopSampling := h.sampleBudget(budget.ProjectScope("web"), limit.Amount)
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			readAll(t, h.postAnthropic("/v1/messages", body))
		}()
	}
	wg.Wait()
	_, violations := stopSampling()
	var billed budget.Money
	for _, c := range h.ant.Calls() {
		billed += haiku(c.Usage)
	}
	flushLedger(t, h.db) // the settlement commits after the response ends
	u, _ := h.db.Usage(storage.RecordFilter{})
	if violations != 0 || billed > limit.Amount || u.Spent > limit.Amount || u.Spent != billed {
		t.Fatalf("violations %d, billed %s, recorded %s, limit %s", violations, billed, u.Spent, limit.Amount)
	}
	t.Logf("messages: %d served of 100, billed %s USD of %s", len(h.ant.Calls()), billed, limit.Amount)
}

// TestMessages_AutomaticCachingWithinTheBound sends a request with
// Anthropic's top-level cache_control (automatic caching) for one hour, to
// an upstream that bills the worst the request allows: its whole prompt
// written to the cache at the one-hour rate (at most one token a byte) and
// all of max_tokens. It is accepted, and the reservation covers the charge.
func TestMessages_AutomaticCachingWithinTheBound(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	body := `{"model":"claude-haiku-4-5","max_tokens":40,"cache_control":{"type":"ephemeral","ttl":"1h"},` +
		`"system":"` + strings.Repeat("A long shared system prompt. ", 40) + `","messages":[{"role":"user","content":"Hello"}]}`
	h.ant.SetBehavior(fakeanthropic.Behavior{
		BillAtCap:    true,
		InputTokens:  func([]byte) int64 { return 0 },
		CacheWrite1h: int64(len(body)),
	})
	resp := h.postAnthropic("/v1/messages", body)
	if out := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("got %d: %s", resp.StatusCode, out)
	}
	if got := string(h.ant.Calls()[0].Body); !strings.Contains(got, `"cache_control":{"type":"ephemeral","ttl":"1h"}`) {
		t.Fatalf("cache_control did not reach the provider: %s", got)
	}
	rec := h.records(1)[0]
	want := haiku(h.ant.Calls()[0].Usage)
	if rec.Outcome != budget.Complete || rec.Charged != want || rec.Usage.CacheWrite1hTokens != int64(len(body)) {
		t.Fatalf("charged %s (%s), want %s; usage %+v", rec.Charged, rec.Outcome, want, rec.Usage)
	}
	if rec.Charged > rec.Reserved {
		t.Fatalf("charged %s above the reservation %s", rec.Charged, rec.Reserved)
	}
}
