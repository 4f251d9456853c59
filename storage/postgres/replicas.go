package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/hardcap/hardcap/budget"
)

// Renew extends the replica's lease on its slices to lease from the
// store's clock, and records the contact. A forgotten replica gets
// ErrForgotten: it must stop spending at once.
func (s *Store) Renew(ctx context.Context, lease time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	tag, err := s.pool.Exec(ctx, `UPDATE hardcap.replicas
		SET seen = now(), lease_until = now() + $2::bigint * interval '1 millisecond'
		WHERE id = $1 AND forgotten IS NULL`, s.replica, lease.Milliseconds())
	if err != nil {
		return fmt.Errorf("postgres: renew lease: %w", s.scrub(err))
	}
	if tag.RowsAffected() == 0 {
		return ErrForgotten
	}
	return nil
}

// Release ends the replica's lease (a clean stop, after it gave its
// slices back).
func (s *Store) Release(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `UPDATE hardcap.replicas SET seen = now(), lease_until = now() WHERE id = $1`, s.replica); err != nil {
		return fmt.Errorf("postgres: release lease: %w", s.scrub(err))
	}
	return nil
}

// Slices returns this replica's slices by window key.
func (s *Store) Slices(ctx context.Context) (map[string]Slice, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT sl.key, w.scope, sl.granted, sl.committed FROM hardcap.slices sl
		JOIN hardcap.windows w ON w.key = sl.key WHERE sl.replica = $1`, s.replica)
	if err != nil {
		return nil, fmt.Errorf("postgres: slices: %w", s.scrub(err))
	}
	defer rows.Close()
	out := make(map[string]Slice)
	for rows.Next() {
		var key, scope string
		var granted, committed int64
		if err := rows.Scan(&key, &scope, &granted, &committed); err != nil {
			return nil, fmt.Errorf("postgres: slices: %w", s.scrub(err))
		}
		out[key] = Slice{Granted: budget.Money(granted), Committed: budget.Money(committed), Scope: budget.Scope(scope)}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: slices: %w", s.scrub(err))
	}
	return out, nil
}

// ReplicaStatus is one replica as the cluster store knows it.
type ReplicaStatus struct {
	ID      string    `json:"id"`
	Started time.Time `json:"started"`
	// Seen is its last contact; LeaseUntil the end of its lease (in the
	// past: it stopped, or it lost contact and has stopped spending).
	Seen       time.Time  `json:"last_contact"`
	LeaseUntil time.Time  `json:"lease_until"`
	Forgotten  *time.Time `json:"forgotten,omitempty"`
	// Live says its lease has not ended, by the store's clock.
	Live bool `json:"live"`
	// Held is what its slices hold beyond what it folded in (counted as
	// spent until it folds or is forgotten); Committed what it folded in.
	Held      budget.Money `json:"held_usd"`
	Committed budget.Money `json:"committed_usd"`
	Slices    int          `json:"slices"`
}

// Replicas lists every replica the store knows, by id.
func (s *Store) Replicas(ctx context.Context) ([]ReplicaStatus, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, `
SELECT r.id, r.started, r.seen, r.lease_until, r.forgotten, r.lease_until > now(),
       coalesce(sum(sl.granted - sl.committed), 0)::bigint, coalesce(sum(sl.committed), 0)::bigint,
       count(sl.key)
FROM hardcap.replicas r LEFT JOIN hardcap.slices sl ON sl.replica = r.id
GROUP BY r.id ORDER BY r.id`)
	if err != nil {
		return nil, fmt.Errorf("postgres: replicas: %w", s.scrub(err))
	}
	defer rows.Close()
	var out []ReplicaStatus
	for rows.Next() {
		var r ReplicaStatus
		var held, committed int64
		if err := rows.Scan(&r.ID, &r.Started, &r.Seen, &r.LeaseUntil, &r.Forgotten, &r.Live, &held, &committed, &r.Slices); err != nil {
			return nil, fmt.Errorf("postgres: replicas: %w", s.scrub(err))
		}
		r.Held, r.Committed = budget.Money(held), budget.Money(committed)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("postgres: replicas: %w", s.scrub(err))
	}
	return out, nil
}

// LiveReplicas counts the replicas whose lease has not ended.
func (s *Store) LiveReplicas(ctx context.Context) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var n int
	if err := s.pool.QueryRow(ctx, `SELECT count(*) FROM hardcap.replicas WHERE lease_until > now() AND forgotten IS NULL`).Scan(&n); err != nil {
		return 0, fmt.Errorf("postgres: replicas: %w", s.scrub(err))
	}
	return n, nil
}
