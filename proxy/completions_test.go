package proxy_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/hardcap/hardcap/storage"
)

// instruct prices gpt-3.5-turbo-instruct by hand: 1.5 USD/Mtok input (1,500
// nano-USD a token), 2 output (2,000).
func instruct(u fakeopenai.Usage) budget.Money {
	return budget.Money(u.PromptTokens*1_500 + u.CompletionTokens*2_000)
}

func TestCompletions_ExactCharge(t *testing.T) {
	tests := []struct {
		name, body string
		// wantCap is the max_tokens the upstream must get.
		wantCap string
	}{
		{"string prompt, default cap", `{"model":"gpt-3.5-turbo-instruct","prompt":"Say hi"}`, `"max_tokens":16`},
		{"prompts, n and best_of", `{"model":"gpt-3.5-turbo-instruct","prompt":["a","b"],"n":2,"best_of":3,"max_tokens":5}`, `"max_tokens":5`},
		{"token ids", `{"model":"gpt-3.5-turbo-instruct","prompt":[1,2,3,4],"max_tokens":4}`, `"max_tokens":4`},
		{"stream", `{"model":"gpt-3.5-turbo-instruct","prompt":"Stream","stream":true,"max_tokens":6}`, `"max_tokens":6`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{noSync: true})
			h.up.SetBehavior(fakeopenai.Behavior{BillAtCap: true})
			resp := h.post("/v1/completions", tt.body)
			body := readAll(t, resp)
			if resp.StatusCode != 200 {
				t.Fatalf("got %d: %s", resp.StatusCode, body)
			}
			call := h.up.Calls()[0]
			if !strings.Contains(string(call.Body), tt.wantCap) {
				t.Fatalf("upstream body %s lacks %s", call.Body, tt.wantCap)
			}
			if strings.Contains(tt.body, `"stream":true`) && strings.Contains(body, `"choices":[]`) {
				t.Fatal("the client saw a usage chunk it did not ask for")
			}
			rec := h.records(1)[0]
			if want := instruct(call.Usage); rec.Charged != want || rec.Charged > rec.Reserved {
				t.Fatalf("got charged %s reserved %s, want %s for %+v", rec.Charged, rec.Reserved, want, call.Usage)
			}
		})
	}
}

func TestEmbeddings_ExactChargeOnInputOnly(t *testing.T) {
	for _, body := range []string{
		`{"model":"text-embedding-3-small","input":"The food was delicious."}`,
		`{"model":"text-embedding-3-small","input":["one","two","three"]}`,
		`{"model":"text-embedding-3-small","input":[[1,2,3],[4,5]]}`,
	} {
		h := newHarness(t, harnessOptions{noSync: true})
		resp := h.post("/v1/embeddings", body)
		if out := readAll(t, resp); resp.StatusCode != 200 {
			t.Fatalf("got %d: %s", resp.StatusCode, out)
		}
		u := h.up.Calls()[0].Usage
		rec := h.records(1)[0]
		// 0.02 USD/Mtok is 20 nano-USD a token.
		if want := budget.Money(u.PromptTokens * 20); rec.Charged != want || rec.Usage.OutputTokens != 0 {
			t.Fatalf("%s: got charged %s, want %s", body, rec.Charged, want)
		}
	}
}

func TestEmbeddings_ChatModelWithoutOutputPriceIsRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	resp := h.post("/v1/chat/completions", `{"model":"text-embedding-3-small","messages":[{"role":"user","content":"x"}]}`)
	if code, _, _ := apiError(t, readAll(t, resp)); resp.StatusCode != 403 || code != "model_not_priced" {
		t.Fatalf("got %d %s, want 403 model_not_priced", resp.StatusCode, code)
	}
}

// TestRoutes_HardStopUnderConcurrency is the invariant on the completions
// and embeddings routes: a burst against a budget that fits a part of it.
func TestRoutes_HardStopUnderConcurrency(t *testing.T) {
	tests := []struct {
		route, body string
		limit       budget.Money
		price       func(fakeopenai.Usage) budget.Money
	}{
		{"/v1/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":["a story","a poem"],"n":2,"max_tokens":50}`, 2_000_000, instruct},
		{"/v1/embeddings", `{"model":"text-embedding-3-small","input":["` + strings.Repeat("word ", 2000) + `"]}`, 1_000_000, func(u fakeopenai.Usage) budget.Money { return budget.Money(u.PromptTokens * 20) }},
	}
	for _, tt := range tests {
		t.Run(tt.route, func(t *testing.T) {
			h := newHarness(t, harnessOptions{token: budget.Limit{Amount: tt.limit}})
			h.up.SetBehavior(fakeopenai.Behavior{BillAtCap: true})
			stopSampling := h.sampleBudget(budget.TokenScope(h.tokenID), tt.limit)
			var wg sync.WaitGroup
			for i := 0; i < 100; i++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					resp, err := http.DefaultClient.Do(mustRequestPath(t, h, tt.route, tt.body))
					if err == nil {
						readAllErr(resp)
					}
				}()
			}
			wg.Wait()
			if _, over := stopSampling(); over != 0 {
				t.Fatalf("committed + reserved passed the limit in %d samples", over)
			}
			var billed budget.Money
			for _, c := range h.up.Calls() {
				billed += tt.price(c.Usage)
			}
			flushLedger(t, h.db) // the settlement commits after the response ends
			u, _ := h.db.Usage(storage.RecordFilter{})
			t.Logf("%s: %d of 100 served, billed %s of %s USD", tt.route, len(h.up.Calls()), billed, tt.limit)
			if billed > tt.limit || u.Spent > tt.limit || u.Spent != billed || len(h.up.Calls()) == 0 {
				t.Fatalf("billed %s, recorded %s, limit %s", billed, u.Spent, tt.limit)
			}
		})
	}
}
