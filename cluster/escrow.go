package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/storage/postgres"
	"github.com/rs/zerolog"
)

// Escrow is a replica's ledger in a cluster: it reserves each request in
// the replica's own ledger (storage in escrow mode) against budget slices
// granted by the cluster store, asks for a slice while a request waits
// only when the slices held do not cover it, and in the background tops
// slices up before they run dry, folds settled spend into the store and
// gives back what a window no longer needs. It is a budget.Ledger.
type Escrow struct {
	pg  *postgres.Store
	db  *storage.DB
	log zerolog.Logger
	// global is the global budget's limit, which the config sets.
	global budget.Limit
	opts   EscrowOptions

	// keys holds the *window of each window key with a slice.
	keys sync.Map

	// trips counts statements sent to the store, for the benchmarks and
	// cluster status.
	trips atomic.Uint64
	// lost says the last call to the store failed: a grant is then not
	// tried while a request waits, only in the background. forgotten
	// says hardcap cluster forget charged this replica: it never spends
	// or asks for anything again.
	lost      atomic.Bool
	forgotten atomic.Bool

	// onReplicas is Options.OnReplicas; catchUp brings the tenancy in
	// step after a lost contact, before the lease is extended.
	onReplicas func(live int)
	catchUp    func(context.Context) error
	// published waits until this replica's tenancy changes are in the
	// store (a limit just changed here binds the grant that follows).
	published func(context.Context) error
	// kick wakes the background loop at once (a pressed window).
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

// EscrowOptions tunes an Escrow; the zero value is the default.
type EscrowOptions struct {
	// Lease is how long the replica may spend its slices after its last
	// contact with the store; default 10s. Margin is taken off it for
	// clock skew; default 2s. Renew is how often the lease is renewed;
	// default Lease/5.
	Lease, Margin, Renew time.Duration
	// Ahead is how much spend a slice is sized to cover at the window's
	// recent rate; default 5s.
	Ahead time.Duration
	// Tick is the background loop's period; default 250ms.
	Tick time.Duration
	// FoldEvery is how often settled spend is folded in when it changed;
	// default 5s.
	FoldEvery time.Duration
	// Idle is how long a window goes unused before its slice is given
	// back; default 30s.
	Idle time.Duration
}

func (o *EscrowOptions) defaults() {
	if o.Lease <= 0 {
		o.Lease = 10 * time.Second
	}
	if o.Margin <= 0 || o.Margin >= o.Lease {
		o.Margin = o.Lease / 5
	}
	if o.Renew <= 0 || o.Renew >= o.Lease-o.Margin {
		o.Renew = o.Lease / 5
	}
	if o.Ahead <= 0 {
		o.Ahead = 5 * time.Second
	}
	if o.Tick <= 0 {
		o.Tick = 250 * time.Millisecond
	}
	if o.FoldEvery <= 0 {
		o.FoldEvery = 5 * time.Second
	}
	if o.Idle <= 0 {
		o.Idle = 30 * time.Second
	}
}

// window is what the escrow keeps of one budget window.
type window struct {
	key   string
	scope budget.Scope
	// mu serializes the window's calls to the store (grants, folds), so
	// that the allowance set after each is the store's figure.
	mu sync.Mutex
	// dead says the window is no longer tended (w.mu held to change or
	// read it): a new one stands for its key.
	dead bool
	// waiting counts requests waiting for mu to ask for a slice; syncs
	// the grants requests waited for since the last tick.
	waiting atomic.Int64
	syncs   atomic.Int64
	// gen counts grants, so that a request that waited for mu while
	// another grant landed reserves again before asking for more.
	gen atomic.Uint64
	// reserved sums what requests reserved in the window (for its rate);
	// worst is the largest single reservation seen.
	reserved atomic.Int64
	worst    atomic.Int64
	used     atomic.Int64 // unix ns of the last reservation
	// pressed is when (unix ns) another replica last found no room for
	// a grant in the window: its slice is then sized to nothing ahead.
	pressed atomic.Int64
	// Under mu: the rate in nano-USD per second, the reserved sum at the
	// last tick, and the last fold.
	rate          float64
	lastReserved  int64
	lastFold      time.Time
	lastTend      time.Time
	reclaimFailed time.Time
	foldedSpent   budget.Money
	foldedGrant   budget.Money
}

// minSlice is the smallest slice asked for ahead of need: a millionth of
// a dollar's worth of statements is not worth a round trip.
const minSlice = budget.Money(1000) // 1 µUSD

// NewEscrow returns the escrow of db (opened with storage.Options.Escrow)
// over pg. Start it before serving.
func NewEscrow(pg *postgres.Store, db *storage.DB, global budget.Limit, log zerolog.Logger, opts EscrowOptions) *Escrow {
	opts.defaults()
	return &Escrow{
		pg: pg, db: db, log: log, global: global, opts: opts,
		kick: make(chan struct{}, 1),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
}

// Start sets the global limit in the store, folds in what this replica's
// ledger spent (a replay after a crash: its spend is counted once, and
// the unused part of its slices is given back), takes the lease, and
// starts the background loop.
func (e *Escrow) Start(ctx context.Context) error {
	if err := e.setLimit(ctx, budget.GlobalScope); err != nil {
		return err
	}
	slices, err := e.pg.Slices(ctx)
	e.trip()
	if err != nil {
		return err
	}
	keys := make([]string, 0, len(slices))
	for k := range slices {
		keys = append(keys, k)
	}
	local, err := e.db.Allowances(ctx, keys...)
	if err != nil {
		return err
	}
	for _, a := range local {
		sl := slices[a.Key]
		if sl.Committed > a.Committed {
			// The store counts spend this ledger no longer has (a
			// restored backup, a salvage): it stays counted.
			if a, err = e.db.Adopt(ctx, a.Key, sl.Committed); err != nil {
				return err
			}
		}
		w := e.window(a.Key, sl.Scope)
		w.mu.Lock()
		err := e.fold(ctx, w, a, true)
		w.mu.Unlock()
		if err != nil {
			return err
		}
	}
	if err := e.renew(ctx); err != nil {
		return err
	}
	lctx, cancel := context.WithCancel(context.Background())
	go func() { <-e.stop; cancel() }()
	go e.pg.ListenPressure(lctx, e.pressed)
	go e.run()
	return nil
}

// pressed is told of a window another replica found no room in: the
// slice held here beyond open reservations is given back at once.
func (e *Escrow) pressed(key string) {
	v, ok := e.keys.Load(key)
	if !ok {
		return
	}
	v.(*window).pressed.Store(time.Now().UnixNano())
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// pressure says how long another replica's pressure on a window lasts.
const pressure = 5 * time.Second

// reclaim waits a little for other replicas to give back what a window's
// slices hold unused, when they hold any, and asks again for want, or at
// least lack (w.mu held). ok says the grant landed.
func (e *Escrow) reclaim(ctx context.Context, w *window, want, lack budget.Money) (ok bool, err error) {
	if time.Since(w.reclaimFailed) < time.Second {
		// A reclaim of this window found nothing given back within the
		// last second: ask once more without waiting, so that requests
		// queued behind it are not held 200 ms each.
		_, err := e.grant(ctx, w, want, lack)
		if errors.Is(err, postgres.ErrNoRoom) {
			return false, nil
		}
		return err == nil, err
	}
	defer func() {
		if !ok {
			w.reclaimFailed = time.Now()
		}
	}()
	unclaimed, err := e.pg.Unclaimed(ctx, w.key)
	e.trip()
	if err != nil || unclaimed <= minSlice {
		return false, err
	}
	if err := e.pg.Press(ctx, w.key); err != nil {
		return false, err
	}
	e.trip()
	for i := 1; i <= 4; i++ {
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(time.Duration(i) * 20 * time.Millisecond):
		}
		_, err := e.grant(ctx, w, want, lack)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, postgres.ErrNoRoom) {
			return false, err
		}
	}
	return false, nil
}

// Close gives back every slice above what is spent (once the requests in
// flight have settled: call it after the proxy drained), folds the spend
// in, and ends the lease.
func (e *Escrow) Close(ctx context.Context) error {
	select {
	case <-e.stop:
	default:
		close(e.stop)
	}
	<-e.done
	e.db.SetLease(time.Time{})
	var errs []error
	for _, w := range e.windows() {
		w.mu.Lock()
		a, err := e.db.TakeBack(ctx, w.key, 0)
		if err == nil {
			err = e.fold(ctx, w, a, true)
		}
		w.mu.Unlock()
		if err != nil {
			errs = append(errs, err)
		}
	}
	if err := e.pg.Release(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Reserve reserves r in the replica's ledger, asking the store for the
// slices it lacks when the ones held do not cover r's worst case.
func (e *Escrow) Reserve(ctx context.Context, r budget.Request, q budget.Quote) (budget.Reservation, error) {
	res, err := e.db.Reserve(ctx, r, q)
	var unreachable error
	// Each attempt but the last follows a grant that landed; the last
	// reserves what the slices hold.
	const attempts = 32
	for attempt := 0; attempt < attempts; attempt++ {
		var need *storage.NeedSlicesError
		if !errors.As(err, &need) {
			break
		}
		// Final once no window can get more; while another one did, the
		// request tries again, so that the refusal names a budget that is
		// really spent.
		final := attempt == attempts-1
		grew := false
		for _, n := range need.Needs {
			more, gerr := e.grantNow(ctx, n)
			if gerr != nil {
				unreachable = gerr
			}
			grew = grew || more
		}
		if !grew {
			final = true
		}
		if final {
			res, err = e.db.ReserveFinal(ctx, r, q)
			break
		}
		res, err = e.db.Reserve(ctx, r, q)
	}
	if err != nil {
		if unreachable != nil && errors.Is(err, budget.ErrExhausted) {
			// The slices held were short and the store could not be
			// asked: not a budget spent, a store out of reach.
			return budget.Reservation{}, fmt.Errorf("%w: %v", budget.ErrClusterUnavailable, unreachable)
		}
		return budget.Reservation{}, err
	}
	e.note(res)
	return res, nil
}

// Settle settles in the replica's ledger; the spend is folded into the
// store in the background.
func (e *Escrow) Settle(ctx context.Context, id string, s budget.Settlement) (budget.Record, error) {
	return e.db.Settle(ctx, id, s)
}

// SettleAsync is storage.DB's, so the proxy keeps its group commits.
func (e *Escrow) SettleAsync(id string, s budget.Settlement, done func(budget.Record, error)) {
	e.db.SettleAsync(id, s, done)
}

// Flush is storage.DB's.
func (e *Escrow) Flush(ctx context.Context) error { return e.db.Flush(ctx) }

// RoundTrips is the number of statements sent to the store so far.
func (e *Escrow) RoundTrips() uint64 { return e.trips.Load() }

// note counts a reservation in the rate of each of its windows.
func (e *Escrow) note(res budget.Reservation) {
	now := time.Now().UnixNano()
	for _, k := range res.Keys {
		v, ok := e.keys.Load(k)
		if !ok {
			continue // an unlimited budget: no slice
		}
		w := v.(*window)
		w.reserved.Add(int64(res.Amount))
		if int64(res.Amount) > w.worst.Load() {
			w.worst.Store(int64(res.Amount))
		}
		w.used.Store(now)
	}
}

// grantNow asks for the slice n lacks while its request waits. more says
// a reservation is worth trying again without ReserveFinal: a grant
// landed (this one or another request's meanwhile). err is set when the
// store could not be reached.
func (e *Escrow) grantNow(ctx context.Context, n storage.SliceNeed) (more bool, err error) {
	if e.forgotten.Load() {
		return false, postgres.ErrForgotten
	}
	if e.lost.Load() {
		// Not while a request waits: the store is out of reach until the
		// lease's renewal reaches it.
		return false, errors.New("the cluster store did not answer the last call")
	}
	w := e.window(n.Key, n.Scope)
	w.used.Store(time.Now().UnixNano())
	if int64(n.Worst) > w.worst.Load() {
		w.worst.Store(int64(n.Worst))
	}
	gen := w.gen.Load()
	w.waiting.Add(1)
	w.mu.Lock()
	w.waiting.Add(-1)
	defer func() { w.mu.Unlock() }()
	for w.dead {
		// No longer tended: two windows of one key must never call the
		// store at once.
		w.mu.Unlock()
		w = e.window(n.Key, n.Scope)
		w.mu.Lock()
		gen = w.gen.Load()
	}
	if w.gen.Load() != gen {
		return true, nil
	}
	// Enough for the requests queued behind this one too, and twice as
	// much ahead with each grant a request waited for since the last
	// tick, so that a burst is served by a few grants rather than one
	// each before the rate catches up.
	burst := budget.Money(1) << min(w.syncs.Add(1), 12)
	want := n.Short + e.target(w) + (budget.Money(w.waiting.Load())+burst)*n.Worst
	amount, err := e.grant(ctx, w, want, n.Short)
	if err == nil {
		return amount >= n.Short, nil
	}
	if !errors.Is(err, postgres.ErrNoRoom) {
		return false, unreachableOnly(err)
	}
	// Not enough left for the whole worst case: take what is left, so
	// that the request can be clamped to it.
	got, err := e.grantRest(ctx, w, n.Short)
	if err != nil && !errors.Is(err, postgres.ErrNoRoom) {
		return false, unreachableOnly(err)
	}
	if got >= n.Lack {
		return false, nil
	}
	// Still too little to run at all: other replicas may hold the rest
	// unused; ask them for it.
	if _, err := e.reclaim(ctx, w, n.Short-got, n.Lack-got); unreachableOnly(err) != nil {
		return false, err
	}
	return false, nil
}

// unreachableOnly is err unless it is a refusal of the store's own (no
// room, no limit), which is an answer, not a failure to reach it.
func unreachableOnly(err error) error {
	if err == nil || errors.Is(err, postgres.ErrNoRoom) || errors.Is(err, postgres.ErrNoLimit) {
		return nil
	}
	return err
}

// grant asks the store for a slice of w (w.mu held) and sets the
// allowance to the slice the store then holds.
func (e *Escrow) grant(ctx context.Context, w *window, want, least budget.Money) (budget.Money, error) {
	least = max(least, 1)
	want = max(want, least)
	e.waitPublished(ctx)
	amount, sl, err := e.pg.Grant(ctx, w.scope, w.key, want, least)
	e.trip()
	if errors.Is(err, postgres.ErrNoLimit) {
		if err := e.setLimit(ctx, w.scope); err != nil {
			return 0, err
		}
		amount, sl, err = e.pg.Grant(ctx, w.scope, w.key, want, least)
		e.trip()
	}
	return e.granted(ctx, w, amount, sl, err)
}

// grantRest asks for want or all the budget has left (w.mu held), and
// sets the allowance as grant does.
func (e *Escrow) grantRest(ctx context.Context, w *window, want budget.Money) (budget.Money, error) {
	e.waitPublished(ctx)
	amount, sl, err := e.pg.GrantRest(ctx, w.scope, w.key, max(want, 1))
	e.trip()
	return e.granted(ctx, w, amount, sl, err)
}

// waitPublished lets a budget changed on this replica a moment ago reach
// the store before a grant is made under the store's limit: a limit
// lowered here must bind the grant. Changes made on other replicas are in
// the store before they are here. Nothing waits when none is pending.
func (e *Escrow) waitPublished(ctx context.Context) {
	if e.published != nil {
		_ = e.published(ctx) // past its wait, the grant goes on: the store's limit is the one it knows
	}
}

// granted takes a grant's answer: the allowance becomes the slice the
// store holds (w.mu held).
func (e *Escrow) granted(ctx context.Context, w *window, amount budget.Money, sl postgres.Slice, err error) (budget.Money, error) {
	e.lost.Store(err != nil && unreachableOnly(err) != nil)
	if err != nil {
		return 0, err
	}
	if _, err := e.db.SetAllowance(ctx, w.key, sl.Granted); err != nil {
		return 0, err
	}
	w.gen.Add(1)
	w.foldedGrant = sl.Granted
	return amount, nil
}

// fold folds a's spend into the store and lowers the slice to a's
// allowance (w.mu held). give says to fold even when nothing changed.
func (e *Escrow) fold(ctx context.Context, w *window, a storage.Allowance, give bool) error {
	if !give && a.Committed == w.foldedSpent && a.Granted >= w.foldedGrant {
		return nil
	}
	keep := a.Granted
	sl, err := e.pg.Fold(ctx, w.key, a.Committed, keep)
	e.trip()
	e.lost.Store(unreachableOnly(err) != nil && !errors.Is(err, postgres.ErrBadAmount))
	if errors.Is(err, postgres.ErrBadAmount) && a.Granted == 0 {
		// Spend in a window the store never granted a slice of: an
		// unlimited budget's, or one from before the cluster.
		return nil
	}
	if err != nil {
		return err
	}
	if _, err := e.db.SetAllowance(ctx, w.key, sl.Granted); err != nil {
		return err
	}
	w.foldedSpent, w.foldedGrant, w.lastFold = a.Committed, sl.Granted, time.Now()
	e.db.SetElsewhere(w.key, sl.Elsewhere)
	return nil
}

// setLimit writes scope's limit, as this replica's ledger holds it, to
// the store: for a window whose scope the store has no limit for yet.
func (e *Escrow) setLimit(ctx context.Context, scope budget.Scope) error {
	if scope == budget.GlobalScope {
		// The config's: every replica must have the same.
		err := e.pg.SetLimit(ctx, scope, e.global)
		e.trip()
		return err
	}
	l, err := e.db.Limit(scope)
	if err != nil {
		return err
	}
	err = e.pg.EnsureLimit(ctx, scope, l)
	e.trip()
	return err
}

// renew renews the lease; the replica may spend until the renewal's
// start plus the lease, less the margin.
func (e *Escrow) renew(ctx context.Context) error {
	start := time.Now()
	if e.lost.Load() && e.catchUp != nil {
		// Back after a lost contact: a kill or revoke issued meanwhile
		// is applied before the lease lets this replica spend again.
		if err := e.catchUp(ctx); err != nil {
			return err
		}
	}
	err := e.pg.Renew(ctx, e.opts.Lease)
	e.trip()
	if errors.Is(err, postgres.ErrForgotten) {
		e.forgotten.Store(true)
		e.db.SetLease(time.Time{})
		return err
	}
	if err != nil {
		e.lost.Store(true)
		return err
	}
	e.lost.Store(false)
	e.db.SetLease(start.Add(e.opts.Lease - e.opts.Margin))
	if e.onReplicas != nil {
		n, err := e.pg.LiveReplicas(ctx)
		e.trip()
		if err == nil {
			e.onReplicas(n)
		}
	}
	return nil
}

// target is the slice w is sized to: Ahead's worth of spend at its
// recent rate, and at least a few of its largest reservations.
func (e *Escrow) target(w *window) budget.Money {
	if time.Since(time.Unix(0, w.pressed.Load())) < pressure {
		return 0
	}
	t := budget.Money(w.rate * e.opts.Ahead.Seconds())
	t = max(t, 4*budget.Money(w.worst.Load()), minSlice)
	return t
}

// run is the background loop: top-ups, folds, give-backs; the lease is
// renewed by its own loop (renewLoop), so that slow upkeep never delays it.
func (e *Escrow) run() {
	defer close(e.done)
	renewed := make(chan struct{})
	go func() {
		defer close(renewed)
		e.renewLoop()
	}()
	defer func() { <-renewed }()
	tick := time.NewTicker(e.opts.Tick)
	defer tick.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-tick.C:
		case <-e.kick:
		}
		if e.forgotten.Load() {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), e.opts.Renew*4)
		e.tend(ctx)
		cancel()
	}
}

