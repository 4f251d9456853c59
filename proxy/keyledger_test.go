package proxy_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/hardcap/hardcap/proxy"
)

// TestUpstream401_Counted: a provider's 401 to a request that carried the
// real key is counted against that provider's key, and a 401 of hardcap's
// own (a bad hardcap token) is not.
func TestUpstream401_Counted(t *testing.T) {
	var provs []*proxy.Provider
	h := newHarness(t, harnessOptions{providers: func(p []*proxy.Provider) []*proxy.Provider { provs = p; return p }})
	var openai *proxy.Provider
	for _, p := range provs {
		if p.Name == "openai" {
			openai = p
		}
	}
	ks := proxy.NewKeys(proxy.KeysOptions{Providers: []*proxy.Provider{openai}})

	// hardcap's own refusal never reaches the provider.
	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","messages":[]}`))
	req.Header.Set("Authorization", "Bearer hc_not_a_token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 401 || ks.States()[0].Rejected != 0 {
		t.Fatalf("a bad hardcap token got %d and counted %d upstream 401s", resp.StatusCode, ks.States()[0].Rejected)
	}

	h.up.SetBehavior(fakeopenai.Behavior{Status: http.StatusUnauthorized})
	for range 2 {
		resp := h.post("/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`)
		body := readAll(t, resp)
		if resp.StatusCode != 401 || strings.Contains(body, realKey) {
			t.Fatalf("got %d: %s", resp.StatusCode, body)
		}
	}
	if st := ks.States()[0]; st.Rejected != 2 || st.Pending != 2 || st.LastRejected.IsZero() {
		t.Fatalf("state after two upstream 401s: %+v", st)
	}
	if n := strings.Count(h.logs.String(), "refused its real key"); n != 1 {
		t.Fatalf("%d warnings for two 401s within a minute, want 1", n)
	}
	if strings.Contains(h.logs.String(), realKey) {
		t.Fatal("the log carries the real key")
	}
}
