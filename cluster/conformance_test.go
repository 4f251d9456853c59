package cluster_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/cluster"
	"github.com/hardcap/hardcap/internal/pgtest"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/storage/storagetest"
	"github.com/rs/zerolog"
)

// The cluster store (an Escrow over a ledger in escrow mode) passes the
// ledger conformance suite, each test in a database of its own, with
// peers that are further replicas of the same database.
func TestConformance(t *testing.T) {
	pg := pgtest.Start(t)
	storagetest.Run(t, func(t *testing.T, setup storagetest.Setup) storagetest.Subject {
		c := &testCluster{dsn: pg.NewDatabase(t), setup: setup}
		return c.join(t, c.replica(), filepath.Join(t.TempDir(), "hardcap.db"))
	})
}

// gaps are the suite's checks the cluster store does not pass yet: none.
var gaps = map[string]string{}

// testCluster is one test's cluster: its store and its replicas' setup.
type testCluster struct {
	dsn   string
	setup storagetest.Setup
	mu    sync.Mutex
	n     int
}

// replica names a new replica.
func (c *testCluster) replica() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.n++
	return fmt.Sprintf("r%d", c.n)
}

// join opens the ledger at path in escrow mode and joins the cluster as
// replica id. The replica is stopped cleanly when the test ends unless a
// simulated crash stopped it first.
func (c *testCluster) join(t *testing.T, id, path string) storagetest.Subject {
	t.Helper()
	feed := new(cluster.Feed)
	db, err := storage.Open(path, storage.Options{Escrow: true, Outbox: true, Global: c.setup.Global, OnLow: c.setup.OnLow, Now: c.setup.Now, Changed: feed.Changed})
	if err != nil {
		t.Fatal(err)
	}
	node, err := cluster.Open(ctx, db, cluster.Options{DSN: c.dsn, Replica: id, Global: c.setup.Global, Escrow: fastEscrow, Timeout: 10 * time.Second, Log: zerolog.Nop(), Feed: feed})
	if err != nil {
		db.Close()
		t.Fatalf("join %s: %v", id, err)
	}
	crashed := false
	t.Cleanup(func() {
		if crashed {
			return
		}
		if err := node.Close(ctx); err != nil {
			t.Errorf("close %s: %v", id, err)
		}
		if err := db.Close(); err != nil {
			t.Error(err)
		}
	})
	return storagetest.Subject{
		Ledger: node.Escrow,
		DB:     db,
		Crash: func(t *testing.T) storagetest.Subject {
			t.Helper()
			crashed = true
			// Nothing reaches the store or the ledger after this: no
			// give-back, no fold. Closing the escrow then only stops its
			// background loop (its calls fail on the closed pool and file).
			node.Store.Close()
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			cctx, cancel := context.WithTimeout(ctx, time.Second)
			_ = node.Close(cctx)
			cancel()
			return c.join(t, id, path)
		},
		Peer: func(t *testing.T) storagetest.Subject {
			t.Helper()
			return c.join(t, c.replica(), filepath.Join(t.TempDir(), "hardcap.db"))
		},
		Gaps: gaps,
	}
}
