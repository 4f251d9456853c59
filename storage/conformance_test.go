package storage_test

import (
	"path/filepath"
	"testing"

	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/storage/storagetest"
)

// The single-node store passes the ledger conformance suite; it has no
// replicas, so the suite's tests of peers are skipped.
func TestConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T, setup storagetest.Setup) storagetest.Subject {
		return openSingle(t, filepath.Join(t.TempDir(), "hardcap.db"), setup)
	})
}

// openSingle opens the single-node ledger at path; it is closed when the
// test ends unless a simulated crash closed it first.
func openSingle(t *testing.T, path string, setup storagetest.Setup) storagetest.Subject {
	t.Helper()
	db, err := storage.Open(path, storage.Options{Global: setup.Global, OnLow: setup.OnLow, Now: setup.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return storagetest.Subject{
		Ledger: db,
		DB:     db,
		Crash: func(t *testing.T) storagetest.Subject {
			t.Helper()
			// Close settles nothing: the open reservations stay on disk,
			// for the next Open to charge, as after a crash.
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			return openSingle(t, path, setup)
		},
	}
}
