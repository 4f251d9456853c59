package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/fakeanthropic"
	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/hardcap/hardcap/storage"
)

const helloBody = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello there"}]}`

// gpt-4o-mini costs 0.15 USD per million input tokens and 0.60 per million
// output tokens in the embedded price data.
const miniIn, miniOut = "0.15", "0.6"

func TestChat_NonStreamChargesExactUsage(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	resp := h.post("/v1/chat/completions", helloBody)
	body := readAll(t, resp)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got status %d: %s", resp.StatusCode, body)
	}
	var got struct {
		Usage struct{ PromptTokens, CompletionTokens int64 } `json:"usage"`
	}
	_ = json.Unmarshal([]byte(body), &got)
	calls := h.up.Calls()
	if len(calls) != 1 {
		t.Fatalf("upstream got %d calls, want 1", len(calls))
	}
	billed := calls[0].Usage
	rec := h.records(1)[0]
	want := price(t, billed.PromptTokens, billed.CompletionTokens, miniIn, miniOut)
	if rec.Charged != want || rec.Outcome != budget.Complete {
		t.Fatalf("got charged %s (%s), want %s for %d+%d tokens", rec.Charged, rec.Outcome, want, billed.PromptTokens, billed.CompletionTokens)
	}
	if rec.Usage.InputTokens != billed.PromptTokens || rec.Usage.OutputTokens != billed.CompletionTokens {
		t.Fatalf("record usage %+v, upstream billed %+v", rec.Usage, billed)
	}
	if rec.Reserved < rec.Charged {
		t.Fatalf("reserved %s < charged %s: the bound did not hold", rec.Reserved, rec.Charged)
	}
	if rec.TokenID != h.tokenID || rec.Project != "web" || rec.Model != "gpt-4o-mini" || rec.Route != "POST /v1/chat/completions" || rec.Status != 200 {
		t.Fatalf("record fields wrong: %+v", rec)
	}
}

// sseData returns the data payloads of an SSE body.
func sseData(body string) []string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		if d, ok := strings.CutPrefix(sc.Text(), "data: "); ok {
			out = append(out, d)
		}
	}
	return out
}

func TestChat_StreamUsageChunk(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantChunk bool
	}{
		{"hidden when not asked", `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hi"}]}`, false},
		{"kept when asked", `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hi"}]}`, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			resp := h.post("/v1/chat/completions", tt.body)
			body := readAll(t, resp)
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/event-stream") {
				t.Fatalf("got content type %q", ct)
			}
			data := sseData(body)
			if len(data) < 3 || data[len(data)-1] != "[DONE]" {
				t.Fatalf("stream does not end with [DONE]: %q", data)
			}
			usageChunk := false
			for _, d := range data {
				if strings.Contains(d, `"choices":[]`) && strings.Contains(d, `"prompt_tokens"`) {
					usageChunk = true
				}
			}
			if usageChunk != tt.wantChunk {
				t.Fatalf("usage chunk present = %v, want %v", usageChunk, tt.wantChunk)
			}
			call := h.up.Calls()[0]
			if !strings.Contains(string(call.Body), `"include_usage":true`) {
				t.Fatalf("upstream body lacks include_usage: %s", call.Body)
			}
			rec := h.records(1)[0]
			if want := price(t, call.Usage.PromptTokens, call.Usage.CompletionTokens, miniIn, miniOut); rec.Charged != want {
				t.Fatalf("got charged %s, want %s", rec.Charged, want)
			}
		})
	}
}

func TestChat_CredentialsStripped(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	for _, header := range []string{"Authorization", "X-Api-Key", "Api-Key"} {
		t.Run(header, func(t *testing.T) {
			req, _ := http.NewRequest("POST", h.srv.URL+"/v1/chat/completions", strings.NewReader(helloBody))
			v := h.token
			if header == "Authorization" {
				v = "Bearer " + h.token
			}
			req.Header.Set(header, v)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if body := readAll(t, resp); resp.StatusCode != 200 {
				t.Fatalf("got %d: %s", resp.StatusCode, body)
			}
		})
	}
	// The fake upstream fails the test on any hc_ value or a wrong key; check
	// what it saw as well.
	for _, c := range h.up.Calls() {
		if got := c.Header.Get("Authorization"); got != "Bearer "+realKey {
			t.Errorf("upstream Authorization is not the real key")
		}
		if c.Header.Get("X-Api-Key") != "" || c.Header.Get("Api-Key") != "" {
			t.Errorf("a client credential header reached the upstream")
		}
	}
}

