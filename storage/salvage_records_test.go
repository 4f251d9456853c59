package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// scratchTx runs fn in a write transaction of a new bbolt file.
func scratchTx(t *testing.T, fn func(tx *bolt.Tx) error) {
	t.Helper()
	bdb, err := bolt.Open(filepath.Join(t.TempDir(), "x.db"), 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	if err := bdb.Update(fn); err != nil {
		t.Fatal(err)
	}
}

func newSalvageReport() *SalvageReport {
	return &SalvageReport{Copied: map[string]int{}, Dropped: map[string]int{}}
}

func TestSalvage_EmptyKeysAreDropped(t *testing.T) {
	rep := newSalvageReport()
	empty := []leafEntry{{key: []byte{}, value: []byte("x")}, {key: nil, value: []byte("y")}}
	found := map[string]fileBucket{
		"strings":  {name: "strings", entries: empty},
		"projects": {name: "projects", entries: empty},
		"meta":     {name: "meta"},
	}
	scratchTx(t, func(tx *bolt.Tx) error {
		// Before the fix, e.key[0] panicked on the strings bucket.
		return salvageInto(tx, found, rep)
	})
	if got := rep.Dropped["strings"]; got != 2 {
		t.Errorf("dropped %d strings entries, want 2", got)
	}
	if got := rep.Dropped["projects"]; got != 2 {
		t.Errorf("dropped %d projects entries, want 2", got)
	}
}

func TestSalvage_KeepsTheStringsSequenceRaise(t *testing.T) {
	var es []leafEntry
	for i := 1; i <= 5; i++ {
		es = append(es, leafEntry{key: []byte{'i', 0, 0, 0, byte(i)}, value: []byte{'a' + byte(i)}})
	}
	// The header's sequence (1) is older than the ids kept (up to 5).
	found := map[string]fileBucket{"strings": {name: "strings", sequence: 1, entries: es}, "meta": {name: "meta"}}
	scratchTx(t, func(tx *bolt.Tx) error {
		if err := salvageInto(tx, found, newSalvageReport()); err != nil {
			return err
		}
		if seq := tx.Bucket(bucketStrings).Sequence(); seq != 5 {
			t.Errorf("strings sequence %d after salvage, want 5 (the highest id kept)", seq)
		}
		id, err := intern(tx, "new")
		if err != nil {
			return err
		}
		if id != 6 {
			t.Errorf("a new string got id %d, want 6", id)
		}
		return nil
	})
}

// compacted is a sound ledger of 600 records over about 57 days, of which
// retention rolled up the older half.
func compacted(t *testing.T) string {
	t.Helper()
	base := time.Date(2026, 9, 1, 5, 0, 0, 0, time.UTC)
	gen := func(i int) budget.Record { return genRecord(i, 6, base, 2*time.Hour+17*time.Minute) }
	path := emptyLedger(t)
	writeRecords(t, path, 600, gen, false)
	now := base.Add(60 * 24 * time.Hour)
	db, err := Open(path, Options{NoSync: true, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := db.Compact(ctx, 30*24*time.Hour); err != nil || n == 0 {
		t.Fatalf("Compact rolled up %d records: %v", n, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

// usageTotals are the totals of filters over the ledger at path.
func usageTotals(t *testing.T, path string, filters []RecordFilter) []string {
	t.Helper()
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out []string
	for _, f := range filters {
		u, err := db.Usage(f)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, fmt.Sprintf("%+v: %d records, %s USD", f, u.Matched, u.Spent))
	}
	return out
}

func TestSalvage_CompactedFileKeepsRolledUpTotals(t *testing.T) {
	path := compacted(t)
	if rep, err := Check(path); err != nil || !rep.OK() {
		t.Fatalf("the compacted file fails its check: %v %v", rep.Problems, err)
	}
	filters := []RecordFilter{{}, {Project: "p0"}, {Project: "p1"}, {TokenID: "t3"}, {TokenID: "t2", Project: "p0"}}
	want := usageTotals(t, path, filters)
	dst := filepath.Join(t.TempDir(), "copy.db")
	srep, err := Salvage(path, dst)
	if err != nil {
		t.Fatalf("Salvage of a sound compacted file: %v", err)
	}
	if srep.Unrecorded != 0 || srep.Uncounted != 0 || srep.Dropped["usage_rollup"] != 0 {
		t.Errorf("Salvage lost charges of a sound file: %+v", srep)
	}
	got := usageTotals(t, dst, filters)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("after Salvage %s, want %s", got[i], want[i])
		}
	}
}

func TestSalvage_FileWithoutFormat(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(tx *bolt.Tx) error
	}{
		{"no format key", func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Delete(metaFormat) }},
		{"format 1 mid-migration", func(tx *bolt.Tx) error {
			return tx.Bucket(bucketMeta).Put(metaMigrated, timeKey(genBase.Add(10*time.Minute)))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			gen := func(i int) budget.Record { return genRecord(i, 3, genBase, time.Minute) }
			path := emptyLedger(t)
			writeRecords(t, path, 50, gen, true)
			withBolt(t, path, tc.damage)
			dst := filepath.Join(t.TempDir(), "copy.db")
			if _, err := Salvage(path, dst); err != nil {
				t.Fatalf("Salvage: %v", err)
			}
			rep, err := Check(dst)
			if err != nil || !rep.OK() || rep.Format != FormatVersion {
				t.Fatalf("the copy: format %d, %v %v", rep.Format, rep.Problems, err)
			}
			filters := []RecordFilter{{}, {Project: "p1"}, {TokenID: "t2"}}
			got := usageTotals(t, dst, filters)
			for i, f := range filters {
				n, sum := 0, budget.Money(0)
				for j := range 50 {
					if r := gen(j); f.match(r.Request) {
						n, sum = n+1, sum+r.Charged
					}
				}
				if want := fmt.Sprintf("%+v: %d records, %s USD", f, n, sum); got[i] != want {
					t.Errorf("got %s, want %s", got[i], want)
				}
			}
		})
	}
}

func TestSalvage_DropsBadRollupRows(t *testing.T) {
	path := compacted(t)
	var lost budget.Money
	withBolt(t, path, func(tx *bolt.Tx) error {
		rb := tx.Bucket(bucketRollup)
		c := rb.Cursor()
		k, v := c.First()
		// One row names a string the dictionary lacks; one has a short key.
		bad := bytes.Clone(k)
		binary.BigEndian.PutUint32(bad[16:], 1<<31)
		_, c1 := hourTotal(v)
		k2, v2 := c.Next()
		_, c2 := hourTotal(v2)
		lost = c1 + c2
		k, k2, v2 = bytes.Clone(k), bytes.Clone(k2), bytes.Clone(v2)
		if err := rb.Delete(k); err != nil {
			return err
		}
		if err := rb.Delete(k2); err != nil {
			return err
		}
		if err := rb.Put(bad, v); err != nil {
			return err
		}
		return rb.Put(k2[:20], v2)
	})
	dst := filepath.Join(t.TempDir(), "copy.db")
	srep, err := Salvage(path, dst)
	if err != nil {
		t.Fatalf("Salvage: %v", err)
	}
	if srep.Dropped["usage_rollup"] != 2 || srep.Unrecorded != lost {
		t.Errorf("dropped %d rollup rows, unrecorded %s USD; want 2 and %s", srep.Dropped["usage_rollup"], srep.Unrecorded, lost)
	}
}

// TestCheck_IndexesAndProjectTotals: Check compares the token and project
// indexes' charges and the projects' hour totals with the records (and
// the rolled-up ones), which a token's or a project's totals are read from.
func TestCheck_IndexesAndProjectTotals(t *testing.T) {
	bump := func(bucket []byte, first []byte, fn func(v []byte) []byte) func(tx *bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			b := tx.Bucket(bucket)
			k, v := b.Cursor().Seek(first)
			return b.Put(bytes.Clone(k), fn(bytes.Clone(v)))
		}
	}
	moreCharged := func(v []byte) []byte {
		binary.BigEndian.PutUint64(v[8:], binary.BigEndian.Uint64(v[8:])+5_000_000)
		return v
	}
	for _, tc := range []struct {
		name, want string
		damage     func(tx *bolt.Tx) error
	}{
		{"project hour total", `the hour totals of project "p`, bump(bucketUsageHours, []byte{scopeProject}, moreCharged)},
		{"token index charge", `the records_by_token entries of "t`, bump(bucketByToken, nil, func([]byte) []byte { return binary.AppendUvarint(nil, 9_000_000) })},
		{"project index entry lost", `the records_by_project entries of "p`, func(tx *bolt.Tx) error {
			c := tx.Bucket(bucketByProject).Cursor()
			c.First()
			return c.Delete()
		}},
		{"token index entry added", `the records_by_token entries of string id 4000 count 1 records`, func(tx *bolt.Tx) error {
			return tx.Bucket(bucketByToken).Put(append(append(idPrefix(4000), timeKey(genBase)...), "r1"...), []byte{0})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := compacted(t)
			if rep, err := Check(path); err != nil || !rep.OK() {
				t.Fatalf("sound file: %v %v", rep.Problems, err)
			}
			withBolt(t, path, tc.damage)
			rep, err := Check(path)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Problems) == 0 || !strings.Contains(strings.Join(rep.Problems, "\n"), tc.want) {
				t.Errorf("problems %q, want one saying %q", rep.Problems, tc.want)
			}
		})
	}
}
