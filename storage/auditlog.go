package storage

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketAudit holds the admin audit log: big-endian time ns + sequence (16
// bytes) -> AuditEntry as JSON. Entries are written in the transaction of
// the change they describe, so a change and its entry commit together.
var bucketAudit = []byte("audit_log")

// AuditEntry is one admin action in the audit log.
type AuditEntry struct {
	Time time.Time `json:"time"`
	// Actor is the admin credential that acted (see WithActor); "system"
	// for changes hardcap made itself (an automatic freeze, a recovery).
	Actor string `json:"actor"`
	// Action is what was done: create, change, kill, resume, revoke,
	// rotate, delete.
	Action string `json:"action"`
	// Kind and Target name what it was done to: "token" and its id,
	// "project" and its name, or "all" and "".
	Kind   string `json:"kind"`
	Target string `json:"target,omitempty"`
	// Detail says more in a few words (the new budget, the grace); never a
	// secret.
	Detail string `json:"detail,omitempty"`
}

type actorKey struct{}

// WithActor returns ctx carrying the admin credential a change is made
// with; storage writes it into the audit log entry of every change made
// with ctx.
func WithActor(ctx context.Context, actor string) context.Context {
	return context.WithValue(ctx, actorKey{}, actor)
}

// ActorFrom returns the admin credential ctx carries, or "system".
func ActorFrom(ctx context.Context) string {
	if a, ok := ctx.Value(actorKey{}).(string); ok && a != "" {
		return a
	}
	return "system"
}

// appendAudit writes e to the audit log in tx, at the writer's clock when
// e.Time is zero. Call it from inside an update, after every check of the
// change has passed. A change of a project, token or kill switch is noted
// and marked for the change feed (Options.Changed), with the field groups
// its action touched (for the cluster's merge).
func (db *DB) appendAudit(tx *bolt.Tx, e AuditEntry) error {
	if err := db.noteChange(tx, e); err != nil {
		return err
	}
	return db.writeAudit(tx, e)
}

// writeAudit writes e to the audit log in tx, without telling the change
// feed (the mirror's own entries).
func (db *DB) writeAudit(tx *bolt.Tx, e AuditEntry) error {
	if e.Time.IsZero() {
		e.Time = db.now().UTC()
	}
	b := tx.Bucket(bucketAudit)
	seq, err := b.NextSequence()
	if err != nil {
		return fatal(err)
	}
	var key [16]byte
	binary.BigEndian.PutUint64(key[:8], uint64(e.Time.UnixNano()))
	binary.BigEndian.PutUint64(key[8:], seq)
	v, err := json.Marshal(e)
	if err != nil {
		return err
	}
	return fatal(b.Put(key[:], v))
}

// AuditFilter selects audit log entries: those at or after Since (zero: all)
// and, when Kind or Target is set, only those about it. Limit caps how many
// (the newest), 0 for all.
type AuditFilter struct {
	Since  time.Time
	Kind   string
	Target string
	Limit  int
}

// AuditLog returns the audit log entries f selects, oldest first.
func (db *DB) AuditLog(f AuditFilter) ([]AuditEntry, error) {
	var out []AuditEntry
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		// Newest first, so that Limit keeps the newest.
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			if len(k) == 16 && !f.Since.IsZero() && int64(binary.BigEndian.Uint64(k[:8])) < f.Since.UnixNano() {
				break
			}
			var e AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("%w: audit log entry %x: %v", ErrDamaged, k, err)
			}
			if (f.Kind != "" && e.Kind != f.Kind) || (f.Target != "" && e.Target != f.Target) {
				continue
			}
			out = append(out, e)
			if f.Limit > 0 && len(out) == f.Limit {
				break
			}
		}
		return nil
	})
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	return out, err
}