func TestChat_Refusals(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	other := newHarness(t, harnessOptions{})
	tests := []struct {
		name     string
		method   string
		path     string
		auth     string
		body     string
		status   int
		code     string
		upstream bool
	}{
		{"no token", "POST", "/v1/chat/completions", "", helloBody, 401, "invalid_api_key", false},
		{"typo in token", "POST", "/v1/chat/completions", "Bearer " + typo(h.token), helloBody, 401, "invalid_api_key", false},
		{"token of another database", "POST", "/v1/chat/completions", "Bearer " + other.token, helloBody, 401, "invalid_api_key", false},
		{"provider key instead of token", "POST", "/v1/chat/completions", "Bearer " + realKey, helloBody, 401, "invalid_api_key", false},
		{"unknown route", "POST", "/v1/audio/speech", "Bearer " + h.token, helloBody, 403, "not_allowed", false},
		{"unknown provider", "POST", "/p/nope/v1/chat/completions", "Bearer " + h.token, helloBody, 403, "not_allowed", false},
		{"wrong method", "GET", "/v1/chat/completions", "Bearer " + h.token, "", 403, "not_allowed", false},
		{"not JSON", "POST", "/v1/chat/completions", "Bearer " + h.token, "hello", 400, "invalid_request", false},
		{"no messages", "POST", "/v1/chat/completions", "Bearer " + h.token, `{"model":"gpt-4o-mini"}`, 400, "invalid_request", false},
		{"negative cap", "POST", "/v1/chat/completions", "Bearer " + h.token, `{"model":"gpt-4o-mini","max_tokens":-1,"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request", false},
		{"model without price", "POST", "/v1/chat/completions", "Bearer " + h.token, `{"model":"my-own-model","messages":[{"role":"user","content":"x"}]}`, 403, "model_not_priced", false},
		{"audio input", "POST", "/v1/chat/completions", "Bearer " + h.token, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"input_audio","input_audio":{"data":"AAAA","format":"wav"}}]}]}`, 400, "unbounded_cost", false},
		{"file input", "POST", "/v1/chat/completions", "Bearer " + h.token, `{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"file","file":{"file_id":"file-abc"}}]}]}`, 400, "unbounded_cost", false},
		{"web search", "POST", "/v1/chat/completions", "Bearer " + h.token, `{"model":"gpt-4o-mini","web_search_options":{},"messages":[{"role":"user","content":"x"}]}`, 400, "unbounded_cost", false},
		{"models list is free", "GET", "/v1/models", "Bearer " + h.token, "", 404, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := len(h.up.Calls())
			req, _ := http.NewRequest(tt.method, h.srv.URL+tt.path, strings.NewReader(tt.body))
			if tt.auth != "" {
				req.Header.Set("Authorization", tt.auth)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body := readAll(t, resp)
			if resp.StatusCode != tt.status {
				t.Fatalf("got status %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.code != "" {
				code, _, msg := apiError(t, body)
				if code != tt.code || msg == "" {
					t.Fatalf("got code %q (%q), want %q", code, msg, tt.code)
				}
				if resp.Header.Get("X-Should-Retry") != "false" {
					t.Fatalf("a hard refusal must carry x-should-retry: false")
				}
			}
			if reached := len(h.up.Calls()) > before; reached != tt.upstream {
				t.Fatalf("reached upstream = %v, want %v", reached, tt.upstream)
			}
		})
	}
	flushLedger(t, h.db) // the settlement commits after the response ends
	u, _ := h.db.Usage(storage.RecordFilter{})
	if len(u.Records) != 0 || u.Reserved != 0 {
		t.Fatalf("refusals left records or reservations: %+v", u)
	}
}

func TestChat_BodyTooLarge(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	big := `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"` + strings.Repeat("a", 33<<20) + `"}]}`
	resp := h.post("/v1/chat/completions", big)
	body := readAll(t, resp)
	if code, _, _ := apiError(t, body); resp.StatusCode != 413 || code != "invalid_request" {
		t.Fatalf("got %d %s, want 413 invalid_request", resp.StatusCode, code)
	}
}

func TestChat_ClampOrReject(t *testing.T) {
	// A request without a cap reserves gpt-4o-mini's full 16384-token output
	// limit (about 0.0098 USD). A 0.001 USD token budget cannot hold that.
	limit := budget.Limit{Amount: 1_000_000}
	t.Run("clamp injects a cap that fits", func(t *testing.T) {
		h := newHarness(t, harnessOptions{token: limit})
		h.up.SetBehavior(fakeopenai.Behavior{BillAtCap: true})
		resp := h.post("/v1/chat/completions", helloBody)
		if body := readAll(t, resp); resp.StatusCode != 200 {
			t.Fatalf("got %d: %s", resp.StatusCode, body)
		}
		var sent struct {
			Cap int64 `json:"max_completion_tokens"`
		}
		_ = json.Unmarshal(h.up.Calls()[0].Body, &sent)
		if sent.Cap <= 0 || sent.Cap >= 16384 {
			t.Fatalf("got injected cap %d, want a clamped cap below 16384", sent.Cap)
		}
		rec := h.records(1)[0]
		if rec.Reserved > limit.Amount || rec.Charged > rec.Reserved {
			t.Fatalf("reserved %s charged %s with a limit of %s", rec.Reserved, rec.Charged, limit.Amount)
		}
	})
	t.Run("client cap is lowered, never raised", func(t *testing.T) {
		h := newHarness(t, harnessOptions{token: limit})
		resp := h.post("/v1/chat/completions", `{"model":"gpt-4o-mini","max_tokens":100000,"messages":[{"role":"user","content":"x"}]}`)
		readAll(t, resp)
		var sent struct {
			Cap *int64 `json:"max_tokens"`
			New *int64 `json:"max_completion_tokens"`
		}
		_ = json.Unmarshal(h.up.Calls()[0].Body, &sent)
		if sent.Cap == nil || *sent.Cap >= 100000 || sent.New != nil {
			t.Fatalf("got max_tokens %v, max_completion_tokens %v; want max_tokens lowered in place", sent.Cap, sent.New)
		}
		resp = h.post("/v1/chat/completions", `{"model":"gpt-4o-mini","max_tokens":7,"messages":[{"role":"user","content":"x"}]}`)
		readAll(t, resp)
		_ = json.Unmarshal(h.up.Calls()[1].Body, &sent)
		if *sent.Cap != 7 {
			t.Fatalf("a cap that fits changed to %d", *sent.Cap)
		}
	})
	t.Run("reject refuses with 402", func(t *testing.T) {
		h := newHarness(t, harnessOptions{token: limit, onLow: budget.Reject})
		resp := h.post("/v1/chat/completions", helloBody)
		body := readAll(t, resp)
		if code, typ, _ := apiError(t, body); resp.StatusCode != 402 || code != "budget_exhausted" || typ == "" {
			t.Fatalf("got %d %s, want 402 budget_exhausted", resp.StatusCode, code)
		}
		if len(h.up.Calls()) != 0 {
			t.Fatal("a refused request reached the upstream")
		}
	})
}

func TestChat_UpstreamFaults(t *testing.T) {
	stream := `{"model":"gpt-4o-mini","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"Hi"}]}`
	plain := `{"model":"gpt-4o-mini","max_tokens":50,"messages":[{"role":"user","content":"Hi"}]}`
	tests := []struct {
		name     string
		behavior fakeopenai.Behavior
		body     string
		// charge: "zero", "full" (the reservation) or "exact" (usage).
		charge  string
		outcome budget.Outcome
	}{
		{"500 before output", fakeopenai.Behavior{Status: 500}, plain, "zero", budget.UpstreamRefused},
		{"429 before output", fakeopenai.Behavior{Status: 429}, stream, "zero", budget.UpstreamRefused},
		{"stream cut mid-way", fakeopenai.Behavior{CutAfterEvents: 3}, stream, "full", budget.UsageMissing},
		{"stream without usage", fakeopenai.Behavior{OmitUsage: true}, stream, "full", budget.UsageMissing},
		{"json without usage", fakeopenai.Behavior{OmitUsage: true}, plain, "full", budget.UsageMissing},
		{"malformed json", fakeopenai.Behavior{MalformedJSON: true}, plain, "full", budget.UsageMissing},
		{"json cut mid-way", fakeopenai.Behavior{CutAfterEvents: 1}, plain, "full", budget.UsageMissing},
		{"healthy stream", fakeopenai.Behavior{}, stream, "exact", budget.Complete},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{})
			h.up.SetBehavior(tt.behavior)
			resp, err := http.DefaultClient.Do(mustRequest(t, h, tt.body))
			if err == nil {
				_, _ = readAllErr(resp)
			}
			rec := h.records(1)[0]
			var want budget.Money
			switch tt.charge {
			case "full":
				want = rec.Reserved
			case "exact":
				u := h.up.Calls()[0].Usage
				want = price(t, u.PromptTokens, u.CompletionTokens, miniIn, miniOut)
			}
			if rec.Charged != want || rec.Outcome != tt.outcome {
				t.Fatalf("got charged %s (%s), want %s (%s)", rec.Charged, rec.Outcome, want, tt.outcome)
			}
			if billed := h.up.Billed(); price(t, billed.PromptTokens, billed.CompletionTokens, miniIn, miniOut) > rec.Charged {
				t.Fatalf("the upstream could bill more than was charged")
			}
		})
	}
}

