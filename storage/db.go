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
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/budget"
	"github.com/rs/zerolog"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// Bucket names. Values are JSON unless noted.
var (
	bucketProjects     = []byte("projects")     // name -> tokens.Project
	bucketTokens       = []byte("tokens")       // id -> tokens.Token
	bucketTokenHashes  = []byte("token_hashes") // sha256 (32 bytes) -> id
	bucketLimits       = []byte("limits")       // scope -> budget.Limit
	bucketSpend        = []byte("spend")        // budget key -> 16 bytes: committed, reserved
	bucketReservations = []byte("reservations") // id -> budget.Reservation
	bucketRecords      = []byte("records")      // end time ns + reservation id -> binary record (records.go)
	bucketMeta         = []byte("meta")         // see meta keys
	allBuckets         = append([][]byte{bucketProjects, bucketTokens, bucketTokenHashes, bucketLimits, bucketSpend, bucketReservations, bucketRecords, bucketMeta}, append(recordBuckets, bucketRollup, bucketAudit, bucketTokenIPs, bucketAlerts, bucketAlertsOpen, bucketAlertsFired, bucketTokenSeen)...)
)

// Meta keys.
var (
	metaKillAll    = []byte("kill_all")   // "1" when the global kill switch is on
	metaOvershoots = []byte("overshoots") // 8 bytes: settlements above their reservation
	metaOverAmount = []byte("over_usd")   // 8 bytes: nano-USD charged above reservations
	metaFormat     = []byte("format")     // decimal FormatVersion; absent in files of hardcap before it
	// Written by Salvage and by carryGlobal, so that Check's sum of global
	// committed spend against the records' charges holds; see
	// checkCharges.
	metaUnrecorded = []byte("unrecorded_usd") // 8 bytes: nano-USD committed that no record accounts for: records salvage lost, and charges carryGlobal counted again in a new window
	metaUncounted  = []byte("uncounted_usd")  // 8 bytes: nano-USD recorded whose global counters were lost
	// metaGlobalPeriod is the global budget's period at the last start, so
	// that a change of it in the config is seen (see carryGlobal).
	metaGlobalPeriod = []byte("global_period")
)

// DefaultSettleLinger is how long a batch of only asynchronous settlements
// waits to share its commit with a reservation: about the time between two
// requests at a few hundred a second, short against any request.
const DefaultSettleLinger = 5 * time.Millisecond

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
	// Log receives storage faults (at error level, with their cause) and
	// the permissions Open tightens (at warn level); default no log.
	Log zerolog.Logger
	// SettleLinger is how long a batch of only SettleAsync settlements
	// waits for a write somebody waits for (a reservation) to share its
	// commit; default DefaultSettleLinger, negative for none.
	SettleLinger time.Duration
	// LockTimeout is how long Open waits for another process to let go of
	// the database before it returns ErrLocked; default 500ms, so a second
	// hardcap on the same data directory is told within a second.
	LockTimeout time.Duration
	// Retention is how long usage records are kept one by one; older ones
	// are rolled up into daily totals (see Compact) by a background task
	// that runs at Open and then hourly. Zero keeps every record.
	Retention time.Duration
	// Alerts says which alerts the ledger raises into its outbox and
	// which anomalies freeze a token; the zero Policy raises none
	// (alert.DefaultPolicy is the product's default).
	Alerts alert.Policy
	// OnAlert is called, on a goroutine of its own, after a commit that
	// added alerts to the outbox (to wake their delivery).
	OnAlert func()
	// OnFreeze is called, on a goroutine of its own, after the commit of
	// an automatic freeze, with what was frozen (to cut its requests in
	// flight).
	OnFreeze func(KillTarget)

	// Escrow puts the ledger in escrow mode (see escrow.go): the replica
	// of a cluster reserves only against the budget slices it holds.
	Escrow bool
	// Changed, when set, is told the kind ("project", "token", "all") and
	// target (name, id, "") of every tenancy change, after its commit, on
	// a goroutine of the change feed (see mirror.go); it must not block.
	// MirrorApply's writes are not told.
	Changed func(kind, target string)
	// Outbox notes every usage record in an outbox, in the record's own
	// transaction, for a shipper to copy to the cluster store (see
	// OutboxBatch, OutboxDone). Opening without it drops an outbox left
	// by an earlier run.
	Outbox bool
}

