package proxy_test

import (
	"bufio"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
	"github.com/hardcap/hardcap/internal/holdup"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
)

// pricedAt is the embedded catalog with gpt-4o-mini at in and out USD per
// million tokens.
func pricedAt(t *testing.T, in, out string) *pricing.Catalog {
	t.Helper()
	c, err := embeddedCatalog(t).WithOverrides(pricing.Override{Provider: "openai", Model: "gpt-4o-mini", InputMTok: in, OutputMTok: out})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const miniChat = `{"model":"gpt-4o-mini","max_tokens":20,"messages":[{"role":"user","content":"hello there"}]}`

// TestReconfigure_UnderLoad: a reconfiguration while a stream is in flight
// and other requests keep coming drops none of them; the stream, and every
// request that started before it, is charged at the prices it started
// with, and the requests after it at the new ones. A provider added is
// routable at once, a removed one answers the unknown-provider refusal, and
// the removal does not touch the stream in flight on it.
func TestReconfigure_UnderLoad(t *testing.T) {
	var front *holdup.Front
	var openai, compat *proxy.Provider
	h := newHarness(t, harnessOptions{noSync: true, providers: func(ps []*proxy.Provider) []*proxy.Provider {
		front = holdup.New(t, ps[0].BaseURL.String())
		// The stream goes through "compat", the provider the reload removes.
		ps[1].BaseURL = mustURL(t, front.URL())
		openai, compat = ps[0], ps[1]
		return ps
	}})
	if err := h.p.Reconfigure(proxy.Reconfiguration{Providers: []*proxy.Provider{openai, compat}, Prices: pricedAt(t, "1", "2")}); err != nil {
		t.Fatal(err)
	}

	resp := h.post("/p/compat/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"max_tokens":20,"messages":[{"role":"user","content":"a stream"}]}`)
	defer resp.Body.Close()
	br := bufio.NewReader(resp.Body)
	if line, err := br.ReadString('\n'); err != nil || !strings.HasPrefix(line, "data: ") {
		t.Fatalf("the stream's first line: %q, %v", line, err)
	}

	// Requests running while the table changes.
	var wg sync.WaitGroup
	statuses := make(chan int, 40)
	for range 4 {
		wg.Go(func() {
			for range 10 {
				r := h.post("/v1/chat/completions", miniChat)
				_, _ = io.Copy(io.Discard, r.Body)
				r.Body.Close()
				statuses <- r.StatusCode
			}
		})
	}
	fresh := &proxy.Provider{Name: "fresh", Kind: proxy.KindOpenAI, BaseURL: openai.BaseURL, Key: openai.Key, Prices: "openai"}
	next := proxy.Reconfiguration{Providers: []*proxy.Provider{openai, fresh}, Prices: pricedAt(t, "100", "200")}
	if err := h.p.Reconfigure(next); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(statuses)
	for s := range statuses {
		if s != http.StatusOK {
			t.Fatalf("a request during the reconfiguration got %d", s)
		}
	}
	flushLedger(t, h.db)
	if u, err := h.db.Usage(storage.RecordFilter{TokenID: h.tokenID}); err != nil {
		t.Fatal(err)
	} else {
		for _, rec := range u.Records {
			if rec.Provider == "compat" {
				t.Fatal("the stream settled before the reconfiguration: it was not in flight")
			}
		}
	}
	front.Release()
	rest, err := io.ReadAll(br)
	if err != nil || !strings.Contains(string(rest), "[DONE]") {
		t.Fatalf("the stream after the reconfiguration: %v\n%s", err, rest)
	}

	// After it: the new provider serves, the removed one is unknown.
	if r := h.post("/p/fresh/v1/chat/completions", miniChat); r.StatusCode != http.StatusOK {
		t.Fatalf("the added provider: %d %s", r.StatusCode, readAll(t, r))
	} else {
		readAll(t, r)
	}
	r := h.post("/p/compat/v1/chat/completions", miniChat)
	body := readAll(t, r)
	if code, _, msg := apiError(t, body); r.StatusCode != http.StatusForbidden || code != "not_allowed" || !strings.Contains(msg, `no provider named "compat"`) {
		t.Fatalf("the removed provider: %d %s", r.StatusCode, body)
	}

	recs := h.records(42)
	var stream, fresher *budget.Record
	for i := range recs {
		rec := &recs[i]
		if rec.Status != http.StatusOK || rec.Charged == 0 {
			t.Fatalf("record %+v: not a charged success", rec)
		}
		at1 := price(t, rec.Usage.InputTokens, rec.Usage.OutputTokens, "1", "2")
		at100 := price(t, rec.Usage.InputTokens, rec.Usage.OutputTokens, "100", "200")
		switch rec.Provider {
		case "compat":
			stream = rec
			if rec.Charged != at1 {
				t.Fatalf("the stream in flight was charged %s, want %s (the prices it started with)", rec.Charged, at1)
			}
		case "fresh":
			fresher = rec
			if rec.Charged != at100 {
				t.Fatalf("the request after the reconfiguration was charged %s, want %s", rec.Charged, at100)
			}
		default:
			if rec.Charged != at1 && rec.Charged != at100 {
				t.Fatalf("a request during the reconfiguration was charged %s, neither %s nor %s", rec.Charged, at1, at100)
			}
		}
	}
	if stream == nil || fresher == nil {
		t.Fatalf("records %+v: want the stream's and the added provider's", recs)
	}
}

// TestReconfigure_Refused: a set with no price book, two providers of a
// name or a provider without a key is refused, and the table before goes
// on serving.
func TestReconfigure_Refused(t *testing.T) {
	var openai *proxy.Provider
	h := newHarness(t, harnessOptions{noSync: true, providers: func(ps []*proxy.Provider) []*proxy.Provider {
		openai = ps[0]
		return ps
	}})
	prices := embeddedCatalog(t)
	keyless := *openai
	keyless.Key = nil
	for _, tt := range []struct {
		name string
		c    proxy.Reconfiguration
	}{
		{"no prices", proxy.Reconfiguration{Providers: []*proxy.Provider{openai}}},
		{"two of a name", proxy.Reconfiguration{Providers: []*proxy.Provider{openai, openai}, Prices: prices}},
		{"no key", proxy.Reconfiguration{Providers: []*proxy.Provider{&keyless}, Prices: prices}},
		{"no name", proxy.Reconfiguration{Providers: []*proxy.Provider{{BaseURL: openai.BaseURL, Key: openai.Key}}, Prices: prices}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if err := h.p.Reconfigure(tt.c); !errors.Is(err, proxy.ErrReconfigure) {
				t.Fatalf("got %v, want ErrReconfigure", err)
			}
			// "claude" is in the table from the start, in none of these.
			req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/p/claude/v1/messages", strings.NewReader(`{"model":"claude-haiku-4-5","max_tokens":20,"messages":[{"role":"user","content":"hi"}]}`))
			req.Header.Set("X-Api-Key", h.token)
			req.Header.Set("Anthropic-Version", "2023-06-01")
			req.Header.Set("Content-Type", "application/json")
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			if body := readAll(t, r); r.StatusCode != http.StatusOK {
				t.Fatalf("the table before no longer serves: %d %s", r.StatusCode, body)
			}
		})
	}
	if n := len(h.p.Providers()); n != 4 {
		t.Fatalf("%d providers after the refusals, want the 4 from the start", n)
	}
}

// TestReconfigure_Bounds: max_body_bytes applies from the request after a
// reconfiguration.
func TestReconfigure_Bounds(t *testing.T) {
	var provs []*proxy.Provider
	h := newHarness(t, harnessOptions{noSync: true, providers: func(ps []*proxy.Provider) []*proxy.Provider {
		provs = ps
		return ps
	}})
	if r := h.post("/v1/chat/completions", miniChat); r.StatusCode != http.StatusOK {
		t.Fatalf("before: %d %s", r.StatusCode, readAll(t, r))
	} else {
		readAll(t, r)
	}
	if err := h.p.Reconfigure(proxy.Reconfiguration{Providers: provs, Prices: embeddedCatalog(t), MaxBodyBytes: 16}); err != nil {
		t.Fatal(err)
	}
	r := h.post("/v1/chat/completions", miniChat)
	if body := readAll(t, r); r.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("after a 16-byte bound: %d %s", r.StatusCode, body)
	}
}

func mustURL(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
