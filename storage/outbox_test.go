package storage

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
)

// settleN reserves and settles n requests of tok, charging 1..n nano-USD,
// and returns their reservation ids in order.
func settleN(t *testing.T, db *DB, tok tokens.Token, n int) []string {
	t.Helper()
	var ids []string
	for i := range n {
		res, err := reserve(db, tok, flat(100))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: budget.Money(i + 1), Status: 200, Outcome: budget.Complete, Ended: time.Now()}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	return ids
}

func outboxIDs(recs []budget.Record) []string {
	var ids []string
	for _, r := range recs {
		ids = append(ids, r.ReservationID)
	}
	return ids
}

func wantLen(t *testing.T, db *DB, want int) {
	t.Helper()
	if n, err := db.OutboxLen(); err != nil || n != want {
		t.Fatalf("OutboxLen = %d, %v; want %d", n, err, want)
	}
}

func TestOutbox_BatchesInOrderAndDoneDeletesThem(t *testing.T) {
	db := openTest(t, Options{Outbox: true})
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	ids := settleN(t, db, tok, 5)
	wantLen(t, db, 5)

	recs, cur, err := db.OutboxBatch(3)
	if err != nil {
		t.Fatal(err)
	}
	if got := outboxIDs(recs); cur != 3 || len(got) != 3 || got[0] != ids[0] || got[2] != ids[2] {
		t.Fatalf("first batch: ids %v cursor %d; want %v cursor 3", got, cur, ids[:3])
	}
	if recs[1].Charged != 2 || recs[1].Project != "web" || recs[1].TokenID != tok.ID {
		t.Fatalf("record decoded as %+v", recs[1])
	}
	if err := db.OutboxDone(ctx, cur); err != nil {
		t.Fatal(err)
	}
	wantLen(t, db, 2)
	recs, cur, err = db.OutboxBatch(100)
	if err != nil {
		t.Fatal(err)
	}
	if got := outboxIDs(recs); cur != 5 || len(got) != 2 || got[0] != ids[3] || got[1] != ids[4] {
		t.Fatalf("second batch: ids %v cursor %d; want %v cursor 5", got, cur, ids[3:])
	}
	if err := db.OutboxDone(ctx, cur); err != nil {
		t.Fatal(err)
	}
	wantLen(t, db, 0)
	if recs, cur, err := db.OutboxBatch(100); err != nil || cur != 0 || len(recs) != 0 {
		t.Fatalf("empty outbox: got %d records, cursor %d, %v", len(recs), cur, err)
	}
}

func TestOutbox_OffWritesNothingAndDropsAnOldOne(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hardcap.db")
	for _, tt := range []struct {
		name   string
		outbox bool
		want   int // entries after settling 2 more
	}{
		{"off", false, 0},
		{"on", true, 2},
		{"on again keeps them", true, 4},
		{"off drops them", false, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			db, err := Open(path, Options{Outbox: tt.outbox})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
			settleN(t, db, tok, 2)
			wantLen(t, db, tt.want)
			if recs, _, err := db.OutboxBatch(100); err != nil || len(recs) != tt.want {
				t.Fatalf("OutboxBatch: %d records, %v; want %d", len(recs), err, tt.want)
			}
		})
	}
}

// A record rolled up (deleted) before it was shipped is skipped, and its
// entry is cleared with the batch.
func TestOutbox_SkipsRecordsDeletedBeforeShipping(t *testing.T) {
	db := openTest(t, Options{Outbox: true})
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	ids := settleN(t, db, tok, 3)
	err := db.update(ctx, func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketRecords).Cursor()
		k, _ := c.First() // the oldest: ids[0]
		return c.Bucket().Delete(k)
	})
	if err != nil {
		t.Fatal(err)
	}
	recs, cur, err := db.OutboxBatch(2)
	if err != nil {
		t.Fatal(err)
	}
	if got := outboxIDs(recs); cur != 2 || len(got) != 1 || got[0] != ids[1] {
		t.Fatalf("got ids %v cursor %d; want [%s] cursor 2", got, cur, ids[1])
	}
	if err := db.OutboxDone(ctx, cur); err != nil {
		t.Fatal(err)
	}
	wantLen(t, db, 1)
}

// The record of a reservation a crash left open, charged at Open, is in
// the outbox too.
func TestOutbox_HoldsRecoveredRecords(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{Outbox: true})
	if err != nil {
		t.Fatal(err)
	}
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	settleN(t, db, tok, 1)
	open, err := reserve(db, tok, flat(70))
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(path, Options{Outbox: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	recs, _, err := db.OutboxBatch(100)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 2 || recs[1].ReservationID != open.ID || recs[1].Outcome != budget.Recovered || recs[1].Charged != 70 {
		t.Fatalf("got %+v; want the settled record and %s recovered at 70", recs, open.ID)
	}
	db.Close()
	if rep, err := Check(path); err != nil || !rep.OK() {
		t.Fatalf("Check: %+v, %v", rep, err)
	}
}
