package storage

import (
	"errors"
	"path/filepath"
	"testing"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// spendOnDisk reads the global window's spend from the file.
func spendOnDisk(t *testing.T, db *DB, key string) budget.Spend {
	t.Helper()
	var sp budget.Spend
	if err := db.view(func(tx *bolt.Tx) error { sp = getSpend(tx, key); return nil }); err != nil {
		t.Fatal(err)
	}
	return sp
}

// TestSettleAsync_ReturnsBeforeTheCommitAndHoldsTheReservation: while the
// writer is busy, SettleAsync returns at once; the reservation stays held
// on disk until the settlement commits, and Flush returns only after the
// settlement's callback ran.
func TestSettleAsync_ReturnsBeforeTheCommitAndHoldsTheReservation(t *testing.T) {
	db := openTest(t, Options{NoSync: true})
	tok := newToken(t, db, "p", budget.Limit{}, budget.Limit{})
	res, err := reserve(db, tok, flat(100))
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	busy := make(chan struct{})
	go func() {
		_ = db.update(ctx, func(*bolt.Tx) error { close(busy); <-release; return nil })
	}()
	<-busy // the writer is inside a transaction and takes nothing else
	var got budget.Record
	var gotErr error
	called := 0
	// If SettleAsync waited for the commit, this would never return.
	db.SettleAsync(res.ID, budget.Settlement{Charged: 40, Outcome: budget.Complete}, func(rec budget.Record, err error) {
		got, gotErr = rec, err
		called++
	})
	if sp := spendOnDisk(t, db, res.Keys[0]); sp.Reserved != 100 || sp.Committed != 0 {
		t.Fatalf("while the settlement is queued: got %+v, want 100 reserved and nothing committed", sp)
	}
	close(release)
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if called != 1 || gotErr != nil || got.Charged != 40 || got.ReservationID != res.ID {
		t.Fatalf("callback: called %d times with %+v, %v; want once with the record charging 40", called, got, gotErr)
	}
	if sp := spendOnDisk(t, db, res.Keys[0]); sp.Reserved != 0 || sp.Committed != 40 {
		t.Fatalf("after Flush: got %+v, want 40 committed and nothing reserved", sp)
	}
	var again error
	db.SettleAsync(res.ID, budget.Settlement{Charged: 1}, func(_ budget.Record, err error) { again = err })
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(again, ErrNotReserved) {
		t.Fatalf("second settlement: got %v, want ErrNotReserved", again)
	}
	requireStateMatchesDisk(t, db)
}

// TestSettleAsync_CrashBeforeTheCommitChargesInFull: a settlement queued
// but never committed (the process dies first) leaves its reservation
// open, and the next start charges it in full.
func TestSettleAsync_CrashBeforeTheCommitChargesInFull(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok := newToken(t, db, "p", budget.Limit{}, budget.Limit{})
	res, err := reserve(db, tok, flat(100))
	if err != nil {
		t.Fatal(err)
	}
	db.dropCommits.Store(true) // from here on, nothing reaches the disk
	var got error
	db.SettleAsync(res.ID, budget.Settlement{Charged: 3}, func(_ budget.Record, err error) { got = err })
	db.Close()
	if !errors.Is(got, errCrashed) {
		t.Fatalf("callback got %v, want the crash", got)
	}
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec := db.Recovered()
	if len(rec) != 1 || rec[0].ReservationID != res.ID || rec[0].Charged != 100 || rec[0].Outcome != budget.Recovered {
		t.Fatalf("recovered %+v, want %s charged 100 in full", rec, res.ID)
	}
}

// TestClose_CommitsQueuedSettlements: Close commits every settlement
// queued before it and runs their callbacks before it returns.
func TestClose_CommitsQueuedSettlements(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok := newToken(t, db, "p", budget.Limit{}, budget.Limit{})
	const n = 50
	var ids []string
	for range n {
		res, err := reserve(db, tok, flat(10))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	done := 0
	for _, id := range ids {
		db.SettleAsync(id, budget.Settlement{Charged: 1}, func(_ budget.Record, err error) {
			if err == nil {
				done++
			}
		})
	}
	db.Close()
	if done != n {
		t.Fatalf("%d callbacks succeeded before Close returned, want %d", done, n)
	}
	var closedErr error
	db.SettleAsync(ids[0], budget.Settlement{}, func(_ budget.Record, err error) { closedErr = err })
	if !errors.Is(closedErr, ErrClosed) {
		t.Fatalf("SettleAsync after Close: got %v, want ErrClosed", closedErr)
	}
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if rec := db.Recovered(); len(rec) != 0 {
		t.Fatalf("recovered %d reservations, want none: every queued settlement commits at Close", len(rec))
	}
	if st, _ := db.Status(); st.Global.Committed != n || st.OpenReservations != 0 {
		t.Fatalf("got %+v, want %d committed and nothing open", st, n)
	}
}