// DB is hardcap's database. It is safe for concurrent use.
type DB struct {
	bolt     *bolt.DB
	lock     *fileLock
	path     string
	log      zerolog.Logger
	now      func() time.Time
	loc      *time.Location
	global   budget.Limit
	onLow    budget.OnLow
	maxBatch int
	linger   time.Duration
	// policy is Options.Alerts; alerting says it raises anything, so that
	// settlements keep spend rates.
	policy   alert.Policy
	alerting bool
	// pruning says pruneAlerts runs (it starts with the first policy
	// that raises anything); retention is Options.Retention, changed by
	// SetRetention.
	pruning   atomic.Bool
	retention atomic.Int64
	onAlert   func()
	onFreeze  func(KillTarget)
	// outbox is Options.Outbox (see outbox.go).
	outbox bool

	ops        chan *writeOp
	writerDone chan struct{}
	// answers carries the results of asynchronous operations from the
	// writer to the dispatcher, which runs their callbacks.
	answers      chan answered
	dispatchDone chan struct{}
	// st is the writer's state in memory (see state); auth is the
	// authentication view it publishes after each commit.
	st   *state
	auth *authView
	// dropCommits makes the writer roll back every transaction instead of
	// committing it, as a crash before the commit would: a test hook.
	dropCommits atomic.Bool
	closeMu     sync.RWMutex
	closed      bool
	// broken is set when bbolt panicked inside Begin or Commit: its state
	// is unknown from then on, so every later write is refused with it.
	broken atomic.Pointer[error]
	// wedged says a panic may have left one of bbolt's locks held, so
	// Close must not wait for them.
	wedged atomic.Bool

	// refusals carries refused requests to the writer without waiting
	// (see NoteRefusal); refusalsDropped counts those a full queue dropped.
	refusals        chan refusal
	refusalsDropped atomic.Uint64

	// escrow is Options.Escrow; allow holds the allowance of each
	// window (writer only) and lease the end of the lease on them.
	escrow bool
	allow  map[string]budget.Money
	// base is spend of a window the cluster store counts and this
	// ledger lost (see Adopt); writer only. elsewhere is the other
	// replicas' (see SetElsewhere).
	base        map[string]budget.Money
	elsewhereMu sync.Mutex
	elsewhere   map[string]budget.Money
	lease       atomic.Pointer[time.Time]

	recovered []budget.Record
	stats     writerStats
	// results is the writer's slice of a batch's results, reused.
	results []error
	// feed carries tenancy changes to Options.Changed (nil: none).
	feed *changeFeed
}

// Open opens the database at path, creating a new ledger only when the
// file does not exist. It refuses (ErrDamaged) an empty, truncated or
// otherwise damaged file, after checking its structure with bounds-checked
// reads (both meta pages must be sound), bbolt's own consistency check and
// hardcap's (format version, buckets, every entry decodes strictly, spend
// counters against open reservations, global committed spend against the
// records' charges);
// it refuses
// (ErrLocked) a file another process holds, and (ErrNewerFormat) a file of
// a newer hardcap. Then it charges every reservation a previous run left
// unsettled at its full amount: a crash must never let a request go
// uncharged. The records of those charges are available from Recovered.
func Open(path string, opts Options) (*DB, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("storage: %w", err)
	}
	if opts.LockTimeout <= 0 {
		opts.LockTimeout = 500 * time.Millisecond
	}
	lock, err := lockFile(path, true, opts.LockTimeout)
	if errors.Is(err, ErrLocked) {
		return nil, fmt.Errorf("storage: %s: %w", path, ErrLocked)
	}
	if err != nil {
		return nil, err
	}
	db, err := open(path, opts)
	if err != nil {
		lock.release()
		return nil, err
	}
	db.lock = lock
	return db, nil
}

