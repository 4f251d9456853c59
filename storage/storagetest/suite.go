package storagetest

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
)

// unlimited is no limit over the total period.
var unlimited = budget.NoLimit(budget.Total)

// ceiling is a limit of n nano-USD over the total period.
func ceiling(n budget.Money) budget.Limit { return budget.Ceiling(n, budget.Total) }

// A reservation holds its worst case in the global, project and token
// windows; its settlement moves it to the charge, exactly once: settling
// it again, or settling an id never taken, is ErrNotReserved and changes
// nothing.
func testSettle(t *testing.T, newLedger func(*testing.T, Setup) Subject) {
	s := newLedger(t, Setup{Global: ceiling(1_000_000), OnLow: budget.Reject})
	s.Project(t, "p", ceiling(100_000))
	tok := s.Token(t, "p", ceiling(50_000))
	scopes := []budget.Scope{budget.GlobalScope, budget.ProjectScope("p"), budget.TokenScope(tok.ID)}

	res, err := s.Reserve(tok, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if res.Amount != 1000 || res.OutputCap != 1000 {
		t.Fatalf("reserved %d with cap %d, want 1000 and 1000", res.Amount, res.OutputCap)
	}
	for _, sc := range scopes {
		wantSpend(t, s, sc, budget.Spend{Reserved: 1000})
	}
	rec, err := s.Ledger.Settle(ctx, res.ID, budget.Settlement{Charged: 600, Outcome: budget.Complete, Status: 200})
	if err != nil {
		t.Fatal(err)
	}
	if rec.ReservationID != res.ID || rec.Reserved != 1000 || rec.Charged != 600 || rec.TokenID != tok.ID {
		t.Fatalf("record %+v, want reservation %s, reserved 1000, charged 600, token %s", rec, res.ID, tok.ID)
	}
	for _, sc := range scopes {
		wantSpend(t, s, sc, budget.Spend{Committed: 600})
	}
	for _, id := range []string{res.ID, "r9999999999"} {
		if _, err := s.Ledger.Settle(ctx, id, budget.Settlement{Charged: 600}); !errors.Is(err, budget.ErrNotReserved) {
			t.Fatalf("settling %s again: got %v, want budget.ErrNotReserved", id, err)
		}
	}
	for _, sc := range scopes {
		wantSpend(t, s, sc, budget.Spend{Committed: 600})
	}
}

// A request whose worst case does not fit what the budget has left is
// refused with on_low reject (naming the budget, changing nothing) and
// clamped with on_low clamp: its output cap is lowered, and what it
// reserves is the clamped cap's cost and fits.
func testDoesNotFit(t *testing.T, newLedger func(*testing.T, Setup) Subject) {
	const limit, spent, ask = 10_000, 4000, 8000
	for _, tt := range []struct {
		name  string
		onLow budget.OnLow
	}{
		{"reject", budget.Reject},
		{"clamp", budget.Clamp},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newLedger(t, Setup{OnLow: tt.onLow})
			s.Project(t, "p", ceiling(limit))
			tok := s.Token(t, "p", unlimited)
			spendAll(t, s, tok, spent)
			res, err := s.Reserve(tok, ask)
			if tt.onLow == budget.Reject {
				wantExhausted(t, err, budget.ProjectScope("p"))
				wantSpend(t, s, budget.ProjectScope("p"), budget.Spend{Committed: spent})
				return
			}
			if err != nil {
				t.Fatalf("clamp: %v", err)
			}
			if res.OutputCap < 1 || res.OutputCap >= ask {
				t.Fatalf("clamped to a cap of %d, want one in [1, %d)", res.OutputCap, ask)
			}
			if want, _ := Flat(ask).Cost(res.OutputCap); res.Amount != want {
				t.Fatalf("reserved %d for a cap of %d, want its cost %d", res.Amount, res.OutputCap, want)
			}
			if res.Amount > limit-spent {
				t.Fatalf("clamped to %d, but only %d was left", res.Amount, limit-spent)
			}
			wantSpend(t, s, budget.ProjectScope("p"), budget.Spend{Committed: spent, Reserved: res.Amount})
			// "hardcap lowers the cap to what fits" (SPEC §1): all of it.
			s.gap(t, GapClampFills)
			if res.Amount != limit-spent {
				t.Fatalf("clamped to %d with %d left and no other request in flight, want all of it", res.Amount, limit-spent)
			}
		})
	}
}

