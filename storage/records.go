package storage

import (
	"fmt"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// putRecord writes a usage record.
func putRecord(tx *bolt.Tx, rec budget.Record) error {
	return putJSON(tx.Bucket(bucketRecords), recordKey(rec), rec)
}

// decodeRecord decodes a usage record entry; strict refuses what Check
// refuses (see decodeStrict).
func decodeRecord(k, v []byte, strict bool) (budget.Record, error) {
	var r budget.Record
	if err := decodeEntry(v, &r, strict); err != nil {
		return budget.Record{}, fmt.Errorf("storage: record %x: %w", k, err)
	}
	return r, nil
}
