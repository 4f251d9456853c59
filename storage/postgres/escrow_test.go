package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/pgtest"
	"github.com/hardcap/hardcap/storage/postgres"
)

var ctx = context.Background()

func open(t *testing.T, dsn, replica string) *postgres.Store {
	t.Helper()
	s, err := postgres.Open(ctx, postgres.Options{DSN: dsn, Replica: replica, Timeout: 20 * time.Second})
	if err != nil {
		t.Fatalf("open %s: %v", replica, err)
	}
	t.Cleanup(s.Close)
	return s
}

const project = budget.Scope("project:web")

func key(scope budget.Scope) string { return string(scope) + "|total" }

// TestEscrow runs the escrow's cases on one PostgreSQL server, each in a
// database of its own.
func TestEscrow(t *testing.T) {
	pg := pgtest.Start(t)
	for _, tt := range []struct {
		name string
		run  func(t *testing.T, dsn string)
	}{
		{"GrantsNeverPassTheLimit", testGrantsNeverPassTheLimit},
		{"FoldIsIdempotent", testFoldIsIdempotent},
		{"GiveBack", testGiveBack},
		{"Overshoot", testOvershoot},
		{"LowerLimit", testLowerLimit},
		{"Unlimited", testUnlimited},
		{"NoLimitRow", testNoLimitRow},
		{"Forget", testForget},
		{"ConcurrentMigrations", testConcurrentMigrations},
		{"BadInput", testBadInput},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, pg.NewDatabase(t)) })
	}
}

