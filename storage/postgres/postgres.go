// Package postgres is the cluster store: what replicas of hardcap share
// through PostgreSQL. This version holds the budget slices (escrow): each
// replica reserves requests in its own ledger against slices of each budget
// window granted here, and one conditional statement grants a slice only
// while the slices held fit the limit. It runs on PostgreSQL 15 or later
// with plain SQL.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrations embed.FS

// migrationLock is the advisory lock key under which migrations run, so
// replicas starting together apply each one once.
const migrationLock = 0x68617264636170 // "hardcap"

// Options configures Open.
type Options struct {
	// DSN is the PostgreSQL connection string (postgres://...).
	DSN string
	// Replica names this replica, unique in the cluster.
	Replica string
	// Timeout bounds each statement; default 5s.
	Timeout time.Duration
	// MaxConns bounds the connection pool; default 8.
	MaxConns int32
	// Operator opens the store for an operator's command (hardcap cluster
	// status, forget): no replica is registered, and Replica may be empty.
	Operator bool
	// GrantShare is the largest share of what a budget has left that one
	// grant takes beyond its minimum (4: a quarter); default 1, all of it.
	GrantShare int
}

// Store is a replica's connection to the cluster store.
type Store struct {
	pool     *pgxpool.Pool
	replica  string
	timeout  time.Duration
	share    int64
	password string // only to cut it out of errors
}

var replicaName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Open connects, applies the migrations this hardcap has and the database
// lacks (under an advisory lock), and registers the replica. A replica id
// that was forgotten is refused with ErrForgotten.
func Open(ctx context.Context, opts Options) (*Store, error) {
	if !opts.Operator && !replicaName.MatchString(opts.Replica) {
		return nil, ErrNoReplica
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 5 * time.Second
	}
	if opts.MaxConns <= 0 {
		opts.MaxConns = 8
	}
	cfg, err := pgxpool.ParseConfig(opts.DSN)
	if err != nil {
		// pgx's message may quote the DSN, password included.
		return nil, errors.New("postgres: the DSN cannot be parsed")
	}
	cfg.MaxConns = opts.MaxConns
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", redact(err, cfg.ConnConfig.Password))
	}
	s := &Store{pool: pool, replica: opts.Replica, timeout: opts.Timeout, share: int64(max(opts.GrantShare, 1)), password: cfg.ConnConfig.Password}
	if err := s.migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if opts.Operator {
		return s, nil
	}
	if err := s.register(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes the pool.
func (s *Store) Close() { s.pool.Close() }

// Replica is this replica's id.
func (s *Store) Replica() string { return s.replica }

// migrate applies the missing migrations in order, each in a transaction,
// holding a session advisory lock on one connection.
func (s *Store) migrate(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 4*s.timeout)
	defer cancel()
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: %w", s.scrub(err))
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", int64(migrationLock)); err != nil {
		return fmt.Errorf("postgres: migration lock: %w", s.scrub(err))
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", int64(migrationLock))
	}()
	if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS hardcap;
		CREATE TABLE IF NOT EXISTS hardcap.schema_migrations (version int PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())`); err != nil {
		return fmt.Errorf("postgres: %w", s.scrub(err))
	}
	var have int
	if err := conn.QueryRow(ctx, "SELECT coalesce(max(version), 0) FROM hardcap.schema_migrations").Scan(&have); err != nil {
		return fmt.Errorf("postgres: %w", s.scrub(err))
	}
	files, err := migrationFiles()
	if err != nil {
		return err
	}
	if have > len(files) {
		return ErrNewerSchema
	}
	for _, f := range files[have:] {
		err := pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
			if _, err := tx.Exec(ctx, f.sql); err != nil {
				return err
			}
			_, err := tx.Exec(ctx, "INSERT INTO hardcap.schema_migrations (version) VALUES ($1)", f.version)
			return err
		})
		if err != nil {
			return fmt.Errorf("postgres: migration %d: %w", f.version, s.scrub(err))
		}
	}
	return nil
}

type migration struct {
	version int
	sql     string
}

// migrationFiles are the embedded migrations, NNNN_name.sql, numbered from
// 1 without a gap.
func migrationFiles() ([]migration, error) {
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	sort.Strings(names)
	out := make([]migration, 0, len(names))
	for i, name := range names {
		base := strings.TrimPrefix(name, "migrations/")
		n, err := strconv.Atoi(strings.SplitN(base, "_", 2)[0])
		if err != nil || n != i+1 {
			return nil, fmt.Errorf("postgres: migration %s is out of sequence", base)
		}
		b, err := migrations.ReadFile(name)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: n, sql: string(b)})
	}
	return out, nil
}

// register records the replica (or its restart); a forgotten one is
// refused, and one whose lease has not ended is refused with a
// LeaseHeldError: a process with this id may still be spending its
// slices.
func (s *Store) register(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	var forgotten *time.Time
	var until time.Time
	var left int64
	err := s.pool.QueryRow(ctx, `INSERT INTO hardcap.replicas (id) VALUES ($1)
		ON CONFLICT (id) DO UPDATE SET started = CASE WHEN hardcap.replicas.lease_until > now() THEN hardcap.replicas.started ELSE now() END, seen = now()
		RETURNING forgotten, lease_until, greatest(0, extract(epoch FROM lease_until - now()) * 1000)::bigint`, s.replica).Scan(&forgotten, &until, &left)
	if err != nil {
		return fmt.Errorf("postgres: register replica: %w", s.scrub(err))
	}
	if forgotten != nil {
		return ErrForgotten
	}
	if left > 0 {
		return &LeaseHeldError{Left: time.Duration(left) * time.Millisecond}
	}
	return nil
}

// LeaseHeldError is a replica id whose lease runs for Left more: either
// the same replica restarted quickly after a crash (wait and open again)
// or a second process runs with its id (a mistake: stop one).
type LeaseHeldError struct{ Left time.Duration }

func (e *LeaseHeldError) Error() string {
	return fmt.Sprintf("postgres: this replica_id holds a lease for %v more: another process may run with it, or it restarted after a crash", e.Left.Round(time.Millisecond))
}

// redacted is an error whose message has the DSN's password cut out;
// errors.Is and errors.As still see the error under it.
type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

// scrub keeps the DSN's password out of err's message: a connection error
// may quote parts of the connection string.
func (s *Store) scrub(err error) error { return redact(err, s.password) }

func redact(err error, password string) error {
	if err == nil || password == "" || !strings.Contains(err.Error(), password) {
		return err
	}
	return &redacted{msg: strings.ReplaceAll(err.Error(), password, "[password]"), err: err}
}
