package storage

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// Escrow mode (Options.Escrow) is how a replica of a cluster reserves: the
// money of each limited budget window it may spend is a slice granted by
// the cluster store, mirrored here as the window's allowance, and a
// reservation fits only when the window's committed + reserved spend, with
// it, stays within the allowance. The allowances live in the writer's
// memory (the cluster store is their record): they change only through
// the writer, so a reservation and a take-back never use the same money.

// SliceNeed is one budget window whose allowance does not cover a
// request's worst case.
type SliceNeed struct {
	Scope budget.Scope
	Key   string
	// Short is what the allowance lacks for the request's worst case;
	// Worst is that worst case. Lack is what it lacks before the request
	// can run at all: Short under Options.OnLow reject, else what it
	// lacks for the least the request may be clamped to (often nothing).
	Short, Worst, Lack budget.Money
}

// NeedSlicesError is returned by Reserve in escrow mode when an allowance
// is short; the caller asks the cluster store for more and reserves again,
// with ReserveFinal once it can get no more.
type NeedSlicesError struct{ Needs []SliceNeed }

func (e *NeedSlicesError) Error() string {
	var b strings.Builder
	b.WriteString("storage: budget slices short:")
	for _, n := range e.Needs {
		fmt.Fprintf(&b, " %s by %s USD;", budget.Clip(string(n.Scope)), n.Short)
	}
	return b.String()
}

// Allowance is a replica's view of one window in escrow mode.
type Allowance struct {
	Key string
	// Granted is the allowance; Committed and Reserved the window's spend
	// in this replica's ledger.
	Granted, Committed, Reserved budget.Money
}

// Room is what the allowance leaves for new reservations, never negative.
func (a Allowance) Room() budget.Money {
	return max(a.Granted-a.Committed-a.Reserved, 0)
}

// ReserveFinal is Reserve in escrow mode once the allowances can grow no
// more: a request the allowances do not cover is clamped or refused as a
// request over its budget is, never answered with a NeedSlicesError.
func (db *DB) ReserveFinal(ctx context.Context, req budget.Request, q budget.Quote) (budget.Reservation, error) {
	return db.reserveOp(ctx, req, q, true)
}

// SetAllowance sets the allowance of window key to granted, as the
// cluster store holds it after a grant or a fold.
func (db *DB) SetAllowance(ctx context.Context, key string, granted budget.Money) (Allowance, error) {
	if !db.escrow {
		return Allowance{}, fmt.Errorf("storage: not in escrow mode")
	}
	var a Allowance
	err := db.update(ctx, func(*bolt.Tx) error {
		db.allow[key] = max(granted, 0)
		a = db.allowance(key)
		return nil
	})
	return a, err
}

// Adopt makes committed, what the cluster store counts as this
// replica's spend in window key, the floor of the window's committed
// spend here: a ledger restored from an older backup or salvaged with
// records lost must neither spend that money again nor fold a smaller
// figure. The difference is kept in memory (the store holds it) and
// counted in every Allowance and reservation of the window.
func (db *DB) Adopt(ctx context.Context, key string, committed budget.Money) (Allowance, error) {
	if !db.escrow {
		return Allowance{}, fmt.Errorf("storage: not in escrow mode")
	}
	var a Allowance
	err := db.update(ctx, func(*bolt.Tx) error {
		if gap := committed - db.st.spend[key].Committed - db.base[key]; gap > 0 {
			db.base[key] += gap
		}
		a = db.allowance(key)
		return nil
	})
	return a, err
}

// SetElsewhere records what the rest of the cluster committed in window
// key (as of the last fold), so that budget figures and threshold alerts
// show the cluster's spend, not only this replica's. It never enters a
// reservation's check: the allowance does that.
func (db *DB) SetElsewhere(key string, m budget.Money) {
	db.elsewhereMu.Lock()
	defer db.elsewhereMu.Unlock()
	if m <= 0 {
		delete(db.elsewhere, key)
		return
	}
	db.elsewhere[key] = m
}

// spentElsewhere is SetElsewhere's figure for key.
func (db *DB) spentElsewhere(key string) budget.Money {
	if !db.escrow {
		return 0
	}
	db.elsewhereMu.Lock()
	defer db.elsewhereMu.Unlock()
	return db.elsewhere[key]
}

