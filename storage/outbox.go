package storage

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// The usage-record outbox (cluster mode, Options.Outbox): every record the
// ledger writes also gets an entry here, in the same transaction, so that
// a shipper (cluster.Outbox) can copy it to the cluster store and delete
// the entry once the copy is committed there. A crash between the two
// ships the entry again; the cluster store's insert is idempotent.
//
// The bucket exists exactly when the ledger was opened with Outbox: its
// presence is what writeRecord's hook looks at, so the writer needs no
// flag of its own.
var (
	// bucketOutbox holds sequence (8 bytes, big-endian, from the bucket's
	// own sequence, so contiguous: a rolled-back transaction rolls its
	// sequence back too) -> record key (see recordKey).
	bucketOutbox = []byte("outbox")
)

// OutboxCursor is the sequence of the last outbox entry a batch read; zero
// is none.
type OutboxCursor uint64

// outboxPut notes the record at key in the outbox when the ledger has one.
func outboxPut(tx *bolt.Tx, key []byte) error {
	b := tx.Bucket(bucketOutbox)
	if b == nil {
		return nil
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	b.FillPercent = appendFill
	// bbolt keeps the value until the commit; key is the writer's scratch
	// buffer, so it is copied.
	return b.Put(binary.BigEndian.AppendUint64(make([]byte, 0, 8), seq), append([]byte(nil), key...))
}

// openOutbox creates the outbox bucket when on, and drops it when off (a
// ledger leaving cluster mode would otherwise note every record for a
// shipper that no longer runs), logging how many entries were unshipped.
func (db *DB) openOutbox(tx *bolt.Tx) error {
	if db.outbox {
		_, err := tx.CreateBucketIfNotExists(bucketOutbox)
		return err
	}
	b := tx.Bucket(bucketOutbox)
	if b == nil {
		return nil
	}
	if n := outboxLen(b); n > 0 {
		db.log.Warn().Int("records", n).Msg("the ledger is no longer in cluster mode: usage records not yet shipped to the cluster store stay local only")
	}
	return tx.DeleteBucket(bucketOutbox)
}

// outboxLen is how many entries b holds: its sequences are contiguous and
// OutboxDone deletes a prefix, so it is the last allocated one less the
// first present, plus one.
func outboxLen(b *bolt.Bucket) int {
	k, _ := b.Cursor().First()
	if len(k) != 8 {
		return 0
	}
	return int(b.Sequence() - binary.BigEndian.Uint64(k) + 1)
}

// OutboxLen is how many usage records wait in the outbox; zero without
// one.
func (db *DB) OutboxLen() (int, error) {
	n := 0
	err := db.view(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketOutbox); b != nil {
			n = outboxLen(b)
		}
		return nil
	})
	return n, err
}

// OutboxBatch reads the first n (at least 1, at most 10,000) outbox
// entries and returns their records, oldest first, with the cursor of the
// last entry read, for OutboxDone. Each record's ReservationID is its id,
// unique in this ledger. An entry whose record is gone (rolled up by
// retention before it was shipped) is skipped but still counted in the
// cursor, so OutboxDone clears it; a cursor of zero means the outbox is
// empty. Without an outbox it returns nothing.
func (db *DB) OutboxBatch(n int) ([]budget.Record, OutboxCursor, error) {
	n = min(max(n, 1), 10_000)
	var recs []budget.Record
	var cur OutboxCursor
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		if b == nil {
			return nil
		}
		records := tx.Bucket(bucketRecords)
		d := newDict(tx)
		c := b.Cursor()
		i := 0
		for k, v := c.First(); k != nil && i < n; k, v = c.Next() {
			i++
			if len(k) != 8 {
				return fmt.Errorf("storage: outbox entry %x: bad key", k)
			}
			cur = OutboxCursor(binary.BigEndian.Uint64(k))
			rv := records.Get(v)
			if rv == nil {
				continue
			}
			rec, err := decodeRecord(d, v, rv, false)
			if err != nil {
				return err
			}
			recs = append(recs, rec)
		}
		return nil
	})
	if err != nil {
		return nil, 0, err
	}
	return recs, cur, nil
}

// OutboxDone deletes the outbox entries up to and including upTo, through
// the writer: call it once the records OutboxBatch returned with upTo are
// committed in the cluster store.
func (db *DB) OutboxDone(ctx context.Context, upTo OutboxCursor) error {
	if upTo == 0 {
		return nil
	}
	return db.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketOutbox)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, _ := c.First(); k != nil && len(k) == 8 && binary.BigEndian.Uint64(k) <= uint64(upTo); k, _ = c.First() {
			if err := c.Delete(); err != nil {
				return fatal(err)
			}
		}
		return nil
	})
}
