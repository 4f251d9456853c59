package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
)

func TestResponses_RefusesWhatItCannotBound(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	tests := []struct{ name, body, code string }{
		{"previous_response_id", `{"model":"gpt-4o-mini","previous_response_id":"resp_1","input":"x"}`, "unbounded_cost"},
		{"conversation", `{"model":"gpt-4o-mini","conversation":"conv_1","input":"x"}`, "unbounded_cost"},
		{"stored prompt", `{"model":"gpt-4o-mini","prompt":{"id":"pmpt_1"}}`, "unbounded_cost"},
		{"web search", `{"model":"gpt-4o-mini","tools":[{"type":"web_search"}],"input":"x"}`, "unbounded_cost"},
		{"dated web search", `{"model":"gpt-4o-mini","tools":[{"type":"web_search_preview_2025_03_11"}],"input":"x"}`, "unbounded_cost"},
		{"file search", `{"model":"gpt-4o-mini","tools":[{"type":"file_search","vector_store_ids":["vs_1"]}],"input":"x"}`, "unbounded_cost"},
		{"code interpreter", `{"model":"gpt-4o-mini","tools":[{"type":"code_interpreter","container":{"type":"auto"}}],"input":"x"}`, "unbounded_cost"},
		{"unknown tool", `{"model":"gpt-4o-mini","tools":[{"type":"teleport"}],"input":"x"}`, "unbounded_cost"},
		{"file by id", `{"model":"gpt-4o-mini","input":[{"role":"user","content":[{"type":"input_file","file_id":"file-1"}]}]}`, "unbounded_cost"},
		{"image by id", `{"model":"gpt-4o-mini","input":[{"role":"user","content":[{"type":"input_image","file_id":"file-1"}]}]}`, "unbounded_cost"},
		{"item reference", `{"model":"gpt-4o-mini","input":[{"type":"item_reference","id":"msg_1"}]}`, "unbounded_cost"},
		{"background", `{"model":"gpt-4o-mini","background":true,"input":"x"}`, "unbounded_cost"},
		{"unknown parameter", `{"model":"gpt-4o-mini","input":"x","teleport":true}`, "unbounded_cost"},
		{"negative cap", `{"model":"gpt-4o-mini","input":"x","max_output_tokens":0}`, "invalid_request"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.post("/v1/responses", tt.body)
			body := readAll(t, resp)
			code, _, msg := apiError(t, body)
			if code != tt.code {
				t.Fatalf("got %d %s, want %s: %s", resp.StatusCode, code, tt.code, body)
			}
			if tt.code == "unbounded_cost" && !strings.Contains(msg, "allowance") && !strings.Contains(msg, "cannot") && !strings.Contains(msg, "not") {
				t.Fatalf("the message does not say what to do: %s", msg)
			}
		})
	}
	if n := len(h.up.Calls()); n != 0 {
		t.Fatalf("%d refused requests reached the upstream", n)
	}
}

