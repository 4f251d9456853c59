package cluster_test

import (
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/pgtest"
)

// A burst of requests on a fresh replica, far from the budget's end: all
// are served (the first grants cover the requests queued behind them).
func TestEscrow_BurstOnAFreshReplica(t *testing.T) {
	pg := pgtest.Start(t)
	for _, onLow := range []budget.OnLow{budget.Reject, budget.Clamp} {
		t.Run(string(onLow), func(t *testing.T) { testBurst(t, pg, onLow) })
	}
}

func testBurst(t *testing.T, pg *pgtest.Server, onLow budget.OnLow) {
	r := startReplicaOnLow(t, pg.NewDatabase(t), "a", filepath.Join(t.TempDir(), "hardcap.db"), budget.Ceiling(budget.MaxMoney/8, budget.Month), onLow)
	defer r.stop(t)
	var wg sync.WaitGroup
	var refused atomic.Int64
	var first atomic.Value
	for range 64 {
		wg.Go(func() {
			for range 20 {
				res, err := r.reserve(1000)
				if err != nil {
					refused.Add(1)
					first.CompareAndSwap(nil, err.Error())
					continue
				}
				r.db.Settle(ctx, res.ID, budget.Settlement{Charged: 500})
			}
		})
	}
	wg.Wait()
	if n := refused.Load(); n > 0 {
		t.Fatalf("%d of 1280 requests refused on a budget far from its end; the first: %v", n, first.Load())
	}
}
