package proxy_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
)

// TestChat_UpstreamCapNeverAboveQuote checks the body the provider gets:
// every cap field it could read carries the reserved cap.
func TestChat_UpstreamCapNeverAboveQuote(t *testing.T) {
	tests := []struct {
		name, path, body string
		want             map[string]int64 // cap fields the upstream must see; -1 = absent
	}{
		{"no cap: injected", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}]}`,
			map[string]int64{"max_completion_tokens": 16384, "max_tokens": -1}},
		{"both caps: the smaller everywhere", "/v1/chat/completions", `{"model":"gpt-4o-mini","max_tokens":5,"max_completion_tokens":100000,"messages":[{"role":"user","content":"x"}]}`,
			map[string]int64{"max_completion_tokens": 5, "max_tokens": 5}},
		{"legacy max_tokens kept alone for OpenAI", "/v1/chat/completions", `{"model":"gpt-4o-mini","max_tokens":9,"messages":[{"role":"user","content":"x"}]}`,
			map[string]int64{"max_tokens": 9, "max_completion_tokens": -1}},
		{"above the context window: lowered to it", "/v1/chat/completions", `{"model":"gpt-4o-mini","max_completion_tokens":999999,"messages":[{"role":"user","content":"x"}]}`,
			map[string]int64{"max_completion_tokens": 128000}},
		{"compat provider reads max_tokens", "/p/compat/v1/chat/completions", `{"model":"gpt-4o-mini","max_completion_tokens":7,"messages":[{"role":"user","content":"x"}]}`,
			map[string]int64{"max_completion_tokens": 7, "max_tokens": 7}},
		{"compat provider, no cap", "/p/compat/v1/chat/completions", `{"model":"gpt-4o-mini","top_k":3,"messages":[{"role":"user","content":"x"}]}`,
			map[string]int64{"max_tokens": 16384, "max_completion_tokens": -1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{noSync: true})
			resp := h.post(tt.path, tt.body)
			if body := readAll(t, resp); resp.StatusCode != 200 {
				t.Fatalf("got %d: %s", resp.StatusCode, body)
			}
			var sent map[string]json.RawMessage
			if err := json.Unmarshal(h.up.Calls()[0].Body, &sent); err != nil {
				t.Fatal(err)
			}
			for field, want := range tt.want {
				raw, ok := sent[field]
				if want == -1 {
					if ok {
						t.Errorf("%s = %s, want it absent", field, raw)
					}
					continue
				}
				var got int64
				if err := json.Unmarshal(raw, &got); err != nil || got != want {
					t.Errorf("%s = %s, want %d", field, raw, want)
				}
			}
		})
	}
}

func TestChat_RefusesWhatItCannotRead(t *testing.T) {
	tests := []struct {
		name, path, body string
		status           int
		code             string
	}{
		{"duplicate key", "/v1/chat/completions", `{"model":"gpt-4o-mini","max_tokens":1,"max_tokens":9,"messages":[{"role":"user","content":"x"}]}`, 400, "invalid_request"},
		{"key in another case", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x","Content":[{"type":"image_url"}]}]}`, 400, "invalid_request"},
		{"type in another case inside a part", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":[{"type":"image_url","TYPE":"text"}]}]}`, 400, "invalid_request"},
		{"unknown parameter", "/v1/chat/completions", `{"model":"gpt-4o-mini","models":["gpt-4o"],"messages":[{"role":"user","content":"x"}]}`, 400, "unbounded_cost"},
		{"extra parameter on a provider that does not allow it", "/v1/chat/completions", `{"model":"gpt-4o-mini","top_k":3,"messages":[{"role":"user","content":"x"}]}`, 400, "unbounded_cost"},
		{"audio reference in a message", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"assistant","audio":{"id":"a"}}]}`, 400, "unbounded_cost"},
		{"escaped audio modality", "/v1/chat/completions", `{"model":"gpt-4o-mini","modalities":["text","aud\u0069o"],"messages":[{"role":"user","content":"x"}]}`, 400, "unbounded_cost"},
		{"priority tier", "/v1/chat/completions", `{"model":"gpt-4o-mini","service_tier":"priority","messages":[{"role":"user","content":"x"}]}`, 400, "unbounded_cost"},
	}
	h := newHarness(t, harnessOptions{noSync: true})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := h.post(tt.path, tt.body)
			body := readAll(t, resp)
			if code, _, _ := apiError(t, body); resp.StatusCode != tt.status || code != tt.code {
				t.Fatalf("got %d %s, want %d %s: %s", resp.StatusCode, code, tt.status, tt.code, body)
			}
		})
	}
	if n := len(h.up.Calls()); n != 0 {
		t.Fatalf("%d refused requests reached the upstream", n)
	}
}

// blockingLedger holds every Reserve until release is closed, so a test can
// act while a reservation is being taken.
type blockingLedger struct {
	budget.Ledger
	entered chan struct{}
	release chan struct{}
}

func (b *blockingLedger) Reserve(ctx context.Context, r budget.Request, q budget.Quote) (budget.Reservation, error) {
	res, err := b.Ledger.Reserve(ctx, r, q)
	b.entered <- struct{}{}
	<-b.release
	return res, err
}

// TestChat_KillWhileReserving kills a project after a request's reservation
// committed but before the request was forwarded: the request must be
// refused and released, and never reach the provider.
func TestChat_KillWhileReserving(t *testing.T) {
	bl := &blockingLedger{entered: make(chan struct{}, 1), release: make(chan struct{})}
	h := newHarness(t, harnessOptions{noSync: true, ledger: func(l budget.Ledger) budget.Ledger { bl.Ledger = l; return bl }})
	type result struct {
		status int
		body   string
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.DefaultClient.Do(mustRequest(t, h, helloBody))
		if err != nil {
			done <- result{}
			return
		}
		done <- result{resp.StatusCode, readAll(t, resp)}
	}()
	select {
	case <-bl.entered:
	case <-time.After(10 * time.Second):
		t.Fatal("the request never reserved")
	}
	if err := h.db.SetKill(context.Background(), storage.KillTarget{Project: "web"}, true); err != nil {
		t.Fatal(err)
	}
	if n := h.p.Cut(proxy.CutTarget{Project: "web"}); n != 1 {
		t.Fatalf("cut %d, want the request being reserved", n)
	}
	close(bl.release)
	r := <-done
	if code, _, _ := apiError(t, r.body); r.status != 403 || code != "kill_switch" {
		t.Fatalf("got %d %s, want 403 kill_switch", r.status, code)
	}
	if n := len(h.up.Calls()); n != 0 {
		t.Fatalf("a killed request reached the upstream")
	}
	rec := h.records(1)[0]
	if rec.Charged != 0 || rec.Outcome != budget.NotSent {
		t.Fatalf("got charged %s (%s), want 0, not sent", rec.Charged, rec.Outcome)
	}
}

func TestChat_GatewayErrorsAreCharged(t *testing.T) {
	for _, tc := range []struct {
		status  int
		charged bool
	}{{500, false}, {503, false}, {400, false}, {408, true}, {502, true}, {504, true}} {
		h := newHarness(t, harnessOptions{noSync: true})
		h.up.SetBehavior(fakeopenai.Behavior{Status: tc.status})
		resp := h.post("/v1/chat/completions", `{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":"x"}]}`)
		readAll(t, resp)
		if resp.StatusCode != tc.status {
			t.Fatalf("got status %d, want the upstream's %d passed on", resp.StatusCode, tc.status)
		}
		rec := h.records(1)[0]
		if got := rec.Charged == rec.Reserved && rec.Charged > 0; got != tc.charged {
			t.Errorf("status %d: charged %s of %s, want charged in full = %v", tc.status, rec.Charged, rec.Reserved, tc.charged)
		}
	}
}