// Three replicas asking for slices at once, 40 goroutines each, with
// random sizes and minimums: the slices granted add up to the window's
// held, never pass the limit, and fill it (the demand is far above it).
func testGrantsNeverPassTheLimit(t *testing.T, dsn string) {
	stores := []*postgres.Store{open(t, dsn, "a"), open(t, dsn, "b"), open(t, dsn, "c")}
	const limit = budget.Money(1_000_000)
	if err := stores[0].SetLimit(ctx, project, budget.Ceiling(limit, budget.Total)); err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	got := map[string]budget.Money{}
	var wg sync.WaitGroup
	for _, s := range stores {
		for g := range 40 {
			wg.Go(func() {
				r := rand.New(rand.NewPCG(uint64(g), 7))
				for range 25 {
					want := budget.Money(1 + r.IntN(20_000))
					min := 1 + budget.Money(r.IntN(int(want)))
					amount, _, err := s.Grant(ctx, project, key(project), want, min)
					if errors.Is(err, postgres.ErrNoRoom) {
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					if amount < min || amount > want {
						t.Errorf("granted %d for want %d min %d", amount, want, min)
					}
					mu.Lock()
					got[s.Replica()] += amount
					mu.Unlock()
				}
			})
		}
	}
	wg.Wait()
	var sum budget.Money
	for _, s := range stores {
		sl, err := s.Slice(ctx, key(project))
		if err != nil {
			t.Fatal(err)
		}
		if sl.Granted != got[s.Replica()] {
			t.Errorf("replica %s: slice %d, grants returned %d", s.Replica(), sl.Granted, got[s.Replica()])
		}
		sum += sl.Granted
	}
	w, ok, err := stores[0].Window(ctx, key(project))
	if err != nil || !ok {
		t.Fatalf("window: %v %v", ok, err)
	}
	if w.Held != sum || sum > limit {
		t.Fatalf("held %d, slices %d, limit %d", w.Held, sum, limit)
	}
	// The last grants take what is left, down to min 1: the limit is met.
	if _, _, err := stores[1].Grant(ctx, project, key(project), limit, 1); err == nil {
		t.Fatal("a grant after the window is full")
	} else if !errors.Is(err, postgres.ErrNoRoom) {
		t.Fatal(err)
	}
	if sum != limit {
		t.Errorf("held %d after a demand far above the limit %d: want it filled", sum, limit)
	}
}

func mustGrant(t *testing.T, s *postgres.Store, want budget.Money) postgres.Slice {
	t.Helper()
	_, sl, err := s.Grant(ctx, project, key(project), want, want)
	if err != nil {
		t.Fatal(err)
	}
	return sl
}

func checkWindow(t *testing.T, s *postgres.Store, held, committed budget.Money) {
	t.Helper()
	w, _, err := s.Window(ctx, key(project))
	if err != nil {
		t.Fatal(err)
	}
	if w.Held != held || w.Committed != committed {
		t.Fatalf("window held %d committed %d, want %d and %d", w.Held, w.Committed, held, committed)
	}
}

// A fold carries the replica's total, so repeating it (a retry, a replay
// after a crash) counts it once, and a smaller figure (an old one) never
// lowers what is committed.
func testFoldIsIdempotent(t *testing.T, dsn string) {
	a := open(t, dsn, "a")
	if err := a.SetLimit(ctx, project, budget.Ceiling(1000, budget.Total)); err != nil {
		t.Fatal(err)
	}
	mustGrant(t, a, 600)
	for _, spent := range []budget.Money{250, 250, 100, 250} {
		sl, err := a.Fold(ctx, key(project), spent, postgres.KeepAll)
		if err != nil {
			t.Fatal(err)
		}
		if sl.Committed != 250 || sl.Granted != 600 {
			t.Fatalf("after folds of %d: %+v, want committed 250 granted 600", spent, sl)
		}
	}
	checkWindow(t, a, 600, 250)
}

// Giving back shrinks the slice and the window's held, never below what
// is committed; what is given back can be granted to another replica.
func testGiveBack(t *testing.T, dsn string) {
	a, b := open(t, dsn, "a"), open(t, dsn, "b")
	if err := a.SetLimit(ctx, project, budget.Ceiling(1000, budget.Total)); err != nil {
		t.Fatal(err)
	}
	mustGrant(t, a, 1000)
	if _, _, err := b.Grant(ctx, project, key(project), 1, 1); !errors.Is(err, postgres.ErrNoRoom) {
		t.Fatalf("grant in a full window: %v", err)
	}
	sl, err := a.Fold(ctx, key(project), 300, 500)
	if err != nil {
		t.Fatal(err)
	}
	if sl.Granted != 500 || sl.Committed != 300 {
		t.Fatalf("after folding 300 and keeping 500: %+v", sl)
	}
	checkWindow(t, a, 500, 300)
	if _, sl, err := b.Grant(ctx, project, key(project), 800, 1); err != nil || sl.Granted != 500 {
		t.Fatalf("b's grant after the give-back: %+v %v, want 500", sl, err)
	}
	// A slice lowered below its spend stops at the spend.
	sl, err = a.Fold(ctx, key(project), 300, 0)
	if err != nil || sl.Granted != 300 {
		t.Fatalf("keeping nothing: %+v %v, want granted 300", sl, err)
	}
	checkWindow(t, a, 800, 300)
}

// Spend above the slice (an overshoot) raises the slice and the window's
// held with it: the books show it, and the next grant has that much less.
func testOvershoot(t *testing.T, dsn string) {
	a := open(t, dsn, "a")
	if err := a.SetLimit(ctx, project, budget.Ceiling(1000, budget.Total)); err != nil {
		t.Fatal(err)
	}
	mustGrant(t, a, 100)
	sl, err := a.Fold(ctx, key(project), 150, postgres.KeepAll)
	if err != nil || sl.Granted != 150 || sl.Committed != 150 {
		t.Fatalf("overshoot fold: %+v %v", sl, err)
	}
	checkWindow(t, a, 150, 150)
	if amount, _, err := a.Grant(ctx, project, key(project), 1000, 1); err != nil || amount != 850 {
		t.Fatalf("grant after the overshoot: %d %v, want 850", amount, err)
	}
}

// A limit lowered below what is held refuses every grant; raising it
// again grants the difference.
func testLowerLimit(t *testing.T, dsn string) {
	a := open(t, dsn, "a")
	if err := a.SetLimit(ctx, project, budget.Ceiling(1000, budget.Total)); err != nil {
		t.Fatal(err)
	}
	mustGrant(t, a, 700)
	if err := a.SetLimit(ctx, project, budget.Ceiling(500, budget.Total)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := a.Grant(ctx, project, key(project), 1, 1); !errors.Is(err, postgres.ErrNoRoom) {
		t.Fatalf("grant above a lowered limit: %v", err)
	}
	if err := a.SetLimit(ctx, project, budget.Ceiling(750, budget.Total)); err != nil {
		t.Fatal(err)
	}
	if amount, _, err := a.Grant(ctx, project, key(project), 100, 1); err != nil || amount != 50 {
		t.Fatalf("grant after raising the limit: %d %v, want 50", amount, err)
	}
}

func testUnlimited(t *testing.T, dsn string) {
	a := open(t, dsn, "a")
	if err := a.SetLimit(ctx, project, budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if amount, _, err := a.Grant(ctx, project, key(project), budget.MaxMoney/4, budget.MaxMoney/4); err != nil || amount != budget.MaxMoney/4 {
			t.Fatalf("unlimited grant: %d %v", amount, err)
		}
	}
	w, _, err := a.Window(ctx, key(project))
	if err != nil || !w.Unlimited {
		t.Fatalf("window %+v %v, want unlimited", w, err)
	}
}

func testNoLimitRow(t *testing.T, dsn string) {
	a := open(t, dsn, "a")
	if _, _, err := a.Grant(ctx, "project:nobody", key("project:nobody"), 10, 1); !errors.Is(err, postgres.ErrNoLimit) {
		t.Fatalf("grant without a limit row: %v, want ErrNoLimit", err)
	}
}

// Forget charges a replica's unspent slice in full: the window's committed
// takes it, nothing is freed, and the id cannot come back.
func testForget(t *testing.T, dsn string) {
	a, b := open(t, dsn, "a"), open(t, dsn, "b")
	if err := a.SetLimit(ctx, project, budget.Ceiling(1000, budget.Total)); err != nil {
		t.Fatal(err)
	}
	mustGrant(t, a, 400)
	if _, err := a.Fold(ctx, key(project), 100, postgres.KeepAll); err != nil {
		t.Fatal(err)
	}
	charged, err := b.Forget(ctx, "a")
	if err != nil || charged != 300 {
		t.Fatalf("forget: %d %v, want 300 charged", charged, err)
	}
	checkWindow(t, b, 400, 400)
	if again, err := b.Forget(ctx, "a"); err != nil || again != 0 {
		t.Fatalf("a second forget: %d %v, want 0", again, err)
	}
	a.Close()
	if _, err := postgres.Open(ctx, postgres.Options{DSN: dsn, Replica: "a"}); !errors.Is(err, postgres.ErrForgotten) {
		t.Fatalf("reopening a forgotten replica: %v, want ErrForgotten", err)
	}
	if _, err := b.Forget(ctx, "zz"); err == nil {
		t.Fatal("forgetting an unknown replica succeeded")
	}
}

// Replicas starting together apply the migrations once.
func testConcurrentMigrations(t *testing.T, dsn string) {
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for i := range 8 {
		wg.Go(func() {
			s, err := postgres.Open(ctx, postgres.Options{DSN: dsn, Replica: fmt.Sprintf("r%d", i), Timeout: 20 * time.Second})
			if err != nil {
				errs <- err
				return
			}
			s.Close()
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func testBadInput(t *testing.T, dsn string) {
	a := open(t, dsn, "a")
	for _, id := range []string{"", strings.Repeat("x", 65), "a b", "ä"} {
		if _, err := postgres.Open(ctx, postgres.Options{DSN: dsn, Replica: id}); !errors.Is(err, postgres.ErrNoReplica) {
			t.Errorf("replica %q: %v, want ErrNoReplica", id, err)
		}
	}
	if _, _, err := a.Grant(ctx, project, key(project), 5, 0); !errors.Is(err, postgres.ErrBadAmount) {
		t.Errorf("min 0: %v", err)
	}
	if _, _, err := a.Grant(ctx, project, key(project), 5, 6); !errors.Is(err, postgres.ErrBadAmount) {
		t.Errorf("min above want: %v", err)
	}
	if _, err := a.Fold(ctx, key(project), -1, postgres.KeepAll); !errors.Is(err, postgres.ErrBadAmount) {
		t.Errorf("negative fold: %v", err)
	}
	// A password in the DSN never reaches an error.
	const pw = "s3cret-pass-word"
	bad := strings.Replace(dsn, "hardcap@", "hardcap:"+pw+"@", 1)
	bad = strings.Replace(bad, "127.0.0.1:", "127.0.0.1:1", 1) // a port nobody listens on
	if _, err := postgres.Open(ctx, postgres.Options{DSN: bad, Replica: "x", Timeout: 2 * time.Second}); err == nil || strings.Contains(err.Error(), pw) {
		t.Errorf("open with a bad DSN: %v", err)
	}
}
