package proxy_test

import (
	"context"
	"strings"
	"testing"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
)

// TestBudget_ZeroRefusesAndNamesTheCommand: a zero budget is zero (not
// unlimited), a budget lowered while serving refuses the next request, and
// the 402 names the budget and the command that raises it.
func TestBudget_ZeroRefusesAndNamesTheCommand(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true, project: budget.Ceiling(0, budget.Month)})
	const body = `{"model":"gpt-4o-mini","max_completion_tokens":20,"messages":[{"role":"user","content":"Hello"}]}`
	resp := h.post("/v1/chat/completions", body)
	text := readAll(t, resp)
	code, _, msg := apiError(t, text)
	want := "project web's budget is spent; raise it with `hardcap project set web --budget USD`"
	if resp.StatusCode != 402 || code != "budget_exhausted" || !strings.Contains(msg, want) {
		t.Fatalf("under a zero budget got %d %s, want 402 budget_exhausted saying %q", resp.StatusCode, text, want)
	}

	ctx := context.Background()
	five := budget.Ceiling(5*budget.NanoPerUSD, "")
	if _, _, err := h.db.UpdateProject(ctx, "web", storage.LimitChange{Amount: &five}); err != nil {
		t.Fatal(err)
	}
	if resp := h.post("/v1/chat/completions", body); resp.StatusCode != 200 {
		t.Fatalf("after raising the budget got %d %s", resp.StatusCode, readAll(t, resp))
	} else {
		readAll(t, resp)
	}
	h.records(1)

	// The token's own budget, lowered below what it spent, names the token.
	zero := budget.Ceiling(0, "")
	if _, err := h.db.UpdateToken(ctx, h.tokenID, storage.TokenChange{Limit: storage.LimitChange{Amount: &zero}}); err != nil {
		t.Fatal(err)
	}
	resp = h.post("/v1/chat/completions", body)
	text = readAll(t, resp)
	_, _, msg = apiError(t, text)
	want = "token " + h.tokenID + "'s budget is spent; raise it with `hardcap token set " + h.tokenID + " --budget USD`"
	if resp.StatusCode != 402 || !strings.Contains(msg, want) {
		t.Fatalf("under a lowered token budget got %d %s, want 402 saying %q", resp.StatusCode, text, want)
	}
}

// TestErrors_DoNotEchoHugeInput: a refusal that names part of the request
// (an unknown parameter, an unpriced model) clips it.
func TestErrors_DoNotEchoHugeInput(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	huge := strings.Repeat("z", 100_000)
	for name, body := range map[string]string{
		"parameter": `{"model":"gpt-4o-mini","max_completion_tokens":5,"` + huge + `":1,"messages":[{"role":"user","content":"x"}]}`,
		"model":     `{"model":"` + huge + `","max_completion_tokens":5,"messages":[{"role":"user","content":"x"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			resp := h.post("/v1/chat/completions", body)
			text := readAll(t, resp)
			if resp.StatusCode < 400 || resp.StatusCode >= 500 || len(text) > 2000 {
				t.Fatalf("got %d and a %d-byte answer, want a short 4xx", resp.StatusCode, len(text))
			}
		})
	}
}
