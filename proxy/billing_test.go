package proxy_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
	"github.com/hardcap/hardcap/internal/fakeanthropic"
	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/hardcap/hardcap/proxy"
)

// The tests in this file bill each request the way the provider does, from
// the providers' own published prices (held here, independent of hardcap's
// price data), and check that hardcap refused the request or charged at
// least that bill. Each test is one row of the price review.

// published is a provider's list price: USD per million tokens, and per
// call fees in USD.
type published struct {
	in, out string
	// perCall is a fee every call pays (a search-preview model's search).
	perCall string
}

// bill prices tokens at p, rounded up to the nano-USD, plus n calls' fees.
func (p published) bill(t *testing.T, prompt, completion, calls int64) budget.Money {
	t.Helper()
	m := price(t, prompt, completion, p.in, p.out)
	if p.perCall != "" {
		fee, err := budget.ParseUSD(p.perCall)
		if err != nil {
			t.Fatal(err)
		}
		m += budget.Money(calls) * fee
	}
	return m
}

// checkCharged fails unless every record charged at least its call's
// published bill and reserved at least its charge.
func checkCharged(t *testing.T, h *harness, p published, n int) []budget.Record {
	t.Helper()
	recs := h.records(n)
	calls := h.up.Calls()
	if len(calls) != n || len(recs) != n {
		t.Fatalf("got %d upstream calls and %d records, want %d", len(calls), len(recs), n)
	}
	for i, c := range calls {
		bill := p.bill(t, c.Usage.PromptTokens, c.Usage.CompletionTokens, 1)
		rec := recs[i] // both oldest first
		if rec.Charged < bill {
			t.Errorf("call %d: charged %s, the provider bills %s", i, rec.Charged, bill)
		}
		if rec.Charged > rec.Reserved {
			t.Errorf("call %d: charged %s above the reservation %s", i, rec.Charged, rec.Reserved)
		}
	}
	return recs
}

// gpt-4o-mini-search-preview searches the web on every call (USD 25, 27.50
// or 30 per 1,000 calls by search context size, medium by default); the
// usage does not report it, and its snapshot's data entry lacks the fee.
func TestBill_SearchPreviewPaysPerCall(t *testing.T) {
	for _, tt := range []struct {
		model, options string
		p              published
		// limit covers one call at the dearest search size, not two.
		limit int64
	}{
		{"gpt-4o-mini-search-preview", "", published{"0.15", "0.6", "0.0275"}, 50_000_000},
		{"gpt-4o-mini-search-preview-2025-03-11", "", published{"0.15", "0.6", "0.0275"}, 50_000_000},
		{"gpt-4o-mini-search-preview", `,"web_search_options":{"search_context_size":"high"}`, published{"0.15", "0.6", "0.03"}, 50_000_000},
		{"gpt-4o-search-preview", `,"web_search_options":{"search_context_size":"low"}`, published{"2.5", "10", "0.03"}, 50_000_000},
		{"gpt-4o-search-preview-2025-03-11", "", published{"2.5", "10", "0.035"}, 60_000_000},
	} {
		t.Run(tt.model+tt.options, func(t *testing.T) {
			h := newHarness(t, harnessOptions{noSync: true, token: budgetLimit(tt.limit)})
			body := `{"model":"` + tt.model + `","max_tokens":50,"messages":[{"role":"user","content":"news?"}]` + tt.options + `}`
			served := 0
			for range 5 {
				resp := h.post("/v1/chat/completions", body)
				out := readAll(t, resp)
				switch resp.StatusCode {
				case 200:
					served++
				case 402:
				default:
					t.Fatalf("got %d: %s", resp.StatusCode, out)
				}
			}
			if served != 1 {
				t.Errorf("served %d calls on a %s USD budget, want 1", served, budget.Money(tt.limit))
			}
			checkCharged(t, h, tt.p, served)
		})
	}
}

