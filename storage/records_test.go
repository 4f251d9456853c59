package storage

import (
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
)

// putRecordV1 is format 1's putRecord, kept to write the files the
// migration must read: the record as JSON under its key.
func putRecordV1(tx *bolt.Tx, rec budget.Record) error {
	return putJSON(tx.Bucket(bucketRecords), recordKey(rec), rec)
}

// genRecord is the i-th of a synthetic history: tokens t0..t(tokens-1)
// in projects p0, p1, a few models, one record every step from base.
func genRecord(i, tokens int, base time.Time, step time.Duration) budget.Record {
	tok := i % tokens
	return budget.Record{
		Time:          base.Add(time.Duration(i) * step).UTC(),
		ReservationID: reservationID(uint64(i + 1)),
		Request: budget.Request{
			TokenID: fmt.Sprintf("t%d", tok), Project: fmt.Sprintf("p%d", tok%2),
			Provider: "openai", Model: []string{"gpt-4o-mini", "gpt-4o", "o3"}[i%3],
			Route: "/v1/chat/completions", ClientIP: "127.0.0.1",
		},
		Status:  200,
		Outcome: budget.Complete,
		Usage:   budget.Usage{InputTokens: int64(10 + i%50), OutputTokens: int64(i % 200), CacheReadTokens: int64(i % 3)},
		// One in seven is free (a refusal upstream), so totals must count
		// records and not charges.
		Reserved:  budget.Money(2000 + i%1000),
		Charged:   budget.Money((i % 7) * 1000),
		LatencyMS: int64(i % 900),
	}
}

