package postgres

import (
	"context"
	"errors"
	"fmt"

	"github.com/hardcap/hardcap/budget"
	"github.com/jackc/pgx/v5"
)

// Slice is a replica's share of one budget window.
type Slice struct {
	// Granted is what the replica may spend in the window in all,
	// cumulative, net of what it gave back; nano-USD.
	Granted budget.Money
	// Committed is the replica's spend folded in so far; nano-USD.
	Committed budget.Money
	// Scope is the window's budget scope (set by Slices).
	Scope budget.Scope
	// Elsewhere is what the other replicas folded into the window (set
	// by Fold): the rest of the cluster's committed spend.
	Elsewhere budget.Money
}

// Window is one budget window across the cluster.
type Window struct {
	// Limit is the scope's limit; Unlimited when it has none.
	Limit     budget.Money
	Unlimited bool
	// Held is what the replicas' slices hold (their granted sums);
	// Committed what they folded in. Held never passes Limit but through
	// an overshoot.
	Held, Committed budget.Money
}

// EnsureLimit writes a scope's limit only when the store has none: the
// limits the tenancy publishes are never overwritten by a replica's older
// view of them.
func (s *Store) EnsureLimit(ctx context.Context, scope budget.Scope, l budget.Limit) error {
	return s.writeLimit(ctx, scope, l, "DO NOTHING")
}

// SetLimit sets a scope's limit (ok false: no limit) and period. A lower
// limit refuses further grants at once; slices granted before it stay
// granted until they are spent or given back.
func (s *Store) SetLimit(ctx context.Context, scope budget.Scope, l budget.Limit) error {
	return s.writeLimit(ctx, scope, l, "DO UPDATE SET limit_nano = EXCLUDED.limit_nano, period = EXCLUDED.period")
}

// writeLimit writes a scope's limit row, onConflict saying what becomes
// of one already there.
func (s *Store) writeLimit(ctx context.Context, scope budget.Scope, l budget.Limit, onConflict string) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var limit *int64
	if c, ok := l.Ceiling(); ok {
		v := int64(c)
		limit = &v
	}
	period := string(l.Period)
	if period == "" {
		period = string(budget.Total)
	}
	_, err := s.pool.Exec(ctx, `INSERT INTO hardcap.limits (scope, limit_nano, period) VALUES ($1, $2, $3)
		ON CONFLICT (scope) `+onConflict, string(scope), limit, period)
	if err != nil {
		return fmt.Errorf("postgres: write limit: %w", s.scrub(err))
	}
	return nil
}

// grantSQL grants want ($3), or less when the limit leaves less, but at
// least min ($4), in one statement. The amount is what is left under the
// limit when that is less than want, and never more than a share ($5) of
// it above min, so slices shrink as a budget nears its end and the last of
// it is spread over the replicas that ask. The window's row is updated
// only while held + amount <= limit, so concurrent grants from any
// replicas are serialized by its row lock and never pass the limit
// together. SET's right-hand sides all read the row as it was, so
// last_grant is the amount added. No limit (NULL): LEAST and GREATEST
// ignore it and want is granted.
const grantSQL = `
WITH g AS (
	UPDATE hardcap.windows w
	SET held = w.held + LEAST(l.limit_nano - w.held, GREATEST($4::bigint, LEAST($3::bigint, (l.limit_nano - w.held) / $5::bigint))),
	    last_grant = LEAST(l.limit_nano - w.held, GREATEST($4::bigint, LEAST($3::bigint, (l.limit_nano - w.held) / $5::bigint)))
	FROM hardcap.limits l
	WHERE w.key = $1 AND l.scope = w.scope
	  AND NOT EXISTS (SELECT 1 FROM hardcap.replicas r WHERE r.id = $2 AND r.forgotten IS NOT NULL)
	  AND LEAST(l.limit_nano - w.held, GREATEST($4::bigint, LEAST($3::bigint, (l.limit_nano - w.held) / $5::bigint))) >= $4::bigint
	RETURNING w.last_grant AS amount
)
INSERT INTO hardcap.slices (key, replica, granted)
SELECT $1, $2, amount FROM g
ON CONFLICT (key, replica) DO UPDATE SET granted = hardcap.slices.granted + EXCLUDED.granted
RETURNING (SELECT amount FROM g), granted, committed`