// TestResponses_AllowancesWidenAndCharge sends a Responses request with a
// web search tool and a previous_response_id to a provider that grants
// allowances for both: the stored state widens the reservation; the web
// search is a per-call tool, so hardcap bounds its calls with
// max_tool_calls, reserves that many at its price and charges each call
// the response shows (all of them when it shows no output).
func TestResponses_AllowancesWidenAndCharge(t *testing.T) {
	const usage = `"usage":{"input_tokens":100,"input_tokens_details":{"cached_tokens":0},"output_tokens":10,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":110}`
	for _, tt := range []struct {
		name, output, maxCalls string
		wantCalls, wantMax     int64
	}{
		{"two calls", `"output":[{"type":"web_search_call","id":"ws_1","status":"completed"},{"type":"web_search_call","id":"ws_2","status":"completed"},{"type":"message","id":"m","role":"assistant","content":[]}],`, "", 2, 8},
		{"no calls", `"output":[],`, "", 0, 8},
		{"output not shown", ``, `,"max_tool_calls":3`, 3, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var got []byte
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				got = make([]byte, r.ContentLength)
				_, _ = io.ReadFull(r.Body, got)
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(`{"id":"resp_1","object":"response","status":"completed",` + tt.output + usage + `}`))
			}))
			defer up.Close()
			h := newHarness(t, harnessOptions{noSync: true})
			base, _ := url.Parse(up.URL + "/v1")
			p := proxy.New(proxy.Options{
				Providers: []*proxy.Provider{{Name: "openai", Kind: proxy.KindOpenAI, BaseURL: base, Key: proxy.StaticKey("k"), Prices: "openai",
					Allowances: map[string]proxy.Allowance{"web_search": {USD: 50_000_000}, proxy.AllowStoredState: {USD: 1_000_000_000}}}},
				Tokens: h.db, Ledger: h.db, Prices: h.catalog,
			})
			srv := httptest.NewServer(p)
			defer srv.Close()
			body := `{"model":"gpt-4o-mini","previous_response_id":"resp_0","tools":[{"type":"web_search"}],"max_output_tokens":10,"input":"What is new?"` + tt.maxCalls + `}`
			req, _ := http.NewRequest("POST", srv.URL+"/v1/responses", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+h.token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if out := readAll(t, resp); resp.StatusCode != 200 {
				t.Fatalf("got %d: %s", resp.StatusCode, out)
			}
			if !strings.Contains(string(got), `"max_output_tokens":10`) || !strings.Contains(string(got), `"max_tool_calls":`+strconv.FormatInt(tt.wantMax, 10)) {
				t.Fatalf("upstream body %s", got)
			}
			rec := h.records(1)[0]
			// Usage: 100 input at 150 nano-USD, 10 output at 600, plus 0.05
			// USD a search call (the data has no search price for
			// gpt-4o-mini). The stored-state allowance only widened the
			// reservation: its tokens are in the usage.
			if want := budget.Money(100*150 + 10*600 + tt.wantCalls*50_000_000); rec.Charged != want {
				t.Fatalf("charged %s, want %s", rec.Charged, want)
			}
			if want := budget.Money(1_000_000_000 + tt.wantMax*50_000_000); rec.Reserved < want {
				t.Fatalf("reserved %s, want at least %s (the allowance and every call)", rec.Reserved, want)
			}
		})
	}
}

// mini prices gpt-4o-mini usage by hand: uncached input 150 nano-USD a
// token, cached 75, output (reasoning included) 600.
func mini(u fakeopenai.Usage) budget.Money {
	return budget.Money((u.PromptTokens-u.CachedTokens)*150 + u.CachedTokens*75 + u.CompletionTokens*600)
}

func TestResponses_ExactCharge(t *testing.T) {
	tests := []struct {
		name     string
		behavior fakeopenai.Behavior
		body     string
		outcome  budget.Outcome
	}{
		{"json with reasoning and cache", fakeopenai.Behavior{ReasoningTokens: 5, CachedTokens: 4},
			`{"model":"gpt-4o-mini","max_output_tokens":40,"instructions":"Be brief.","input":"Hello there"}`, budget.Complete},
		{"stream completed", fakeopenai.Behavior{},
			`{"model":"gpt-4o-mini","stream":true,"max_output_tokens":40,"input":[{"role":"user","content":[{"type":"input_text","text":"Hi"}]}]}`, budget.Complete},
		{"stream incomplete at the cap", fakeopenai.Behavior{BillAtCap: true},
			`{"model":"gpt-4o-mini","stream":true,"max_output_tokens":8,"input":"Tell me everything"}`, budget.Complete},
		{"stream failed without usage", fakeopenai.Behavior{FailStream: true},
			`{"model":"gpt-4o-mini","stream":true,"max_output_tokens":40,"input":"Hi"}`, budget.UsageMissing},
		{"stream cut", fakeopenai.Behavior{CutAfterEvents: 4},
			`{"model":"gpt-4o-mini","stream":true,"max_output_tokens":40,"input":"Hi"}`, budget.UsageMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{noSync: true})
			h.up.SetBehavior(tt.behavior)
			resp, err := http.DefaultClient.Do(mustRequestPath(t, h, "/v1/responses", tt.body))
			if err == nil {
				readAllErr(resp)
			}
			call := h.up.Calls()[0]
			rec := h.records(1)[0]
			want := mini(call.Usage)
			if tt.outcome == budget.UsageMissing {
				want = rec.Reserved
			}
			if rec.Charged != want || rec.Outcome != tt.outcome {
				t.Fatalf("charged %s (%s), want %s (%s) for %+v", rec.Charged, rec.Outcome, want, tt.outcome, call.Usage)
			}
			if tt.outcome == budget.Complete && (rec.Usage.ReasoningTokens != call.Usage.ReasoningTokens || rec.Usage.CacheReadTokens != call.Usage.CachedTokens) {
				t.Fatalf("record usage %+v, upstream %+v", rec.Usage, call.Usage)
			}
			if mini(call.Usage) > rec.Charged {
				t.Fatal("the upstream could bill more than was charged")
			}
		})
	}
}

