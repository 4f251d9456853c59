package storage

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// The alert outbox. An alert is written in the transaction of the event
// that raised it (a settlement crossing a threshold, a reservation from a
// new address), so it exists exactly when its cause does; alert/webhook
// reads it from here and records each channel's delivery.
var (
	// bucketAlerts holds every alert: sequence (8 bytes, big-endian) ->
	// alert.Entry as JSON.
	bucketAlerts = []byte("alerts")
	// bucketAlertsOpen indexes the alerts some channel may still have to
	// deliver: sequence -> nothing.
	bucketAlertsOpen = []byte("alerts_open")
	// bucketAlertsFired holds the marks of alerts that fire once (a
	// threshold per budget window, an exhausted budget per window, a
	// reconcile drift per provider and day): mark -> until when it holds
	// (Unix ns, 8 bytes; 0 forever). Marks past their time are dropped at
	// Open.
	bucketAlertsFired = []byte("alerts_fired")
	// metaAlertPrefix is the random part of every alert id of this
	// database, so that ids stay unique when a data directory is started
	// afresh and a receiver still holds the old ones.
	metaAlertPrefix = []byte("alert_id_prefix")
)

// MaxAlertsListed bounds what Alerts returns.
const MaxAlertsListed = 1000

// alertKey is an alert's key from its id's sequence.
func alertKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// alertSeq is the sequence of an alert id ("al_<prefix>_<seq>").
func alertSeq(id string) (uint64, bool) {
	i := bytes.LastIndexByte([]byte(id), '_')
	if i < 0 || len(id) > 64 {
		return 0, false
	}
	n, err := strconv.ParseUint(id[i+1:], 10, 64)
	return n, err == nil && n > 0
}

// RaiseOptions are the options of RaiseAlert.
type RaiseOptions struct {
	// Once, when set, is a mark that makes the alert fire at most once:
	// a second RaiseAlert with the same mark writes nothing.
	Once string
	// OnceUntil is when the mark stops holding; zero is forever.
	OnceUntil time.Time
	// Channels, when set, are the only channels the alert goes to.
	Channels []string
}

// RaiseAlert writes a into the outbox, with its id (and its time, when
// zero) set, and returns the entry; false (and no write) when opts.Once
// has fired before. Alerts raised by the ledger itself (thresholds,
// anomalies) are written by the operations that cause them; this is for
// the rest: a reconcile's drift, a test message.
func (db *DB) RaiseAlert(ctx context.Context, a alert.Alert, opts RaiseOptions) (alert.Entry, bool, error) {
	var e alert.Entry
	var raised bool
	err := db.update(ctx, func(tx *bolt.Tx) error {
		var err error
		e, raised, err = db.raise(tx, a, opts)
		return err
	})
	return e, raised, err
}

// raise writes an alert in tx; see RaiseAlert. Its errors are fatal: call
// it after the checks of the operation it is part of.
func (db *DB) raise(tx *bolt.Tx, a alert.Alert, opts RaiseOptions) (alert.Entry, bool, error) {
	st := db.st
	if opts.Once != "" {
		if _, fired := st.fired[opts.Once]; fired {
			return alert.Entry{}, false, nil
		}
	}
	prefix, err := alertPrefix(tx)
	if err != nil {
		return alert.Entry{}, false, err
	}
	b := tx.Bucket(bucketAlerts)
	seq, err := b.NextSequence()
	if err != nil {
		return alert.Entry{}, false, fatal(err)
	}
	a.ID = "al_" + prefix + "_" + strconv.FormatUint(seq, 10)
	if a.Time.IsZero() {
		a.Time = db.now()
	}
	a.Time = a.Time.UTC().Truncate(time.Millisecond)
	if a.Action == "" {
		a.Action = alert.ActionAlert
	}
	e := alert.Entry{Alert: a, Deliveries: []alert.Delivery{}, Channels: opts.Channels}
	v, err := json.Marshal(e)
	if err != nil {
		return alert.Entry{}, false, fatal(err)
	}
	k := alertKey(seq)
	if err := fatal(b.Put(k, v)); err != nil {
		return alert.Entry{}, false, err
	}
	if err := fatal(tx.Bucket(bucketAlertsOpen).Put(k, nil)); err != nil {
		return alert.Entry{}, false, err
	}
	if opts.Once != "" {
		var until [8]byte
		if !opts.OnceUntil.IsZero() {
			binary.BigEndian.PutUint64(until[:], uint64(opts.OnceUntil.UnixNano()))
		}
		if err := fatal(tx.Bucket(bucketAlertsFired).Put([]byte(opts.Once), until[:])); err != nil {
			return alert.Entry{}, false, err
		}
		st.setFired(opts.Once)
	}
	st.raised++
	return e, true, nil
}

