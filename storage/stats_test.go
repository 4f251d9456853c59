package storage

import (
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

func TestWriterStats_CountCommitsOpsAndLatency(t *testing.T) {
	db := openTest(t, Options{})
	before := db.WriterStats()
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	const n = 5
	for range n {
		res, err := reserve(db, tok, flat(100))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 1, Outcome: budget.Complete}); err != nil {
			t.Fatal(err)
		}
	}
	s := db.WriterStats()
	// newToken runs two writes (project, token); each reserve and settle
	// one, each alone in its commit here.
	if got, want := s.Ops-before.Ops, uint64(2+2*n); got != want {
		t.Errorf("ops %d, want %d", got, want)
	}
	if s.Commits < before.Commits+2*n || s.Commits > s.Ops {
		t.Errorf("commits %d (before %d) for %d ops", s.Commits, before.Commits, s.Ops)
	}
	var lat, batch uint64
	for _, c := range s.CommitLatency {
		lat += c
	}
	for _, c := range s.BatchSize {
		batch += c
	}
	if lat != s.Commits || batch != s.Commits {
		t.Errorf("latency buckets hold %d commits and batch buckets %d, want %d", lat, batch, s.Commits)
	}
	if s.CommitTime <= 0 || s.CommitMax <= 0 || s.CommitMax > s.CommitTime {
		t.Errorf("commit time %v, max %v", s.CommitTime, s.CommitMax)
	}
	if q := s.Quantile(0.5); q <= 0 || q > max(s.CommitMax, CommitLatencyBounds[len(CommitLatencyBounds)-1]) {
		t.Errorf("p50 %v", q)
	}
}

func TestWriterStats_Quantile(t *testing.T) {
	for _, tc := range []struct {
		name    string
		buckets map[int]uint64
		max     time.Duration
		q       float64
		want    time.Duration
	}{
		{"none", nil, 0, 0.5, 0},
		{"all in the first", map[int]uint64{0: 10}, 50 * time.Microsecond, 0.99, 100 * time.Microsecond},
		{"p50 in the second", map[int]uint64{0: 4, 1: 6}, 200 * time.Microsecond, 0.5, 250 * time.Microsecond},
		{"p99 in the overflow", map[int]uint64{3: 90, len(CommitLatencyBounds): 10}, 3 * time.Second, 0.99, 3 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := WriterStats{CommitLatency: make([]uint64, len(CommitLatencyBounds)+1), CommitMax: tc.max}
			for i, n := range tc.buckets {
				s.CommitLatency[i] = n
			}
			if got := s.Quantile(tc.q); got != tc.want {
				t.Errorf("Quantile(%v) = %v, want %v", tc.q, got, tc.want)
			}
		})
	}
}

// TestFlush_WaitsForCallbacksOnABrokenDB: a Flush on a database that broke
// while settlements were queued returns only after their callbacks ran.
func TestFlush_WaitsForCallbacksOnABrokenDB(t *testing.T) {
	db := openTest(t, Options{})
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	res, err := reserve(db, tok, flat(100))
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	go db.update(ctx, func(*bolt.Tx) error { <-release; return nil })
	time.Sleep(10 * time.Millisecond) // let the writer take the stalling op
	called := make(chan struct{})
	db.SettleAsync(res.ID, budget.Settlement{Charged: 1, Outcome: budget.Complete}, func(budget.Record, error) { close(called) })
	broken := error(ErrDamaged)
	db.broken.Store(&broken)
	flushed := make(chan error, 1)
	go func() { flushed <- db.Flush(ctx) }()
	close(release)
	if err := <-flushed; err == nil {
		t.Error("Flush on a broken database returned nil")
	}
	select {
	case <-called:
	default:
		t.Fatal("Flush returned before the callback of a settlement queued before it ran")
	}
}

// TestSettleAsync_SharesTheNextReservationsCommit: a settlement nobody
// waits for is committed with the next reservation, not in a commit (and
// an fsync) of its own; alone, it still commits after the linger.
func TestSettleAsync_SharesTheNextReservationsCommit(t *testing.T) {
	db := openTest(t, Options{SettleLinger: time.Minute})
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	first, err := reserve(db, tok, flat(100))
	if err != nil {
		t.Fatal(err)
	}
	settled := make(chan error, 1)
	db.SettleAsync(first.ID, budget.Settlement{Charged: 1, Outcome: budget.Complete}, func(_ budget.Record, err error) { settled <- err })
	before := db.WriterStats()
	if _, err := reserve(db, tok, flat(100)); err != nil {
		t.Fatal(err)
	}
	if err := <-settled; err != nil {
		t.Fatal(err)
	}
	after := db.WriterStats()
	if got := after.Commits - before.Commits; got != 1 {
		t.Errorf("the settlement and the next reservation took %d commits, want 1", got)
	}
	if got := after.Ops - before.Ops; got != 2 {
		t.Errorf("that commit carried %d operations, want 2", got)
	}

	alone := openTest(t, Options{SettleLinger: time.Millisecond})
	tok = newToken(t, alone, "web", budget.Limit{}, budget.Limit{})
	res, err := reserve(alone, tok, flat(100))
	if err != nil {
		t.Fatal(err)
	}
	alone.SettleAsync(res.ID, budget.Settlement{Charged: 1, Outcome: budget.Complete}, func(_ budget.Record, err error) { settled <- err })
	if err := <-settled; err != nil { // no Flush, no other write: the linger ends it
		t.Fatal(err)
	}
}