// renewLoop renews the lease every Renew, and every Tick while the store
// is out of reach.
func (e *Escrow) renewLoop() {
	last := time.Now()
	tick := time.NewTicker(e.opts.Tick)
	defer tick.Stop()
	for {
		select {
		case <-e.stop:
			return
		case <-tick.C:
		}
		if e.forgotten.Load() || (time.Since(last) < e.opts.Renew && !e.lost.Load()) {
			continue
		}
		// As long as a renewal can still be of use: a slow store (or a
		// loaded machine) must not count as a lost one.
		ctx, cancel := context.WithTimeout(context.Background(), e.opts.Lease-e.opts.Margin)
		if err := e.renew(ctx); err != nil {
			if errors.Is(err, postgres.ErrForgotten) {
				e.log.Error().Msg("cluster: this replica was forgotten (hardcap cluster forget): it refuses every request; start it with a new replica_id and an empty data dir")
			} else {
				e.log.Warn().Err(err).Msg("cluster: the lease on this replica's budget slices was not renewed")
			}
		} else {
			last = time.Now()
		}
		cancel()
	}
}

// tend tops up, folds and gives back each window's slice.
func (e *Escrow) tend(ctx context.Context) {
	secs := e.opts.Tick.Seconds()
	now := time.Now()
	for _, w := range e.windows() {
		idle := now.Sub(time.Unix(0, w.used.Load())) > e.opts.Idle
		w.mu.Lock()
		r := w.reserved.Load()
		// An exponential average over about two seconds.
		inst := float64(r-w.lastReserved) / secs
		w.lastReserved = r
		w.rate += min(secs/2, 1) * (inst - w.rate)
		w.syncs.Store(0)
		pressed := now.Sub(time.Unix(0, w.pressed.Load())) < pressure
		if inst == 0 && !pressed && !idle && now.Sub(w.lastTend) < e.opts.FoldEvery {
			// Nothing reserved since the last tick: the slice needs
			// no top-up, and settled spend waits for the next fold.
			w.mu.Unlock()
			continue
		}
		w.lastTend = now
		done, err := e.tendOne(ctx, w, idle, now)
		if done {
			// Under w.mu, so that no call to the store is made through
			// this window again (see grantNow).
			w.dead = true
			e.keys.CompareAndDelete(w.key, w)
			if err := e.db.Drop(ctx, w.key); err != nil {
				e.log.Debug().Err(err).Str("window", w.key).Msg("cluster: allowance not dropped")
			}
		}
		w.mu.Unlock()
		if err != nil && !errors.Is(err, context.Canceled) {
			e.log.Debug().Err(err).Str("window", w.key).Msg("cluster: slice upkeep failed; retried next tick")
		}
	}
}

