package proxy_test

import (
	"encoding/json"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
	"github.com/hardcap/hardcap/proxy"
)

// usageUpstream answers chat completions and messages with the usage the
// test sets for the requested model, after checking the real key.
type usageUpstream struct {
	t     *testing.T
	mu    sync.Mutex
	usage map[string][2]int64 // model -> input, output tokens
	calls int
}

func (u *usageUpstream) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	var req struct {
		Model string `json:"model"`
	}
	_ = json.Unmarshal(body, &req)
	u.mu.Lock()
	use, ok := u.usage[req.Model]
	u.calls++
	u.mu.Unlock()
	if !ok {
		u.t.Errorf("upstream: unexpected model %q", req.Model)
		http.Error(w, "unknown model", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if strings.HasSuffix(r.URL.Path, "/messages") {
		if r.Header.Get("X-Api-Key") != realAnthropicKey {
			u.t.Errorf("upstream: wrong Anthropic key")
		}
		fmt.Fprintf(w, `{"id":"msg_1","type":"message","role":"assistant","model":%q,"content":[{"type":"text","text":"ok"}],"stop_reason":"max_tokens","stop_sequence":null,"usage":{"input_tokens":%d,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":%d}}`, req.Model, use[0], use[1])
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+realKey {
		u.t.Errorf("upstream: wrong OpenAI key")
	}
	fmt.Fprintf(w, `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":%q,"choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"length"}],"usage":{"prompt_tokens":%d,"completion_tokens":%d,"total_tokens":%d}}`, req.Model, use[0], use[1], use[0]+use[1])
}

// dearer is what the dearer of the sources says a request of in input and
// out output tokens could be billed (worst: every input token at the
// dearest input-side price, cached or written to the cache for an hour,
// which Anthropic bills at twice the input price) and what the usage of
// exactly in uncached input and out output tokens costs, both in nano-USD
// rounded up, fees included.
func dearer(per []pricing.SourcePrices, in, out, images int64, anthropic, search bool) (worst, cost budget.Money) {
	var w, c *big.Rat
	for _, sp := range per {
		p := sp.Prices
		inW, inC := rateAt(p.Input, in), rateAt(p.Input, in)
		for _, f := range []pricing.Tiered{p.CacheRead, p.CacheWrite, p.CacheWrite1h, p.InputMedia} {
			inW = max(inW, rateAt(f, in))
		}
		if anthropic {
			inW = max(inW, 2*rateAt(p.Input, in))
		}
		if images > 0 {
			inC = max(inC, rateAt(p.InputMedia, in))
		}
		outR := max(rateAt(p.Output, in), rateAt(p.OutputReasoning, in), rateAt(p.OutputMedia, in))
		outC := max(rateAt(p.Output, in), rateAt(p.OutputMedia, in))
		fees := int64(p.Fees.Request) + images*int64(p.Fees.Image)
		if search {
			fees += int64(p.Fees.Search.At(""))
		}
		sw := new(big.Rat).SetFrac64(in*int64(inW)+out*int64(outR), 1_000_000)
		sc := new(big.Rat).SetFrac64(in*int64(inC)+out*int64(outC), 1_000_000)
		sw.Add(sw, big.NewRat(fees, 1))
		sc.Add(sc, big.NewRat(fees, 1))
		if w == nil || sw.Cmp(w) > 0 {
			w = sw
		}
		if c == nil || sc.Cmp(c) > 0 {
			c = sc
		}
	}
	return ceilRat(w), ceilRat(c)
}

func rateAt(t pricing.Tiered, in int64) budget.Rate {
	if !t.Set {
		return 0
	}
	return t.At(in)
}

func ceilRat(r *big.Rat) budget.Money {
	q, m := new(big.Int).QuoRem(r.Num(), r.Denom(), new(big.Int))
	if m.Sign() != 0 {
		q.Add(q, big.NewInt(1))
	}
	return budget.Money(q.Int64())
}

// TestEveryModel_BoundsTheDearerSource walks every OpenAI and Anthropic
// model name either source prices, sends a request with the model's largest
// input (its context window, reached with images; 300,000 tokens when the
// window is unknown) and largest output, has the provider report exactly
// that usage, and checks that the reservation is at least what the dearer
// source says the provider could bill and the charge at least what the
// dearer source prices that usage at. Models hardcap refuses must make no
// upstream call.
func TestEveryModel_BoundsTheDearerSource(t *testing.T) {
	cat := embeddedCatalog(t)
	up := &usageUpstream{t: t, usage: map[string][2]int64{}}
	srv := httptest.NewServer(up)
	t.Cleanup(srv.Close)
	h := newHarness(t, harnessOptions{noSync: true, providers: func(ps []*proxy.Provider) []*proxy.Provider {
		for _, p := range ps {
			u, _ := url.Parse(srv.URL)
			if p.Kind == proxy.KindOpenAI {
				u.Path = "/v1"
			}
			p.BaseURL = u
		}
		return ps
	}})
	at := time.Now()
	const img = `{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}`
	const antImg = `{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}}`
	var served int
	var refused []string
	for _, prov := range []string{"openai", "anthropic"} {
		for _, name := range cat.Names(prov) {
			m, err := cat.Lookup(prov, name, at)
			if err != nil || strings.ContainsAny(name, "/: ") {
				continue // priced by neither source, or not a name the API takes
			}
			in := m.ContextWindow
			if in == 0 {
				in = 300_000
			}
			out := m.MaxOutputTokens
			if out == 0 {
				out = 8192
			}
			if m.ContextWindow > 0 {
				out = min(out, m.ContextWindow)
			}
			up.mu.Lock()
			up.usage[name] = [2]int64{in, out}
			up.mu.Unlock()
			var resp *http.Response
			var images int64
			if prov == "anthropic" {
				images = (in + 4783) / 4784
				parts := strings.TrimSuffix(strings.Repeat(antImg+",", int(images)), ",")
				resp = h.postAnthropic("/v1/messages", fmt.Sprintf(`{"model":%q,"max_tokens":%d,"messages":[{"role":"user","content":[%s]}]}`, name, out, parts))
			} else {
				// gpt-5's 1,190 tokens is the smallest per-image bound.
				images = (in + 1189) / 1190
				parts := strings.TrimSuffix(strings.Repeat(img+",", int(images)), ",")
				resp = h.post("/v1/chat/completions", fmt.Sprintf(`{"model":%q,"max_completion_tokens":%d,"messages":[{"role":"user","content":[%s]}]}`, name, out, parts))
			}
			body := readAll(t, resp)
			if resp.StatusCode != 200 {
				if !strings.Contains(body, "unbounded_cost") && !strings.Contains(body, "model_not_priced") {
					t.Errorf("%s/%s: got %d: %.300s", prov, name, resp.StatusCode, body)
				}
				refused = append(refused, prov+"/"+name)
				continue
			}
			served++
			recs := h.records(served)
			rec := recs[len(recs)-1]
			search := prov == "openai" && (strings.Contains(name, "search-preview") || strings.Contains(name, "search-api"))
			worst, cost := dearer(cat.PerSource(prov, name, at), in, out, images, prov == "anthropic", search)
			if rec.Model != name {
				t.Fatalf("%s/%s: the last record is for %s", prov, name, rec.Model)
			}
			if rec.Reserved < worst {
				t.Errorf("%s/%s (%d in, %d out): reserved %s, the dearer source bills up to %s", prov, name, in, out, rec.Reserved, worst)
			}
			if rec.Charged < cost {
				t.Errorf("%s/%s (%d in, %d out): charged %s, the dearer source prices the usage at %s", prov, name, in, out, rec.Charged, cost)
			}
		}
	}
	up.mu.Lock()
	calls := up.calls
	up.mu.Unlock()
	if calls != served {
		t.Errorf("%d upstream calls for %d served requests: a refused request reached the provider", calls, served)
	}
	if served < 250 {
		t.Errorf("served %d models, want at least 250", served)
	}
	t.Logf("%d models served and bounded, %d refused: %s", served, len(refused), strings.Join(refused, ", "))
}
