package proxy_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/fakeopenai"
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

// TestTorture_BudgetLoweredMidLoad lowers a project's budget three times
// (to zero at the end) while clients call through the proxy and the
// upstream bills every request at its cap. A settlement never charges more
// than its reservation, so while limits only fall, max(committed+reserved,
// limit) must never rise: every reservation fits the limit in force when it
// was taken, and money already reserved is never taken away. After the
// budget is zero, nothing is served.
func TestTorture_BudgetLoweredMidLoad(t *testing.T) {
	const start = budget.Money(3_000_000)
	h := newHarness(t, harnessOptions{noSync: true, project: budget.Ceiling(start, budget.Month)})
	h.up.SetBehavior(fakeopenai.Behavior{BillAtCap: true})
	scope := budget.ProjectScope("web")

	stop := make(chan struct{})
	var bad atomic.Value
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		prev := start
		for {
			select {
			case <-stop:
				return
			default:
			}
			bs, err := h.db.BudgetStatus(scope)
			if err != nil {
				bad.Store(err.Error())
				return
			}
			c, _ := bs.Limit.Ceiling()
			if f := max(bs.Committed+bs.Reserved, c); f > prev {
				bad.Store(fmt.Sprintf("max(committed+reserved, limit) rose from %s to %s", prev, f))
				return
			} else {
				prev = f
			}
		}
	}()

	// The budget is lowered after 20, 40 and 60 answers: to 0.0025 USD, to
	// exactly what is committed (below committed+reserved while requests
	// are in flight), and to zero.
	lower := func(step int) {
		var l budget.Money
		switch step {
		case 0:
			l = 2_500_000
		case 1:
			bs, err := h.db.BudgetStatus(scope)
			if err != nil {
				t.Error(err)
				return
			}
			l = bs.Committed
		}
		amount := budget.Ceiling(l, "")
		if _, _, err := h.db.UpdateProject(context.Background(), "web", storage.LimitChange{Amount: &amount}); err != nil {
			t.Error(err)
		}
	}
	var answered, served, afterZero atomic.Int64
	var zeroed atomic.Bool
	var lowerMu sync.Mutex
	step := 0
	var wg sync.WaitGroup
	for c := 0; c < 8; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(uint64(c), 7))
			for i := 0; i < 30; i++ {
				wasZero := zeroed.Load()
				body := fmt.Sprintf(`{"model":"gpt-4o-mini","max_completion_tokens":%d,"messages":[{"role":"user","content":"Hello"}]}`, 20+r.IntN(200))
				req, _ := http.NewRequest("POST", h.srv.URL+"/v1/chat/completions", strings.NewReader(body))
				req.Header.Set("Authorization", "Bearer "+h.token)
				resp, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				readAll(t, resp)
				switch resp.StatusCode {
				case 200:
					served.Add(1)
					if wasZero {
						afterZero.Add(1)
					}
				case 402:
				default:
					t.Errorf("status %d", resp.StatusCode)
				}
				n := answered.Add(1)
				lowerMu.Lock()
				if step < 3 && n >= int64(20*(step+1)) {
					lower(step)
					if step == 2 {
						zeroed.Store(true)
					}
					step++
				}
				lowerMu.Unlock()
			}
		}(c)
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	if msg := bad.Load(); msg != nil {
		t.Fatal(msg)
	}
	if !zeroed.Load() || served.Load() == 0 {
		t.Fatalf("served %d; the budget was lowered to zero: %v", served.Load(), zeroed.Load())
	}
	if n := afterZero.Load(); n != 0 {
		t.Fatalf("%d requests were served after the budget became zero", n)
	}
	flushLedger(t, h.db) // the settlement commits after the response ends
	if bs, _ := h.db.BudgetStatus(scope); bs.Committed > start || bs.Reserved != 0 {
		t.Fatalf("end: committed %s, reserved %s", bs.Committed, bs.Reserved)
	}
}
