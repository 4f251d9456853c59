package storage

import (
	"bytes"
	"strconv"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// metaMigrated is the key of the last record migrateRecords rewrote, while
// a migration from format 1 is under way; absent before and after.
var metaMigrated = []byte("records_migrated")

// migrateBatch is how many records one migration transaction visits: a
// crash loses at most one batch's work, and no transaction grows large.
var migrateBatch = 8192

// formatOf is the format version meta records; 1 when it records none.
func formatOf(meta *bolt.Bucket) int {
	if n, err := strconv.Atoi(string(meta.Get(metaFormat))); err == nil {
		return n
	}
	return 1
}

// migrateRecords rewrites a format-1 file's JSON usage records in the
// binary form with their index entries and hour totals, in transactions
// of migrateBatch records each, and then writes format 2. It is resumable:
// each transaction records in meta how far it got, and a record already in
// the binary form (written by recovery, or by a batch committed before a
// crash) is never indexed twice. Open runs it before serving, so a query
// never meets a JSON record without its totals.
func (db *DB) migrateRecords() error {
	for done := false; !done; {
		err := guard("migrating the records of "+db.path, func() error {
			return db.bolt.Update(func(tx *bolt.Tx) error {
				var err error
				done, err = migrateBatchTx(tx)
				return err
			})
		})
		if err != nil {
			return err
		}
	}
	return nil
}

// migrateBatchTx migrates one batch in tx and reports whether the
// migration is complete.
func migrateBatchTx(tx *bolt.Tx) (bool, error) {
	meta := tx.Bucket(bucketMeta)
	if formatOf(meta) >= FormatVersion {
		return true, nil
	}
	type old struct {
		k   []byte
		rec budget.Record
	}
	var batch []old
	c := tx.Bucket(bucketRecords).Cursor()
	k, v := c.First()
	if pos := meta.Get(metaMigrated); pos != nil {
		if k, v = c.Seek(pos); bytes.Equal(k, pos) {
			k, v = c.Next()
		}
	}
	var last []byte
	for i := 0; k != nil && i < migrateBatch; i++ {
		last = bytes.Clone(k)
		if len(v) == 0 || v[0] != recordV1 {
			rec, err := decodeRecord(nil, k, v, false)
			if err != nil {
				return false, err
			}
			batch = append(batch, old{last, rec})
		}
		k, v = c.Next()
	}
	for _, o := range batch {
		var ids recordIDs
		nv, err := encodeRecord(tx, nil, o.rec, &ids)
		if err != nil {
			return false, err
		}
		// The key stays: it is what the record is found by, and the
		// binary form reads the time and the id from it.
		if err := tx.Bucket(bucketRecords).Put(o.k, nv); err != nil {
			return false, err
		}
		if err := indexRecord(tx, nil, o.k, o.rec, ids); err != nil {
			return false, err
		}
	}
	if k != nil {
		return false, meta.Put(metaMigrated, last)
	}
	if err := meta.Delete(metaMigrated); err != nil {
		return false, err
	}
	return true, meta.Put(metaFormat, []byte(strconv.Itoa(FormatVersion)))
}
