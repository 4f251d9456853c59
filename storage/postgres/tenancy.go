package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// TenancyChannel is the channel every tenancy write notifies, in its own
// transaction, so that a listener hears of it once it is committed.
const TenancyChannel = "hardcap_tenancy"

// tenancyLock is the advisory lock key every tenancy write holds until
// its commit: versions are taken and committed in one order.
const tenancyLock = 0x68617264636174 // "hardcat"

// Kinds of tenancy records.
const (
	KindProject = "project"
	KindToken   = "token"
	// KindAll is the global kill switch; its id is "".
	KindAll = "all"
)

// maxChanges bounds the rows one Changes call reads.
const maxChanges = 500

// Change is one tenancy record of the cluster store: the current state of
// a project, a token or the global kill switch, as the replica that wrote
// it last exported it.
type Change struct {
	Kind string
	ID   string
	// Body is the record as JSON (storage.MirrorRecord); it holds hashes
	// of secrets, never a secret. PostgreSQL keeps it as jsonb: the bytes
	// read back are the same value, not the same text.
	Body []byte
	// Deleted is a tombstone: the project was deleted.
	Deleted bool
	// Limit is the budget limit of the record's scope (project:ID or
	// token:ID), which Publish writes into hardcap.limits in the same
	// transaction, for the escrow's grants. Not used for KindAll or a
	// deleted record, and not filled by Changes (Body has it).
	Limit budget.Limit
	// Version orders the writes: a later write has a higher version.
	// Publish returns it; Changes fills it.
	Version int64
	// Origin is the replica that wrote the row (filled by Changes).
	Origin string
}

// scope is the budget scope a record's limit belongs to; "" for none.
func (c Change) scope() budget.Scope {
	switch c.Kind {
	case KindProject:
		return budget.ProjectScope(c.ID)
	case KindToken:
		return budget.TokenScope(c.ID)
	}
	return ""
}

// Publish writes c as the current record of (c.Kind, c.ID), with the next
// version, keeps the scope's row of hardcap.limits in step (a deleted
// project's limit becomes a zero ceiling: a grant for it fails closed)
// and notifies TenancyChannel, all in one transaction. It returns the
// version written. The last write wins.
func (s *Store) Publish(ctx context.Context, c Change) (int64, error) {
	w, err := s.PublishMerge(ctx, c, nil)
	return w.Version, err
}

// Merge makes the record to write from the one PostgreSQL holds (stored:
// its body, nil when there is none) and the one published. It runs
// inside the publication's transaction, under the tenancy lock, so no
// other write comes between the read and the write.
type Merge func(stored []byte) (Change, error)

// PublishMerge is Publish of what merge makes of c and the stored record
// (c itself when merge is nil): the merged body, tombstone and limit are
// what is written, to hardcap.limits too. It returns the change written,
// with its version and body. Kind and ID stay c's.
func (s *Store) PublishMerge(ctx context.Context, c Change, merge Merge) (Change, error) {
	switch c.Kind {
	case KindProject, KindToken, KindAll:
	default:
		return Change{}, fmt.Errorf("postgres: publish: unknown kind %q", budget.Clip(c.Kind))
	}
	if len(c.Body) == 0 {
		return Change{}, errors.New("postgres: publish: empty record")
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var w Change
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(tenancyLock)); err != nil {
			return err
		}
		w = c
		if merge != nil {
			var stored *string
			err := tx.QueryRow(ctx, `SELECT body::text FROM hardcap.tenancy WHERE kind = $1 AND id = $2`, c.Kind, c.ID).Scan(&stored)
			if err != nil && !errors.Is(err, pgx.ErrNoRows) {
				return err
			}
			var old []byte
			if stored != nil {
				old = []byte(*stored)
			}
			m, err := merge(old)
			if err != nil {
				return errMerge{err}
			}
			if len(m.Body) == 0 {
				return errMerge{errors.New("empty record")}
			}
			w.Body, w.Deleted, w.Limit = m.Body, m.Deleted, m.Limit
		}
		err := tx.QueryRow(ctx, `INSERT INTO hardcap.tenancy (kind, id, body, deleted, version, origin)
			VALUES ($1, $2, $3, $4, nextval('hardcap.tenancy_version'), $5)
			ON CONFLICT (kind, id) DO UPDATE SET body = EXCLUDED.body, deleted = EXCLUDED.deleted,
				version = EXCLUDED.version, origin = EXCLUDED.origin, changed = now()
			RETURNING version`, w.Kind, w.ID, string(w.Body), w.Deleted, s.replica).Scan(&w.Version)
		if err != nil {
			return err
		}
		w.Origin = s.replica
		if scope := w.scope(); scope != "" {
			if w.Deleted {
				// A zero ceiling, not no row: a replica that has not
				// applied the deletion yet must not write its old limit
				// back (EnsureLimit writes only where there is no row).
				_, err = tx.Exec(ctx, `INSERT INTO hardcap.limits (scope, limit_nano, period) VALUES ($1, 0, 'total')
					ON CONFLICT (scope) DO UPDATE SET limit_nano = 0`, string(scope))
			} else {
				var limit *int64
				if v, ok := w.Limit.Ceiling(); ok {
					n := int64(v)
					limit = &n
				}
				period := string(w.Limit.Period)
				if period == "" {
					period = string(budget.Total)
				}
				_, err = tx.Exec(ctx, `INSERT INTO hardcap.limits (scope, limit_nano, period) VALUES ($1, $2, $3)
					ON CONFLICT (scope) DO UPDATE SET limit_nano = EXCLUDED.limit_nano, period = EXCLUDED.period`,
					string(scope), limit, period)
			}
			if err != nil {
				return err
			}
		}
		_, err = tx.Exec(ctx, `SELECT pg_notify($1, $2)`, TenancyChannel, fmt.Sprint(w.Version))
		return err
	})
	if err != nil {
		var me errMerge
		if errors.As(err, &me) {
			return Change{}, fmt.Errorf("postgres: publish %s: merge: %w", c.Kind, me.err)
		}
		return Change{}, fmt.Errorf("postgres: publish %s: %w", c.Kind, s.scrub(err))
	}
	return w, nil
}

