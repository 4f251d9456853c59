package storage

import (
	"os"
	"path/filepath"
	"testing"
)

func TestHeld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "hardcap.db")
	if held, err := Held(path); err != nil || held {
		t.Fatalf("a missing file: held %v, %v; want false", held, err)
	}
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	if held, err := Held(path); err != nil || !held {
		t.Fatalf("an open database: held %v, %v; want true", held, err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if held, err := Held(path); err != nil || held {
		t.Fatalf("a closed database: held %v, %v; want false", held, err)
	}
	// A copy no server has open is not held, and it has no lock file.
	other := filepath.Join(dir, "copy.db")
	b, _ := os.ReadFile(path)
	if err := os.WriteFile(other, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if held, err := Held(other); err != nil || held {
		t.Fatalf("a copy: held %v, %v; want false", held, err)
	}
}
