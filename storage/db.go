// Package storage keeps hardcap's state in an embedded bbolt database:
// projects, tokens (hashed), budget limits, spend per budget window, open
// reservations and usage records.
//
// Every write goes through one group-commit writer (commit.go), so a
// reservation is checked and taken in one serialized step and is durable
// when Reserve returns.
package storage

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// Bucket names. Values are JSON unless noted.
var (
	bucketProjects     = []byte("projects")     // name -> tokens.Project
	bucketTokens       = []byte("tokens")       // id -> tokens.Token
	bucketTokenHashes  = []byte("token_hashes") // sha256 (32 bytes) -> id
	bucketLimits       = []byte("limits")       // scope -> budget.Limit
	bucketSpend        = []byte("spend")        // budget key -> 16 bytes: committed, reserved
	bucketReservations = []byte("reservations") // id -> budget.Reservation
	bucketRecords      = []byte("records")      // end time ns + seq -> budget.Record
	bucketMeta         = []byte("meta")         // see meta keys
	allBuckets         = [][]byte{bucketProjects, bucketTokens, bucketTokenHashes, bucketLimits, bucketSpend, bucketReservations, bucketRecords, bucketMeta}
)

// Meta keys.
var (
	metaKillAll    = []byte("kill_all")   // "1" when the global kill switch is on
	metaOvershoots = []byte("overshoots") // 8 bytes: settlements above their reservation
	metaOverAmount = []byte("over_usd")   // 8 bytes: nano-USD charged above reservations
)

// Options configures a DB. The zero value is usable.
type Options struct {
	// Now returns the current time; default time.Now. Tests inject a clock.
	Now func() time.Time
	// Location is the time zone of calendar budget periods; default UTC.
	Location *time.Location
	// Global is the limit every request counts against; zero is no limit.
	Global budget.Limit
	// OnLow says whether to clamp or refuse a request whose worst case does
	// not fit; default budget.Clamp.
	OnLow budget.OnLow
	// MaxBatch is the most operations committed in one transaction; default
	// 1024.
	MaxBatch int
	// NoSync turns off fsync. Only tests that do not test durability may set
	// it.
	NoSync bool
}

// DB is hardcap's database. It is safe for concurrent use.
type DB struct {
	bolt     *bolt.DB
	now      func() time.Time
	loc      *time.Location
	global   budget.Limit
	onLow    budget.OnLow
	maxBatch int

	ops        chan *writeOp
	writerDone chan struct{}
	closeMu    sync.RWMutex
	closed     bool

	recovered []budget.Record
	stats     struct{ commits, ops atomic.Uint64 }
}

// Open opens (creating if needed) the database at path, then charges every
// reservation a previous run left unsettled at its full amount: a crash must
// never let a request go uncharged. The records of those charges are
// available from Recovered.
func Open(path string, opts Options) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	bdb, err := bolt.Open(path, 0o600, &bolt.Options{
		Timeout:      2 * time.Second,
		FreelistType: bolt.FreelistMapType,
		NoSync:       opts.NoSync,
	})
	if err != nil {
		return nil, fmt.Errorf("storage: open %s: %w", path, err)
	}
	db := &DB{
		bolt:       bdb,
		now:        opts.Now,
		loc:        opts.Location,
		global:     opts.Global,
		onLow:      opts.OnLow,
		maxBatch:   opts.MaxBatch,
		ops:        make(chan *writeOp, 4096),
		writerDone: make(chan struct{}),
	}
	if db.now == nil {
		db.now = time.Now
	}
	if db.loc == nil {
		db.loc = time.UTC
	}
	if db.onLow == "" {
		db.onLow = budget.Clamp
	}
	if db.maxBatch <= 0 {
		db.maxBatch = 1024
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		db.recovered, err = db.recover(tx)
		return err
	})
	if err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("storage: recovery: %w", err)
	}
	go db.writer()
	return db, nil
}

// Close stops taking writes, commits what is queued, and closes the file.
func (db *DB) Close() error {
	db.closeMu.Lock()
	if db.closed {
		db.closeMu.Unlock()
		return nil
	}
	db.closed = true
	close(db.ops)
	db.closeMu.Unlock()
	<-db.writerDone
	return db.bolt.Close()
}

// Recovered returns the usage records of the reservations that Open found
// unsettled and charged in full.
func (db *DB) Recovered() []budget.Record { return db.recovered }

// Path is the database file's path.
func (db *DB) Path() string { return db.bolt.Path() }

// CommitStats reports how many transactions the writer committed and how
// many operations they carried; ops/commits is the mean batch size.
func (db *DB) CommitStats() (commits, ops uint64) {
	return db.stats.commits.Load(), db.stats.ops.Load()
}

// view runs fn in a read-only transaction. Reads do not go through the
// writer: bbolt lets them run beside it.
func (db *DB) view(fn func(tx *bolt.Tx) error) error {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	return db.bolt.View(fn)
}

// background is the context for writes that must finish even when the
// request that caused them is gone.
var background = context.Background()

var _ budget.Ledger = (*DB)(nil)
