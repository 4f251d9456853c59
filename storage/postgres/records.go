package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/hardcap/hardcap/budget"
)

// MaxInsert is the most records InsertRecords takes in one call.
const MaxInsert = 1000

// Errors of InsertRecords and ClaimAlert. (Here rather than in errors.go,
// which another branch is adding to.)
var (
	// ErrTooManyRecords is a call of InsertRecords with more than
	// MaxInsert records.
	ErrTooManyRecords = errors.New("postgres: too many records in one insert")
	// ErrNoRecordID is a record without a ReservationID.
	ErrNoRecordID = errors.New("postgres: a usage record without an id")
	// ErrNoAlertKey is ClaimAlert's empty dedupe key.
	ErrNoAlertKey = errors.New("postgres: an alert without a dedupe key")
)

// InsertRecords inserts this replica's usage records in one statement;
// a record already there (same replica, id and end time) is left as it
// is, so shipping a batch again is harmless. Each record's id is its
// ReservationID, which must not be empty. The end time is kept to the
// microsecond (PostgreSQL's precision), truncated, so a filter selects
// what the same filter selects in the ledger.
func (s *Store) InsertRecords(ctx context.Context, recs []budget.Record) error {
	if len(recs) == 0 {
		return nil
	}
	if len(recs) > MaxInsert {
		return fmt.Errorf("%w: %d, at most %d", ErrTooManyRecords, len(recs), MaxInsert)
	}
	n := len(recs)
	ids, projects, tokens, models := make([]string, n), make([]string, n), make([]string, n), make([]string, n)
	providers, routes, bodies := make([]string, n), make([]string, n), make([]string, n)
	ended := make([]time.Time, n)
	charged, reserved := make([]int64, n), make([]int64, n)
	for i, r := range recs {
		if r.ReservationID == "" {
			return ErrNoRecordID
		}
		body, err := json.Marshal(r)
		if err != nil {
			return fmt.Errorf("postgres: insert records: %w", err)
		}
		ids[i], ended[i], projects[i], tokens[i] = r.ReservationID, r.Time.Truncate(time.Microsecond), r.Project, r.TokenID
		models[i], providers[i], routes[i] = r.Model, r.Provider, r.Route
		charged[i], reserved[i], bodies[i] = int64(r.Charged), int64(r.Reserved), string(body)
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	_, err := s.pool.Exec(ctx, `INSERT INTO hardcap.records
		(replica, id, ended, project, token, model, provider, route, charged_nano, reserved_nano, body)
		SELECT $1, u.id, u.ended, u.project, u.token, u.model, u.provider, u.route, u.charged, u.reserved, u.body::jsonb
		FROM unnest($2::text[], $3::timestamptz[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[], $9::bigint[], $10::bigint[], $11::text[])
			AS u(id, ended, project, token, model, provider, route, charged, reserved, body)
		ON CONFLICT (replica, id, ended) DO NOTHING`,
		s.replica, ids, ended, projects, tokens, models, providers, routes, charged, reserved, bodies)
	if err != nil {
		return fmt.Errorf("postgres: insert records: %w", s.scrub(err))
	}
	return nil
}

// UsageFilter selects records of the whole cluster: ended in [Since,
// Until) (a zero bound is open), and of one project or token when set.
// Times are compared to the microsecond (PostgreSQL's precision): end
// times and bounds are truncated to it.
type UsageFilter struct {
	Since, Until time.Time
	Project      string
	Token        string
}

// where is the filter's condition, its arguments numbered from $1.
func (f UsageFilter) where() (string, []any) {
	var since, until *time.Time
	if !f.Since.IsZero() {
		t := f.Since.Truncate(time.Microsecond)
		since = &t
	}
	if !f.Until.IsZero() {
		t := f.Until.Truncate(time.Microsecond)
		until = &t
	}
	return `($1::timestamptz IS NULL OR ended >= $1) AND ($2::timestamptz IS NULL OR ended < $2)
		AND ($3 = '' OR project = $3) AND ($4 = '' OR token = $4)`,
		[]any{since, until, f.Project, f.Token}
}

// UsageRow is the records of one project, token and model.
type UsageRow struct {
	Project, Token, Model string
	Records               int64
	Charged               budget.Money
}

// Usage is the cluster's usage under a filter.
type Usage struct {
	// Rows are the totals per project, token and model, in that order;
	// at most MaxUsageRows, Truncated when there were more (Records and
	// Charged still count everything).
	Rows      []UsageRow
	Truncated bool
	Records   int64
	Charged   budget.Money
}

// MaxUsageRows is the most rows ClusterUsage returns.
const MaxUsageRows = 10_000

// ClusterUsage sums the records of every replica under f.
func (s *Store) ClusterUsage(ctx context.Context, f UsageFilter) (Usage, error) {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	where, args := f.where()
	var u Usage
	var charged int64
	err := s.pool.QueryRow(ctx, `SELECT count(*), coalesce(sum(charged_nano), 0)::bigint FROM hardcap.records WHERE `+where, args...).
		Scan(&u.Records, &charged)
	if err != nil {
		return Usage{}, fmt.Errorf("postgres: cluster usage: %w", s.scrub(err))
	}
	u.Charged = budget.Money(charged)
	rows, err := s.pool.Query(ctx, `SELECT project, token, model, count(*), sum(charged_nano)::bigint
		FROM hardcap.records WHERE `+where+`
		GROUP BY project, token, model ORDER BY project, token, model LIMIT $5`, append(args, MaxUsageRows+1)...)
	if err != nil {
		return Usage{}, fmt.Errorf("postgres: cluster usage: %w", s.scrub(err))
	}
	defer rows.Close()
	for rows.Next() {
		var r UsageRow
		if err := rows.Scan(&r.Project, &r.Token, &r.Model, &r.Records, &charged); err != nil {
			return Usage{}, fmt.Errorf("postgres: cluster usage: %w", s.scrub(err))
		}
		r.Charged = budget.Money(charged)
		if len(u.Rows) == MaxUsageRows {
			u.Truncated = true
			break
		}
		u.Rows = append(u.Rows, r)
	}
	if err := rows.Err(); err != nil {
		return Usage{}, fmt.Errorf("postgres: cluster usage: %w", s.scrub(err))
	}
	return u, nil
}

// ClusterRecord is a usage record with the replica that settled it.
type ClusterRecord struct {
	Replica string
	budget.Record
}

// PageCursor is where a page of records ended; the zero cursor is the
// start.
type PageCursor struct {
	Ended   time.Time
	Replica string
	ID      string
}

// MaxPage is the most records RecordsPage returns.
const MaxPage = 1000

// RecordsPage returns up to n (1 to MaxPage) records of the cluster under
// f that come after cursor after, ordered by end time, replica and id,
// and the cursor of the last one for the next page (after itself when
// the page is empty).
func (s *Store) RecordsPage(ctx context.Context, f UsageFilter, after PageCursor, n int) ([]ClusterRecord, PageCursor, error) {
	n = min(max(n, 1), MaxPage)
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	where, args := f.where()
	var afterEnded *time.Time
	if !after.Ended.IsZero() {
		afterEnded = &after.Ended
	}
	rows, err := s.pool.Query(ctx, `SELECT replica, id, ended, body FROM hardcap.records WHERE `+where+`
		AND ($5::timestamptz IS NULL OR (ended, replica, id) > ($5, $6, $7))
		ORDER BY ended, replica, id LIMIT $8`,
		append(args, afterEnded, after.Replica, after.ID, n)...)
	if err != nil {
		return nil, after, fmt.Errorf("postgres: records page: %w", s.scrub(err))
	}
	defer rows.Close()
	var out []ClusterRecord
	next := after
	for rows.Next() {
		var r ClusterRecord
		var body []byte
		if err := rows.Scan(&r.Replica, &next.ID, &next.Ended, &body); err != nil {
			return nil, after, fmt.Errorf("postgres: records page: %w", s.scrub(err))
		}
		if err := json.Unmarshal(body, &r.Record); err != nil {
			return nil, after, fmt.Errorf("postgres: records page: record %s of %s: %w", next.ID, r.Replica, err)
		}
		next.Replica = r.Replica
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, after, fmt.Errorf("postgres: records page: %w", s.scrub(err))
	}
	return out, next, nil
}