func TestResponses_HardStopUnderConcurrency(t *testing.T) {
	limit := budget.Money(1_000_000)
	h := newHarness(t, harnessOptions{project: budget.Limit{Amount: limit}})
	h.up.SetBehavior(fakeopenai.Behavior{BillAtCap: true})
	stopSampling := h.sampleBudget(budget.ProjectScope("web"), limit)
	var wg sync.WaitGroup
	for i := 0; i < 100; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.DefaultClient.Do(mustRequestPath(t, h, "/v1/responses", `{"model":"gpt-4o-mini","stream":true,"max_output_tokens":200,"input":"A story"}`))
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
		billed += mini(c.Usage)
	}
	flushLedger(t, h.db) // the settlement commits after the response ends
	u, _ := h.db.Usage(storage.RecordFilter{})
	t.Logf("responses: %d of 100 served, billed %s of %s USD", len(h.up.Calls()), billed, limit)
	if billed > limit || u.Spent > limit || u.Spent != billed || len(h.up.Calls()) == 0 {
		t.Fatalf("billed %s, recorded %s, limit %s", billed, u.Spent, limit)
	}
}

// responsesUpstream answers every Responses request with body, and keeps
// the last request it received.
func responsesUpstream(t *testing.T, body string, got *[]byte) *url.URL {
	t.Helper()
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		*got = b
		if strings.Contains(r.Header.Get("Accept"), "event-stream") || strings.Contains(string(b), `"stream":true`) {
			w.Header().Set("Content-Type", "text/event-stream")
			io.WriteString(w, body)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, body)
	}))
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL + "/v1")
	return u
}