// gpt-5.5 bills the whole request at 2x input and 1.5x output above 272K
// input tokens; one source has the tier, the other does not.
func TestBill_LongContextTier(t *testing.T) {
	for _, tt := range []struct {
		model string
		p     published
	}{
		{"gpt-5.5", published{in: "10", out: "45"}},
		{"gpt-5.5-pro", published{in: "60", out: "270"}},
	} {
		t.Run(tt.model, func(t *testing.T) {
			h := newHarness(t, harnessOptions{noSync: true})
			h.up.SetBehavior(fakeopenai.Behavior{BillAtCap: true, PromptTokens: func([]byte) int64 { return 300_000 }})
			text := strings.Repeat("a", 310_000)
			resp := h.post("/v1/chat/completions", `{"model":"`+tt.model+`","max_completion_tokens":1000,"messages":[{"role":"user","content":"`+text+`"}]}`)
			if out := readAll(t, resp); resp.StatusCode != 200 {
				t.Fatalf("got %d: %.300s", resp.StatusCode, out)
			}
			checkCharged(t, h, tt.p, 1)
		})
	}
}

// gpt-4o-2024-05-13 is its own price (5 / 15), not gpt-4o's (2.50 / 10).
func TestBill_DatedSnapshotOwnPrice(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	h.up.SetBehavior(fakeopenai.Behavior{BillAtCap: true})
	resp := h.post("/v1/chat/completions", `{"model":"gpt-4o-2024-05-13","max_tokens":2000,"messages":[{"role":"user","content":"hi"}]}`)
	if out := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("got %d: %s", resp.StatusCode, out)
	}
	checkCharged(t, h, published{in: "5", out: "15"}, 1)
}

// A client cannot pick the OpenAI organization or project that pays, nor
// pass any header outside the provider kind's allowlist.
func TestHeaders_ClientCannotSteerBilling(t *testing.T) {
	for _, tt := range []struct {
		name               string
		org, project       string
		wantOrg, wantProjH string
	}{
		{"configured", "org-config", "proj_config", "org-config", "proj_config"},
		{"not configured", "", "", "", ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{noSync: true, providers: func(ps []*proxy.Provider) []*proxy.Provider {
				ps[0].Organization, ps[0].Project = tt.org, tt.project
				return ps
			}})
			req := mustRequest(t, h, helloBody)
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("OpenAI-Organization", "org-evil")
			req.Header.Set("OpenAI-Project", "proj_evil")
			req.Header["openai_organization"] = []string{"org-evil"}
			req.Header.Set("X-Custom-Routing", "eu")
			req.Header.Set("OpenAI-Beta", "assistants=v2")
			req.Header.Set("X-Stainless-Lang", "go")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if out := readAll(t, resp); resp.StatusCode != 200 {
				t.Fatalf("got %d: %s", resp.StatusCode, out)
			}
			got := h.up.Calls()[0].Header
			if g := got.Values("Openai-Organization"); strings.Join(g, ",") != tt.wantOrg {
				t.Errorf("OpenAI-Organization: got %q, want %q", g, tt.wantOrg)
			}
			if g := got.Values("Openai-Project"); strings.Join(g, ",") != tt.wantProjH {
				t.Errorf("OpenAI-Project: got %q, want %q", g, tt.wantProjH)
			}
			for name := range got {
				switch strings.ToLower(name) {
				case "openai_organization", "x-custom-routing", "openai-beta":
					t.Errorf("%s reached the provider", name)
				}
			}
			if got.Get("X-Stainless-Lang") != "go" {
				t.Error("SDK telemetry header dropped")
			}
		})
	}
}