// alertPrefix is the database's random alert id prefix, made by the first
// alert.
func alertPrefix(tx *bolt.Tx) (string, error) {
	meta := tx.Bucket(bucketMeta)
	if p := meta.Get(metaAlertPrefix); len(p) == 8 {
		return string(p), nil
	}
	var r [4]byte
	if _, err := rand.Read(r[:]); err != nil {
		return "", fatal(err)
	}
	p := hex.EncodeToString(r[:])
	return p, fatal(meta.Put(metaAlertPrefix, []byte(p)))
}

// Undelivered returns up to n alerts some channel may still have to
// deliver, oldest first (alert.Outbox).
func (db *DB) Undelivered(ctx context.Context, after string, n int) ([]alert.Entry, error) {
	if n <= 0 {
		n = 100
	}
	var from uint64
	if after != "" {
		seq, ok := alertSeq(after)
		if !ok {
			return nil, fmt.Errorf("%w: %s", ErrAlertNotFound, budget.Clip(after))
		}
		from = seq + 1
	}
	var out []alert.Entry
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlerts)
		c := tx.Bucket(bucketAlertsOpen).Cursor()
		for k, _ := c.Seek(alertKey(from)); k != nil && len(out) < n; k, _ = c.Next() {
			if err := ctx.Err(); err != nil {
				return err
			}
			var e alert.Entry
			v := b.Get(k)
			if v == nil {
				continue
			}
			if err := json.Unmarshal(v, &e); err != nil {
				// A damaged entry must not hold up the alerts after it.
				db.log.Warn().Err(err).Hex("alert", k).Msg("storage: an alert in the outbox does not decode; skipped (hardcap db check)")
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// SetDelivery records d for the alert id, replacing that channel's earlier
// delivery; done takes the alert out of Undelivered (alert.Outbox).
func (db *DB) SetDelivery(ctx context.Context, id string, d alert.Delivery, done bool) error {
	seq, ok := alertSeq(id)
	if !ok {
		return fmt.Errorf("%w: %s", ErrAlertNotFound, budget.Clip(id))
	}
	d.Next, d.Last = d.Next.UTC(), d.Last.UTC()
	return db.update(ctx, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAlerts)
		k := alertKey(seq)
		v := b.Get(k)
		if v == nil {
			return fmt.Errorf("%w: %s", ErrAlertNotFound, budget.Clip(id))
		}
		var e alert.Entry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("storage: alert %s: %w", budget.Clip(id), err)
		}
		if e.Alert.ID != id {
			return fmt.Errorf("%w: %s", ErrAlertNotFound, budget.Clip(id))
		}
		replaced := d.Channel == "" // closes the entry, records nothing
		for i := range e.Deliveries {
			if e.Deliveries[i].Channel == d.Channel {
				e.Deliveries[i], replaced = d, true
			}
		}
		if !replaced {
			e.Deliveries = append(e.Deliveries, d)
		}
		nv, err := json.Marshal(e)
		if err != nil {
			return err
		}
		if err := fatal(b.Put(k, nv)); err != nil {
			return err
		}
		if done {
			return fatal(tx.Bucket(bucketAlertsOpen).Delete(k))
		}
		return nil
	})
}

var _ alert.Outbox = (*DB)(nil)

// AlertFilter selects alerts for Alerts.
type AlertFilter struct {
	// Since drops alerts raised before it; zero keeps all.
	Since time.Time
	// Type, when set, keeps only alerts of that type.
	Type alert.Type
	// Limit caps how many, newest first; 0 is 100, at most
	// MaxAlertsListed.
	Limit int
}

// Alerts returns the alerts f selects, newest first, with their
// deliveries.
func (db *DB) Alerts(f AlertFilter) ([]alert.Entry, error) {
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, MaxAlertsListed)
	var out []alert.Entry
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketAlerts).Cursor()
		for k, v := c.Last(); k != nil && len(out) < limit; k, v = c.Prev() {
			var e alert.Entry
			if err := json.Unmarshal(v, &e); err != nil {
				continue // see Undelivered
			}
			if !f.Since.IsZero() && e.Alert.Time.Before(f.Since) {
				break
			}
			if f.Type != "" && e.Alert.Type != f.Type {
				continue
			}
			out = append(out, e)
		}
		return nil
	})
	return out, err
}

// AlertCounts says how many alerts wait for delivery (some channel still
// pending) and how many ended with a channel that failed for good, among
// the last MaxAlertsListed.
func (db *DB) AlertCounts() (waiting, failed int, err error) {
	err = db.view(func(tx *bolt.Tx) error {
		waiting = tx.Bucket(bucketAlertsOpen).Stats().KeyN
		c := tx.Bucket(bucketAlerts).Cursor()
		n := 0
		for k, v := c.Last(); k != nil && n < MaxAlertsListed; k, v = c.Prev() {
			n++
			var e alert.Entry
			if json.Unmarshal(v, &e) != nil {
				continue
			}
			for _, d := range e.Deliveries {
				if d.State == alert.Failed {
					failed++
					break
				}
			}
		}
		return nil
	})
	return waiting, failed, err
}