// open does Open's work under the lock.
func open(path string, opts Options) (*DB, error) {
	info, err := os.Stat(path)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := createLedger(path, opts.NoSync); err != nil {
			return nil, err
		}
	case err != nil:
		return nil, fmt.Errorf("storage: %w", err)
	case info.Size() == 0:
		// A missing file is a new ledger; an empty one is a ledger that
		// lost its content (a full disk, a bad copy): starting afresh would
		// forget every token and every dollar spent.
		return nil, fmt.Errorf("%w: %s is empty (0 bytes)", ErrDamaged, path)
	case info.Mode().Perm()&0o077 != 0:
		// The file holds token hashes and client IPs. bbolt keeps the mode
		// of a file it did not create (a copied backup, a `touch`ed file).
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("storage: %w", err)
		}
		opts.Log.Warn().Str("path", path).Str("was", info.Mode().Perm().String()).Msg("database file was readable by others; set its mode to 0600")
	}
	if err := checkFile(path); err != nil {
		return nil, err
	}
	db := &DB{
		path:         path,
		log:          opts.Log,
		now:          opts.Now,
		loc:          opts.Location,
		global:       opts.Global,
		onLow:        opts.OnLow,
		maxBatch:     opts.MaxBatch,
		linger:       opts.SettleLinger,
		policy:       opts.Alerts,
		alerting:     alerting(opts.Alerts),
		onAlert:      opts.OnAlert,
		onFreeze:     opts.OnFreeze,
		escrow:       opts.Escrow,
		allow:        make(map[string]budget.Money),
		base:         make(map[string]budget.Money),
		elsewhere:    make(map[string]budget.Money),
		outbox:       opts.Outbox,
		ops:          make(chan *writeOp, 4096),
		refusals:     make(chan refusal, refusalQueueLen),
		writerDone:   make(chan struct{}),
		answers:      make(chan answered, 4096),
		dispatchDone: make(chan struct{}),
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
	if db.linger == 0 {
		db.linger = DefaultSettleLinger
	}
	mapFile := func() error {
		bdb, err := bolt.Open(path, 0o600, &bolt.Options{
			Timeout:      opts.LockTimeout,
			FreelistType: bolt.FreelistMapType,
			NoSync:       opts.NoSync,
		})
		if errors.Is(err, berrors.ErrTimeout) {
			return fmt.Errorf("storage: %s: %w", path, ErrLocked)
		}
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
		}
		db.bolt = bdb
		return nil
	}
	if err := guard("opening "+path, mapFile); err != nil {
		return nil, err
	}
	if err := db.openChecks(); err != nil {
		_ = guard("closing", db.bolt.Close)
		return nil, err
	}
	// The deep check read every page of the file through bbolt's shared
	// mapping, and those pages would stay resident (and counted in the
	// process's RSS) for as long as it is mapped: a fresh mapping holds only
	// what requests touch. The file lock stays held meanwhile.
	if err := guard("closing "+path, db.bolt.Close); err != nil {
		return nil, err
	}
	if err := guard("opening "+path, mapFile); err != nil {
		return nil, err
	}
	go db.writer()
	go db.dispatch()
	db.startFeed(opts.Changed)
	db.retention.Store(int64(max(opts.Retention, 0)))
	go db.retain(time.Hour)
	if db.alerting {
		db.pruning.Store(true)
		go db.pruneAlerts(time.Hour)
	}
	return db, nil
}