// Drop forgets the allowance of window key when its slice holds nothing
// beyond its spend: a window no longer used (an ended period) leaves no
// entry behind. A later grant sets it again from the store's figure.
func (db *DB) Drop(ctx context.Context, key string) error {
	return db.update(ctx, func(*bolt.Tx) error {
		if a := db.allowance(key); a.Reserved == 0 && a.Granted <= a.Committed {
			delete(db.allow, key)
		}
		return nil
	})
}

// TakeBack lowers the allowance of window key to keep, or to what its
// spend in this ledger holds when that is more, before the caller gives
// the difference back to the cluster store: from the moment it returns, no
// reservation can use the money given back.
func (db *DB) TakeBack(ctx context.Context, key string, keep budget.Money) (Allowance, error) {
	if !db.escrow {
		return Allowance{}, fmt.Errorf("storage: not in escrow mode")
	}
	var a Allowance
	err := db.update(ctx, func(*bolt.Tx) error {
		a = db.allowance(key)
		floor := max(keep, a.Committed+a.Reserved, 0)
		if floor < a.Granted {
			db.allow[key] = floor
			a.Granted = floor
		}
		return nil
	})
	return a, err
}

// Allowances returns the windows with an allowance, and those of keys,
// with their spend in this ledger.
func (db *DB) Allowances(ctx context.Context, keys ...string) ([]Allowance, error) {
	var out []Allowance
	err := db.update(ctx, func(*bolt.Tx) error {
		seen := make(map[string]bool, len(db.allow)+len(keys))
		for k := range db.allow {
			seen[k] = true
			out = append(out, db.allowance(k))
		}
		for _, k := range keys {
			if !seen[k] {
				seen[k] = true
				out = append(out, db.allowance(k))
			}
		}
		return nil
	})
	return out, err
}

// SetLease sets the end of the replica's lease on its slices: from then
// on every reservation is refused with budget.ErrClusterUnavailable until
// a later lease is set. A zero time ends it now. In escrow mode the lease
// starts ended.
func (db *DB) SetLease(until time.Time) {
	db.lease.Store(&until)
}

// Lease is the end of the lease SetLease set; zero when none.
func (db *DB) Lease() time.Time {
	if until := db.lease.Load(); until != nil {
		return *until
	}
	return time.Time{}
}

// leaseEnded says the replica may no longer spend its slices. The lease
// is on the monotonic clock (time.Now), not Options.Now.
func (db *DB) leaseEnded() bool {
	until := db.lease.Load()
	return until == nil || !time.Now().Before(*until)
}

// allowance is key's Allowance (with the spend Adopt took on); writer
// only.
func (db *DB) allowance(key string) Allowance {
	sp := db.st.spend[key]
	return Allowance{Key: key, Granted: db.allow[key], Committed: sp.Committed + db.base[key], Reserved: sp.Reserved}
}

// escrowRoom narrows headroom to what the allowances of the limited
// budgets leave, and lists the windows that cannot cover worst when final
// is false; writer only.
func (db *DB) escrowRoom(budgets []budget.Budget, keys []string, spends []budget.Spend, q budget.Quote, worst budget.Money, final bool, headroom budget.Money, tightest int) (budget.Money, int, error) {
	if db.leaseEnded() {
		return 0, 0, fmt.Errorf("%w: this replica's lease on its budget slices has ended", budget.ErrClusterUnavailable)
	}
	var needs []SliceNeed
	for i, b := range budgets {
		if b.Limit.Unlimited() {
			continue
		}
		room := max(db.allow[keys[i]]-spends[i].Committed-db.base[keys[i]]-spends[i].Reserved, 0)
		if room < worst && !final {
			lack := worst - room
			if db.onLow != budget.Reject {
				// The least the request may be clamped to: worked out
				// only for a window that is short.
				least, err := q.Cost(min(max(q.MinOutput, 1), max(q.MaxOutput, 1)))
				if err != nil {
					return 0, 0, err
				}
				lack = max(least-room, 0)
			}
			needs = append(needs, SliceNeed{Scope: b.Scope, Key: keys[i], Short: worst - room, Worst: worst, Lack: lack})
		}
		if room < headroom {
			headroom, tightest = room, i
		}
	}
	if len(needs) > 0 {
		return 0, 0, &NeedSlicesError{Needs: needs}
	}
	return headroom, tightest, nil
}