// Grant asks for a slice of want nano-USD of the window key (of scope),
// or of what the limit leaves when that is less but at least min (min >=
// 1). It returns the amount granted and the slice after it; ErrNoRoom
// when not even min fits, ErrNoLimit when the scope has no limit row.
func (s *Store) Grant(ctx context.Context, scope budget.Scope, key string, want, min budget.Money) (budget.Money, Slice, error) {
	return s.grant(ctx, scope, key, want, min, s.share)
}

// GrantRest is Grant of want or all that is left, however little (at
// least 1), with no share kept for other replicas: for a request clamped
// to what the budget has left, as on one node.
func (s *Store) GrantRest(ctx context.Context, scope budget.Scope, key string, want budget.Money) (budget.Money, Slice, error) {
	return s.grant(ctx, scope, key, want, 1, 1)
}

func (s *Store) grant(ctx context.Context, scope budget.Scope, key string, want, min budget.Money, share int64) (budget.Money, Slice, error) {
	if min < 1 || want < min {
		return 0, Slice{}, ErrBadAmount
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	// The window's row is made by the first grant that finds none (a
	// statement cannot insert a row and update it too), so a grant in
	// steady state is one statement.
	for attempt := 0; ; attempt++ {
		var amount, granted, committed int64
		err := s.pool.QueryRow(ctx, grantSQL, key, s.replica, int64(want), int64(min), share).Scan(&amount, &granted, &committed)
		if err == nil {
			return budget.Money(amount), Slice{Granted: budget.Money(granted), Committed: budget.Money(committed)}, nil
		}
		if !errors.Is(err, pgx.ErrNoRows) {
			return 0, Slice{}, fmt.Errorf("postgres: grant: %w", s.scrub(err))
		}
		if attempt > 0 {
			break
		}
		tag, err := s.pool.Exec(ctx, `INSERT INTO hardcap.windows (key, scope) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING`, key, string(scope))
		if err != nil {
			return 0, Slice{}, fmt.Errorf("postgres: grant: %w", s.scrub(err))
		}
		if tag.RowsAffected() == 0 {
			break // the window was there: no room, or no limit
		}
	}
	var known bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM hardcap.limits WHERE scope = $1)`, string(scope)).Scan(&known); err != nil {
		return 0, Slice{}, fmt.Errorf("postgres: grant: %w", s.scrub(err))
	}
	if !known {
		return 0, Slice{}, fmt.Errorf("%w: %s", ErrNoLimit, budget.Clip(string(scope)))
	}
	return 0, Slice{}, ErrNoRoom
}

// KeepAll is a Fold's keep that gives nothing back.
const KeepAll = budget.MaxMoney

// foldSQL folds the replica's spend in (committed only grows: a repeated
// fold of the same figure changes nothing) and lowers the slice to $4,
// never below what is committed; the window's held and committed change by
// the same amounts in the same statement.
const foldSQL = `
WITH s AS (
	UPDATE hardcap.slices
	SET committed = GREATEST(committed, $3::bigint),
	    granted = GREATEST(committed, $3::bigint, LEAST(granted, $4::bigint)),
	    granted_delta = GREATEST(committed, $3::bigint, LEAST(granted, $4::bigint)) - granted,
	    committed_delta = GREATEST(committed, $3::bigint) - committed
	WHERE key = $1 AND replica = $2
	RETURNING key, granted, committed, granted_delta, committed_delta
)
UPDATE hardcap.windows w
SET held = w.held + s.granted_delta, committed = w.committed + s.committed_delta
FROM s WHERE w.key = s.key
RETURNING s.granted, s.committed, w.committed - s.committed`

// Fold records that the replica has committed spend nano-USD in the window
// key in all (its own ledger's figure, not an increment) and lowers its
// slice to keep (KeepAll: no lower), which the caller has stopped using.
// Both are totals, so a fold that is retried or repeated after a crash
// changes nothing more. A committed figure above the slice (an overshoot)
// raises the slice with it. It returns the slice after the fold.
func (s *Store) Fold(ctx context.Context, key string, spent, keep budget.Money) (Slice, error) {
	if spent < 0 || keep < 0 {
		return Slice{}, ErrBadAmount
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var granted, committed, elsewhere int64
	err := s.pool.QueryRow(ctx, foldSQL, key, s.replica, int64(spent), int64(keep)).Scan(&granted, &committed, &elsewhere)
	if errors.Is(err, pgx.ErrNoRows) {
		if spent == 0 {
			return Slice{}, nil // nothing granted, nothing spent
		}
		return Slice{}, fmt.Errorf("%w: spend folded into a window with no slice", ErrBadAmount)
	}
	if err != nil {
		return Slice{}, fmt.Errorf("postgres: fold: %w", s.scrub(err))
	}
	return Slice{Granted: budget.Money(granted), Committed: budget.Money(committed), Elsewhere: budget.Money(max(elsewhere, 0))}, nil
}

// Slice is this replica's slice of the window key (zero when it has none).
func (s *Store) Slice(ctx context.Context, key string) (Slice, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var granted, committed int64
	err := s.pool.QueryRow(ctx, `SELECT granted, committed FROM hardcap.slices WHERE key = $1 AND replica = $2`, key, s.replica).Scan(&granted, &committed)
	if errors.Is(err, pgx.ErrNoRows) {
		return Slice{}, nil
	}
	if err != nil {
		return Slice{}, fmt.Errorf("postgres: slice: %w", s.scrub(err))
	}
	return Slice{Granted: budget.Money(granted), Committed: budget.Money(committed)}, nil
}

// Window is the window key across the cluster; ok false when no replica
// has asked for a slice of it yet.
func (s *Store) Window(ctx context.Context, key string) (w Window, ok bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var limit *int64
	var held, committed int64
	err = s.pool.QueryRow(ctx, `SELECT l.limit_nano, w.held, w.committed FROM hardcap.windows w
		LEFT JOIN hardcap.limits l ON l.scope = w.scope WHERE w.key = $1`, key).Scan(&limit, &held, &committed)
	if errors.Is(err, pgx.ErrNoRows) {
		return Window{}, false, nil
	}
	if err != nil {
		return Window{}, false, fmt.Errorf("postgres: window: %w", s.scrub(err))
	}
	w = Window{Held: budget.Money(held), Committed: budget.Money(committed), Unlimited: limit == nil}
	if limit != nil {
		w.Limit = budget.Money(*limit)
	}
	return w, true, nil
}

// Forget charges every slice of replica in full (its granted becomes
// committed: whatever it spent is counted, and nothing it held is freed)
// and marks the id forgotten, so that it can never spend again. It is for
// a replica that will not come back; one that does is refused at Open. It
// returns the amount charged beyond what the replica had folded in.
func (s *Store) Forget(ctx context.Context, replica string) (budget.Money, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var charged int64
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE hardcap.replicas SET forgotten = coalesce(forgotten, now()) WHERE id = $1`, replica)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return fmt.Errorf("%w: no replica %s", ErrBadAmount, budget.Clip(replica))
		}
		return tx.QueryRow(ctx, `
WITH s AS (
	UPDATE hardcap.slices SET committed_delta = granted - committed, committed = granted, granted_delta = 0
	WHERE replica = $1 AND granted > committed
	RETURNING key, committed_delta
), w AS (
	UPDATE hardcap.windows w SET committed = w.committed + s.committed_delta FROM s WHERE w.key = s.key
)
SELECT coalesce(sum(committed_delta), 0)::bigint FROM s`, replica).Scan(&charged)
	})
	if err != nil {
		return 0, fmt.Errorf("postgres: forget: %w", s.scrub(err))
	}
	return budget.Money(charged), nil
}
