// Package cluster is what the replicas of a hardcap cluster share through
// PostgreSQL beside the budget slices: the tenancy (projects, tokens, their
// limits and the kill switches), mirrored into each replica's own ledger.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/storage/postgres"
	"github.com/hardcap/hardcap/tokens"
	"github.com/rs/zerolog"
)

// RereadEvery is how often Run reads the changes it may have missed
// whatever it heard: the safety net under LISTEN/NOTIFY.
const RereadEvery = 5 * time.Second

// applyBatch bounds the records one ledger transaction applies.
const applyBatch = 500

// Retry backoff of a publication that failed (PostgreSQL unreachable).
const (
	retryMin = 100 * time.Millisecond
	retryMax = 5 * time.Second
)

// key names one tenancy record.
type key struct{ kind, id string }

// Tenancy keeps a replica's tenancy and the cluster's in step: every local
// change (told to Changed by the ledger's change feed) is published to
// PostgreSQL, and every change another replica published is applied to
// the local ledger (storage.DB.MirrorApply). A publication is merged by
// field group into the record PostgreSQL holds (storage.MirrorMerge): a
// change overlays only the groups it touched (kill switch, budget,
// scopes, secret, revocation, deletion), so that concurrent changes of
// different groups on two replicas both stay; the merged record is what
// every replica applies, the publisher too (MirrorSettle). Two changes of
// one group: the last write wins, by PostgreSQL's version (a kill and a
// resume are one group). A revocation is never undone, nor a deletion
// but by a create. While PostgreSQL is unreachable, local changes
// wait in a pending set and are published once it is back; what others
// published meanwhile is read after the last version seen.
type Tenancy struct {
	// OnApply, when set (before Start), is told every record applied
	// from another replica (whether or not it changed the ledger), after
	// its commit, on the goroutine of Start
	// or Run: the proxy cuts the requests in flight of a token or project
	// a remote kill switch or revocation stopped. It must not block long.
	OnApply func(storage.MirrorRecord)

	pg      *postgres.Store
	db      *storage.DB
	replica string
	log     zerolog.Logger

	mu sync.Mutex
	// pending are the local changes not yet published, each with the
	// generation of its last Changed: a publication removes a record only
	// when no change came after the export it sent.
	pending map[key]uint64
	gen     uint64
	// publish wakes Run for pending changes; remote for a notification;
	// catchUp asks Run to read everything published so far (CatchUp).
	publish chan struct{}
	remote  chan struct{}
	catchUp chan chan error
	// seen is the highest version read from PostgreSQL (Run's only).
	seen int64
	// down says the last call to PostgreSQL failed (for the log).
	down bool

	closeOnce sync.Once
	stop      chan struct{}
	running   sync.WaitGroup
}

// NewTenancy makes the mirror of db through pg; replica is this replica's
// id (pg.Replica()). Changed may be called from then on; Start and then
// Run do the work.
func NewTenancy(pg *postgres.Store, db *storage.DB, replica string, log zerolog.Logger) *Tenancy {
	return &Tenancy{
		pg:      pg,
		db:      db,
		replica: replica,
		log:     log,
		pending: map[key]uint64{},
		publish: make(chan struct{}, 1),
		remote:  make(chan struct{}, 1),
		catchUp: make(chan chan error),
		stop:    make(chan struct{}),
	}
}

