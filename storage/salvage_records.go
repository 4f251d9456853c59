package storage

import (
	"bytes"
	"encoding/binary"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// derivedFromRecords reports whether bucket name holds what the records
// and the dictionary determine, which Salvage writes again rather than copy.
func derivedFromRecords(name string) bool {
	for _, b := range recordBuckets {
		if name == string(b) {
			return true
		}
	}
	return false
}

// salvageStrings copies the dictionary's id -> string entries that are
// whole, and writes each string -> id entry again from them, so the two
// directions agree whatever was lost. The sequence starts after the
// highest id kept: an id a lost header forgot must never be given twice.
func salvageStrings(tx *bolt.Tx, fb fileBucket, rep *SalvageReport) error {
	b, err := tx.CreateBucketIfNotExists(bucketStrings)
	if err != nil {
		return err
	}
	seq := fb.sequence
	for _, e := range fb.entries {
		if len(e.key) == 0 {
			// A damaged leaf can hold an entry with no key (ks=0).
			rep.Dropped[string(bucketStrings)]++
			continue
		}
		if e.key[0] != 'i' {
			continue
		}
		if len(e.key) != 5 || len(e.value) == 0 || len(e.value) > maxInterned {
			rep.Dropped[string(bucketStrings)]++
			continue
		}
		id := binary.BigEndian.Uint32(e.key[1:])
		seq = max(seq, uint64(id))
		if err := b.Put(bytes.Clone(e.key), bytes.Clone(e.value)); err != nil {
			return err
		}
		rev := append([]byte{'s'}, e.value...)
		if b.Get(rev) == nil {
			if err := b.Put(rev, bytes.Clone(e.key[1:])); err != nil {
				return err
			}
		}
		rep.Copied[string(bucketStrings)]++
	}
	return b.SetSequence(seq)
}

// reindexRecords writes the index entries and hour totals of every record
// in the binary form, and the hour totals of the rolled-up records (see
// rollupHours). JSON records (a format-1 file) get theirs when Open
// migrates them.
func reindexRecords(tx *bolt.Tx) error {
	for _, name := range recordBuckets[1:] {
		if _, err := tx.CreateBucketIfNotExists(name); err != nil {
			return err
		}
	}
	d := newDict(tx)
	c := tx.Bucket(bucketRecords).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(v) == 0 || v[0] != recordV1 {
			continue
		}
		rec, err := decodeRecord(d, k, v, false)
		if err != nil {
			return err
		}
		if err := indexRecord(tx, nil, k, rec, internedIDs(tx, rec)); err != nil {
			return err
		}
	}
	return rollupHours(tx)
}

// rollupHours adds the rolled-up records to the hour totals (every record
// and the project's), which count them as records still (see Retention).
// A rollup row knows its day, not its hours, so its records are counted in
// the day's last hour: a since inside a rolled-up day then counts the whole
// day, as chargedSince and a token's totals do.
func rollupHours(tx *bolt.Tx) error {
	hb := tx.Bucket(bucketUsageHours)
	hb.FillPercent = appendFill
	add := func(k []byte, n uint64, charged budget.Money) error {
		cnt, sum := hourTotal(hb.Get(k))
		var v [16]byte
		binary.BigEndian.PutUint64(v[:8], cnt+n)
		binary.BigEndian.PutUint64(v[8:], uint64(sum+charged))
		return hb.Put(k, v[:])
	}
	c := tx.Bucket(bucketRollup).Cursor()
	for k, v := c.First(); k != nil; k, v = c.Next() {
		if len(k) != 24 || len(v) != 16 {
			return errRollup // salvageInto copied only rows that decode
		}
		n, charged := hourTotal(v)
		hour := uint32(min(uint64(binary.BigEndian.Uint32(k[4:]))*24+23, 1<<32-1))
		all := hourKey(scopeAll, 0, hour)
		if err := add(all[:], n, charged); err != nil {
			return err
		}
		if pid := binary.BigEndian.Uint32(k[8:]); pid != 0 {
			pk := hourKey(scopeProject, pid, hour)
			if err := add(pk[:], n, charged); err != nil {
				return err
			}
		}
	}
	return nil
}

// internedIDs are the ids of rec's token and project, as putRecord passes
// them to indexRecord.
func internedIDs(tx *bolt.Tx, rec budget.Record) recordIDs {
	var ids recordIDs
	if rec.TokenID != "" {
		ids.token, ids.hasToken = lookupID(tx, rec.TokenID)
	}
	if rec.Project != "" {
		ids.project, ids.hasProject = lookupID(tx, rec.Project)
	}
	return ids
}
