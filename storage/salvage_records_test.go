package storage

import (
	"path/filepath"
	"testing"

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
