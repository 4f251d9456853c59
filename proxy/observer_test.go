package proxy_test

import (
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
)

// observed records what a proxy.Observer is told.
type observed struct {
	mu        sync.Mutex
	settled   []budget.Record
	refused   []string
	responded []string
}

func (o *observed) Settled(rec budget.Record) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.settled = append(o.settled, rec)
}

func (o *observed) Refused(code string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.refused = append(o.refused, code)
}

func (o *observed) Responded(provider string, firstByte time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if firstByte < 0 {
		panic("a negative time to first byte")
	}
	o.responded = append(o.responded, provider)
}

func (o *observed) counts() (settled []budget.Record, refused []string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return append([]budget.Record(nil), o.settled...), append([]string(nil), o.refused...)
}

// TestObserver_SettledAndRefused: the Observer hears of each settled
// request once, with its record, and of each refusal once, with the code
// the client was sent.
func TestObserver_SettledAndRefused(t *testing.T) {
	obs := &observed{}
	h := newHarness(t, harnessOptions{observer: obs})
	resp := h.post("/v1/chat/completions", `{"model":"gpt-4o-mini","max_completion_tokens":100,"messages":[{"role":"user","content":"hi"}]}`)
	if body := readAll(t, resp); resp.StatusCode != http.StatusOK {
		t.Fatalf("got %d, want 200: %s", resp.StatusCode, body)
	}
	h.records(1)

	req, _ := http.NewRequest(http.MethodPost, h.srv.URL+"/v1/chat/completions", strings.NewReader(`{}`))
	req.Header.Set("Authorization", "Bearer hc_not-a-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	code, _, _ := apiError(t, readAll(t, resp))

	settled, refused := obs.counts()
	if len(settled) != 1 {
		t.Fatalf("got %d settled records, want 1", len(settled))
	}
	if r := settled[0]; r.Provider != "openai" || r.Model != "gpt-4o-mini" || r.Route == "" || r.Outcome != budget.Complete || r.Charged <= 0 {
		t.Errorf("got settled record %+v, want openai gpt-4o-mini complete with a route and a charge", r)
	}
	if len(refused) != 1 || refused[0] != code || code == "" {
		t.Errorf("got refusals %q, want one %q", refused, code)
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.responded) != 1 || obs.responded[0] != "openai" {
		t.Errorf("got answers of %q, want one of openai (the refused request never went upstream)", obs.responded)
	}
}