// The global, project and token budgets each bind, whichever is the
// tightest: a request one above it is refused naming it, one of exactly
// it is reserved.
func testTightest(t *testing.T, newLedger func(*testing.T, Setup) Subject) {
	for _, tt := range []struct {
		name                  string
		global, project, tokn budget.Money
		tightest              string
	}{
		{"global", 3000, 5000, 7000, "global"},
		{"project", 7000, 3000, 5000, "project"},
		{"token", 5000, 7000, 3000, "token"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newLedger(t, Setup{Global: ceiling(tt.global), OnLow: budget.Reject})
			s.Project(t, "p", ceiling(tt.project))
			tok := s.Token(t, "p", ceiling(tt.tokn))
			scope := map[string]budget.Scope{
				"global":  budget.GlobalScope,
				"project": budget.ProjectScope("p"),
				"token":   budget.TokenScope(tok.ID),
			}[tt.tightest]
			_, err := s.Reserve(tok, 3001)
			wantExhausted(t, err, scope)
			res, err := s.Reserve(tok, 3000)
			if err != nil {
				t.Fatalf("a request of exactly the %s budget: %v", tt.tightest, err)
			}
			_, err = s.Reserve(tok, 1)
			wantExhausted(t, err, scope)
			if _, err := s.Ledger.Settle(ctx, res.ID, budget.Settlement{Charged: res.Amount}); err != nil {
				t.Fatal(err)
			}
			wantSpend(t, s, scope, budget.Spend{Committed: 3000})
		})
	}
}

// A ceiling of zero refuses every priced request (the smallest, 1
// nano-USD, included) naming its budget; budgets without a limit block
// nothing, however large.
func testZeroAndUnlimited(t *testing.T, newLedger func(*testing.T, Setup) Subject) {
	zero := budget.Ceiling(0, budget.Total)
	for _, tt := range []struct {
		name                  string
		global, project, tokn budget.Limit
		refused               string // "" when nothing refuses
	}{
		{"zero global", zero, unlimited, unlimited, "global"},
		{"zero project", unlimited, zero, unlimited, "project"},
		{"zero token", unlimited, unlimited, zero, "token"},
		{"zero token, others roomy", ceiling(1_000_000), ceiling(1_000_000), zero, "token"},
		{"all unlimited", unlimited, unlimited, unlimited, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			for _, onLow := range []budget.OnLow{budget.Reject, budget.Clamp} {
				s := newLedger(t, Setup{Global: tt.global, OnLow: onLow})
				s.Project(t, "p", tt.project)
				tok := s.Token(t, "p", tt.tokn)
				scope := map[string]budget.Scope{
					"global":  budget.GlobalScope,
					"project": budget.ProjectScope("p"),
					"token":   budget.TokenScope(tok.ID),
				}[tt.refused]
				if tt.refused != "" {
					for _, n := range []int64{1, 1000} {
						_, err := s.Reserve(tok, n)
						wantExhausted(t, err, scope)
					}
					wantSpend(t, s, scope, budget.Spend{})
					continue
				}
				// A million dollars, twice: no limit, no refusal.
				const big = 1_000_000_000_000_000
				for range 2 {
					spendAll(t, s, tok, big)
				}
				wantSpend(t, s, budget.ProjectScope("p"), budget.Spend{Committed: 2 * big})
			}
		})
	}
}

