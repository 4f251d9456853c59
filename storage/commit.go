package storage

import (
	"context"
	"errors"
	"fmt"
	"runtime/debug"
	"slices"
	"sync"
	"time"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// writeOp is one operation queued for the group-commit writer.
//
// An operation checks everything it needs before its first write and
// returns a plain error to refuse without writing. Once it has written, it
// may only fail with a fatalError, which rolls back the batch.
//
// Reserve and Settle, which every request makes, are operations of their
// own kind, with their arguments and results in the struct and the struct
// taken from a pool: a closure, its captured variables and a channel per
// request were a good part of the writer's garbage.
type writeOp struct {
	kind opKind
	// fn is an opFunc's work.
	fn func(tx *bolt.Tx) error
	// An opReserve's quote and request, and the reservation it took.
	req budget.Request
	q   budget.Quote
	res budget.Reservation
	// final is ReserveFinal's: in escrow mode, fit what the allowances
	// leave.
	final bool
	// An opSettle's reservation and settlement, and the record it wrote.
	id  string
	s   budget.Settlement
	rec budget.Record
	// The caller is answered on done, or, when then or settled is set, by
	// a call of it on the dispatcher goroutine (see SettleAsync).
	done    chan error
	then    func(error)
	settled func(budget.Record, error)
	// lazy says nobody waits for this operation's commit (SettleAsync):
	// a batch of only such operations waits up to Options.SettleLinger for
	// one that somebody does wait for, and shares its commit.
	lazy bool
	// pooled says the operation goes back to opPool once answered.
	pooled bool
}

// opKind says what a writeOp does.
type opKind uint8

const (
	opFunc opKind = iota
	opReserve
	opSettle
)

// opPool recycles Reserve's and Settle's operations, each with its
// channel. An operation goes back only once its answer was taken: the
// writer never touches an operation after answering it.
var opPool = sync.Pool{New: func() any { return &writeOp{done: make(chan error, 1), pooled: true} }}

// newOp takes an operation of kind from the pool.
func newOp(kind opKind) *writeOp {
	op := opPool.Get().(*writeOp)
	op.kind = kind
	return op
}

// release gives a pooled operation back, cleared, so that it keeps no
// request, reservation or callback alive.
func release(op *writeOp) {
	if !op.pooled {
		return
	}
	*op = writeOp{done: op.done, pooled: true}
	opPool.Put(op)
}

// answer tells op's caller its result. A callback goes to the dispatcher,
// in order, so that the writer never runs the caller's code.
func (db *DB) answer(op *writeOp, err error) {
	if op.then != nil || op.settled != nil {
		db.answers <- answered{op, err}
		return
	}
	op.done <- err
}

// answered is an asynchronous operation's result on its way to its
// callback.
type answered struct {
	op  *writeOp
	err error
}

// dispatch runs the callbacks of asynchronous operations, one at a time in
// the order the writer answered them, until the writer ends.
func (db *DB) dispatch() {
	defer close(db.dispatchDone)
	for a := range db.answers {
		op := a.op
		if op.settled == nil {
			op.then(a.err)
			continue
		}
		rec, done := op.rec, op.settled
		if a.err != nil {
			rec = budget.Record{}
		}
		release(op)
		done(rec, a.err)
	}
}

// update queues fn for the writer and waits until the transaction that ran it
// has been committed and synced to disk, or rolled back. Many callers'
// operations share one transaction and one fsync: this is what lets hardcap
// make every reservation durable before forwarding a request without paying
// an fsync per request.
//
// update waits for the result even when ctx ends after the operation was
// queued, because by then the operation may already be committed and the
// caller must know.
func (db *DB) update(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	op := &writeOp{fn: fn, done: make(chan error, 1)}
	return db.run(ctx, op)
}

// run queues op and waits for its answer, as update does.
func (db *DB) run(ctx context.Context, op *writeOp) error {
	if err := db.enqueue(ctx, op); err != nil {
		return err
	}
	return <-op.done
}

// enqueue hands op to the writer, or says why it cannot (closed, broken,
// ctx done before the writer took it).
func (db *DB) enqueue(ctx context.Context, op *writeOp) error {
	return db.enqueueOp(ctx, op, false)
}

// enqueueOp is enqueue; evenBroken queues op on a broken database too (the
// writer answers it with the fault in order, after everything before it).
func (db *DB) enqueueOp(ctx context.Context, op *writeOp, evenBroken bool) error {
	db.closeMu.RLock()
	if db.closed {
		db.closeMu.RUnlock()
		return ErrClosed
	}
	if err := db.broken.Load(); err != nil && !evenBroken {
		db.closeMu.RUnlock()
		return *err
	}
	select {
	case db.ops <- op:
		db.closeMu.RUnlock()
	case <-ctx.Done():
		db.closeMu.RUnlock()
		return ctx.Err()
	}
	return nil
}

// writer is the single goroutine that writes to bbolt. It takes every
// operation queued at the moment (up to maxBatch), runs them in order in one
// read-write transaction and commits once.
func (db *DB) writer() {
	defer close(db.writerDone)
	defer close(db.answers)
	// A fault reading a damaged page must become a panic that commitBatch
	// recovers, not a crash of the process.
	debug.SetPanicOnFault(true)
	batch := make([]*writeOp, 0, db.maxBatch)
	linger := time.NewTimer(time.Hour)
	linger.Stop()
	for {
		var op *writeOp
		select {
		case o, ok := <-db.ops:
			if !ok {
				db.persistRefusals()
				return
			}
			op = o
		case r := <-db.refusals:
			// Memory only: written with the next commit.
			db.st.noteRefusal(r)
			continue
		}
		batch = append(batch[:0], op)
		more := db.fill(&batch)
		if more && db.linger > 0 && allLazy(batch) {
			// Only settlements, which nobody waits for: wait a little for a
			// reservation (whose caller does wait) to share the commit, so
			// that a request's settlement does not cost a commit, and an
			// fsync, of its own that the next reservation would queue
			// behind. The reservations stay held meanwhile.
			linger.Reset(db.linger)
		wait:
			for len(batch) < db.maxBatch {
				select {
				case op, ok := <-db.ops:
					if !ok {
						break wait
					}
					batch = append(batch, op)
					if !op.lazy {
						db.fill(&batch)
						break wait
					}
				case <-linger.C:
					break wait
				}
			}
			linger.Stop()
		}
		db.commitBatch(batch)
	}
}

// fill adds to batch every operation queued at the moment, up to
// maxBatch; it reports false when the queue is closed.
func (db *DB) fill(batch *[]*writeOp) bool {
	for len(*batch) < db.maxBatch {
		select {
		case op, ok := <-db.ops:
			if !ok {
				return false
			}
			*batch = append(*batch, op)
		default:
			return true
		}
	}
	return true
}

func allLazy(batch []*writeOp) bool {
	for _, op := range batch {
		if !op.lazy {
			return false
		}
	}
	return true
}

// commitBatch runs ops in one transaction. An operation that fails with a
// fatalError (or panics) is answered with its error and the batch is run
// again without it, so one bad operation cannot commit half of itself nor
// take the others down. A panic inside bbolt itself (Begin, Commit) leaves
// its state unknown: every operation of the batch is refused and so is
// every later write (see DB.broken).
func (db *DB) commitBatch(ops []*writeOp) {
	pending := ops
	var tx *bolt.Tx
	defer func() {
		r := recover()
		if r == nil {
			return
		}
		err := db.fault("a commit", r)
		db.broken.CompareAndSwap(nil, &err)
		if tx != nil && guard("rolling back", tx.Rollback) != nil {
			db.wedged.Store(true)
		}
		db.st.rollback()
		db.answerAll(pending, err)
	}()
	if err := db.broken.Load(); err != nil {
		db.answerAll(pending, *err)
		return
	}
	for len(pending) > 0 {
		// The writer's own slice, cleared: a batch's results are dropped
		// once answered.
		results := slices.Grow(db.results[:0], len(pending))[:len(pending)]
		clear(results)
		db.results = results
		var err error
		tx, err = db.bolt.Begin(true)
		if err != nil {
			db.answerAll(pending, fmt.Errorf("storage: begin: %w", err))
			return
		}
		bad := -1
		for i, op := range pending {
			results[i] = db.runOp(tx, op)
			if results[i] == nil {
				continue // the common case, without errors.As's allocation
			}
			var fe fatalError
			if errors.As(results[i], &fe) {
				bad = i
				break
			}
		}
		if bad >= 0 {
			// Memory goes back to what the disk holds: the batch runs
			// again without the bad operation.
			db.st.rollback()
			db.answer(pending[bad], results[bad])
			pending = append(pending[:bad:bad], pending[bad+1:]...)
			if broken := db.broken.Load(); broken != nil {
				// The operation faulted on the mapped file: nothing more may
				// be committed, not even the batch's other operations, whose
				// callers would forward requests on a ledger that cannot
				// settle them.
				if guard("rolling back", tx.Rollback) != nil {
					db.wedged.Store(true)
				}
				tx = nil
				db.answerAll(pending, *broken)
				pending = nil
				return
			}
			_ = tx.Rollback()
			tx = nil
			continue
		}
		txid := tx.ID()
		// What the operations changed in memory only (spend counters, hour
		// totals) goes into the transaction now, once. A failure is the
		// commit's: it cannot be put on one operation.
		db.drainRefusals()
		flushErr := db.st.flush(tx)
		if db.dropCommits.Load() {
			// A test's crash: the transaction never reaches the disk.
			err = tx.Rollback()
			tx = nil
			db.st.rollback()
			db.answerAll(pending, errCrashed)
			return
		}
		began := time.Now()
		if err = flushErr; err == nil {
			err = tx.Commit()
		} else {
			_ = tx.Rollback()
		}
		took := time.Since(began)
		tx = nil
		if err != nil {
			db.st.rollback()
			err = fmt.Errorf("storage: commit: %w", err)
			if db.landed(txid) {
				// The meta page reached the file and bbolt now reads the
				// transaction as committed, but its fsync failed: what the
				// disk holds is unknown. Refuse everything until a restart
				// reopens and checks the file; the callers were told it
				// failed, so the worst case is a reservation charged in full
				// at the next start for a request never sent.
				err = fmt.Errorf("%w: %w after the transaction reached the file; every later call is refused until hardcap restarts", ErrDamaged, err)
				db.broken.CompareAndSwap(nil, &err)
				db.log.Error().Err(err).Msg("storage: a commit failed to sync; stop hardcap, check the disk, and run `hardcap db check`")
			}
			db.answerAll(pending, err)
			return
		}
		// Before anyone is answered: a revoke or kill that returns is
		// seen by the next Authenticate.
		db.publish()
		db.afterCommit()
		db.st.committed()
		db.stats.commit(len(pending), took)
		for i, op := range pending {
			db.answer(op, results[i])
		}
		clear(results) // keeps no error alive until the next batch
		pending = nil
		return
	}
}

// runOp runs one operation; a panic in it (a hardcap bug or a damaged
// page) is logged and fails only this operation. A batch run again runs
// its operations again: each result is overwritten.
func (db *DB) runOp(tx *bolt.Tx, op *writeOp) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fatalError{db.fault("a write", r)}
		}
	}()
	switch op.kind {
	case opReserve:
		op.res, err = db.reserve(tx, op.req, op.q, op.final)
	case opSettle:
		// &op.s: a run again settles with the end time the first run set.
		op.rec, err = db.settleOp(tx, op.id, &op.s)
	default:
		err = op.fn(tx)
	}
	return err
}

