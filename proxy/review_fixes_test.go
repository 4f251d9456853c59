package proxy_test

import (
	"context"
	"encoding/json"
	"log"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/testlog"
)

// TestResponses_ToolOutputImagesAndStoredReasoning: images inside tool
// outputs are bounded, and reasoning items without their encrypted content
// refer to stored state.
func TestResponses_ToolOutputImagesAndStoredReasoning(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	withImage := `{"model":"gpt-4.1","max_output_tokens":20,"input":[{"type":"function_call_output","call_id":"c1","output":[{"type":"input_image","image_url":"https://example.com/a.png"}]}]}`
	resp := h.post("/v1/responses", withImage)
	if body := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("got %d: %s", resp.StatusCode, body)
	}
	// gpt-4.1: input 2 USD/Mtok, output 8; one image of 1,445 tokens.
	input := int64(len(withImage)) + 32 + 1445
	if rec := h.records(1)[0]; rec.Reserved != budgetOf(input*2_000+20*8_000) {
		t.Fatalf("reserved %s, want the tool output's image inside", rec.Reserved)
	}
	for _, body := range []string{
		`{"model":"gpt-4.1","input":[{"type":"reasoning","id":"rs_1","summary":[]}]}`,
		`{"model":"gpt-4.1","input":[{"type":"function_call_output","call_id":"c1","output":[{"type":"input_file","file_id":"file-1"}]}]}`,
	} {
		resp := h.post("/v1/responses", body)
		if code, _, _ := apiError(t, readAll(t, resp)); code != "unbounded_cost" {
			t.Fatalf("%s: got %d %s, want unbounded_cost", body, resp.StatusCode, code)
		}
	}
}

func TestServiceTier_DefaultWrittenForOpenAI(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	for _, body := range []string{helloBody, `{"model":"gpt-4o-mini","service_tier":"auto","messages":[{"role":"user","content":"x"}]}`} {
		readAll(t, h.post("/v1/chat/completions", body))
	}
	readAll(t, h.post("/v1/chat/completions", `{"model":"gpt-4o-mini","service_tier":"flex","messages":[{"role":"user","content":"x"}]}`))
	calls := h.up.Calls()
	for i, want := range []string{"default", "default", "flex"} {
		var sent struct {
			Tier string `json:"service_tier"`
		}
		_ = json.Unmarshal(calls[i].Body, &sent)
		if sent.Tier != want {
			t.Errorf("call %d: service_tier %q, want %q", i, sent.Tier, want)
		}
	}
}

func TestMessages_LongContextBetaNeedsTierPrices(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	body := `{"model":"claude-sonnet-4-0","max_tokens":10,"messages":[{"role":"user","content":"x"}]}`
	resp := h.postAnthropic("/v1/messages", body, "Anthropic-Beta", "context-1m-2025-08-07")
	if out := readAll(t, resp); resp.StatusCode != 403 {
		t.Fatalf("got %d: %s; want 403 model_not_priced", resp.StatusCode, out)
	}
	resp = h.postAnthropic("/v1/messages", `{"model":"claude-sonnet-4-5","max_tokens":10,"messages":[{"role":"user","content":"x"}]}`, "Anthropic-Beta", "context-1m-2025-08-07")
	if out := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("a model with long-context prices: got %d: %s", resp.StatusCode, out)
	}
}

func TestMessages_ThinkingNeverClampedBelowItsMinimum(t *testing.T) {
	// haiku output is 5,000 nano-USD a token: 1,025 tokens cost 5.125e6.
	// A 5e6 budget fits a plain request clamped, but not a thinking one.
	h := newHarness(t, harnessOptions{noSync: true, token: budgetLimit(5_000_000)})
	resp := h.postAnthropic("/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":4000,"thinking":{"type":"enabled","budget_tokens":2000},"messages":[{"role":"user","content":"x"}]}`)
	if out := readAll(t, resp); resp.StatusCode != 402 {
		t.Fatalf("got %d: %s; want 402", resp.StatusCode, out)
	}
	resp = h.postAnthropic("/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":4000,"messages":[{"role":"user","content":"x"}]}`)
	if out := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("without thinking got %d: %s", resp.StatusCode, out)
	}
}

// TestSmuggledCredentialsStripped sends credential-looking headers beside
// the token: none may reach the provider, whose only credential is the real
// key.
func TestSmuggledCredentialsStripped(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	smuggled := []string{"X-Goog-Api-Key", "Openai-Api-Key", "Anthropic-Api-Key", "Proxy-Authorization", "X-Auth-Token", "X-Session-Token", "Ocp-Apim-Subscription-Key"}
	req := mustRequest(t, h, helloBody)
	for _, name := range smuggled {
		req.Header.Set(name, "sk-proj-someone-elses-key-0123456789")
	}
	req.Header.Set("Openai-Organization", "org-123")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("got %d: %s", resp.StatusCode, body)
	}
	got := h.up.Calls()[0].Header
	for _, name := range smuggled {
		if got.Get(name) != "" {
			t.Errorf("%s reached the upstream", name)
		}
	}
	if got.Get("Openai-Organization") != "" {
		t.Error("the client chose the organization that pays")
	}
}

// TestHopByHopHeadersDropped: headers named in Connection and the
// hop-by-hop set never reach the provider.
func TestHopByHopHeadersDropped(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	req := mustRequest(t, h, helloBody)
	req.Header.Set("Connection", "X-Smuggle")
	req.Header.Set("X-Smuggle", "1")
	req.Header.Set("Te", "trailers, deflate")
	req.Header.Set("Upgrade", "h2c")
	req.Header.Set("Forwarded", "for=1.2.3.4")
	req.Header.Set("X-Forwarded-For", "1.2.3.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if body := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("got %d: %s", resp.StatusCode, body)
	}
	got := h.up.Calls()[0].Header
	for _, name := range []string{"X-Smuggle", "Upgrade", "Forwarded", "X-Forwarded-For"} {
		if got.Get(name) != "" {
			t.Errorf("%s reached the upstream", name)
		}
	}
	if te := got.Get("Te"); te != "" && te != "trailers" {
		t.Errorf("Te %q reached the upstream", te)
	}
}

// panickingLedger panics where a reservation would be taken, after the key
// has been read: the panic and its stack must not show the key.
type panickingLedger struct{ budget.Ledger }

func (panickingLedger) Reserve(context.Context, budget.Request, budget.Quote) (budget.Reservation, error) {
	panic("ledger exploded")
}

func TestSecrecy_PanicsDoNotShowTheKey(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true, ledger: func(l budget.Ledger) budget.Ledger { return panickingLedger{l} }})
	var serverLog testlog.Buffer
	h.srv.Config.ErrorLog = log.New(&serverLog, "", 0)
	resp, err := http.DefaultClient.Do(mustRequest(t, h, helloBody))
	if err == nil {
		readAllErr(resp)
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(serverLog.String(), "ledger exploded") && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	out := serverLog.String() + h.logs.String()
	if !strings.Contains(out, "ledger exploded") {
		t.Fatal("the panic was not logged; the check would prove nothing")
	}
	if strings.Contains(out, realKey) || strings.Contains(out, h.token) {
		t.Fatal("a panic log shows the real key or the token")
	}
	if len(h.up.Calls()) != 0 {
		t.Fatal("a request reached the upstream without a reservation")
	}
}