func mustRequest(t *testing.T, h *harness, body string) *http.Request {
	t.Helper()
	return mustRequestPath(t, h, "/v1/chat/completions", body)
}

func mustRequestPath(t *testing.T, h *harness, path, body string) *http.Request {
	t.Helper()
	req, err := http.NewRequest("POST", h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	return req
}

func readAllErr(resp *http.Response) (string, error) {
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			return sb.String(), err
		}
	}
}

func TestChat_ClientDisconnectStillMetered(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	req := mustRequest(t, h, `{"model":"gpt-4o-mini","stream":true,"max_tokens":2000,"messages":[{"role":"user","content":"Hi"}]}`)
	h.up.SetBehavior(fakeopenai.Behavior{BillAtCap: true})
	resp, err := http.DefaultClient.Do(req.WithContext(ctx))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64)
	if _, err := resp.Body.Read(buf); err != nil {
		t.Fatal(err)
	}
	cancel() // the client goes away after the first bytes
	resp.Body.Close()
	rec := h.records(1)[0]
	u := h.up.Calls()[0].Usage
	if want := price(t, u.PromptTokens, u.CompletionTokens, miniIn, miniOut); rec.Charged != want || rec.Outcome != budget.Complete {
		t.Fatalf("got charged %s (%s), want the exact %s from the drained usage", rec.Charged, rec.Outcome, want)
	}
}

