//go:build linux

package storage

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// mappedRSS is how many bytes of the mapping of path are resident in this
// process, from /proc/self/smaps.
func mappedRSS(t *testing.T, path string) int64 {
	t.Helper()
	f, err := os.Open("/proc/self/smaps")
	if err != nil {
		t.Skip(err)
	}
	defer f.Close()
	var rss int64
	in := false
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if fields := strings.Fields(line); len(fields) > 0 && strings.Contains(fields[0], "-") && !strings.HasSuffix(fields[0], ":") {
			in = strings.HasSuffix(line, " "+path)
			continue
		}
		if kb, ok := strings.CutPrefix(line, "Rss:"); ok && in {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")), 10, 64)
			rss += n << 10
		}
	}
	return rss
}

// TestStreamUsage_ReleasesPages: after an export of every record, the pages
// of the file it read are no longer resident in the process (they were,
// after the same walk without releasing them), and a fresh Open holds
// none of the pages its deep check read.
func TestStreamUsage_ReleasesPages(t *testing.T) {
	const n = 40_000
	gen := func(i int) budget.Record { return genRecord(i, 50, genBase, time.Second) }
	path := emptyLedger(t)
	writeRecords(t, path, n, gen, false)
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	size := info.Size()
	if rss := mappedRSS(t, path); rss > size/4 {
		t.Fatalf("after Open %d of %d bytes resident, want the check's pages let go", rss, size)
	}
	// The same walk, keeping what it read: the measure sees the pages.
	err = db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error { return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	if rss := mappedRSS(t, path); rss < size/4 {
		t.Fatalf("a walk left %d of %d bytes resident; the measure does not work here", rss, size)
	}
	db.Close()
	if db, err = Open(path, Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	got := 0
	err = db.StreamUsage(RecordFilter{}, func(Usage) error { return nil }, func(budget.Record) error { got++; return nil })
	if err != nil || got != n {
		t.Fatalf("streamed %d (%v), want %d", got, err, n)
	}
	rss := mappedRSS(t, path)
	t.Logf("file %d bytes; resident after the export %d", size, rss)
	if rss > size/16 {
		t.Fatalf("after an export %d of %d bytes resident, want them released", rss, size)
	}
}