// openChecks runs bbolt's and hardcap's checks, writes the format version
// into a file that predates it, creates buckets added since, and charges
// the reservations left open.
func (db *DB) openChecks() error {
	var problems []string
	err := guard("checking "+db.path, func() error {
		return db.bolt.View(func(tx *bolt.Tx) error {
			for err := range tx.Check() {
				problems = appendProblem(problems, "bbolt check: "+err.Error())
			}
			var err error
			// Deep: every entry must decode. A byte flipped inside a
			// value is invisible to the structure checks, and a ledger
			// that serves must be able to read all of its books. It costs
			// a decode of every record at each start.
			_, problems, err = checkLedger(tx, true, problems)
			return err
		})
	})
	if errors.Is(err, ErrNewerFormat) {
		return fmt.Errorf("storage: %s: %w", db.path, err)
	}
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s: %s", ErrDamaged, db.path, summarize(problems))
	}
	err = guard("recovering "+db.path, func() error {
		return db.bolt.Update(func(tx *bolt.Tx) error {
			for _, b := range allBuckets {
				if _, err := tx.CreateBucketIfNotExists(b); err != nil {
					return err
				}
			}
			if err := db.openOutbox(tx); err != nil {
				return err
			}
			if tx.Bucket(bucketMeta).Get(metaFormat) == nil {
				// A file from before versions has format 1's layout;
				// migrateRecords moves it on.
				if err := tx.Bucket(bucketMeta).Put(metaFormat, []byte("1")); err != nil {
					return err
				}
			}
			var err error
			if db.st, err = loadState(tx); err != nil {
				return err
			}
			if err := db.st.loadFired(tx, db.now()); err != nil {
				return err
			}
			if err := db.st.loadSeen(tx); err != nil {
				return err
			}
			if db.recovered, err = db.recover(tx); err != nil {
				return err
			}
			if err := db.carryGlobal(tx); err != nil {
				return err
			}
			return db.st.flush(tx)
		})
	})
	if err != nil {
		return fmt.Errorf("storage: recovery: %w", err)
	}
	db.st.committed()
	db.auth = newAuthView(db.st)
	if err := db.migrateRecords(); err != nil {
		return fmt.Errorf("storage: migrating usage records to format %d: %w", FormatVersion, err)
	}
	return nil
}

// createLedger writes a new, empty ledger (every bucket and the format
// version) to a temporary file and links it in place, so the path exists
// only as a complete ledger: a crash half way leaves no file, which the
// next start creates again, never a file that looks damaged. Link, unlike
// rename, fails if another process created the file meanwhile.
func createLedger(path string, noSync bool) error {
	tmp := fmt.Sprintf("%s.new-%d", path, os.Getpid())
	_ = os.Remove(tmp)
	defer os.Remove(tmp)
	bdb, err := bolt.Open(tmp, 0o600, &bolt.Options{Timeout: time.Second, NoSync: noSync})
	if err != nil {
		return fmt.Errorf("storage: creating %s: %w", path, err)
	}
	err = bdb.Update(func(tx *bolt.Tx) error {
		for _, b := range allBuckets {
			if _, err := tx.CreateBucket(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(metaFormat, []byte(strconv.Itoa(FormatVersion)))
	})
	if cerr := bdb.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("storage: creating %s: %w", path, err)
	}
	if err := os.Link(tmp, path); err != nil && !errors.Is(err, os.ErrExist) {
		return fmt.Errorf("storage: creating %s: %w", path, err)
	}
	return syncDir(filepath.Dir(path))
}

// syncDir makes a new name in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("storage: %w", err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("storage: sync %s: %w", dir, err)
	}
	return nil
}

// guard runs fn and turns a panic, or a memory fault reading an mmap'd page
// of a damaged file (which SetPanicOnFault makes a panic instead of a
// crash), into an ErrDamaged error.
func guard(what string, fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: %v", ErrDamaged, what, r)
		}
	}()
	return fn()
}

// fault logs a panic recovered at run time at error level with its cause
// and returns the ErrDamaged the caller gets. A memory fault (the mapped
// file shrank or its disk failed) can strike while bbolt holds one of its
// locks, which it then never releases: from then on every call is refused
// at once, rather than waiting on that lock forever.
func (db *DB) fault(what string, r any) error {
	err := fmt.Errorf("%w: %s in %s panicked: %v", ErrDamaged, what, db.path, r)
	if _, isFault := r.(interface{ Addr() uintptr }); isFault {
		err = fmt.Errorf("%w; every later call is refused until hardcap restarts", err)
		db.broken.CompareAndSwap(nil, &err)
		db.wedged.Store(true)
	}
	db.log.Error().Err(err).Str("stack", string(debug.Stack())).
		Msg("storage fault: the call was refused; stop hardcap and run `hardcap db check`")
	return err
}

