package storage

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// getSpend reads one budget window's spend; a window never charged is zero.
func getSpend(tx *bolt.Tx, key string) budget.Spend {
	v := tx.Bucket(bucketSpend).Get([]byte(key))
	if len(v) != 16 {
		return budget.Spend{}
	}
	return budget.Spend{
		Committed: budget.Money(binary.BigEndian.Uint64(v[:8])),
		Reserved:  budget.Money(binary.BigEndian.Uint64(v[8:])),
	}
}

// putSpend writes one budget window's spend straight to tx: for what runs
// outside the writer (Salvage). The writer changes spend with setSpend.
func putSpend(tx *bolt.Tx, key string, s budget.Spend) error {
	v := make([]byte, 16)
	encodeSpend(v, s)
	return fatal(tx.Bucket(bucketSpend).Put([]byte(key), v))
}

// encodeSpend writes the stored form of s into v (16 bytes).
func encodeSpend(v []byte, s budget.Spend) {
	binary.BigEndian.PutUint64(v[:8], uint64(s.Committed))
	binary.BigEndian.PutUint64(v[8:16], uint64(s.Reserved))
}

// setSpend changes a window's spend in the writer's state; the state's
// flush writes it to the transaction just before the commit, once however
// many operations of the batch changed it. A key bbolt would refuse fails
// here, as its Put did, so that only the operation that made it fails.
func (db *DB) setSpend(key string, s budget.Spend) error {
	switch {
	case len(key) == 0:
		return fatal(berrors.ErrKeyRequired)
	case len(key) > bolt.MaxKeySize:
		return fatal(berrors.ErrKeyTooLarge)
	}
	db.st.setSpend(key, s)
	return nil
}

// setReservation writes an open reservation to tx and to the writer's
// state.
func (db *DB) setReservation(tx *bolt.Tx, res budget.Reservation) error {
	st := db.st
	v := appendReservation(st.value(reservationSize(res))[:0], res)
	if err := fatal(tx.Bucket(bucketReservations).Put(st.key(res.ID), v)); err != nil {
		return err
	}
	db.st.setRes(res)
	return nil
}

// setLimit writes a scope's limit to tx and to the writer's state.
func (db *DB) setLimit(tx *bolt.Tx, scope budget.Scope, l budget.Limit) error {
	if err := putLimit(tx, scope, l); err != nil {
		return err
	}
	// The state holds what the disk gives back.
	v, err := encodeLimit(l)
	if err != nil {
		return fatal(err)
	}
	back, err := decodeLimit(v)
	if err != nil {
		return fatal(err)
	}
	db.st.setLimit(scope, back, true)
	return nil
}

// getLimit reads the limit of a project or token scope; no record is no
// limit. See decodeLimit for the stored form.
func getLimit(tx *bolt.Tx, scope budget.Scope) (budget.Limit, error) {
	v := tx.Bucket(bucketLimits).Get([]byte(scope))
	if v == nil {
		return budget.Limit{}, nil
	}
	l, err := decodeLimit(v)
	if err != nil {
		return l, fmt.Errorf("storage: limit of %s: %w", scope, err)
	}
	return l, nil
}

func putLimit(tx *bolt.Tx, scope budget.Scope, l budget.Limit) error {
	v, err := encodeLimit(l)
	if err != nil {
		return fatal(err)
	}
	return fatal(tx.Bucket(bucketLimits).Put([]byte(scope), v))
}

func getJSON(b *bolt.Bucket, key []byte, v any) (bool, error) {
	raw := b.Get(key)
	if raw == nil {
		return false, nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return true, fmt.Errorf("storage: decoding %s/%s: %w", "bucket", key, err)
	}
	return true, nil
}

// decodeEntry decodes the JSON entry v into dst, strictly (see
// decodeStrict) when strict is set.
func decodeEntry(v []byte, dst any, strict bool) error {
	if strict {
		return decodeStrict(v, dst)
	}
	return json.Unmarshal(v, dst)
}

func putJSON(b *bolt.Bucket, key []byte, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fatal(err)
	}
	return fatal(b.Put(key, raw))
}

func addCounter(b *bolt.Bucket, key []byte, n uint64) error {
	var cur uint64
	if v := b.Get(key); len(v) == 8 {
		cur = binary.BigEndian.Uint64(v)
	}
	var v [8]byte
	binary.BigEndian.PutUint64(v[:], cur+n)
	return fatal(b.Put(key, v[:]))
}

func getCounter(b *bolt.Bucket, key []byte) uint64 {
	if v := b.Get(key); len(v) == 8 {
		return binary.BigEndian.Uint64(v)
	}
	return 0
}

// chargedSince sums the charges of the usage records that ended at or after
// start (the zero time: all of them) and that mine selects (nil: all).
func chargedSince(tx *bolt.Tx, start time.Time, mine func(budget.Request) bool) (budget.Money, error) {
	var charged budget.Money
	c := tx.Bucket(bucketRecords).Cursor()
	k, v := c.First()
	if start.UnixNano() > 0 {
		seek := make([]byte, 8)
		binary.BigEndian.PutUint64(seek, uint64(start.UnixNano()))
		k, v = c.Seek(seek)
	}
	d := newDict(tx)
	for ; k != nil; k, v = c.Next() {
		if c, ok := recordCharged(v); ok && mine == nil {
			// The binary form's charge comes first: no need to decode.
			var err error
			if charged, err = charged.Add(c); err != nil {
				return 0, err
			}
			continue
		}
		r, err := decodeRecord(d, k, v, false)
		if err != nil {
			return 0, err
		}
		if mine != nil && !mine(r.Request) {
			continue
		}
		if charged, err = charged.Add(r.Charged); err != nil {
			return 0, err
		}
	}
	// Records rolled up past the retention count too, by the whole day.
	err := eachRollup(tx, "", start, func(r rollupRow) error {
		if mine != nil && !mine(budget.Request{TokenID: r.token, Project: r.project, Provider: r.provider, Model: r.model}) {
			return nil
		}
		var err error
		charged, err = charged.Add(r.charged)
		return err
	})
	return charged, err
}

// globalCommitted sums the committed spend of the global scope's counters,
// every window: every charge is committed to exactly one of them.
func globalCommitted(tx *bolt.Tx) (budget.Money, error) {
	var committed budget.Money
	err := tx.Bucket(bucketSpend).ForEach(func(k, v []byte) error {
		if globalKeys([]string{string(k)}) == 0 {
			return nil
		}
		var err error
		committed, err = committed.Add(getSpend(tx, string(k)).Committed)
		return err
	})
	return committed, err
}