// A project's limit changed through the ledger binds from then on:
// lowered, it refuses what the old one allowed; raised, it allows what
// the old one refused.
func testLimitChange(t *testing.T, newLedger func(*testing.T, Setup) Subject) {
	const spent = 8000
	for _, tt := range []struct {
		name     string
		from, to budget.Money
	}{
		{"lowered", 20_000, 10_000},
		{"raised", 10_000, 20_000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newLedger(t, Setup{OnLow: budget.Reject})
			s.Project(t, "p", ceiling(tt.from))
			tok := s.Token(t, "p", unlimited)
			spendAll(t, s, tok, spent)
			to := ceiling(tt.to)
			if _, _, err := s.DB.UpdateProject(ctx, "p", storage.LimitChange{Amount: &to}); err != nil {
				t.Fatal(err)
			}
			left := int64(tt.to - spent)
			_, err := s.Reserve(tok, left+1)
			wantExhausted(t, err, budget.ProjectScope("p"))
			if tt.to > tt.from {
				s.gap(t, GapLimitChange)
			}
			if _, err := s.Reserve(tok, left); err != nil {
				t.Fatalf("a request of the %d left under the new limit: %v", left, err)
			}
		})
	}
	// Lowered on every replica, it binds what they spend together.
	t.Run("lowered, two replicas", func(t *testing.T) {
		a := newLedger(t, Setup{OnLow: budget.Reject})
		if a.Peer == nil {
			t.Skip("a single-node store has no replicas")
		}
		b := a.Peer(t)
		for _, s := range []Subject{a, b} {
			s.Project(t, "p", ceiling(20_000))
		}
		spendAll(t, a, a.Token(t, "p", unlimited), spent)
		to := ceiling(10_000)
		for _, s := range []Subject{a, b} {
			if _, _, err := s.DB.UpdateProject(ctx, "p", storage.LimitChange{Amount: &to}); err != nil {
				t.Fatal(err)
			}
		}
		a.gap(t, GapLimitChange)
		_, err := b.Reserve(b.Token(t, "p", unlimited), 10_000-spent+1)
		wantExhausted(t, err, budget.ProjectScope("p"))
	})
}

// A daily budget spent to its limit refuses until the next day, whose
// window starts with nothing committed and the whole limit to spend.
func testPeriod(t *testing.T, newLedger func(*testing.T, Setup) Subject) {
	const limit = 5000
	clock := newClock(time.Date(2026, 11, 3, 23, 0, 0, 0, time.UTC))
	s := newLedger(t, Setup{OnLow: budget.Reject, Now: clock.Now})
	s.Project(t, "p", budget.Ceiling(limit, budget.Day))
	tok := s.Token(t, "p", unlimited)
	spendAll(t, s, tok, limit)
	_, err := s.Reserve(tok, 1)
	wantExhausted(t, err, budget.ProjectScope("p"))
	clock.Set(time.Date(2026, 11, 4, 0, 0, 1, 0, time.UTC))
	wantSpend(t, s, budget.ProjectScope("p"), budget.Spend{})
	spendAll(t, s, tok, limit)
	_, err = s.Reserve(tok, 1)
	wantExhausted(t, err, budget.ProjectScope("p"))
	wantSpend(t, s, budget.ProjectScope("p"), budget.Spend{Committed: limit})
}

// clock is a settable time source.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock(t time.Time) *clock { return &clock{t: t} }

// Now is the clock's time.
func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

// Set sets the clock's time.
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// 32 goroutines reserve requests of 50 to 150 nano-USD from one budget
// and settle each at its reservation until each is refused: what they
// were granted together never passes the limit, the ledger agrees with
// them, and they fill it to within one request.
func testConcurrent(t *testing.T, newLedger func(*testing.T, Setup) Subject) {
	const limit, goroutines, most = 100_000, 32, 150
	s := newLedger(t, Setup{OnLow: budget.Reject})
	s.Project(t, "p", ceiling(limit))
	toks := []tokens.Token{s.Token(t, "p", unlimited), s.Token(t, "p", unlimited)}
	granted := hammer(t, []Subject{s}, toks, goroutines, most)
	if granted > limit {
		t.Fatalf("granted %d of a %d budget", granted, limit)
	}
	wantSpend(t, s, budget.ProjectScope("p"), budget.Spend{Committed: granted})
	if granted <= limit-most {
		t.Fatalf("granted only %d of %d: refused with more than a request's worth left", granted, limit)
	}
}