// Published waits until no local change waits for publication (up to
// 500 ms): nil at once when none does, an error when some still do.
func (t *Tenancy) Published(ctx context.Context) error {
	deadline := time.Now().Add(500 * time.Millisecond)
	for t.Pending() > 0 {
		if time.Now().After(deadline) {
			return errors.New("cluster: tenancy changes still waiting for publication")
		}
		poke(t.publish)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return nil
}

// CatchUp returns once every change published before it was called is
// applied to the ledger (through Run), or with the error that kept
// PostgreSQL from being read. A replica that lost contact calls it before
// it serves again, so that a kill issued meanwhile reaches it first.
func (t *Tenancy) CatchUp(ctx context.Context) error {
	done := make(chan error, 1)
	select {
	case t.catchUp <- done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Changed is the ledger's change feed (storage.Options.Changed): it notes
// the record for publication and returns at once.
func (t *Tenancy) Changed(kind, target string) {
	if t == nil {
		return // a change before the mirror exists: Start publishes what PostgreSQL lacks
	}
	t.mu.Lock()
	t.gen++
	t.pending[key{kind, target}] = t.gen
	t.mu.Unlock()
	poke(t.publish)
}

func poke(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Pending is how many local changes wait for publication.
func (t *Tenancy) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// Start brings the ledger and PostgreSQL in step once, before the replica
// serves. When PostgreSQL holds no tenancy yet, this replica seeds it with
// its whole ledger. Otherwise PostgreSQL wins: its records are applied to
// the ledger, and only the records it lacks (and the changes told to
// Changed since NewTenancy) are published. It fails when PostgreSQL or
// the ledger does.
func (t *Tenancy) Start(ctx context.Context) error {
	var rows []postgres.Change
	for after := int64(0); ; {
		batch, more, err := t.pg.Changes(ctx, after)
		if err != nil {
			return err
		}
		rows = append(rows, batch...)
		if len(batch) > 0 {
			after = batch[len(batch)-1].Version
		}
		if !more {
			break
		}
	}
	local, err := t.db.MirrorExportAll()
	if err != nil {
		return err
	}
	// Changes a crash (or an outage) kept from being published win over
	// PostgreSQL's records: they are newer.
	marked, err := t.db.MirrorPending()
	if err != nil {
		return err
	}
	t.mu.Lock()
	for _, k := range marked {
		if _, ok := t.pending[key{k[0], k[1]}]; !ok {
			t.gen++
			t.pending[key{k[0], k[1]}] = t.gen
		}
	}
	skip := make(map[key]bool, len(t.pending))
	for k := range t.pending {
		skip[k] = true
	}
	t.mu.Unlock()
	inPG := make(map[key]bool, len(rows))
	for _, r := range rows {
		inPG[key{r.Kind, r.ID}] = true
	}
	applied, seen, err := t.apply(ctx, rows, skip, false)
	if err != nil {
		return err
	}
	t.seen = seen
	published := 0
	for _, r := range local {
		k := key{r.Kind, r.ID}
		if inPG[k] || skip[k] {
			continue // PostgreSQL's, or pending: flush publishes it
		}
		r.Groups = storage.GroupAll // a record PostgreSQL lacks: all of it
		if _, err := t.publishRecord(ctx, r); err != nil {
			return err
		}
		published++
	}
	// The pending changes; what fails is retried by Run.
	t.flush(ctx)
	t.log.Info().Int("applied", applied).Int("published", published).Int64("version", seen).Msg("cluster: tenancy in step with PostgreSQL")
	return nil
}

// Run applies the changes other replicas publish (on their notification,
// after every reconnection, and every RereadEvery) and publishes the
// local ones, until ctx ends or Close. Everything is done on its
// goroutine, so a publication and an application never overlap.
func (t *Tenancy) Run(ctx context.Context) {
	t.running.Add(1)
	defer t.running.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-t.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	listened := make(chan struct{})
	go func() {
		defer close(listened)
		_ = t.pg.ListenTenancy(ctx, func() { poke(t.remote) }, func(err error) {
			t.log.Warn().Err(err).Msg("cluster: tenancy notifications lost; reconnecting")
		})
	}()
	defer func() { cancel(); <-listened }()
	tick := time.NewTicker(RereadEvery)
	defer tick.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	backoff := retryMin
	poke(t.publish)
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.remote:
			t.pull(ctx)
		case done := <-t.catchUp:
			done <- t.pull(ctx)
		case <-tick.C:
			t.pull(ctx)
			poke(t.publish)
		case <-retry.C:
			poke(t.publish)
		case <-t.publish:
			if t.flush(ctx) {
				backoff = retryMin
				continue
			}
			retry.Reset(backoff)
			backoff = min(2*backoff, retryMax)
		}
	}
}

// Close stops Run and waits for it.
func (t *Tenancy) Close() {
	t.closeOnce.Do(func() { close(t.stop) })
	t.running.Wait()
}

// failed logs a failure of PostgreSQL once until it works again.
func (t *Tenancy) failed(err error, what string) {
	if errors.Is(err, context.Canceled) {
		return
	}
	if !t.down {
		t.log.Warn().Err(err).Msg("cluster: " + what + " failed; tenancy changes wait until PostgreSQL is back")
	}
	t.down = true
}

func (t *Tenancy) worked() {
	if t.down {
		t.log.Info().Msg("cluster: PostgreSQL is back; tenancy in step again")
	}
	t.down = false
}

// pull applies what was published after the last version seen, skipping
// this replica's own writes (its ledger has them, or newer) and the
// records with a local change still to publish (that change comes after).
func (t *Tenancy) pull(ctx context.Context) error {
	for {
		rows, more, err := t.pg.Changes(ctx, t.seen)
		if err != nil {
			t.failed(err, "reading tenancy changes")
			return err
		}
		t.worked()
		t.mu.Lock()
		skip := make(map[key]bool, len(t.pending))
		for k := range t.pending {
			skip[k] = true
		}
		t.mu.Unlock()
		_, seen, err := t.apply(ctx, rows, skip, true)
		if err != nil {
			t.log.Error().Err(err).Msg("cluster: applying tenancy changes failed; retrying")
			return err
		}
		t.seen = max(t.seen, seen)
		if !more {
			return nil
		}
	}
}

// apply writes rows to the ledger in batches of consecutive rows of one
// origin, skipping skip's keys and, when notMine, this replica's own rows.
// A row that cannot be applied (it does not decode, or the ledger
// refuses it) is logged and passed over, so that it cannot stop the
// ones after it; a ledger that fails stops apply. It returns how many
// records changed the ledger and the last version it went past.
func (t *Tenancy) apply(ctx context.Context, rows []postgres.Change, skip map[key]bool, notMine bool) (applied int, seen int64, err error) {
	var batch []storage.MirrorRecord
	origin := ""
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		n, err := t.db.MirrorApply(ctx, origin, batch)
		if err == nil {
			t.applied(batch...)
		}
		if err != nil && !errors.Is(err, storage.ErrClosed) {
			// One bad record refuses its batch: apply them one by one.
			n, err = 0, nil
			for _, r := range batch {
				m, err1 := t.db.MirrorApply(ctx, origin, []storage.MirrorRecord{r})
				if errors.Is(err1, storage.ErrClosed) {
					return err1
				}
				if err1 == nil {
					t.applied(r)
				}
				if err1 != nil {
					t.log.Error().Err(err1).Str("kind", r.Kind).Str("id", shown(r)).Msg("cluster: a tenancy record could not be applied")
				}
				n += m
			}
		}
		applied += n
		batch = batch[:0]
		return err
	}
	for _, row := range rows {
		if skip[key{row.Kind, row.ID}] || (notMine && row.Origin == t.replica) {
			seen = row.Version
			continue
		}
		if row.Origin != origin || len(batch) == applyBatch {
			if err := flush(); err != nil {
				return applied, seen, err
			}
			origin = row.Origin
		}
		var r storage.MirrorRecord
		if err := json.Unmarshal(row.Body, &r); err != nil || r.Kind != row.Kind || r.ID != row.ID {
			t.log.Error().Str("kind", row.Kind).Int64("version", row.Version).Msg("cluster: a tenancy record in PostgreSQL does not decode; passed over")
			seen = row.Version
			continue
		}
		batch = append(batch, r)
		seen = row.Version
	}
	return applied, seen, flush()
}

// applied tells OnApply of rs.
func (t *Tenancy) applied(rs ...storage.MirrorRecord) {
	if t.OnApply == nil {
		return
	}
	for _, r := range rs {
		t.OnApply(r)
	}
}

// shown is a record's id for the log (a token's id, never a secret).
func shown(r storage.MirrorRecord) string {
	if tokens.Parse(r.ID) == nil {
		return "(not an id)"
	}
	return r.ID
}

// flush publishes the pending changes; false when one failed and a retry
// is due.
func (t *Tenancy) flush(ctx context.Context) bool {
	t.mu.Lock()
	todo := make(map[key]uint64, len(t.pending))
	for k, g := range t.pending {
		todo[k] = g
	}
	t.mu.Unlock()
	for k, g := range todo {
		r, err := t.db.MirrorExport(k.kind, k.id)
		switch {
		case errors.Is(err, tokens.ErrTokenNotFound):
			// Nothing to send (a change rolled back).
		case err != nil:
			if errors.Is(err, storage.ErrClosed) {
				return true
			}
			t.log.Error().Err(err).Str("kind", k.kind).Msg("cluster: a tenancy change could not be read from the ledger")
			return false
		default:
			merged, err := t.publishRecord(ctx, r)
			if err != nil {
				t.failed(err, "publishing a tenancy change")
				return false
			}
			t.worked()
			// The merged record is the cluster's: applied here too,
			// unless a change came since (it is published in turn).
			applied, changed, err := t.db.MirrorSettle(ctx, t.replica, r.Mark, merged)
			switch {
			case errors.Is(err, storage.ErrClosed):
				return true
			case err != nil:
				// Published all the same: the marker only makes the next
				// start publish the record again.
				t.log.Error().Err(err).Str("kind", k.kind).Str("id", shown(r)).Msg("cluster: a published tenancy change could not be settled")
			case applied && changed:
				t.applied(merged) // another replica's change came in with the merge
			}
		}
		t.mu.Lock()
		if t.pending[k] == g {
			delete(t.pending, k)
		}
		t.mu.Unlock()
	}
	return true
}

// publishRecord writes r to PostgreSQL, merged into the cluster's record
// by r.Groups (storage.MirrorMerge, in PostgreSQL's transaction), and
// returns the merged record stored.
func (t *Tenancy) publishRecord(ctx context.Context, r storage.MirrorRecord) (storage.MirrorRecord, error) {
	body, err := json.Marshal(r)
	if err != nil {
		return r, err
	}
	var merged storage.MirrorRecord
	_, err = t.pg.PublishMerge(ctx, postgres.Change{Kind: r.Kind, ID: r.ID, Body: body, Deleted: r.Deleted, Limit: r.BudgetLimit()},
		func(stored []byte) (postgres.Change, error) {
			var old *storage.MirrorRecord
			if stored != nil {
				var o storage.MirrorRecord
				if err := json.Unmarshal(stored, &o); err == nil && o.Kind == r.Kind && o.ID == r.ID {
					old = &o
				} else {
					t.log.Error().Str("kind", r.Kind).Str("id", shown(r)).Msg("cluster: the tenancy record in PostgreSQL does not decode; replaced by this replica's")
				}
			}
			merged = storage.MirrorMerge(old, r, r.Groups)
			b, err := json.Marshal(merged)
			return postgres.Change{Body: b, Deleted: merged.Deleted, Limit: merged.BudgetLimit()}, err
		})
	return merged, err
}
