package storage

import (
	"encoding/json"
	"time"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// OpenReservations returns every reservation not yet settled.
func (db *DB) OpenReservations() ([]budget.Reservation, error) {
	var out []budget.Reservation
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketReservations).ForEach(func(k, v []byte) error {
			res, err := decodeReservation(k, v, false)
			if err != nil {
				return err
			}
			out = append(out, res)
			return nil
		})
	})
	return out, err
}

// Status is a summary of the books.
type Status struct {
	// KillAll is the global kill switch.
	KillAll bool `json:"kill_all"`
	// Global is the global budget's limit and current window.
	Global BudgetStatus `json:"global"`
	// OpenReservations counts requests in flight.
	OpenReservations int `json:"open_reservations"`
	// Overshoots counts settlements that charged more than they reserved;
	// OvershootUSD is the sum of the excess. Both should stay zero.
	Overshoots   uint64       `json:"overshoots"`
	OvershootUSD budget.Money `json:"overshoot_usd"`
}

// BudgetStatus is a budget's limit and the spend of its current window.
type BudgetStatus struct {
	Scope  budget.Scope `json:"scope"`
	Limit  budget.Limit `json:"limit"`
	Window string       `json:"window"`
	budget.Spend
}

// Status summarizes the books at the current time.
func (db *DB) Status() (Status, error) {
	var s Status
	now := db.now()
	err := db.view(func(tx *bolt.Tx) error {
		s.KillAll = killedAll(tx)
		s.Global = db.budgetStatus(tx, budget.GlobalScope, db.global, now)
		s.OpenReservations = tx.Bucket(bucketReservations).Stats().KeyN
		meta := tx.Bucket(bucketMeta)
		s.Overshoots = getCounter(meta, metaOvershoots)
		s.OvershootUSD = budget.Money(getCounter(meta, metaOverAmount))
		return nil
	})
	return s, err
}

// BudgetStatus returns the limit and current spend of a scope's budget.
func (db *DB) BudgetStatus(scope budget.Scope) (BudgetStatus, error) {
	var bs BudgetStatus
	err := db.view(func(tx *bolt.Tx) error {
		l, err := db.limitOf(tx, scope)
		if err != nil {
			return err
		}
		bs = db.budgetStatus(tx, scope, l, db.now())
		return nil
	})
	return bs, err
}

func (db *DB) budgetStatus(tx *bolt.Tx, scope budget.Scope, l budget.Limit, now time.Time) BudgetStatus {
	b := budget.Budget{Scope: scope, Limit: l}
	key := b.Key(now, db.loc)
	p := l.Period
	if p == "" {
		p = budget.Total
	}
	sp := getSpend(tx, key)
	sp.Committed += db.spentElsewhere(key)
	return BudgetStatus{Scope: scope, Limit: l, Window: p.Window(now, db.loc), Spend: sp}
}

// storedLimit is a limit as the limits bucket holds it.
//
// Files written before zero ceilings existed hold only limit_usd, where 0
// meant no limit; they must keep that meaning without a migration. So a
// ceiling is now written to ceiling_usd, whose presence alone says "capped"
// (zero included), and an absent ceiling_usd falls back to the old reading
// of limit_usd. limit_usd is still written, with at least 1 nano-USD for a
// zero ceiling, so that an older hardcap opening a newer file keeps every
// ceiling instead of reading a zero one as unlimited.
type storedLimit struct {
	Legacy  budget.Money  `json:"limit_usd"`
	Ceiling *budget.Money `json:"ceiling_usd,omitempty"`
	Period  budget.Period `json:"period"`
}

func encodeLimit(l budget.Limit) ([]byte, error) {
	s := storedLimit{Period: l.Period}
	if c, ok := l.Ceiling(); ok {
		s.Ceiling = &c
		s.Legacy = max(c, 1)
	}
	return json.Marshal(s)
}

func decodeLimit(v []byte) (budget.Limit, error) {
	var s storedLimit
	if err := json.Unmarshal(v, &s); err != nil {
		return budget.Limit{}, err
	}
	switch {
	case s.Ceiling != nil:
		return budget.Ceiling(max(*s.Ceiling, 0), s.Period), nil
	case s.Legacy > 0:
		return budget.Ceiling(s.Legacy, s.Period), nil
	}
	return budget.NoLimit(s.Period), nil
}