// errMerge is a merge's own failure, passed through the transaction (it
// is not a pgx error to scrub).
type errMerge struct{ err error }

func (e errMerge) Error() string { return e.err.Error() }

// Changes returns the records written after version after, in version
// order, at most 500: call it again from the last one's version while it
// returns a full batch (more reports that). After 0 it reads every record.
func (s *Store) Changes(ctx context.Context, after int64) (changes []Change, more bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	rows, err := s.pool.Query(ctx, `SELECT kind, id, body::text, deleted, version, origin FROM hardcap.tenancy
		WHERE version > $1 ORDER BY version LIMIT $2`, after, maxChanges)
	if err != nil {
		return nil, false, fmt.Errorf("postgres: tenancy changes: %w", s.scrub(err))
	}
	defer rows.Close()
	for rows.Next() {
		var c Change
		var body string
		if err := rows.Scan(&c.Kind, &c.ID, &body, &c.Deleted, &c.Version, &c.Origin); err != nil {
			return nil, false, fmt.Errorf("postgres: tenancy changes: %w", s.scrub(err))
		}
		c.Body = []byte(body)
		changes = append(changes, c)
	}
	if err := rows.Err(); err != nil {
		return nil, false, fmt.Errorf("postgres: tenancy changes: %w", s.scrub(err))
	}
	return changes, len(changes) == maxChanges, nil
}

// listenWait bounds one wait for a notification; a connection that stays
// silent longer is pinged, so that a dead one is found.
const listenWait = 10 * time.Second

// ListenTenancy listens on TenancyChannel on a connection of its own until
// ctx ends, reconnecting with a backoff (100ms, doubling up to 2s) when
// the connection is lost. It calls wake after every (re)connection, when
// a change may have been missed, and after every notification; wake must
// not block. onErr (may be nil) is told why a connection was lost, once until
// one succeeds again. It
// returns ctx's error.
func (s *Store) ListenTenancy(ctx context.Context, wake func(), onErr func(error)) error {
	backoff := 100 * time.Millisecond
	reported := false // the failures since the last connection
	for {
		connected, err := s.listenOnce(ctx, wake)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if connected {
			backoff, reported = 100*time.Millisecond, false
		}
		if onErr != nil && err != nil && !reported {
			onErr(fmt.Errorf("postgres: listen: %w", s.scrub(err)))
			reported = true
		}
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// listenOnce connects, listens and waits for notifications until the
// connection fails or ctx ends; connected says it got as far as LISTEN.
func (s *Store) listenOnce(ctx context.Context, wake func()) (connected bool, err error) {
	actx, cancel := context.WithTimeout(ctx, s.timeout)
	pc, err := s.pool.Acquire(actx)
	cancel()
	if err != nil {
		return false, err
	}
	conn := pc.Hijack() // out of the pool: it is closed here, never reused
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		_ = conn.Close(cctx)
	}()
	lctx, cancel := context.WithTimeout(ctx, s.timeout)
	_, err = conn.Exec(lctx, "LISTEN "+TenancyChannel)
	cancel()
	if err != nil {
		return false, err
	}
	wake()
	for {
		wctx, cancel := context.WithTimeout(ctx, listenWait)
		_, err := conn.WaitForNotification(wctx)
		cancel()
		switch {
		case err == nil:
			wake()
			continue
		case ctx.Err() != nil:
			return true, ctx.Err()
		case pgconn.Timeout(err) && !conn.IsClosed():
			pctx, cancel := context.WithTimeout(ctx, s.timeout)
			err = conn.Ping(pctx)
			cancel()
			if err == nil {
				continue
			}
		}
		return true, err
	}
}