func TestChat_KillCutsStreamsAndRefuses(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	h.up.SetBehavior(fakeopenai.Behavior{StallAfterEvents: 2})
	resp, err := http.DefaultClient.Do(mustRequest(t, h, `{"model":"gpt-4o-mini","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"Hi"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	rd := bufio.NewReader(resp.Body)
	if _, err := rd.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if n := h.p.InFlight(); n != 1 {
		t.Fatalf("got %d in flight, want 1", n)
	}
	if err := h.db.SetKill(context.Background(), storage.KillTarget{Project: "web"}, true); err != nil {
		t.Fatal(err)
	}
	if n := h.p.Cut(proxyCutProject("web")); n != 1 {
		t.Fatalf("cut %d requests, want 1", n)
	}
	done := make(chan struct{})
	go func() { _, _ = readAllErr(resp); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream was not cut")
	}
	rec := h.records(1)[0]
	if rec.Charged != rec.Reserved || rec.Outcome != budget.Killed {
		t.Fatalf("a cut stream without usage: got charged %s of %s (%s), want the full reservation", rec.Charged, rec.Reserved, rec.Outcome)
	}
	resp2 := h.post("/v1/chat/completions", helloBody)
	if code, _, _ := apiError(t, readAll(t, resp2)); resp2.StatusCode != 403 || code != "kill_switch" {
		t.Fatalf("after kill got %d %s, want 403 kill_switch", resp2.StatusCode, code)
	}
	if err := h.db.SetKill(context.Background(), storage.KillTarget{Project: "web"}, false); err != nil {
		t.Fatal(err)
	}
	h.up.SetBehavior(fakeopenai.Behavior{})
	if resp := h.post("/v1/chat/completions", helloBody); resp.StatusCode != 200 {
		t.Fatalf("after resume got %d", resp.StatusCode)
	} else {
		readAll(t, resp)
	}
}

func TestChat_RevokeTakesEffectAtOnce(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	if resp := h.post("/v1/chat/completions", helloBody); resp.StatusCode != 200 {
		t.Fatalf("got %d", resp.StatusCode)
	} else {
		readAll(t, resp)
	}
	if _, err := h.db.RevokeToken(context.Background(), h.tokenID); err != nil {
		t.Fatal(err)
	}
	resp := h.post("/v1/chat/completions", helloBody)
	if code, _, _ := apiError(t, readAll(t, resp)); resp.StatusCode != 401 || code != "invalid_api_key" {
		t.Fatalf("after revoke got %d %s, want 401 invalid_api_key", resp.StatusCode, code)
	}
}

func TestChat_RateLimit(t *testing.T) {
	h := newHarness(t, harnessOptions{rpm: 2})
	for i := 0; i < 2; i++ {
		readAll(t, h.post("/v1/chat/completions", helloBody))
	}
	resp := h.post("/v1/chat/completions", helloBody)
	code, _, _ := apiError(t, readAll(t, resp))
	if resp.StatusCode != 429 || code != "rate_limited" || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("got %d %s Retry-After %q, want 429 rate_limited with Retry-After", resp.StatusCode, code, resp.Header.Get("Retry-After"))
	}
}

// In a cluster of 3 replicas, each enforces a third (rounded up) of a
// token's RPM: 2 of 6 here.
func TestChat_RateLimitShared(t *testing.T) {
	h := newHarness(t, harnessOptions{rpm: 6})
	h.p.SetRateShare(3)
	for i := 0; i < 2; i++ {
		if resp := h.post("/v1/chat/completions", helloBody); resp.StatusCode != 200 {
			t.Fatalf("request %d within the share: %d", i, resp.StatusCode)
		} else {
			readAll(t, resp)
		}
	}
	resp := h.post("/v1/chat/completions", helloBody)
	if code, _, _ := apiError(t, readAll(t, resp)); resp.StatusCode != 429 || code != "rate_limited" {
		t.Fatalf("over the replica's share: %d %s, want 429 rate_limited", resp.StatusCode, code)
	}
}

func TestChat_ModelsNotAllowedForToken(t *testing.T) {
	h := newHarness(t, harnessOptions{models: []string{"gpt-4o"}})
	resp := h.post("/v1/chat/completions", helloBody)
	if code, _, _ := apiError(t, readAll(t, resp)); resp.StatusCode != 403 || code != "not_allowed" {
		t.Fatalf("got %d %s, want 403 not_allowed", resp.StatusCode, code)
	}
}

// TestChat_HardStopUnderConcurrency sends 200 concurrent requests against a
// project budget that fits about a tenth of them, with an upstream that
// bills every completion at its cap. Neither what the upstream billed nor
// what hardcap recorded may pass the limit, and committed + reserved must
// stay within it while the burst runs.
func TestChat_HardStopUnderConcurrency(t *testing.T) {
	// Each request: max_tokens 1000 (0.0006 USD of output at the cap) plus
	// its input bound; 20 of them fit in 0.013 USD.
	limit := budget.Limit{Amount: 13_000_000}
	h := newHarness(t, harnessOptions{project: limit})
	h.up.SetBehavior(fakeopenai.Behavior{BillAtCap: true})
	body := `{"model":"gpt-4o-mini","max_tokens":1000,"messages":[{"role":"user","content":"Write a long story."}]}`

	stopSampling := h.sampleBudget(budget.ProjectScope("web"), limit.Amount)
	var wg sync.WaitGroup
	var ok, refused atomic.Int64
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := mustRequest(t, h, body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			readAllErr(resp)
			switch resp.StatusCode {
			case 200:
				ok.Add(1)
			case 402:
				refused.Add(1)
			default:
				t.Errorf("unexpected status %d", resp.StatusCode)
			}
		}()
	}
	wg.Wait()
	samples, violations := stopSampling()

	var billed budget.Money
	for _, c := range h.up.Calls() {
		billed += price(t, c.Usage.PromptTokens, c.Usage.CompletionTokens, miniIn, miniOut)
	}
	flushLedger(t, h.db) // the settlement commits after the response ends
	u, _ := h.db.Usage(storage.RecordFilter{})
	t.Logf("200 requests: %d served, %d refused; upstream billed %s USD, recorded %s USD, limit %s USD; %d samples", ok.Load(), refused.Load(), billed, u.Spent, limit.Amount, samples)
	if violations != 0 {
		t.Fatalf("committed + reserved passed the limit in %d of %d samples", violations, samples)
	}
	if billed > limit.Amount || u.Spent > limit.Amount {
		t.Fatalf("billed %s, recorded %s: over the limit %s", billed, u.Spent, limit.Amount)
	}
	if u.Spent != billed {
		t.Fatalf("recorded %s, upstream billed %s: they must agree when usage is reported", u.Spent, billed)
	}
	if ok.Load() == 0 || refused.Load() == 0 {
		t.Fatalf("want both served and refused requests, got %d and %d", ok.Load(), refused.Load())
	}
}

func TestSecrecy_RealKeyNowhere(t *testing.T) {
	h := newHarness(t, harnessOptions{})
	var bodies []string
	for _, b := range []fakeopenai.Behavior{{}, {Status: 401}, {Status: 500}, {CutAfterEvents: 2}, {OmitUsage: true}} {
		h.up.SetBehavior(b)
		for _, body := range []string{helloBody, `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Hi"}]}`} {
			resp, err := http.DefaultClient.Do(mustRequest(t, h, body))
			if err != nil {
				continue
			}
			s, _ := readAllErr(resp)
			bodies = append(bodies, s)
			for k, vs := range resp.Header {
				for _, v := range vs {
					if strings.Contains(v, realKey) {
						t.Errorf("response header %s carries the real key", k)
					}
				}
			}
		}
	}
	bodies = append(bodies, readAll(t, h.post("/v1/chat/completions", `{"model":"unpriced","messages":[{"role":"user","content":"x"}]}`)))
	for _, b := range []fakeanthropic.Behavior{{}, {Status: 401}, {Status: 529}, {CutAfterEvents: 3}} {
		h.ant.SetBehavior(b)
		for _, body := range []string{haikuBody, strings.Replace(haikuBody, `"max_tokens":64`, `"max_tokens":64,"stream":true`, 1)} {
			req, _ := http.NewRequest("POST", h.srv.URL+"/v1/messages", strings.NewReader(body))
			req.Header.Set("X-Api-Key", h.token)
			req.Header.Set("Anthropic-Version", "2023-06-01")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				continue
			}
			s, _ := readAllErr(resp)
			bodies = append(bodies, s)
		}
	}
	h.records(5)
	for i, b := range bodies {
		if strings.Contains(b, realKey) || strings.Contains(b, realAnthropicKey) {
			t.Errorf("response %d carries a real key", i)
		}
	}
	if strings.Contains(h.logs.String(), realKey) || strings.Contains(h.logs.String(), realAnthropicKey) {
		t.Error("the debug log carries a real key")
	}
	if !strings.Contains(h.logs.String(), `"level":"debug"`) && !strings.Contains(h.logs.String(), `"level":"info"`) {
		t.Error("the log is empty; the secrecy check would prove nothing")
	}
	raw, err := os.ReadFile(h.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(raw), realKey) || strings.Contains(string(raw), realAnthropicKey) || strings.Contains(string(raw), h.token) {
		t.Error("the database file carries the real key or a token secret")
	}
}

// TestPromptCacheRetention_Passes: chat and Responses requests with
// prompt_cache_retention are served and the parameter reaches the provider
// (TestCacheParams_AcceptedAndBounded shows the bound holds).
func TestPromptCacheRetention_Passes(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	for _, c := range []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"gpt-4o-mini","prompt_cache_retention":"24h","messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/responses", `{"model":"gpt-4o-mini","prompt_cache_retention":"24h","input":"hi"}`},
	} {
		resp := h.post(c.path, c.body)
		if out := readAll(t, resp); resp.StatusCode != 200 {
			t.Fatalf("%s: got %d: %s", c.path, resp.StatusCode, out)
		}
		calls := h.up.Calls()
		if got := string(calls[len(calls)-1].Body); !strings.Contains(got, `"prompt_cache_retention":"24h"`) {
			t.Fatalf("%s: the parameter did not reach the provider: %s", c.path, got)
		}
	}
}

// typo is secret with its last character changed (never to itself: a
// secret may end in any letter).
func typo(secret string) string {
	last := byte('x')
	if secret[len(secret)-1] == last {
		last = 'y'
	}
	return secret[:len(secret)-1] + string(last)
}
