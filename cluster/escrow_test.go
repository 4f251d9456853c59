package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/cluster"
	"github.com/hardcap/hardcap/internal/pgtest"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
	"github.com/rs/zerolog"
)

var ctx = context.Background()

// replica is one replica's ledger and escrow in a test.
type replica struct {
	id   string
	path string
	db   *storage.DB
	node *cluster.Node
	tok  tokens.Token
}

// fastEscrow makes leases and upkeep quick enough for tests.
var fastEscrow = cluster.EscrowOptions{Lease: 2 * time.Second, Margin: 500 * time.Millisecond, Renew: 300 * time.Millisecond, Tick: 50 * time.Millisecond, FoldEvery: 200 * time.Millisecond, Idle: time.Second}

// startReplica opens (or reopens) a replica's ledger at path in escrow
// mode with project p (limit projLimit) and a token, and joins the cluster.
func startReplica(t *testing.T, dsn, id, path string, projLimit budget.Limit) *replica {
	t.Helper()
	return startReplicaOnLow(t, dsn, id, path, projLimit, budget.Reject)
}

func startReplicaOnLow(t *testing.T, dsn, id, path string, projLimit budget.Limit, onLow budget.OnLow) *replica {
	t.Helper()
	db, err := storage.Open(path, storage.Options{Escrow: true, OnLow: onLow, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	r := &replica{id: id, path: path, db: db}
	if _, err := db.CreateProject(ctx, "p", projLimit); err != nil && !errors.Is(err, tokens.ErrProjectExists) {
		t.Fatal(err)
	}
	toks, err := db.Tokens("p")
	if err != nil {
		t.Fatal(err)
	}
	if len(toks) > 0 {
		r.tok = toks[0]
	} else if r.tok, _, err = db.CreateToken(ctx, storage.TokenSpec{Project: "p"}); err != nil {
		t.Fatal(err)
	}
	r.node, err = cluster.Open(ctx, db, cluster.Options{DSN: dsn, Replica: id, Escrow: fastEscrow, Timeout: 10 * time.Second, Log: zerolog.Nop()})
	if err != nil {
		db.Close()
		t.Fatalf("join %s: %v", id, err)
	}
	return r
}

// stop closes the replica cleanly (slices given back).
func (r *replica) stop(t *testing.T) {
	t.Helper()
	if err := r.node.Close(ctx); err != nil {
		t.Errorf("close %s: %v", r.id, err)
	}
	if err := r.db.Close(); err != nil {
		t.Error(err)
	}
}

func flat(n int64) budget.Quote { return budget.Quote{MaxOutput: n, OutputRate: 1_000_000} }

func (r *replica) reserve(n int64) (budget.Reservation, error) {
	return r.node.Escrow.Reserve(ctx, budget.Request{TokenID: r.tok.ID, Model: "m"}, flat(n))
}

// committed is what the replica's ledger recorded for the project.
func (r *replica) committed(t *testing.T) budget.Money {
	t.Helper()
	// This replica's own records (BudgetStatus counts the others' too).
	u, err := r.db.Usage(storage.RecordFilter{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	return u.Spent
}

func TestEscrow(t *testing.T) {
	pg := pgtest.Start(t)
	for _, tt := range []struct {
		name string
		run  func(t *testing.T, pg *pgtest.Server, dsn string)
	}{
		{"three replicas never pass the limit together", testNoOvershoot},
		{"a crashed replica replays its ledger", testCrashReplay},
		{"a replica that lost the store stops at its lease", testLease},
		{"a ledger restored from an old backup keeps the store's spend", testRestoredLedger},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, pg, pg.NewDatabase(t)) })
	}
}

// 3 replicas × 30 goroutines spend one project budget of 200,000 at once
// with requests of 50 to 500: the settled spend never passes the limit,
// the store agrees with the ledgers, and nearly all of it is spent.
func testNoOvershoot(t *testing.T, pg *pgtest.Server, dsn string) {
	const limit = 200_000
	var rs []*replica
	for i := range 3 {
		rs = append(rs, startReplica(t, dsn, fmt.Sprintf("r%d", i), filepath.Join(t.TempDir(), "hardcap.db"), budget.Ceiling(limit, budget.Total)))
	}
	var wg sync.WaitGroup
	var refused, granted atomic.Int64
	for _, r := range rs {
		for g := range 30 {
			wg.Go(func() {
				rng := rand.New(rand.NewPCG(uint64(g), 7))
				misses := 0
				for misses < 20 {
					n := 50 + rng.Int64N(451)
					res, err := r.reserve(n)
					if errors.Is(err, budget.ErrExhausted) {
						refused.Add(1)
						misses++
						continue
					}
					if err != nil {
						t.Error(err)
						return
					}
					granted.Add(1)
					// Charge all of it or less, as providers bill.
					charge := res.Amount - budget.Money(rng.Int64N(int64(res.Amount)/4+1))
					if _, err := r.db.Settle(ctx, res.ID, budget.Settlement{Charged: charge}); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
	}
	wg.Wait()
	var total budget.Money
	for _, r := range rs {
		total += r.committed(t)
	}
	for _, r := range rs {
		r.stop(t)
	}
	t.Logf("%d requests reserved, %d refused; %d of %d spent", granted.Load(), refused.Load(), total, limit)
	if total > limit {
		t.Fatalf("spent %d of a %d budget", total, limit)
	}
	if total < limit*9/10 {
		t.Errorf("spent only %d of %d: slices left stranded", total, limit)
	}
	checkStore(t, dsn, "r-check", total)
}

// checkStore checks that the store's project window has committed and
// holds exactly what the ledgers spent, once every replica gave back.
func checkStore(t *testing.T, dsn, id string, spent budget.Money) {
	t.Helper()
	node, db := watcher(t, dsn, id)
	defer db.Close()
	defer node.Close(ctx)
	reps, err := node.Store.Replicas(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var committed, held budget.Money
	for _, r := range reps {
		committed += r.Committed
		held += r.Held
	}
	if committed != spent || held != 0 {
		t.Fatalf("store: committed %d held %d beyond it; the ledgers spent %d", committed, held, spent)
	}
}

// watcher is a replica with an empty ledger, to read the store.
func watcher(t *testing.T, dsn, id string) (*cluster.Node, *storage.DB) {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "w.db"), storage.Options{Escrow: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	node, err := cluster.Open(ctx, db, cluster.Options{DSN: dsn, Replica: id, Escrow: fastEscrow, Log: zerolog.Nop()})
	if err != nil {
		t.Fatal(err)
	}
	return node, db
}

// A replica that stops without giving its slices back (a crash: its
// ledger charged its open reservation in full at the next open) replays
// its ledger on restart: its spend is folded in once, the unused part of
// its slice is given back, and another replica can be granted it.
func testCrashReplay(t *testing.T, pg *pgtest.Server, dsn string) {
	const limit = 10_000
	path := filepath.Join(t.TempDir(), "hardcap.db")
	a := startReplica(t, dsn, "a", path, budget.Ceiling(limit, budget.Total))
	res, err := a.reserve(1000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.db.Settle(ctx, res.ID, budget.Settlement{Charged: 700}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.reserve(2000); err != nil { // left open: charged in full at reopen
		t.Fatal(err)
	}
	// The crash: no Close of the node (no give-back, no fold), the
	// ledger's file closed under it.
	a.node.Store.Close()
	if err := a.db.Close(); err != nil {
		t.Fatal(err)
	}
	b := startReplica(t, dsn, "b", filepath.Join(t.TempDir(), "hardcap.db"), budget.Ceiling(limit, budget.Total))
	defer b.stop(t)
	// a's slice counts as spent while it is away.
	if _, err := b.reserve(limit - 1000); !errors.Is(err, budget.ErrExhausted) {
		t.Fatalf("b reserved what a's slice holds: %v", err)
	}
	a = startReplica(t, dsn, "a", path, budget.Ceiling(limit, budget.Total))
	if got := a.committed(t); got != 2700 {
		t.Fatalf("a's ledger after the replay: %d, want 700 + 2000", got)
	}
	a.stop(t)
	res, err = b.reserve(limit - 2700)
	if err != nil {
		t.Fatalf("after a's replay, b cannot reserve the rest: %v", err)
	}
	if _, err := b.db.Settle(ctx, res.ID, budget.Settlement{Charged: res.Amount}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.reserve(1); !errors.Is(err, budget.ErrExhausted) {
		t.Fatalf("a full budget reserved more: %v", err)
	}
}

// A replica that cannot reach the store serves from its slice until its
// lease ends, then refuses everything with ErrClusterUnavailable; it
// serves again once the store is back.
func testLease(t *testing.T, pg *pgtest.Server, dsn string) {
	a := startReplica(t, dsn, "a", filepath.Join(t.TempDir(), "hardcap.db"), budget.Ceiling(1_000_000, budget.Total))
	defer a.stop(t)
	if _, err := a.reserve(100); err != nil {
		t.Fatal(err)
	}
	pg.Stop()
	stopped := time.Now()
	// Within its slice (5 × the first request's need): served.
	if _, err := a.reserve(100); err != nil {
		t.Fatalf("a reservation inside the slice, the store away: %v", err)
	}
	// Beyond it: refused as unreachable, not as a spent budget.
	if _, err := a.reserve(100_000); !errors.Is(err, budget.ErrClusterUnavailable) {
		t.Fatalf("a reservation beyond the slice, the store away: %v", err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, err := a.reserve(1)
		if errors.Is(err, budget.ErrClusterUnavailable) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the replica kept spending long after its lease")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if since := time.Since(stopped); since > fastEscrow.Lease {
		t.Errorf("stopped %v after losing the store; its lease is %v", since, fastEscrow.Lease)
	}
	pg.Start()
	deadline = time.Now().Add(30 * time.Second)
	for {
		if _, err := a.reserve(100); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("not serving again after the store came back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// A replica's ledger restored from a copy older than its last run (a
// backup, a salvage) knows less spend than the store counts for it: the
// store's figure stands, so the money is not spent twice.
func testRestoredLedger(t *testing.T, pg *pgtest.Server, dsn string) {
	const limit = 10_000
	path := filepath.Join(t.TempDir(), "hardcap.db")
	a := startReplica(t, dsn, "a", path, budget.Ceiling(limit, budget.Total))
	a.stop(t)
	old, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	a = startReplica(t, dsn, "a", path, budget.Ceiling(limit, budget.Total))
	res, err := a.reserve(3000)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.db.Settle(ctx, res.ID, budget.Settlement{Charged: 3000}); err != nil {
		t.Fatal(err)
	}
	a.stop(t)
	if err := os.WriteFile(path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	a = startReplica(t, dsn, "a", path, budget.Ceiling(limit, budget.Total))
	defer a.stop(t)
	b := startReplica(t, dsn, "b", filepath.Join(t.TempDir(), "hardcap.db"), budget.Ceiling(limit, budget.Total))
	defer b.stop(t)
	if _, err := a.reserve(2000); err != nil {
		t.Fatal(err)
	}
	// 3000 spent before the restore, 2000 held by a: 5000 are left.
	if _, err := b.reserve(5001); !errors.Is(err, budget.ErrExhausted) {
		t.Fatalf("b reserved 5001 with 5000 left: %v", err)
	}
	if _, err := b.reserve(5000); err != nil {
		t.Fatalf("b could not reserve the 5000 left: %v", err)
	}
}
