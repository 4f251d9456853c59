package postgres

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/jackc/pgx/v5"
)

// pressureChannel carries "replica|window key" when a replica finds no
// room left for a grant in a window: the others give back what their
// slices hold beyond their open reservations, so that the last of a
// budget is not stranded in an idle replica's slice.
const pressureChannel = "hardcap_escrow"

// Press tells the other replicas that window key has no room for a grant.
func (s *Store) Press(ctx context.Context, key string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if _, err := s.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, pressureChannel, s.replica+"|"+key); err != nil {
		return fmt.Errorf("postgres: press: %w", s.scrub(err))
	}
	return nil
}

// Unclaimed is what the slices of window key hold beyond what the
// replicas with a live lease folded in: money they may give back (or are
// spending right now). A replica away holds its slices until it returns
// or is forgotten.
func (s *Store) Unclaimed(ctx context.Context, key string) (budget.Money, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var n int64
	err := s.pool.QueryRow(ctx, `SELECT coalesce(sum(sl.granted - sl.committed), 0)::bigint FROM hardcap.slices sl
		JOIN hardcap.replicas r ON r.id = sl.replica
		WHERE sl.key = $1 AND sl.replica <> $2 AND r.lease_until > now() AND r.forgotten IS NULL`, key, s.replica).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("postgres: unclaimed: %w", s.scrub(err))
	}
	return budget.Money(n), nil
}

// ListenPressure calls pressed with each window key another replica
// pressed, until ctx ends; it reconnects after a lost connection.
func (s *Store) ListenPressure(ctx context.Context, pressed func(key string)) {
	for ctx.Err() == nil {
		err := s.listen(ctx, pressed)
		if ctx.Err() != nil {
			return
		}
		_ = err // the store is away: the lease and its log say so
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

func (s *Store) listen(ctx context.Context, pressed func(string)) error {
	cctx, cancel := context.WithTimeout(ctx, s.timeout)
	conn, err := pgx.ConnectConfig(cctx, s.pool.Config().ConnConfig.Copy())
	cancel()
	if err != nil {
		return s.scrub(err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pressureChannel); err != nil {
		return s.scrub(err)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return s.scrub(err)
		}
		from, key, ok := strings.Cut(n.Payload, "|")
		if ok && from != s.replica {
			pressed(key)
		}
	}
}