// Anthropic beta headers are checked as anthropic-beta; any other spelling
// is dropped, an unknown beta is refused, and a long-context beta needs
// long-context prices.
func TestHeaders_AnthropicBetas(t *testing.T) {
	const body = `{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`
	tests := []struct {
		name       string
		header     map[string]string
		wantStatus int
		wantCode   string
		wantBeta   string // what reaches the provider as anthropic-beta
	}{
		{"underscore spelling dropped", map[string]string{"anthropic_beta": "context-1m-2025-08-07"}, 200, "", ""},
		{"long context without a tier", map[string]string{"Anthropic-Beta": "context-1m-2025-08-07"}, 403, "model_not_priced", ""},
		{"unknown beta", map[string]string{"Anthropic-Beta": "prompt-caching-2024-07-31, fast-mode-2026-02-01"}, 400, "unbounded_cost", ""},
		{"known beta", map[string]string{"Anthropic-Beta": "prompt-caching-2024-07-31"}, 200, "", "prompt-caching-2024-07-31"},
		{"bad version", map[string]string{"Anthropic-Version": "latest"}, 400, "invalid_request_error", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{noSync: true})
			req, err := http.NewRequest(http.MethodPost, h.srv.URL+"/v1/messages", strings.NewReader(body))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("X-Api-Key", h.token)
			req.Header.Set("Anthropic-Version", "2023-06-01")
			for k, v := range tt.header {
				req.Header[k] = []string{v}
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			out := readAll(t, resp)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("got %d: %s", resp.StatusCode, out)
			}
			if tt.wantCode != "" {
				if !strings.Contains(out, `"type":"`+tt.wantCode+`"`) {
					t.Errorf("got %s, want error type %s", out, tt.wantCode)
				}
				if n := len(h.ant.Calls()); n != 0 {
					t.Errorf("a refused request made %d upstream calls", n)
				}
				return
			}
			got := h.ant.Calls()[0].Header
			if b := got.Get("Anthropic-Beta"); b != tt.wantBeta {
				t.Errorf("anthropic-beta upstream: got %q, want %q", b, tt.wantBeta)
			}
			for name := range got {
				if strings.Contains(name, "_") {
					t.Errorf("%s reached the provider", name)
				}
			}
		})
	}
}

// A Responses tool with a hosted environment runs a loop in OpenAI's
// container: it is a server tool that needs its allowance, and every
// container session it may start is reserved and charged.
func TestBill_HostedShellIsAServerTool(t *testing.T) {
	const prefix = `{"model":"gpt-5.5","max_output_tokens":200,"input":"list files","tools":[`
	tests := []struct {
		name, tool string
		allow      bool
		wantStatus int
		// session is the fee hardcap must reserve and charge, USD.
		session string
	}{
		{"container_auto without allowance", `{"type":"shell","environment":{"type":"container_auto"}}`, false, 400, ""},
		{"container_auto", `{"type":"shell","environment":{"type":"container_auto"}}`, true, 200, "1.92"},
		{"container_auto 4g", `{"type":"shell","environment":{"type":"container_auto","memory_limit":"4g"}}`, true, 200, "0.12"},
		{"container_reference", `{"type":"shell","environment":{"type":"container_reference","container_id":"cntr_1"}}`, true, 200, "1.92"},
		{"shell without environment", `{"type":"shell"}`, true, 400, ""},
		{"local shell", `{"type":"shell","environment":{"type":"local"}}`, false, 200, "0"},
		{"code interpreter by id", `{"type":"code_interpreter","container":"cntr_1"}`, true, 200, "1.92"},
		{"code interpreter 1g", `{"type":"code_interpreter","container":{"type":"auto","memory_limit":"1g"}}`, true, 200, "0.03"},
		{"function with a container", `{"type":"function","name":"f","parameters":{},"container":"cntr_1"}`, true, 400, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{noSync: true, providers: func(ps []*proxy.Provider) []*proxy.Provider {
				if tt.allow {
					ps[0].Allowances = map[string]proxy.Allowance{"shell": {USD: 100_000_000}, "code_interpreter": {USD: 100_000_000}}
				}
				return ps
			}})
			resp := h.post("/v1/responses", prefix+tt.tool+`]}`)
			out := readAll(t, resp)
			if resp.StatusCode != tt.wantStatus {
				t.Fatalf("got %d: %s", resp.StatusCode, out)
			}
			if tt.wantStatus != 200 {
				if code, _, _ := apiError(t, out); code != "unbounded_cost" {
					t.Errorf("got code %q, want unbounded_cost", code)
				}
				return
			}
			session, err := budget.ParseUSD(tt.session)
			if err != nil {
				t.Fatal(err)
			}
			c := h.up.Calls()[0]
			// The provider bills tokens (gpt-5.5: 5 / 30) and, for a hosted
			// container, at least a 1 GB session (USD 0.03).
			bill := price(t, c.Usage.PromptTokens, c.Usage.CompletionTokens, "5", "30")
			if session > 0 {
				bill += 30_000_000
			}
			rec := h.records(1)[0]
			if rec.Charged < bill || rec.Charged-price(t, c.Usage.PromptTokens, c.Usage.CompletionTokens, "5", "30") < session {
				t.Errorf("charged %s; the provider bills %s and the session fee is %s", rec.Charged, bill, session)
			}
			if rec.Reserved < rec.Charged {
				t.Errorf("reserved %s below the charge %s", rec.Reserved, rec.Charged)
			}
		})
	}
}

