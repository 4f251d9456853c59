package main

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/fakeopenai"
)

// TestCrash_Rounds runs K rounds of: start the server, drive mixed load,
// SIGKILL it at a random moment (while requests complete, stream, stall or
// commit), restart on the same data directory. After every restart the
// database opens, no reservation dangles, no reservation is charged twice,
// and what hardcap charged covers what the upstream could bill.
//
// The default is small for CI. The long run:
//
//	HARDCAP_CRASH_ROUNDS=100 go test ./cmd/hardcap -run TestCrash_Rounds -v -timeout 30m
func TestCrash_Rounds(t *testing.T) {
	if testing.Short() {
		t.Skip("starts subprocesses")
	}
	rounds := 2
	if v, err := strconv.Atoi(os.Getenv("HARDCAP_CRASH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 7))
	up := fakeopenai.New(t, fakeopenai.Options{APIKey: fakeKey})
	dataDir := t.TempDir()
	cfgPath := writeConfig(t, t.TempDir(), up.URL(), "")
	var token string
	violations := 0
	for round := 1; round <= rounds; round++ {
		c := startChild(t, cfgPath, dataDir)
		if token == "" {
			var tok struct{ Token string }
			c.post(t, "/admin/v1/projects", `{"name":"web","budget_usd":"1000"}`, &struct{}{})
			c.post(t, "/admin/v1/tokens", `{"project":"web"}`, &tok)
			token = tok.Token
		}
		up.SetBehavior(fakeopenai.Behavior{BillAtCap: true})
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for w := 0; w < 16; w++ {
			wg.Add(1)
			go func(w int) {
				defer wg.Done()
				for i := 0; ctx.Err() == nil; i++ {
					stream := (w+i)%2 == 0
					body := fmt.Sprintf(`{"model":"gpt-4o-mini","stream":%v,"max_tokens":%d,"messages":[{"role":"user","content":"round"}]}`, stream, 10+(w*7+i)%90)
					req, _ := http.NewRequestWithContext(ctx, "POST", c.url+"/v1/chat/completions", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+token)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						if ctx.Err() == nil {
							time.Sleep(time.Millisecond) // the server is gone; wait for the end of the round
						}
						continue
					}
					_, _ = io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
			}(w)
		}
		time.Sleep(time.Duration(20+rng.IntN(150)) * time.Millisecond)
		if rng.IntN(2) == 0 {
			// Leave streams hanging in flight for the kill.
			up.SetBehavior(fakeopenai.Behavior{BillAtCap: true, StallAfterEvents: 2})
			time.Sleep(time.Duration(5+rng.IntN(50)) * time.Millisecond)
		}
		_ = c.cmd.Process.Signal(syscall.SIGKILL)
		_ = c.cmd.Wait()
		stop()
		wg.Wait()
		up.SetBehavior(fakeopenai.Behavior{})

		c2 := startChild(t, cfgPath, dataDir)
		var st struct {
			Open int `json:"open_reservations"`
		}
		c2.admin(t, "/admin/v1/status", &st)
		var usage struct {
			Spent   budget.Money `json:"spent_usd"`
			Records []struct {
				ID      string         `json:"id"`
				Outcome budget.Outcome `json:"outcome"`
			} `json:"records"`
		}
		c2.admin(t, "/admin/v1/usage", &usage)
		var billed budget.Money
		calls := up.Calls()
		for _, call := range calls {
			billed += budget.Money(call.Usage.PromptTokens*150 + call.Usage.CompletionTokens*600)
		}
		seen := map[string]bool{}
		twice := 0
		for _, r := range usage.Records {
			if seen[r.ID] {
				twice++
			}
			seen[r.ID] = true
		}
		problems := []string{}
		if st.Open != 0 {
			problems = append(problems, fmt.Sprintf("%d reservations dangle", st.Open))
		}
		if twice != 0 {
			problems = append(problems, fmt.Sprintf("%d reservations charged twice", twice))
		}
		if usage.Spent < billed {
			problems = append(problems, fmt.Sprintf("charged %s < billable %s", usage.Spent, billed))
		}
		if len(usage.Records) < len(calls) {
			problems = append(problems, fmt.Sprintf("%d records for %d upstream calls", len(usage.Records), len(calls)))
		}
		if len(problems) > 0 {
			violations++
			t.Errorf("round %d: %s", round, strings.Join(problems, "; "))
		}
		_ = c2.cmd.Process.Signal(syscall.SIGKILL)
		_ = c2.cmd.Wait()
		if round == rounds || round%10 == 0 {
			t.Logf("crash rounds: %d of %d run, seed %d; %d records, %d upstream calls, charged %s USD, billable %s USD; violations %d",
				round, rounds, seed, len(usage.Records), len(calls), usage.Spent, billed, violations)
		}
	}
}
