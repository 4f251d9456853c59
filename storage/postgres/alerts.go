package postgres

import (
	"context"
	"fmt"
)

// ClaimAlert claims the delivery of the alert with dedupe key key for this
// replica: true for the first replica of the cluster to claim it (and
// for its own later claims, a delivery retried), false for every other
// replica, so an alert every replica raises is delivered once. A replica that claimed an alert
// and crashed before delivering it loses it: deliver at most once.
func (s *Store) ClaimAlert(ctx context.Context, key string) (bool, error) {
	if key == "" {
		return false, ErrNoAlertKey
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// The claimant's own repeat (a delivery retried) is answered true
	// again: the row is "updated" only where it is this replica's.
	tag, err := s.pool.Exec(ctx, `INSERT INTO hardcap.alerts_fired (dedupe_key, replica) VALUES ($1, $2)
		ON CONFLICT (dedupe_key) DO UPDATE SET at = hardcap.alerts_fired.at WHERE hardcap.alerts_fired.replica = EXCLUDED.replica`, key, s.replica)
	if err != nil {
		return false, fmt.Errorf("postgres: claim alert: %w", s.scrub(err))
	}
	return tag.RowsAffected() == 1, nil
}
