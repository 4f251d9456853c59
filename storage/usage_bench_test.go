package storage

import (
	"flag"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
)

// benchHistory is the synthetic history of the usage benchmarks and of
// perf/usage.sh: one record every 3 s ending at benchNow (a million span
// about 35 days), four records per token, so `usage --token X` returns 4.
func benchHistory(n int) func(int) budget.Record {
	step := 3 * time.Second
	base := benchNow.Add(-time.Duration(n) * step)
	return func(i int) budget.Record { return genRecord(i, max(n/4, 1), base, step) }
}

var benchNow = time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)

var benchFiles struct {
	sync.Mutex
	dir   string
	paths map[int]string
}

// benchLedger is a ledger of n synthetic records, written once per run.
func benchLedger(b *testing.B, n int) string {
	b.Helper()
	benchFiles.Lock()
	defer benchFiles.Unlock()
	if p, ok := benchFiles.paths[n]; ok {
		return p
	}
	if benchFiles.dir == "" {
		d, err := os.MkdirTemp("", "hardcap-bench-")
		if err != nil {
			b.Fatal(err)
		}
		benchFiles.dir, benchFiles.paths = d, map[int]string{}
	}
	path := filepath.Join(benchFiles.dir, strconv.Itoa(n)+".db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	db.Close()
	writeRecords(b, path, n, benchHistory(n), false)
	benchFiles.paths[n] = path
	return path
}

// BenchmarkUsage measures the queries of `hardcap usage` on a history of
// 10,000 and of 1,000,000 records: one token's records, the newest 100 of
// the last hour, and a full export (StreamUsage to the end). The 1M size
// is written only when -bench names it (-bench 'Usage/1M'): writing it
// takes a while. B/record is the file's size over the records.
func BenchmarkUsage(b *testing.B) {
	sizes := []int{10_000}
	if strings.Contains(flag.Lookup("test.bench").Value.String(), "1M") {
		sizes = append(sizes, 1_000_000)
	}
	for _, n := range sizes {
		name := strconv.Itoa(n/1000) + "k"
		if n >= 1_000_000 {
			name = strconv.Itoa(n/1_000_000) + "M"
		}
		b.Run(name, func(b *testing.B) {
			path := benchLedger(b, n)
			info, err := os.Stat(path)
			if err != nil {
				b.Fatal(err)
			}
			db, err := Open(path, Options{NoSync: true, Now: func() time.Time { return benchNow }})
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			perRecord := float64(info.Size()) / float64(n)
			cases := []struct {
				name string
				f    RecordFilter
				want int
			}{
				{"token", RecordFilter{TokenID: "t7"}, 4},
				{"since1h_limit100", RecordFilter{Since: benchNow.Add(-time.Hour), Limit: 100}, 100},
				{"export", RecordFilter{}, n},
			}
			for _, c := range cases {
				b.Run(c.name, func(b *testing.B) {
					for b.Loop() {
						got := 0
						err := db.StreamUsage(c.f, func(Usage) error { return nil }, func(budget.Record) error { got++; return nil })
						if err != nil || got != c.want {
							b.Fatalf("%d records, %v; want %d", got, err, c.want)
						}
					}
					b.ReportMetric(perRecord, "B/record")
				})
			}
		})
	}
}

// TestGenerateUsageHistory adds a synthetic history to the ledger named by
// HARDCAP_USAGE_DB (HARDCAP_USAGE_RECORDS records, default 1,000,000, the
// newest ending now): perf/usage.sh builds its database with it. Without
// the variable it does nothing.
func TestGenerateUsageHistory(t *testing.T) {
	path := os.Getenv("HARDCAP_USAGE_DB")
	if path == "" {
		t.Skip("HARDCAP_USAGE_DB is not set")
	}
	n := 1_000_000
	if s := os.Getenv("HARDCAP_USAGE_RECORDS"); s != "" {
		var err error
		if n, err = strconv.Atoi(s); err != nil {
			t.Fatal(err)
		}
	}
	benchNow = time.Now().UTC()
	writeRecords(t, path, n, benchHistory(n), false)
	rep, err := Check(path)
	if err != nil || !rep.OK() {
		t.Fatalf("%+v %v", rep.Problems, err)
	}
	t.Logf("%d records, %d bytes, %.0f B/record", n, rep.Bytes, float64(rep.Bytes)/float64(n))
}
