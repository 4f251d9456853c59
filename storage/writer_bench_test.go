package storage

import (
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"github.com/hardcap/hardcap/budget"
)

// BenchmarkWriter measures the group-commit writer with fsync on: each
// iteration is one Reserve followed by its Settle, as a proxied request
// makes them, from 1, 16 and 256 callers at once. It reports Reserve+Settle
// pairs per second and the mean batch size.
func BenchmarkWriter(b *testing.B) {
	for _, callers := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			db, err := Open(filepath.Join(b.TempDir(), "hardcap.db"), Options{})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			tok := newToken(b, db, "p", budget.Limit{Amount: budget.MaxMoney}, budget.Limit{})
			c0, o0 := db.CommitStats()
			b.ReportAllocs()
			b.ResetTimer()
			var next sync.Mutex
			left := b.N
			var wg sync.WaitGroup
			errs := make(chan error, callers)
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						next.Lock()
						if left == 0 {
							next.Unlock()
							return
						}
						left--
						next.Unlock()
						res, err := db.Reserve(ctx, budget.Request{TokenID: tok.ID, Model: "m"}, flat(10))
						if err != nil {
							errs <- err
							return
						}
						if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 3}); err != nil {
							errs <- err
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "pairs/s")
			c1, o1 := db.CommitStats()
			b.ReportMetric(float64(o1-o0)/float64(max(c1-c0, 1)), "ops/commit")
		})
	}
}

// BenchmarkAuthenticate measures the lookup of a presented secret, which
// every proxied request makes before anything else.
func BenchmarkAuthenticate(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "hardcap.db"), Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	if _, err := db.CreateProject(ctx, "p", budget.Limit{}); err != nil {
		b.Fatal(err)
	}
	var secret string
	for range 100 { // a realistic number of tokens in the table
		if _, secret, err = db.CreateToken(ctx, TokenSpec{Project: "p"}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := db.Authenticate(secret); err != nil {
				b.Error(err)
				return
			}
		}
	})
}