// tendOne is tend's work on one window, with w.mu held. done says the
// window is idle, fully folded and holds nothing: it is no longer tended.
func (e *Escrow) tendOne(ctx context.Context, w *window, idle bool, now time.Time) (done bool, err error) {
	// The allowance as it is now, read under w.mu (a take-back that keeps
	// everything): a fold lowers the store's slice to it, so it must not
	// be older than the last grant.
	a, err := e.db.TakeBack(ctx, w.key, budget.MaxMoney)
	if err != nil {
		return false, err
	}
	target := e.target(w)
	switch {
	case idle:
		if a.Granted > a.Committed+a.Reserved {
			// Unused for a while (or a window that has ended): give
			// back all but what its open reservations hold.
			if a, err = e.db.TakeBack(ctx, w.key, 0); err != nil {
				return false, err
			}
			return false, e.fold(ctx, w, a, true)
		}
		if err := e.fold(ctx, w, a, false); err != nil {
			return false, err
		}
		return a.Reserved == 0, nil
	case a.Room() < target/2 && !e.lost.Load():
		_, err = e.grant(ctx, w, target-a.Room(), 1)
		if err != nil && !errors.Is(err, postgres.ErrNoRoom) {
			return false, err
		}
		if now.Sub(w.lastFold) < e.opts.FoldEvery {
			return false, nil
		}
		if a, err = e.db.TakeBack(ctx, w.key, budget.MaxMoney); err != nil {
			return false, err
		}
		return false, e.fold(ctx, w, a, false)
	case a.Room() > 3*target+minSlice || (target == 0 && a.Room() > 0):
		// (target 0: another replica is pressed for this window.)
		// Far more than the window's rate needs: give back the excess.
		if a, err = e.db.TakeBack(ctx, w.key, a.Committed+a.Reserved+target); err != nil {
			return false, err
		}
		return false, e.fold(ctx, w, a, true)
	case now.Sub(w.lastFold) >= e.opts.FoldEvery:
		return false, e.fold(ctx, w, a, false)
	}
	return false, nil
}