// writeRecords adds n records gen makes to the ledger at path, in
// transactions of 50,000, fast; v1 writes them as format 1 did (JSON, no
// indexes) and marks the file format 1. Their charges are counted in
// uncounted_usd, since no budget counter holds them, so Check holds.
func writeRecords(tb testing.TB, path string, n int, gen func(int) budget.Record, v1 bool) {
	tb.Helper()
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{NoSync: true, NoFreelistSync: true, Timeout: 5 * time.Second})
	if err != nil {
		tb.Fatal(err)
	}
	defer bdb.Close()
	if v1 {
		err := bdb.Update(func(tx *bolt.Tx) error {
			for _, b := range recordBuckets {
				if err := tx.DeleteBucket(b); err != nil {
					return err
				}
			}
			return tx.Bucket(bucketMeta).Put(metaFormat, []byte("1"))
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	for i := 0; i < n; {
		err := bdb.Update(func(tx *bolt.Tx) error {
			var sum budget.Money
			for end := min(i+50_000, n); i < end; i++ {
				rec := gen(i)
				put := putRecord
				if v1 {
					put = putRecordV1
				}
				if err := put(tx, rec); err != nil {
					return err
				}
				sum += rec.Charged
			}
			return addCounter(tx.Bucket(bucketMeta), metaUncounted, uint64(sum))
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
}

// emptyLedger is a new ledger file, closed.
func emptyLedger(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

var genBase = time.Date(2026, 11, 28, 22, 30, 0, 0, time.UTC)

// TestMigrate_FormatOneRecords: a file format 1 wrote (JSON records, no
// indexes), whose migration stopped after one batch as a crash would stop
// it, is migrated by Open: every record reads back as it was written, in
// the binary form, the indexes and totals answer as the records do, the
// file passes Check as format 2, and the progress key is gone.
func TestMigrate_FormatOneRecords(t *testing.T) {
	defer func(n int) { migrateBatch = n }(migrateBatch)
	migrateBatch = 7
	const n = 100
	gen := func(i int) budget.Record { return genRecord(i, 3, genBase, 17*time.Minute) }
	path := emptyLedger(t)
	writeRecords(t, path, n, gen, true)
	if rep, err := Check(path); err != nil || !rep.OK() || rep.Format != 1 {
		t.Fatalf("the format 1 file: %+v %v", rep, err)
	}
	// One batch, then a "crash".
	withBolt(t, path, func(tx *bolt.Tx) error {
		for _, b := range recordBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		done, err := migrateBatchTx(tx)
		if done || err != nil {
			t.Fatalf("first batch: done %v, %v; want more to do", done, err)
		}
		if tx.Bucket(bucketMeta).Get(metaMigrated) == nil {
			t.Fatal("no progress recorded")
		}
		return nil
	})
	if rep, err := Check(path); err != nil || !rep.OK() {
		t.Fatalf("half migrated: %+v %v", rep, err)
	}
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	u, err := db.Usage(RecordFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var want []budget.Record
	var spent budget.Money
	for i := range n {
		want = append(want, gen(i))
		spent += gen(i).Charged
	}
	if !reflect.DeepEqual(u.Records, want) || u.Matched != n || u.Spent != spent {
		t.Fatalf("got %d records (matched %d, spent %s), want %d (spent %s); first %+v, want %+v", len(u.Records), u.Matched, u.Spent, n, spent, u.Records[0], want[0])
	}
	byTok, err := db.Usage(RecordFilter{TokenID: "t1"})
	if err != nil || byTok.Matched != 33 || len(byTok.Records) != 33 {
		t.Fatalf("token t1: matched %d, %d records, %v; want 33", byTok.Matched, len(byTok.Records), err)
	}
	db.Close()
	rep, err := Check(path)
	if err != nil || !rep.OK() || rep.Format != FormatVersion {
		t.Fatalf("after the migration: %+v %v; want a sound format %d file", rep, err, FormatVersion)
	}
	withBolt(t, path, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta).Get(metaMigrated) != nil {
			t.Error("the progress key stayed")
		}
		return tx.Bucket(bucketRecords).ForEach(func(k, v []byte) error {
			if v[0] != recordV1 {
				t.Fatalf("record %x is still JSON", k)
			}
			return nil
		})
	})
}

// TestUsage_ReadsIndexesAndTotals: every way of selecting records answers
// what a walk over all of them answers: the same records, matched count
// and spend, for token, project, both, since (inside an hour and on its
// edge), limit and the pages a cursor walks.
func TestUsage_ReadsIndexesAndTotals(t *testing.T) {
	const n = 400
	gen := func(i int) budget.Record { return genRecord(i, 5, genBase, 13*time.Minute) }
	path := emptyLedger(t)
	writeRecords(t, path, n, gen, false)
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	all := make([]budget.Record, n)
	for i := range n {
		all[i] = gen(i)
	}
	since := genBase.Add(37*time.Hour + 5*time.Minute)
	tests := []struct {
		name string
		f    RecordFilter
	}{
		{"everything", RecordFilter{}},
		{"token", RecordFilter{TokenID: "t3"}},
		{"project", RecordFilter{Project: "p0"}},
		{"token and its project", RecordFilter{TokenID: "t2", Project: "p0"}},
		{"token and another project", RecordFilter{TokenID: "t2", Project: "p1"}},
		{"since inside an hour", RecordFilter{Since: since}},
		{"since on an hour", RecordFilter{Since: since.Truncate(time.Hour)}},
		{"since, token", RecordFilter{Since: since, TokenID: "t4"}},
		{"since, project, limit", RecordFilter{Since: since, Project: "p1", Limit: 10}},
		{"limit", RecordFilter{Limit: 100}},
		{"since after the last", RecordFilter{Since: genBase.Add(1000 * time.Hour)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var want []budget.Record
			var spent budget.Money
			for _, r := range all {
				if tt.f.match(r.Request) && !r.Time.Before(tt.f.Since) {
					want = append(want, r)
					spent += r.Charged
				}
			}
			got, err := db.Usage(tt.f)
			if len(want) == 0 && tt.f.Project != "" && errors.Is(err, tokens.ErrProjectNotFound) {
				return // no record names it, and nor does the projects bucket
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.Matched != len(want) || got.Spent != spent {
				t.Fatalf("matched %d spent %s, want %d and %s", got.Matched, got.Spent, len(want), spent)
			}
			// Walk the pages back with the cursor.
			pages := 0
			var back []budget.Record
			for f := tt.f; ; pages++ {
				if f.Limit > 0 && len(got.Records) > f.Limit {
					t.Fatalf("page of %d records, limit %d", len(got.Records), f.Limit)
				}
				back = append(slices.Clone(got.Records), back...)
				if got.NextCursor == "" {
					break
				}
				f.Cursor = got.NextCursor
				if got, err = db.Usage(f); err != nil {
					t.Fatal(err)
				}
				if got.Matched != len(want) {
					t.Fatalf("page %d matched %d, want %d", pages, got.Matched, len(want))
				}
			}
			if want == nil {
				want = []budget.Record{}
			}
			if !reflect.DeepEqual(back, want) {
				t.Fatalf("pages hold %d records, want %d", len(back), len(want))
			}
			if tt.f.Limit > 0 && len(want) > tt.f.Limit && pages != (len(want)-1)/tt.f.Limit {
				t.Fatalf("%d further pages, want %d", pages, (len(want)-1)/tt.f.Limit)
			}
		})
	}
}

func TestUsage_BadCursor(t *testing.T) {
	db := openTest(t, Options{})
	for _, c := range []string{"zz", "00", hex.EncodeToString(make([]byte, 100))} {
		if _, err := db.Usage(RecordFilter{Cursor: c}); !errors.Is(err, ErrBadCursor) {
			t.Errorf("cursor %q: got %v, want ErrBadCursor", c, err)
		}
	}
}

// TestSalvage_RebuildsRecordIndexes: the copy Salvage makes of a format 2
// file answers queries as the original does: its dictionary and records
// are copied, its indexes and totals written again from the records.
func TestSalvage_RebuildsRecordIndexes(t *testing.T) {
	gen := func(i int) budget.Record { return genRecord(i, 4, genBase, time.Minute) }
	path := emptyLedger(t)
	writeRecords(t, path, 300, gen, false)
	// Spoil the token index: the copy must not trust it.
	withBolt(t, path, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketByToken).Put(append(idPrefix(1), 0xff), []byte{0xff})
	})
	dst := filepath.Join(t.TempDir(), "copy.db")
	if _, err := Salvage(path, dst); err != nil {
		t.Fatal(err)
	}
	db, err := Open(dst, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	u, err := db.Usage(RecordFilter{TokenID: "t1"})
	if err != nil || u.Matched != 75 || len(u.Records) != 75 || u.Records[0] != gen(1) {
		t.Fatalf("token t1 in the copy: matched %d, %d records, %v; want 75", u.Matched, len(u.Records), err)
	}
}

// TestStreamUsage_YieldsToWrites: a stream pauses between its pages while
// the writer commits (requests being settled), and never when it does not.
func TestStreamUsage_YieldsToWrites(t *testing.T) {
	defer func(f func(time.Duration)) { exportPause = f }(exportPause)
	pauses := 0
	exportPause = func(time.Duration) { pauses++ }
	gen := func(i int) budget.Record { return genRecord(i, 3, genBase, time.Second) }
	path := emptyLedger(t)
	writeRecords(t, path, 5*streamPage, gen, false)
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, writing := range []bool{false, true} {
		pauses = 0
		n := 0
		err := db.StreamUsage(RecordFilter{}, func(Usage) error { return nil }, func(budget.Record) error {
			if n++; writing && n%streamPage == 1 {
				if _, err := db.CreateProject(ctx, fmt.Sprintf("p%d", n), budget.Limit{}); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil || n != 5*streamPage {
			t.Fatalf("streamed %d (%v), want %d", n, err, 5*streamPage)
		}
		// No pause after the last page: nothing is left to yield for.
		if want := map[bool]int{false: 0, true: 4}[writing]; pauses != want {
			t.Errorf("writing %v: %d pauses, want %d", writing, pauses, want)
		}
	}
}