// loadFired reads the once-marks still in force into the state and deletes
// the rest. It runs inside Open's recovery transaction.
func (st *state) loadFired(tx *bolt.Tx, now time.Time) error {
	b := tx.Bucket(bucketAlertsFired)
	var stale [][]byte
	err := b.ForEach(func(k, v []byte) error {
		if len(v) == 8 {
			if until := binary.BigEndian.Uint64(v); until != 0 && int64(until) < now.UnixNano() {
				stale = append(stale, bytes.Clone(k))
				return nil
			}
		}
		st.fired[string(k)] = struct{}{}
		return nil
	})
	if err != nil {
		return err
	}
	for _, k := range stale {
		if err := b.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// setFired marks once as fired, in the undo log.
func (st *state) setFired(once string) {
	st.undo = append(st.undo, undo{kind: undoFunc, fn: func() { delete(st.fired, once) }})
	st.fired[once] = struct{}{}
}

// afterCommit runs the callbacks of what the committed batch raised and
// froze, each on a goroutine of its own: the writer never waits for them.
func (db *DB) afterCommit() {
	st := db.st
	if st.raised > 0 && db.onAlert != nil {
		go db.onAlert()
	}
	if len(st.freezes) > 0 && db.onFreeze != nil {
		for _, t := range st.freezes {
			go db.onFreeze(t)
		}
	}
}

// AlertKeep is how long an alert every channel is done with stays in the
// outbox for `hardcap alerts`.
const AlertKeep = 90 * 24 * time.Hour

// pruneAlertsMax bounds the entries one pruning step deletes, so that it
// holds the writer briefly.
const pruneAlertsMax = 10_000

// PruneAlerts deletes the once-marks whose window has ended (and what the
// detectors remember of those windows) and the alerts older than
// AlertKeep that no channel still has to deliver. It runs at Open and
// hourly; it returns how many entries it deleted.
func (db *DB) PruneAlerts(ctx context.Context) (int, error) {
	n := 0
	err := db.update(ctx, func(tx *bolt.Tx) error {
		n = 0 // a batch run again counts again
		now := db.now()
		st := db.st
		b := tx.Bucket(bucketAlertsFired)
		var stale [][]byte
		c := b.Cursor()
		for k, v := c.First(); k != nil && len(stale) < pruneAlertsMax; k, v = c.Next() {
			if len(v) == 8 {
				if until := binary.BigEndian.Uint64(v); until != 0 && int64(until) < now.UnixNano() {
					stale = append(stale, bytes.Clone(k))
				}
			}
		}
		for _, k := range stale {
			if err := fatal(b.Delete(k)); err != nil {
				return err
			}
			mark := string(k)
			st.undo = append(st.undo, undo{kind: undoFunc, fn: func() { st.fired[mark] = struct{}{} }})
			delete(st.fired, mark)
		}
		// The high marks only spare a settlement the once-mark lookups:
		// dropped, the marks answer, and the next crossing of each window
		// notes its high mark again. This lets go of ended windows'.
		clear(st.detect.high)
		// Rates idle for a day (a token no longer used, revoked, deleted)
		// are filled from the disk again if they are used; cooldowns and
		// bursts past their span hold nothing.
		for scope, r := range st.detect.rates {
			if r.Idle(now) {
				delete(st.detect.rates, scope)
			}
		}
		keep := max(48*time.Hour, db.policy.Spike.Cooldown, db.policy.KeyRejectedEvery)
		for k, at := range st.detect.cool {
			if now.Sub(at) > keep {
				delete(st.detect.cool, k)
			}
		}
		for k, b := range st.detect.bursts {
			if now.Sub(b.from) >= burstSpan {
				delete(st.detect.bursts, k)
			}
		}
		n += len(stale)
		open := tx.Bucket(bucketAlertsOpen)
		ab := tx.Bucket(bucketAlerts)
		var old [][]byte
		ac := ab.Cursor()
		for k, v := ac.First(); k != nil && len(old) < pruneAlertsMax; k, v = ac.Next() {
			var e struct {
				Alert struct {
					Time time.Time `json:"time"`
				} `json:"alert"`
			}
			if json.Unmarshal(v, &e) != nil {
				continue // damaged: kept for hardcap db check, and read past
			}
			if now.Sub(e.Alert.Time) < AlertKeep {
				break // oldest first: the rest are younger
			}
			if open.Get(k) == nil {
				old = append(old, bytes.Clone(k))
			}
		}
		for _, k := range old {
			if err := fatal(ab.Delete(k)); err != nil {
				return err
			}
		}
		n += len(old)
		return nil
	})
	return n, err
}

// pruneAlerts runs PruneAlerts every interval until the writer ends.
func (db *DB) pruneAlerts(interval time.Duration) {
	for {
		if _, err := db.PruneAlerts(background); err != nil {
			if errors.Is(err, ErrClosed) {
				return
			}
			db.log.Error().Err(err).Msg("storage: pruning old alerts failed; retried later")
		}
		select {
		case <-time.After(interval):
		case <-db.writerDone:
			return
		}
	}
}