// gpt-5-codex sizes images as patches (the Codex series), not with gpt-5's
// tiles: a model whose family the formulas do not place gets the dearest
// bound, so what it bills for images is reserved.
func TestBill_CodexImagesReservedAtTheDearestBound(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	const images = 6
	// Patch sizing at its largest: 10,000 patches at "original" detail,
	// times 1.2, for each image, plus the text.
	h.up.SetBehavior(fakeopenai.Behavior{BillAtCap: true, PromptTokens: func(body []byte) int64 { return images*12_000 + int64(len(body))/4 }})
	img := `{"type":"input_image","image_url":"https://example.com/a.png","detail":"original"}`
	parts := strings.TrimSuffix(strings.Repeat(img+",", images), ",")
	resp := h.post("/v1/responses", `{"model":"gpt-5-codex","max_output_tokens":100,"input":[{"role":"user","content":[{"type":"input_text","text":"diff?"},`+parts+`]}]}`)
	if out := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("got %d: %s", resp.StatusCode, out)
	}
	recs := checkCharged(t, h, published{in: "1.25", out: "10"}, 1)
	if recs[0].Outcome != budget.Complete {
		t.Errorf("outcome %s, want complete", recs[0].Outcome)
	}
}

// Anthropic bills 1.1x for US-only inference on Opus 4.6 and newer. Without
// inference_geo the workspace default applies, so hardcap writes "global";
// a request for "us" is reserved and charged at 1.1x; usage that reports
// "us" is charged at 1.1x.
func TestBill_AnthropicInferenceGeo(t *testing.T) {
	tests := []struct {
		name, model, geo string
		workspace        string
		wantSent         string // inference_geo in the upstream body; "" for none
		in, out          string // published USD per million tokens
		uplift           bool
	}{
		{"omitted on opus 4.6", "claude-opus-4-6", "", "us", "global", "5", "25", false},
		{"us on opus 4.6", "claude-opus-4-6", `,"inference_geo":"us"`, "", "us", "5", "25", true},
		{"legacy model left alone", "claude-haiku-4-5", "", "", "", "1", "5", false},
		{"usage reports us", "claude-sonnet-4-5", "", "us", "", "3", "15", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{noSync: true})
			h.ant.SetBehavior(fakeanthropic.Behavior{BillAtCap: true, WorkspaceGeo: tt.workspace})
			resp := h.postAnthropic("/v1/messages", `{"model":"`+tt.model+`","max_tokens":500,"messages":[{"role":"user","content":"hi"}]`+tt.geo+`}`)
			if out := readAll(t, resp); resp.StatusCode != 200 {
				t.Fatalf("got %d: %s", resp.StatusCode, out)
			}
			c := h.ant.Calls()[0]
			var sent struct {
				Geo *string `json:"inference_geo"`
			}
			if err := json.Unmarshal(c.Body, &sent); err != nil {
				t.Fatal(err)
			}
			if got := deref(sent.Geo); got != tt.wantSent {
				t.Errorf("inference_geo sent: got %q, want %q", got, tt.wantSent)
			}
			// Input is bounded at the one-hour cache-write rate, but charged
			// at what the usage says: uncached input here.
			bill := price(t, c.Usage.InputTokens, c.Usage.OutputTokens, tt.in, tt.out)
			if tt.uplift || c.Usage.InferenceGeo == "us" {
				bill = (bill*11 + 9) / 10
			}
			rec := h.records(1)[0]
			if rec.Charged < bill {
				t.Errorf("charged %s, the provider bills %s", rec.Charged, bill)
			}
			if tt.geo != "" && rec.Reserved < rec.Charged {
				t.Errorf("reserved %s below the charge %s", rec.Reserved, rec.Charged)
			}
		})
	}
}

