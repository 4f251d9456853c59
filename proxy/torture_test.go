package proxy_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/fakeanthropic"
	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/hardcap/hardcap/storage"
)

// envInt reads a test knob from the environment.
func envInt(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// tortureRoute is one kind of request the torture test sends, and how to
// price what the fake upstream billed for it.
type tortureRoute struct {
	name, path string
	body       func(user string, r *rand.Rand) string
	anthropic  bool
}

var tortureRoutes = []tortureRoute{
	{"chat", "/v1/chat/completions", func(u string, r *rand.Rand) string {
		return fmt.Sprintf(`{"model":"gpt-4o-mini","user":%q,"max_tokens":%d,"n":%d,"messages":[{"role":"user","content":"torture"}]}`, u, 20+r.IntN(200), 1+r.IntN(2))
	}, false},
	{"chat-stream", "/v1/chat/completions", func(u string, r *rand.Rand) string {
		return fmt.Sprintf(`{"model":"gpt-4o-mini","user":%q,"stream":true,"max_tokens":%d,"messages":[{"role":"user","content":"torture"}]}`, u, 20+r.IntN(200))
	}, false},
	{"completions", "/v1/completions", func(u string, r *rand.Rand) string {
		return fmt.Sprintf(`{"model":"gpt-3.5-turbo-instruct","user":%q,"prompt":["a","b"],"max_tokens":%d}`, u, 10+r.IntN(100))
	}, false},
	{"embeddings", "/v1/embeddings", func(u string, r *rand.Rand) string {
		return fmt.Sprintf(`{"model":"text-embedding-3-small","user":%q,"input":"%s"}`, u, strings.Repeat("x ", 10+r.IntN(500)))
	}, false},
	{"responses-stream", "/v1/responses", func(u string, r *rand.Rand) string {
		return fmt.Sprintf(`{"model":"gpt-4o-mini","user":%q,"stream":true,"max_output_tokens":%d,"input":"torture"}`, u, 16+r.IntN(200))
	}, false},
	{"messages-stream", "/v1/messages", func(u string, r *rand.Rand) string {
		return fmt.Sprintf(`{"model":"claude-haiku-4-5","metadata":{"user_id":%q},"stream":true,"max_tokens":%d,"messages":[{"role":"user","content":"torture"}]}`, u, 20+r.IntN(200))
	}, true},
}

// billedOpenAI prices a fakeopenai call by its route.
func billedOpenAI(c fakeopenai.Call) budget.Money {
	var v struct {
		Model string `json:"model"`
	}
	_ = json.Unmarshal(c.Body, &v)
	u := c.Usage
	switch v.Model {
	case "gpt-3.5-turbo-instruct":
		return instruct(u)
	case "text-embedding-3-small":
		return budget.Money(u.PromptTokens * 20)
	}
	return mini(u)
}

// userOf reads the marker the torture test puts in every request: its
// token's index and a request number.
func userOf(body []byte) string {
	var v struct {
		User     string `json:"user"`
		Metadata struct {
			UserID string `json:"user_id"`
		} `json:"metadata"`
	}
	_ = json.Unmarshal(body, &v)
	return v.User + v.Metadata.UserID
}

// TestTorture attacks the invariant from every side at once: many clients
// on every metered route, streaming and not, some disconnecting mid-stream,
// against several projects and tokens with random budgets and periods,
// and upstreams that bill every request at the very edge of its bound. It
// samples committed + reserved for every budget while running, then checks
// the books: no sample over a limit, no overshoot, the upstreams billed no
// budget past its limit, and hardcap recorded exactly what they billed.
//
// The default is small enough for CI. The long run:
//
//	HARDCAP_TORTURE_CLIENTS=1000 HARDCAP_TORTURE_REQUESTS=20000 go test ./proxy -run TestTorture -v -timeout 30m
func TestTorture(t *testing.T) {
	clients := envInt("HARDCAP_TORTURE_CLIENTS", 40)
	requests := envInt("HARDCAP_TORTURE_REQUESTS", 400)
	seed := uint64(envInt("HARDCAP_TORTURE_SEED", int(time.Now().UnixNano()%1_000_000)))
	rng := rand.New(rand.NewPCG(seed, 1))
	// Budgets grow with the run so that a long run still serves about half
	// its requests before the limits bite.
	scale := budget.Money(max(1, requests/400))
	global := budget.Limit{Amount: scale * budget.Money(20_000_000+rng.IntN(20_000_000)), Period: budget.Month}
	h := newHarness(t, harnessOptions{global: global})
	h.up.SetBehavior(fakeopenai.Behavior{BillAtCap: true})
	h.ant.SetBehavior(fakeanthropic.Behavior{BillAtCap: true, StartOutputTokens: 3})

	periods := []budget.Period{budget.Total, budget.Day, budget.Week, budget.Month}
	type tok struct {
		secret, id, project string
		limit               budget.Money
	}
	var toks []tok
	limits := map[budget.Scope]budget.Money{budget.GlobalScope: global.Amount}
	ctx := context.Background()
	for p := 0; p < 3; p++ {
		name := fmt.Sprintf("p%d", p)
		pl := budget.Limit{Amount: scale * budget.Money(5_000_000+rng.IntN(10_000_000)), Period: periods[rng.IntN(4)]}
		if _, err := h.db.CreateProject(ctx, name, pl); err != nil {
			t.Fatal(err)
		}
		limits[budget.ProjectScope(name)] = pl.Amount
		for k := 0; k < 3; k++ {
			tl := budget.Limit{Amount: scale * budget.Money(1_000_000+rng.IntN(5_000_000)), Period: periods[rng.IntN(4)]}
			rec, secret, err := h.db.CreateToken(ctx, storage.TokenSpec{Project: name, Limit: tl})
			if err != nil {
				t.Fatal(err)
			}
			toks = append(toks, tok{secret, rec.ID, name, tl.Amount})
			limits[budget.TokenScope(rec.ID)] = tl.Amount
		}
	}
	var stops []func() (int64, int64)
	for scope, l := range limits {
		stops = append(stops, h.sampleBudget(scope, l))
	}

	var next, served, refused, cut atomic.Int64
	var wg sync.WaitGroup
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func(c int) {
			defer wg.Done()
			r := rand.New(rand.NewPCG(seed, uint64(c)+2))
			for {
				n := next.Add(1)
				if n > int64(requests) {
					return
				}
				tk := r.IntN(len(toks))
				route := tortureRoutes[r.IntN(len(tortureRoutes))]
				req, _ := http.NewRequest("POST", h.srv.URL+route.path, strings.NewReader(route.body(fmt.Sprintf("t%d-r%d", tk, n), r)))
				if route.anthropic {
					req.Header.Set("X-Api-Key", toks[tk].secret)
					req.Header.Set("Anthropic-Version", "2023-06-01")
				} else {
					req.Header.Set("Authorization", "Bearer "+toks[tk].secret)
				}
				disconnect := strings.Contains(route.name, "stream") && r.IntN(4) == 0
				rctx, cancel := context.WithCancel(ctx)
				resp, err := http.DefaultClient.Do(req.WithContext(rctx))
				if err != nil {
					cancel()
					continue
				}
				switch {
				case resp.StatusCode == 402:
					refused.Add(1)
				case resp.StatusCode != 200:
					t.Errorf("%s: status %d", route.name, resp.StatusCode)
				case disconnect:
					buf := make([]byte, 16)
					_, _ = resp.Body.Read(buf)
					cut.Add(1)
				default:
					served.Add(1)
				}
				cancel()
				if !disconnect {
					readAllErr(resp)
				}
				resp.Body.Close()
			}
		}(c)
	}
	wg.Wait()
	// Disconnected streams settle after their drain.
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := h.p.Wait(wctx); err != nil {
		t.Fatal(err)
	}
	var samples, violations int64
	for _, stop := range stops {
		s, v := stop()
		samples, violations = samples+s, violations+v
	}

	// What the upstreams billed, by token.
	billed := map[int]budget.Money{}
	var billedTotal budget.Money
	add := func(user string, m budget.Money) {
		var tk int
		if _, err := fmt.Sscanf(user, "t%d-", &tk); err != nil {
			t.Fatalf("a call without its marker: %q", user)
		}
		billed[tk] += m
		billedTotal += m
	}
	for _, c := range h.up.Calls() {
		add(userOf(c.Body), billedOpenAI(c))
	}
	for _, c := range h.ant.Calls() {
		add(userOf(c.Body), haiku(c.Usage))
	}
	flushLedger(t, h.db) // the settlement commits after the response ends
	st, _ := h.db.Status()
	var overLimit int
	projectBilled := map[string]budget.Money{}
	for i, tk := range toks {
		u, _ := h.db.Usage(storage.RecordFilter{TokenID: tk.id})
		if u.Spent != billed[i] {
			t.Errorf("token %s: recorded %s, upstreams billed %s", tk.id, u.Spent, billed[i])
		}
		if billed[i] > tk.limit {
			overLimit++
		}
		projectBilled[tk.project] += billed[i]
	}
	for p, b := range projectBilled {
		if b > limits[budget.ProjectScope(p)] {
			overLimit++
		}
	}
	if billedTotal > global.Amount {
		overLimit++
	}
	t.Logf("torture seed %d: %d clients, %d requests: %d served, %d refused (402), %d disconnected mid-stream", seed, clients, requests, served.Load(), refused.Load(), cut.Load())
	t.Logf("upstreams billed %s USD in %d calls; hardcap recorded the same per token: %v", billedTotal, len(h.up.Calls())+len(h.ant.Calls()), !t.Failed())
	t.Logf("samples of committed+reserved: %d over %d budgets, over a limit: %d; overshoots: %d (%s USD); budgets billed past their limit: %d",
		samples, len(limits), violations, st.Overshoots, st.OvershootUSD, overLimit)
	if violations != 0 || st.Overshoots != 0 || overLimit != 0 || st.OpenReservations != 0 {
		t.Fatalf("the invariant broke: %d samples over, %d overshoots, %d budgets over, %d reservations open", violations, st.Overshoots, overLimit, st.OpenReservations)
	}
	if served.Load() == 0 || refused.Load() == 0 {
		t.Fatalf("the run did not reach the limits (served %d, refused %d); raise the request count", served.Load(), refused.Load())
	}
}
