package storage

import (
	"context"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// SetAlerts replaces the alert policy (Options.Alerts: thresholds,
// anomaly rules, per-project overrides) from the next operation the writer
// runs on: it is swapped by the writer itself, between two operations, so
// a reservation or settlement is judged by one policy, whole. A policy
// that raises something, after one that raised nothing, starts with the
// spend rates read again from the disk (settlements kept none meanwhile).
func (db *DB) SetAlerts(ctx context.Context, p alert.Policy) error {
	on := alerting(p)
	err := db.update(ctx, func(tx *bolt.Tx) error {
		st := db.st
		oldPolicy, oldOn, oldRates := db.policy, db.alerting, st.detect.rates
		st.undo = append(st.undo, undo{kind: undoFunc, fn: func() {
			db.policy, db.alerting, st.detect.rates = oldPolicy, oldOn, oldRates
		}})
		if on && !oldOn {
			st.detect.rates = map[budget.Scope]*alert.Rate{}
		}
		db.policy, db.alerting = p, on
		return nil
	})
	if err == nil && on && !db.pruning.Swap(true) {
		go db.pruneAlerts(time.Hour)
	}
	return err
}

// alerting reports whether a policy raises anything, so that settlements
// keep spend rates.
func alerting(p alert.Policy) bool {
	return len(p.Thresholds) > 0 || len(p.Rules) > 0 || len(p.Projects) > 0
}

// SetRetention replaces Options.Retention: the hourly roll-up uses it from
// its next run on; zero keeps every record from now on.
func (db *DB) SetRetention(d time.Duration) { db.retention.Store(int64(max(d, 0))) }
