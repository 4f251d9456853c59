package storage

import (
	"path/filepath"
	"testing"

	"github.com/hardcap/hardcap/budget"
)

// BenchmarkOpen_Records measures a start: Open checks every page and decodes
// every entry, so its cost grows with the usage records (reported per
// record).
func BenchmarkOpen_Records(b *testing.B) {
	const n = 20_000
	path := filepath.Join(b.TempDir(), "hardcap.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	tok := newToken(b, db, "web", budget.Limit{}, budget.Limit{})
	for range n {
		res, err := reserve(db, tok, flat(1000))
		if err != nil {
			b.Fatal(err)
		}
		if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 10, Outcome: budget.Complete}); err != nil {
			b.Fatal(err)
		}
	}
	db.Close()
	b.ResetTimer()
	for b.Loop() {
		db, err := Open(path, Options{NoSync: true})
		if err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/record")
}
