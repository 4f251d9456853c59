package cluster_test

import (
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/cluster"
	"github.com/hardcap/hardcap/internal/pgtest"
	"github.com/hardcap/hardcap/storage"
	"github.com/rs/zerolog"
)

// benchLedger is a ledger under benchmark with a token of project p.
type benchLedger struct {
	ledger budget.Ledger
	tok    string
	trips  func() uint64
}

func openBench(b *testing.B, clustered bool, projLimit budget.Limit) benchLedger {
	b.Helper()
	db, err := storage.Open(filepath.Join(b.TempDir(), "hardcap.db"), storage.Options{Escrow: clustered})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	if _, err := db.CreateProject(ctx, "p", projLimit); err != nil {
		b.Fatal(err)
	}
	tok, _, err := db.CreateToken(ctx, storage.TokenSpec{Project: "p"})
	if err != nil {
		b.Fatal(err)
	}
	if !clustered {
		return benchLedger{ledger: db, tok: tok.ID, trips: func() uint64 { return 0 }}
	}
	pg := pgtest.Start(b)
	node, err := cluster.Open(ctx, db, cluster.Options{DSN: pg.NewDatabase(b), Replica: "bench", Log: zerolog.Nop()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { node.Close(ctx) })
	return benchLedger{ledger: node.Escrow, tok: tok.ID, trips: node.Escrow.RoundTrips}
}

// Reserve and settle from 64 goroutines on a budget far from its end: the
// cluster's figure against the single node's is the cost of the escrow,
// and trips/op its store round trips per request.
func BenchmarkReserveSettle(b *testing.B) {
	for _, clustered := range []bool{false, true} {
		name := "single"
		if clustered {
			name = "cluster"
		}
		b.Run(name, func(b *testing.B) {
			l := openBench(b, clustered, budget.Ceiling(budget.MaxMoney/4, budget.Month))
			req := budget.Request{TokenID: l.tok, Model: "m"}
			// Warm up: the first grants and the rate.
			for range 200 {
				res, err := l.ledger.Reserve(ctx, req, flat(1000))
				if err != nil {
					b.Fatal(err)
				}
				l.ledger.Settle(ctx, res.ID, budget.Settlement{Charged: 900})
			}
			start := l.trips()
			b.SetParallelism(32)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					res, err := l.ledger.Reserve(ctx, req, flat(1000))
					if err != nil {
						b.Error(err)
						return
					}
					if _, err := l.ledger.Settle(ctx, res.ID, budget.Settlement{Charged: 900}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			b.ReportMetric(float64(l.trips()-start)/float64(b.N), "trips/op")
		})
	}
}

// Reservations near the end of a budget, when slices are small and
// requests are reserved in the store directly: the p99 of a reservation's
// latency, single node against cluster.
func BenchmarkReserveNearEnd(b *testing.B) {
	for _, clustered := range []bool{false, true} {
		name := "single"
		if clustered {
			name = "cluster"
		}
		b.Run(name, func(b *testing.B) {
			// A budget that 16 workers spend in about b.N requests of
			// 1000: the last tenth of it is where slices shrink.
			limit := budget.Money(b.N) * 1000
			l := openBench(b, clustered, budget.Ceiling(limit, budget.Total))
			req := budget.Request{TokenID: l.tok, Model: "m"}
			var mu sync.Mutex
			var lat []time.Duration
			start := l.trips()
			b.ResetTimer()
			var wg sync.WaitGroup
			for range 16 {
				wg.Go(func() {
					var mine []time.Duration
					for {
						t0 := time.Now()
						res, err := l.ledger.Reserve(ctx, req, flat(1000))
						if err != nil {
							break
						}
						mine = append(mine, time.Since(t0))
						l.ledger.Settle(ctx, res.ID, budget.Settlement{Charged: 1000})
					}
					mu.Lock()
					lat = append(lat, mine...)
					mu.Unlock()
				})
			}
			wg.Wait()
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) == 0 {
				b.Fatal("nothing reserved")
			}
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(l.trips()-start)/float64(len(lat)), "trips/op")
		})
	}
}