func (db *DB) answerAll(ops []*writeOp, err error) {
	for _, op := range ops {
		db.answer(op, err)
	}
}

// landed reports whether the transaction txid is what bbolt now reads as
// the newest: a commit that failed after writing its meta page (its fsync
// failed) is visible although Commit returned an error.
func (db *DB) landed(txid int) bool {
	landed := true // when bbolt cannot even answer, assume the worst
	_ = guard("reading the transaction id", func() error {
		return db.bolt.View(func(tx *bolt.Tx) error {
			landed = tx.ID() >= txid
			return nil
		})
	})
	return landed
}

// Flush waits until every write queued before it has been committed (or
// refused), and the callbacks of the settlements queued by SettleAsync
// before it have run: a reader that must see its own writes calls it
// first.
func (db *DB) Flush(ctx context.Context) error {
	done := make(chan error, 1)
	op := &writeOp{
		fn: func(*bolt.Tx) error { return nil },
		// Answered through the dispatcher, after every earlier callback.
		then: func(err error) { done <- err },
	}
	// Queued even on a broken database: the callbacks queued before it
	// must still have run when it returns.
	if db.wedged.Load() {
		// A fault left a bbolt lock held: the writer may never answer.
		return *db.broken.Load()
	}
	if err := db.enqueueOp(ctx, op, true); err != nil {
		return err
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}
