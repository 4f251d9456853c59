package storage

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"
	"unicode"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// metaAckPrefix starts the meta keys of acknowledgements: "ack/" + the
// finding's key (KIND:TARGET) -> ackValue as JSON. They live in the meta
// bucket, which every copy (backup, salvage) keeps whole, so no new bucket
// and no format change is needed for a handful of entries.
var metaAckPrefix = []byte("ack/")

// MaxAckKey is the longest acknowledgement key, in bytes; bbolt allows far
// longer keys, a finding's kind and target need far less.
const MaxAckKey = 512

// Ack is a stored acknowledgement of an audit finding: a reminder the
// operator dismissed (see package audit).
type Ack struct {
	// Key names the finding (KIND:TARGET).
	Key string `json:"key"`
	// Time is when it was acknowledged, and Actor by which admin
	// credential (see WithActor).
	Time  time.Time `json:"time"`
	Actor string    `json:"actor"`
}

type ackValue struct {
	Time  time.Time `json:"time"`
	Actor string    `json:"actor"`
}

// Acknowledge stores the acknowledgement of the finding key, made with
// ctx's admin credential, and writes it to the audit log in the same
// transaction (action "acknowledge", kind "finding", the key as target). A
// key already acknowledged keeps its first acknowledgement and writes
// nothing; created says which happened. Which keys name a finding is the
// caller's to check (audit.Report.Ackable); Acknowledge refuses only keys it
// could not store (ErrInvalidAck).
func (db *DB) Acknowledge(ctx context.Context, key string) (ack Ack, created bool, err error) {
	if err := checkAckKey(key); err != nil {
		return Ack{}, false, err
	}
	mk := append(bytes.Clone(metaAckPrefix), key...)
	err = db.update(ctx, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(mk); v != nil {
			var old ackValue
			if err := json.Unmarshal(v, &old); err != nil {
				return fmt.Errorf("%w: acknowledgement %q: %v", ErrDamaged, truncate([]byte(key)), err)
			}
			ack, created = Ack{Key: key, Time: old.Time, Actor: old.Actor}, false
			return nil
		}
		ack, created = Ack{Key: key, Time: db.now().UTC(), Actor: ActorFrom(ctx)}, true
		v, err := json.Marshal(ackValue{Time: ack.Time, Actor: ack.Actor})
		if err != nil {
			return err
		}
		if err := fatal(meta.Put(mk, v)); err != nil {
			return err
		}
		return db.appendAudit(tx, AuditEntry{Time: ack.Time, Actor: ack.Actor, Action: "acknowledge", Kind: "finding", Target: key})
	})
	if err != nil {
		return Ack{}, false, err
	}
	return ack, created, nil
}

// Acks returns every stored acknowledgement, in key order.
func (db *DB) Acks() ([]Ack, error) {
	var out []Ack
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMeta).Cursor()
		for k, v := c.Seek(metaAckPrefix); k != nil && bytes.HasPrefix(k, metaAckPrefix); k, v = c.Next() {
			var a ackValue
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("%w: acknowledgement %q: %v", ErrDamaged, truncate(k), err)
			}
			out = append(out, Ack{Key: string(k[len(metaAckPrefix):]), Time: a.Time, Actor: a.Actor})
		}
		return nil
	})
	return out, err
}

func checkAckKey(key string) error {
	if key == "" || len(key) > MaxAckKey {
		return fmt.Errorf("%w: %d bytes, want 1 to %d", ErrInvalidAck, len(key), MaxAckKey)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: not UTF-8 text", ErrInvalidAck)
	}
	for _, r := range key {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: it holds a control character", ErrInvalidAck)
		}
	}
	return nil
}