func deref(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

// Encrypted reasoning and signed thinking are billed at the tokens they
// stand for, which their bytes do not bound: they need an opaque allowance,
// per item.
func TestBill_OpaqueInputsNeedAnAllowance(t *testing.T) {
	responses := `{"model":"gpt-5.5","max_output_tokens":50,"input":[` +
		`{"type":"reasoning","summary":[],"encrypted_content":"gAAAAB` + strings.Repeat("x", 40) + `"},` +
		`{"type":"reasoning","summary":[],"encrypted_content":"gAAAAB` + strings.Repeat("y", 40) + `"},` +
		`{"role":"user","content":"go on"}]}`
	messages := `{"model":"claude-sonnet-4-5","max_tokens":50,"messages":[{"role":"user","content":"q"},` +
		`{"role":"assistant","content":[{"type":"thinking","thinking":"short summary","signature":"EqQBCkgIARAB` + strings.Repeat("z", 40) + `"},{"type":"text","text":"a"}]},` +
		`{"role":"user","content":"more"}]}`
	for _, tt := range []struct {
		name, path, body string
		items            int64
		inRate           string // the request's worst input rate, USD per Mtok
	}{
		{"responses encrypted reasoning", "/v1/responses", responses, 2, "5"},
		// Messages input is bounded at the one-hour cache-write rate.
		{"messages signed thinking", "/v1/messages", messages, 1, "6"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, allow := range []bool{false, true} {
				h := newHarness(t, harnessOptions{noSync: true, providers: func(ps []*proxy.Provider) []*proxy.Provider {
					if allow {
						for _, p := range ps {
							p.Allowances = map[string]proxy.Allowance{proxy.AllowOpaque: {Tokens: 50_000}}
						}
					}
					return ps
				}})
				var resp *http.Response
				if tt.path == "/v1/messages" {
					resp = h.postAnthropic(tt.path, tt.body)
				} else {
					resp = h.post(tt.path, tt.body)
				}
				out := readAll(t, resp)
				if !allow {
					if resp.StatusCode != 400 || !strings.Contains(out, "unbounded_cost") || !strings.Contains(out, "allowances.opaque") {
						t.Fatalf("without an allowance got %d: %s", resp.StatusCode, out)
					}
					continue
				}
				if resp.StatusCode != 200 {
					t.Fatalf("with an allowance got %d: %s", resp.StatusCode, out)
				}
				// The reservation covers the allowance's tokens per item.
				floor := price(t, tt.items*50_000, 0, tt.inRate, "0")
				if rec := h.records(1)[0]; rec.Reserved < floor {
					t.Errorf("reserved %s, want at least %s for %d opaque items", rec.Reserved, floor, tt.items)
				}
			}
		})
	}
}

// price_multiplier scales every rate: with 1.1 a gpt-4o call costs 1.1
// times its list price.
func TestBill_PriceMultiplier(t *testing.T) {
	m, err := pricing.ParseMultiplier("1.1")
	if err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, harnessOptions{noSync: true, providers: func(ps []*proxy.Provider) []*proxy.Provider {
		ps[0].PriceMultiplier = m
		return ps
	}})
	h.up.SetBehavior(fakeopenai.Behavior{BillAtCap: true})
	resp := h.post("/v1/chat/completions", `{"model":"gpt-4o","max_tokens":1000,"messages":[{"role":"user","content":"hi"}]}`)
	if out := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("got %d: %s", resp.StatusCode, out)
	}
	c := h.up.Calls()[0]
	if rec := h.records(1)[0]; rec.Charged != price(t, c.Usage.PromptTokens, c.Usage.CompletionTokens, "2.75", "11") {
		t.Errorf("charged %s, want 1.1 times the list price", rec.Charged)
	}
}