// Close stops taking writes, commits what is queued (settlements queued by
// SettleAsync too, whose callbacks run before it returns), and closes the
// file.
func (db *DB) Close() error {
	db.closeMu.Lock()
	if db.closed {
		db.closeMu.Unlock()
		return nil
	}
	db.closed = true
	close(db.ops)
	db.closeMu.Unlock()
	for done := false; !done; {
		select {
		case <-db.writerDone:
			<-db.dispatchDone
			done = true
		case <-time.After(time.Second):
			// A writer stuck on a lock a fault left held never returns.
			done = db.wedged.Load()
		}
	}
	defer db.lock.release()
	if db.wedged.Load() {
		// A panic left one of bbolt's locks held; its Close would wait
		// forever. The process's exit frees the file.
		return *db.broken.Load()
	}
	return guard("closing "+db.path, db.bolt.Close)
}

// Recovered returns the usage records of the reservations that Open found
// unsettled and charged in full.
func (db *DB) Recovered() []budget.Record { return db.recovered }

// Path is the database file's path.
func (db *DB) Path() string { return db.path }

// CommitStats reports how many transactions the writer committed and how
// many operations they carried; ops/commits is the mean batch size.
func (db *DB) CommitStats() (commits, ops uint64) {
	return db.stats.commits.Load(), db.stats.ops.Load()
}

// view runs fn in a read-only transaction. Reads do not go through the
// writer: bbolt lets them run beside it.
//
// A panic or a memory fault inside it (a damaged page) is logged and
// returned as ErrDamaged; bbolt's View rolls the transaction back on the way
// out.
func (db *DB) view(fn func(tx *bolt.Tx) error) (err error) {
	db.closeMu.RLock()
	defer db.closeMu.RUnlock()
	if db.closed {
		return ErrClosed
	}
	if err := db.broken.Load(); err != nil {
		return *err
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = db.fault("a read", r)
		}
	}()
	return db.bolt.View(fn)
}

// WriteBackup writes a consistent copy of the whole database to w from one
// read transaction, so requests go on being served while it runs. size, if
// not nil, is called with the copy's length in bytes before the first byte
// is written.
func (db *DB) WriteBackup(w io.Writer, size func(int64)) (int64, error) {
	var n int64
	err := db.view(func(tx *bolt.Tx) error {
		if size != nil {
			size(tx.Size())
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

// background is the context for writes that must finish even when the
// request that caused them is gone.
var background = context.Background()

var _ budget.Ledger = (*DB)(nil)

// carryGlobal keeps a change of the global budget's period (the config
// edited between two starts) from handing the global budget a fresh window:
// from $100 a month with $90 spent today to $50 a day must not grant $50
// more today. When the period differs from the one the last start recorded
// (or none was recorded), the current window's committed becomes at least
// the charges recorded since the window began (by end time, which can only
// count more); what that adds is counted in unrecorded_usd, so the check of
// global counters against the records still holds. Recovery has settled
// every open reservation by now, so only committed spend needs carrying.
func (db *DB) carryGlobal(tx *bolt.Tx) error {
	meta := tx.Bucket(bucketMeta)
	p := db.global.Period
	if p == "" {
		p = budget.Total
	}
	if string(meta.Get(metaGlobalPeriod)) == string(p) {
		return nil
	}
	now := db.now()
	key := budget.Budget{Scope: budget.GlobalScope, Limit: db.global}.Key(now, db.loc)
	charged, err := chargedSince(tx, p.Start(now, db.loc), nil)
	if err != nil {
		return err
	}
	if sp := db.st.spend[key]; charged > sp.Committed {
		if err := addCounter(meta, metaUnrecorded, uint64(charged-sp.Committed)); err != nil {
			return err
		}
		sp.Committed = charged
		if err := db.setSpend(key, sp); err != nil {
			return err
		}
	}
	return meta.Put(metaGlobalPeriod, []byte(p))
}