// hammer runs goroutines goroutines on each subject (subject i with
// token toks[i] and toks[i+len(subjects)], alternately), each reserving
// requests of most/3 to most nano-USD and settling each at its
// reservation until one is refused for want of budget. It returns the sum
// of what was reserved.
func hammer(t *testing.T, subjects []Subject, toks []tokens.Token, goroutines int, most int64) budget.Money {
	t.Helper()
	var wg sync.WaitGroup
	var granted atomic.Int64
	for si, s := range subjects {
		for g := range goroutines {
			tok := toks[si+len(subjects)*(g%2)]
			wg.Go(func() {
				for i := int64(0); ; i++ {
					n := most/3 + (int64(g)*37+i*11)%(most-most/3+1)
					res, err := s.Reserve(tok, n)
					if errors.Is(err, budget.ErrExhausted) {
						return
					}
					if err != nil {
						t.Errorf("reserve %d: %v", n, err)
						return
					}
					if res.Amount != budget.Money(n) {
						t.Errorf("reserved %d for a request of %d with on_low reject", res.Amount, n)
					}
					granted.Add(int64(res.Amount))
					if _, err := s.Ledger.Settle(ctx, res.ID, budget.Settlement{Charged: res.Amount, Outcome: budget.Complete}); err != nil {
						t.Errorf("settle: %v", err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	return budget.Money(granted.Load())
}

// A charge above its reservation is committed in full, counted as an
// overshoot (Status), and what is left of the budget shrinks by all of
// it: even past the limit.
func testOvershoot(t *testing.T, newLedger func(*testing.T, Setup) Subject) {
	const limit = 10_000
	for _, tt := range []struct {
		name    string
		charged budget.Money // for a reservation of 1000
	}{
		{"a little", 3000},
		{"to near the limit", 9000},
		{"past the limit", 12_000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newLedger(t, Setup{OnLow: budget.Reject})
			s.Project(t, "p", ceiling(limit))
			tok := s.Token(t, "p", unlimited)
			before, err := s.DB.Status()
			if err != nil {
				t.Fatal(err)
			}
			res, err := s.Reserve(tok, 1000)
			if err != nil {
				t.Fatal(err)
			}
			rec, err := s.Ledger.Settle(ctx, res.ID, budget.Settlement{Charged: tt.charged, Outcome: budget.Complete})
			if err != nil {
				t.Fatal(err)
			}
			if rec.Charged != tt.charged || rec.Reserved != 1000 {
				t.Fatalf("record charged %d of %d reserved, want %d of 1000", rec.Charged, rec.Reserved, tt.charged)
			}
			wantSpend(t, s, budget.ProjectScope("p"), budget.Spend{Committed: tt.charged})
			after, err := s.DB.Status()
			if err != nil {
				t.Fatal(err)
			}
			if n, usd := after.Overshoots-before.Overshoots, after.OvershootUSD-before.OvershootUSD; n != 1 || usd != tt.charged-1000 {
				t.Fatalf("overshoots: got %d of %d nano-USD, want 1 of %d", n, usd, tt.charged-1000)
			}
			left := max(limit-tt.charged, 0)
			_, err = s.Reserve(tok, int64(left)+1)
			wantExhausted(t, err, budget.ProjectScope("p"))
			if left == 0 {
				return
			}
			if _, err := s.Reserve(tok, int64(left)); err != nil {
				t.Fatalf("a request of the %d left after the overshoot: %v", left, err)
			}
		})
	}
}

// A crash (stop with reservations open, reopen the same file) charges
// each open reservation in full, as a Recovered record; what was
// committed before it stays committed, the recovered reservation cannot
// be settled again, and the budget has exactly the rest left.
func testCrash(t *testing.T, newLedger func(*testing.T, Setup) Subject) {
	const limit = 10_000
	s := newLedger(t, Setup{Global: ceiling(1_000_000), OnLow: budget.Reject})
	s.Project(t, "p", ceiling(limit))
	// The token's budget is larger, so that the project's is the one a
	// refusal names (with equal budgets, either is right).
	tok := s.Token(t, "p", ceiling(2*limit))
	settled, err := s.Reserve(tok, 1000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ledger.Settle(ctx, settled.ID, budget.Settlement{Charged: 700}); err != nil {
		t.Fatal(err)
	}
	open, err := s.Reserve(tok, 2000)
	if err != nil {
		t.Fatal(err)
	}
	s = s.Crash(t)
	scopes := []budget.Scope{budget.GlobalScope, budget.ProjectScope("p"), budget.TokenScope(tok.ID)}
	for _, sc := range scopes {
		wantSpend(t, s, sc, budget.Spend{Committed: 2700})
	}
	recs := s.DB.Recovered()
	if len(recs) != 1 || recs[0].ReservationID != open.ID || recs[0].Charged != 2000 || recs[0].Outcome != budget.Recovered {
		t.Fatalf("recovered %+v, want one record of %s charged 2000 as %s", recs, open.ID, budget.Recovered)
	}
	if _, err := s.Ledger.Settle(ctx, open.ID, budget.Settlement{Charged: 1}); !errors.Is(err, budget.ErrNotReserved) {
		t.Fatalf("settling a recovered reservation: got %v, want budget.ErrNotReserved", err)
	}
	_, err = s.Reserve(tok, limit-2700+1)
	wantExhausted(t, err, budget.ProjectScope("p"))
	spendAll(t, s, tok, limit-2700)
	for _, sc := range scopes {
		wantSpend(t, s, sc, budget.Spend{Committed: limit})
	}
}

// The kill switches (global, project, token) and a revocation refuse
// every later reservation, with tokens.ErrKilled and tokens.ErrRevoked;
// a reservation taken before still settles; a kill switch turned off
// serves again.
func testKillRevoke(t *testing.T, newLedger func(*testing.T, Setup) Subject) {
	for _, tt := range []struct {
		name   string
		refuse func(s Subject, tok tokens.Token) error
		resume func(s Subject, tok tokens.Token) error // nil: for good
		want   error
	}{
		{"kill all", func(s Subject, _ tokens.Token) error { return s.DB.SetKill(ctx, storage.KillTarget{}, true) },
			func(s Subject, _ tokens.Token) error { return s.DB.SetKill(ctx, storage.KillTarget{}, false) }, tokens.ErrKilled},
		{"kill project", func(s Subject, _ tokens.Token) error {
			return s.DB.SetKill(ctx, storage.KillTarget{Project: "p"}, true)
		},
			func(s Subject, _ tokens.Token) error {
				return s.DB.SetKill(ctx, storage.KillTarget{Project: "p"}, false)
			}, tokens.ErrKilled},
		{"kill token", func(s Subject, tok tokens.Token) error {
			return s.DB.SetKill(ctx, storage.KillTarget{Token: tok.ID}, true)
		},
			func(s Subject, tok tokens.Token) error {
				return s.DB.SetKill(ctx, storage.KillTarget{Token: tok.ID}, false)
			}, tokens.ErrKilled},
		{"revoke", func(s Subject, tok tokens.Token) error { _, err := s.DB.RevokeToken(ctx, tok.ID); return err },
			nil, tokens.ErrRevoked},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := newLedger(t, Setup{Global: ceiling(1_000_000), OnLow: budget.Reject})
			s.Project(t, "p", ceiling(100_000))
			tok := s.Token(t, "p", unlimited)
			before, err := s.Reserve(tok, 100)
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.refuse(s, tok); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Reserve(tok, 100); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if _, err := s.Ledger.Settle(ctx, before.ID, budget.Settlement{Charged: 80}); err != nil {
				t.Fatalf("settling a reservation taken before: %v", err)
			}
			wantSpend(t, s, budget.ProjectScope("p"), budget.Spend{Committed: 80})
			if tt.resume == nil {
				return
			}
			if err := tt.resume(s, tok); err != nil {
				t.Fatal(err)
			}
			spendAll(t, s, tok, 100)
		})
	}
}

// Two replicas share one project budget: what one spent, the other
// cannot spend again, and hammered at once from both they never pass it
// together.
func testPeers(t *testing.T, newLedger func(*testing.T, Setup) Subject) {
	a := newLedger(t, Setup{OnLow: budget.Reject})
	if a.Peer == nil {
		t.Skip("a single-node store has no replicas")
	}
	b := a.Peer(t)
	subjects := []Subject{a, b}
	const first = 20_000
	for _, s := range subjects {
		s.Project(t, "p", ceiling(first))
	}
	spendAll(t, a, a.Token(t, "p", unlimited), 15_000)
	_, err := b.Reserve(b.Token(t, "p", unlimited), 6000)
	wantExhausted(t, err, budget.ProjectScope("p"))

	const limit, goroutines, most = 60_000, 16, 150
	var toks []tokens.Token
	for _, s := range subjects {
		s.Project(t, "q", ceiling(limit))
	}
	for range 2 {
		for _, s := range subjects {
			toks = append(toks, s.Token(t, "q", unlimited))
		}
	}
	granted := hammer(t, subjects, toks, goroutines, most)
	var committed budget.Money
	for i, s := range subjects {
		sp := s.Spend(t, budget.ProjectScope("q"))
		if sp.Reserved != 0 {
			t.Errorf("replica %d holds %d reserved after every request settled", i, sp.Reserved)
		}
		committed += s.Recorded(t, "q")
	}
	t.Logf("granted %d of %d", granted, limit)
	if committed != granted {
		t.Fatalf("the replicas committed %d; the requests were granted %d", committed, granted)
	}
	if granted > limit {
		t.Fatalf("two replicas spent %d of a %d budget together", granted, limit)
	}
	if granted == 0 {
		t.Fatalf("nothing was granted of a %d budget", limit)
	}
}