// Per-call server tools are charged by the calls the response shows: a
// stored prompt may enable them unnamed, MCP tool listings are not calls,
// and a stream's output_item.done events count when its final output does
// not list them.
func TestResponses_PerCallToolsCharged(t *testing.T) {
	const usage = `"usage":{"input_tokens":100,"input_tokens_details":{"cached_tokens":0},"output_tokens":10,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":110}`
	tokens := budget.Money(100*150 + 10*600) // gpt-4o-mini
	item := func(typ string) string { return `{"type":"` + typ + `","id":"x","status":"completed"}` }
	tests := []struct {
		name, body, answer string
		wantCharged        budget.Money
		wantMax            string
	}{
		{
			name:        "stored prompt with searches",
			body:        `{"model":"gpt-4o-mini","prompt":{"id":"pmpt_1"},"input":"hi","max_output_tokens":20}`,
			answer:      `{"id":"r","object":"response","status":"completed","output":[` + item("web_search_call") + `,` + item("web_search_call") + `,` + item("web_search_call") + `],` + usage + `}`,
			wantCharged: tokens + 3*50_000_000, // no web_search allowance: the dearest published search price
			wantMax:     `"max_tool_calls":8`,
		},
		{
			name:        "mcp listings are not calls",
			body:        `{"model":"gpt-4o-mini","tools":[{"type":"mcp","server_label":"a","server_url":"https://a.example","require_approval":"never"}],"input":"hi","max_output_tokens":20,"max_tool_calls":2}`,
			answer:      `{"id":"r","object":"response","status":"completed","output":[` + item("mcp_list_tools") + `,` + item("mcp_call") + `,` + item("mcp_call") + `],` + usage + `}`,
			wantCharged: tokens + 2*1_000_000,
			wantMax:     `"max_tool_calls":2`,
		},
		{
			name: "stream counts output_item.done",
			body: `{"model":"gpt-4o-mini","tools":[{"type":"web_search"}],"input":"hi","max_output_tokens":20,"stream":true}`,
			answer: "event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"item\":" + item("web_search_call") + "}\n\n" +
				"event: response.output_item.done\ndata: {\"type\":\"response.output_item.done\",\"item\":" + item("web_search_call") + "}\n\n" +
				"event: response.completed\ndata: {\"type\":\"response.completed\",\"response\":{\"id\":\"r\",\"status\":\"completed\",\"output\":[]," + usage + "}}\n\n",
			wantCharged: tokens + 2*1_000_000,
			wantMax:     `"max_tool_calls":8`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []byte
			base := responsesUpstream(t, tt.answer, &got)
			h := newHarness(t, harnessOptions{noSync: true})
			p := proxy.New(proxy.Options{
				Providers: []*proxy.Provider{{Name: "openai", Kind: proxy.KindOpenAI, BaseURL: base, Key: proxy.StaticKey("k"), Prices: "openai",
					Allowances: map[string]proxy.Allowance{"mcp": {USD: 1_000_000}, "web_search": {USD: 1_000_000}, proxy.AllowStoredState: {USD: 100_000_000}}}},
				Tokens: h.db, Ledger: h.db, Prices: h.catalog,
			})
			if strings.Contains(tt.name, "stored prompt") {
				// Without a web_search allowance the stored prompt's searches
				// are priced at the dearest published price.
				p = proxy.New(proxy.Options{
					Providers: []*proxy.Provider{{Name: "openai", Kind: proxy.KindOpenAI, BaseURL: base, Key: proxy.StaticKey("k"), Prices: "openai",
						Allowances: map[string]proxy.Allowance{proxy.AllowStoredState: {USD: 100_000_000}}}},
					Tokens: h.db, Ledger: h.db, Prices: h.catalog,
				})
			}
			srv := httptest.NewServer(p)
			defer srv.Close()
			req, _ := http.NewRequest("POST", srv.URL+"/v1/responses", strings.NewReader(tt.body))
			req.Header.Set("Authorization", "Bearer "+h.token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if out := readAll(t, resp); resp.StatusCode != 200 {
				t.Fatalf("got %d: %s", resp.StatusCode, out)
			}
			if !strings.Contains(string(got), tt.wantMax) {
				t.Errorf("upstream body lacks %s: %s", tt.wantMax, got)
			}
			rec := h.records(1)[0]
			if rec.Charged != tt.wantCharged {
				t.Errorf("charged %s, want %s", rec.Charged, tt.wantCharged)
			}
			if rec.Charged > rec.Reserved {
				t.Errorf("charged %s above the reservation %s", rec.Charged, rec.Reserved)
			}
		})
	}
}

// Server tool calls sent back as history (input += output) are input like
// any other, bounded by their bytes; an image generation call counts as an
// image.
func TestResponses_ToolCallHistoryAccepted(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	for _, typ := range []string{"web_search_call", "file_search_call", "mcp_call", "mcp_list_tools", "mcp_approval_request", "mcp_approval_response", "code_interpreter_call", "image_generation_call"} {
		body := `{"model":"gpt-4.1","max_output_tokens":20,"input":[{"role":"user","content":"q"},{"type":"` + typ + `","id":"x"},{"role":"user","content":"and?"}]}`
		resp := h.post("/v1/responses", body)
		if out := readAll(t, resp); resp.StatusCode != 200 {
			t.Errorf("%s: got %d: %s", typ, resp.StatusCode, out)
		}
	}
}
