package cluster

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/storage/postgres"
	"github.com/rs/zerolog"
)

// Outbox ships a replica's usage records from its ledger's outbox
// (storage.Options.Outbox) to the cluster store, in batches: each batch is
// inserted in PostgreSQL first and deleted from the outbox second, so a
// crash between the two ships it again, and the insert ignores records it
// already has: every record arrives once. While PostgreSQL is down the
// records wait in the ledger, which keeps them across restarts.
type Outbox struct {
	pg  *postgres.Store
	db  *storage.DB
	log zerolog.Logger

	// batch is the most records one insert carries; interval the time
	// between two rounds when nothing signals; backoff and maxBackoff the
	// wait after a failed round, doubled at each failure up to maxBackoff.
	batch                         int
	interval, backoff, maxBackoff time.Duration

	wake chan struct{}
	// mu serializes rounds (Run's and Drain's), so that two never ship
	// the same batch at once.
	mu      sync.Mutex
	waiting atomic.Int64
}

// NewOutbox ships db's outbox to pg; db must be opened with
// storage.Options{Outbox: true}.
func NewOutbox(pg *postgres.Store, db *storage.DB, log zerolog.Logger) *Outbox {
	o := &Outbox{
		pg: pg, db: db, log: log,
		batch:      500,
		interval:   time.Second,
		backoff:    time.Second,
		maxBackoff: 30 * time.Second,
		wake:       make(chan struct{}, 1),
	}
	if n, err := db.OutboxLen(); err == nil {
		o.waiting.Store(int64(n))
	}
	return o
}

// Signal wakes Run for a round now (after a settlement, say); it never
// blocks.
func (o *Outbox) Signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// Waiting is how many records wait to be shipped, as of the last round
// (or NewOutbox).
func (o *Outbox) Waiting() int { return int(o.waiting.Load()) }

// Run ships the outbox every interval and at each Signal until ctx ends,
// backing off while PostgreSQL fails.
func (o *Outbox) Run(ctx context.Context) {
	wait := o.interval
	failing := time.Duration(0)
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-o.wake:
			if failing > 0 {
				// Backing off: a signal does not cut the wait short.
				continue
			}
			if !t.Stop() {
				select {
				case <-t.C:
				default:
				}
			}
		}
		if err := o.ship(ctx); err != nil && ctx.Err() == nil {
			failing = min(max(2*failing, o.backoff), o.maxBackoff)
			o.log.Warn().Err(err).Int("waiting", o.Waiting()).Dur("retry_in", failing).Msg("shipping usage records to the cluster store failed; they wait in the ledger")
			wait = failing
		} else {
			if failing > 0 {
				o.log.Info().Msg("shipping usage records to the cluster store resumed")
			}
			failing, wait = 0, o.interval
		}
		t.Reset(wait)
	}
}

// Drain ships everything in the outbox, retrying with backoff while
// PostgreSQL fails, until the outbox is empty or ctx ends (then it returns
// the last failure, or ctx's error). Call it at a graceful shutdown,
// before closing the ledger.
func (o *Outbox) Drain(ctx context.Context) error {
	delay := time.Duration(0)
	for {
		err := o.ship(ctx)
		if err == nil {
			return nil
		}
		delay = min(max(2*delay, o.backoff), o.maxBackoff)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// ship sends batches until the outbox is empty or one fails.
func (o *Outbox) ship(ctx context.Context) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	defer func() {
		if n, err := o.db.OutboxLen(); err == nil {
			o.waiting.Store(int64(n))
		}
	}()
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		recs, cur, err := o.db.OutboxBatch(o.batch)
		if err != nil || cur == 0 {
			return err
		}
		if err := o.pg.InsertRecords(ctx, recs); err != nil {
			return err
		}
		if err := o.db.OutboxDone(ctx, cur); err != nil {
			return err
		}
	}
}