// window returns the escrow's state of key, made on first use.
func (e *Escrow) window(key string, scope budget.Scope) *window {
	if v, ok := e.keys.Load(key); ok {
		return v.(*window)
	}
	w := &window{key: key, scope: scope}
	w.used.Store(time.Now().UnixNano())
	v, _ := e.keys.LoadOrStore(key, w)
	return v.(*window)
}

// windows lists the windows the escrow tends.
func (e *Escrow) windows() []*window {
	var out []*window
	e.keys.Range(func(_, v any) bool {
		out = append(out, v.(*window))
		return true
	})
	return out
}

func (e *Escrow) trip() { e.trips.Add(1) }

// State is what the escrow tells of itself (hardcap status).
type State struct {
	Replica string `json:"replica"`
	// LeaseLeft is how long the replica may go on spending without
	// another contact with the store; zero: it has stopped.
	LeaseLeft   time.Duration `json:"-"`
	LeaseLeftMS int64         `json:"lease_left_ms"`
	Reachable   bool          `json:"store_reachable"`
	Windows     int           `json:"windows"`
	RoundTrips  uint64        `json:"round_trips"`
	// RecordsToShip counts usage records not yet in the store (Node.State).
	RecordsToShip int `json:"records_to_ship"`
}

// State reports the lease, the windows tended and the round trips.
func (e *Escrow) State() State {
	left := max(time.Until(e.db.Lease()), 0)
	return State{
		Replica: e.pg.Replica(), LeaseLeft: left, LeaseLeftMS: left.Milliseconds(),
		Reachable: !e.lost.Load(), Windows: len(e.windows()), RoundTrips: e.trips.Load(),
	}
}