// A model whose data bills something hardcap cannot price (per second of
// audio) is refused, never served at its token rates alone; a per-request
// fee is reserved and charged.
func TestBill_FeesOutsideTheUsage(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true, providers: func(ps []*proxy.Provider) []*proxy.Provider {
		p := *ps[0]
		p.Name, p.Prices = "pplx", "perplexity"
		return append(ps, &p)
	}})
	resp := h.post("/v1/chat/completions", `{"model":"gpt-4o-mini-tts","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`)
	if out := readAll(t, resp); resp.StatusCode != 400 || !strings.Contains(out, "output_cost_per_second") {
		t.Fatalf("got %d: %s", resp.StatusCode, out)
	}
	h.up.SetBehavior(fakeopenai.Behavior{BillAtCap: true})
	resp = h.post("/p/pplx/v1/chat/completions", `{"model":"sonar","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`)
	if out := readAll(t, resp); resp.StatusCode != 200 {
		t.Fatalf("got %d: %s", resp.StatusCode, out)
	}
	// Perplexity sonar: USD 1 / 1 per million tokens and USD 5 per 1,000
	// requests at the low search context size (the data says 12 at high).
	checkCharged(t, h, published{in: "1", out: "1", perCall: "0.005"}, 1)
	if rec := h.records(1)[0]; rec.Charged < 5_000_000 {
		t.Errorf("charged %s, below one request fee", rec.Charged)
	}
}

// OpenAI's newer models price cache writes above input (gpt-5.6-sol: 6.25
// against 5 USD per million). Usage that does not count the written tokens
// cannot tell them from other input: every uncached input token is charged
// at the write price; usage that counts them is charged exactly.
func TestBill_UnplacedCacheWrites(t *testing.T) {
	for _, tt := range []struct {
		name, details string
		want          budget.Money
	}{
		{"writes not counted", `{"cached_tokens":0}`, budget.Money(1000*6250 + 10*30_000)},
		{"writes counted", `{"cached_tokens":0,"cache_write_tokens":0}`, budget.Money(1000*5000 + 10*30_000)},
	} {
		t.Run(tt.name, func(t *testing.T) {
			up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				io.WriteString(w, `{"id":"resp_1","object":"response","status":"completed","output":[],"usage":{"input_tokens":1000,"input_tokens_details":`+tt.details+`,"output_tokens":10,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":1010}}`)
			}))
			defer up.Close()
			h := newHarness(t, harnessOptions{noSync: true, providers: func(ps []*proxy.Provider) []*proxy.Provider {
				ps[0].BaseURL, _ = url.Parse(up.URL + "/v1")
				ps[0].Key = proxy.StaticKey(realKey)
				return ps
			}})
			resp := h.post("/v1/responses", `{"model":"gpt-5.6-sol","max_output_tokens":50,"input":"hi"}`)
			if out := readAll(t, resp); resp.StatusCode != 200 {
				t.Fatalf("got %d: %s", resp.StatusCode, out)
			}
			if rec := h.records(1)[0]; rec.Charged != tt.want {
				t.Errorf("charged %s, want %s", rec.Charged, tt.want)
			}
		})
	}
}

// Chat completions tools other than function and custom run on the
// provider's side (a compatible provider's browser search, say) and bill
// per call: refused.
func TestBill_ChatProviderToolsRefused(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	for _, tool := range []string{`{"type":"browser_search"}`, `{"type":"code_interpreter"}`, `{"function":{"name":"f"}}`} {
		resp := h.post("/p/compat/v1/chat/completions", `{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tools":[`+tool+`]}`)
		if out := readAll(t, resp); resp.StatusCode != 400 || !strings.Contains(out, "unbounded_cost") {
			t.Errorf("%s: got %d: %s", tool, resp.StatusCode, out)
		}
	}
	resp := h.post("/v1/chat/completions", `{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f","parameters":{}}}]}`)
	if out := readAll(t, resp); resp.StatusCode != 200 {
		t.Errorf("function tool: got %d: %s", resp.StatusCode, out)
	}
	if n := len(h.up.Calls()); n != 1 {
		t.Errorf("%d upstream calls, want 1", n)
	}
}
