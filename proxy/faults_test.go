package proxy_test

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/hardcap/hardcap/proxy"
)

// TestFault_StalledStreamHitsDeadline: a stream that stops mid-way is cut
// at the upstream timeout and charged its full reservation; the proxy keeps
// serving.
func TestFault_StalledStreamHitsDeadline(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true, timeout: 300 * time.Millisecond})
	h.up.SetBehavior(fakeopenai.Behavior{StallAfterEvents: 2})
	start := time.Now()
	resp, err := http.DefaultClient.Do(mustRequest(t, h, `{"model":"gpt-4o-mini","stream":true,"max_tokens":30,"messages":[{"role":"user","content":"x"}]}`))
	if err != nil {
		t.Fatal(err)
	}
	readAllErr(resp)
	if took := time.Since(start); took > 5*time.Second {
		t.Fatalf("the stall lasted %s, past the 300ms deadline", took)
	}
	rec := h.records(1)[0]
	if rec.Charged != rec.Reserved || rec.Outcome != budget.UsageMissing {
		t.Fatalf("charged %s of %s (%s), want the full reservation", rec.Charged, rec.Reserved, rec.Outcome)
	}
	h.up.SetBehavior(fakeopenai.Behavior{})
	if resp := h.post("/v1/chat/completions", helloBody); resp.StatusCode != 200 {
		t.Fatalf("after the stall got %d", resp.StatusCode)
	} else {
		readAll(t, resp)
	}
}

// TestFault_OversizedResponse: a JSON answer too large to keep for its
// usage still reaches the client whole, and is charged in full.
func TestFault_OversizedResponse(t *testing.T) {
	big := strings.Repeat("a", 17<<20)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"choices":[{"message":{"content":"` + big + `"}}],"usage":{"prompt_tokens":1,"completion_tokens":1}}`))
	}))
	defer up.Close()
	h := newHarness(t, harnessOptions{noSync: true})
	base, _ := url.Parse(up.URL + "/v1")
	p := proxy.New(proxy.Options{
		Providers: []*proxy.Provider{{Name: "openai", Kind: proxy.KindOpenAI, BaseURL: base, Key: proxy.StaticKey("k"), Prices: "openai"}},
		Tokens:    h.db, Ledger: h.db, Prices: h.catalog,
	})
	srv := httptest.NewServer(p)
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(helloBody))
	req.Header.Set("Authorization", "Bearer "+h.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if len(body) < 17<<20 {
		t.Fatalf("the client got %d bytes, want the whole answer", len(body))
	}
	rec := h.records(1)[0]
	if rec.Charged != rec.Reserved || rec.Outcome != budget.UsageMissing {
		t.Fatalf("charged %s of %s (%s), want the full reservation", rec.Charged, rec.Reserved, rec.Outcome)
	}
}
