package storage

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	bolt "go.etcd.io/bbolt"
)

// bucketProviderKeys holds the ledger of the real provider keys hardcap
// has read: provider name -> ProviderKeyInfo as JSON. It never holds a key,
// only a keyed hash of it (see metaKeyHMAC). It is created by the first
// write, so files of a hardcap before it need nothing at Open.
var bucketProviderKeys = []byte("provider_keys")

// metaKeyHMAC is the 32 random bytes that key the fingerprints of provider
// keys, generated at the first write. A keyed hash and not a plain one: a
// plain SHA-256 of a key found in a leak could be compared against a copy
// of the database, and a short or patterned key could be guessed from it.
var metaKeyHMAC = []byte("provider_key_hmac")

// MaxProviderKeyHistory is how many replaced fingerprints the ledger keeps
// per provider; the oldest go first.
const MaxProviderKeyHistory = 16

// ProviderKeyInfo is what the ledger knows of one provider's current real
// key. It is the read API for reports (hardcap keys, hardcap audit).
type ProviderKeyInfo struct {
	// Provider is the provider's name in the config.
	Provider string `json:"provider"`
	// SourceKind is where the key is read from: env, file, cmd or static.
	// Source describes the source without its value ("env:OPENAI_API_KEY",
	// "file:/run/keys/openai", "cmd:op ..."), as of the last read.
	SourceKind string `json:"source_kind"`
	Source     string `json:"source"`
	// Fingerprint is the hex HMAC-SHA256 of the key, keyed with this
	// database's random fingerprint key: equal keys have equal
	// fingerprints, and the key cannot be had back from it.
	Fingerprint string `json:"fingerprint"`
	// FirstSeen and LastSeen are the first and the last read that gave this
	// key.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// RotateEvery is how often the provider's key should be replaced (the
	// config's providers.NAME.rotate_every at the last read); RotateBy is
	// FirstSeen + RotateEvery, when this key is due.
	RotateEvery time.Duration `json:"rotate_every"`
	RotateBy    time.Time     `json:"rotate_by"`
	// Unauthorized counts the upstream 401 answers to requests that carried
	// this key, as persisted (a crash loses the counts since the last key
	// write); LastUnauthorized is the latest of them.
	Unauthorized     uint64    `json:"unauthorized,omitempty"`
	LastUnauthorized time.Time `json:"last_unauthorized,omitzero"`
	// ReusedAt is when this key, one replaced before (it was in the
	// history), came back into use: a key put back keeps its first-seen
	// time, due date and 401s, and an old key may be a leaked one. Zero
	// for a key not replaced before; a rotation to a new key clears it.
	ReusedAt time.Time `json:"reused_at,omitzero"`
	// History lists the keys this one replaced, oldest first, at most
	// MaxProviderKeyHistory.
	History []ProviderKeySighting `json:"history,omitempty"`
}

// ProviderKeySighting is a key a provider had before its current one.
type ProviderKeySighting struct {
	// Fingerprint is the key's fingerprint (see ProviderKeyInfo).
	Fingerprint string `json:"fingerprint"`
	// Source is where it was last read from.
	Source string `json:"source,omitempty"`
	// FirstSeen and LastSeen are its first and last read; the key that
	// replaced it was first seen after LastSeen.
	FirstSeen time.Time `json:"first_seen"`
	LastSeen  time.Time `json:"last_seen"`
	// Unauthorized and LastUnauthorized are its upstream 401s.
	Unauthorized     uint64    `json:"unauthorized,omitempty"`
	LastUnauthorized time.Time `json:"last_unauthorized,omitzero"`
}

// Overdue reports whether the key is past its rotation date at now.
func (k ProviderKeyInfo) Overdue(now time.Time) bool {
	return k.RotateEvery > 0 && !now.Before(k.RotateBy)
}

// ProviderKeySeen is one successful read of a provider's key.
type ProviderKeySeen struct {
	// Provider is the provider's name; required.
	Provider string
	// Key is the key read. It is hashed inside the write and never stored,
	// logged or returned; required.
	Key string
	// SourceKind and Source describe where it was read (see
	// ProviderKeyInfo); never the value.
	SourceKind, Source string
	// RotateEvery is the provider's rotation interval from the config; 0
	// keeps the one recorded.
	RotateEvery time.Duration
	// Time is when the key was read; zero is the database's clock.
	Time time.Time
	// Unauthorized counts the upstream 401s since the last write, with the
	// latest at LastUnauthorized. They are added to the key that was
	// current before this read: they were answers to it.
	Unauthorized     uint64
	LastUnauthorized time.Time
}

// ProviderKeyChange is what SeeProviderKey found.
type ProviderKeyChange struct {
	// Fingerprint is the fingerprint of the key read.
	Fingerprint string
	// Previous is the fingerprint it replaced when Rotated.
	Previous string
	// First says the ledger held no key for the provider before.
	First bool
	// Rotated says the key differs from the one the ledger held: a
	// rotation, recorded in the history and the audit log.
	Rotated bool
	// Reused says the key read is one the history held (a replaced key in
	// use again): a rotation that keeps the key's first-seen time.
	Reused bool
}

// FingerprintPrefix is how many hex digits of a fingerprint are shown.
const FingerprintPrefix = 8

// ShortFingerprint is the first FingerprintPrefix hex digits of fp.
func ShortFingerprint(fp string) string {
	if len(fp) > FingerprintPrefix {
		return fp[:FingerprintPrefix]
	}
	return fp
}

// SeeProviderKey records a read of a provider's key: the last-seen time of
// an unchanged key, or, for a key whose fingerprint differs from the one
// held, a rotation (the old key goes to the history with its last-seen
// time, the new one starts with its first-seen time) with an entry in the
// audit log by storage.ActorFrom(ctx). A new key that the history holds (a
// replaced key put back) leaves the history and keeps its first-seen time,
// so its due date, and its 401s: putting back an old, perhaps leaked, key
// does not reset its clock; the change says Reused and ReusedAt is set. A read older than the last one
// recorded that gives another key (two reads that crossed) changes nothing
// but the counts. The key itself is hashed here and never written.
func (db *DB) SeeProviderKey(ctx context.Context, s ProviderKeySeen) (ProviderKeyChange, error) {
	if err := checkProviderName(s.Provider); err != nil {
		return ProviderKeyChange{}, err
	}
	if s.Key == "" {
		return ProviderKeyChange{}, fmt.Errorf("%w: provider %s: the key is empty", ErrInvalidProviderKey, s.Provider)
	}
	if s.RotateEvery < 0 {
		return ProviderKeyChange{}, fmt.Errorf("%w: provider %s: rotate_every is negative", ErrInvalidProviderKey, s.Provider)
	}
	actor := ActorFrom(ctx)
	var ch ProviderKeyChange
	err := db.update(ctx, func(tx *bolt.Tx) error {
		ch = ProviderKeyChange{}
		now := s.Time
		if now.IsZero() {
			now = db.now()
		}
		now = now.UTC()
		secret, err := keyHMACSecret(tx)
		if err != nil {
			return err
		}
		cur, found, err := getProviderKey(tx, s.Provider)
		if err != nil {
			return err
		}
		// Every check has passed; writes from here on.
		if secret == nil {
			secret = make([]byte, 32)
			if _, err := rand.Read(secret); err != nil {
				return err
			}
			if err := fatal(tx.Bucket(bucketMeta).Put(metaKeyHMAC, secret)); err != nil {
				return err
			}
		}
		ch.Fingerprint = fingerprint(secret, s.Key)
		if found {
			addUnauthorized(&cur, s.Unauthorized, s.LastUnauthorized)
		}
		if s.RotateEvery > 0 {
			cur.RotateEvery = s.RotateEvery
		}
		switch {
		case !found:
			ch.First = true
			cur.Provider, cur.Fingerprint, cur.FirstSeen, cur.LastSeen = s.Provider, ch.Fingerprint, now, now
			cur.SourceKind, cur.Source = s.SourceKind, s.Source
		case cur.Fingerprint == ch.Fingerprint:
			if now.After(cur.LastSeen) {
				cur.LastSeen = now
			}
			cur.SourceKind, cur.Source = s.SourceKind, s.Source
		case now.Before(cur.LastSeen):
			// A read that crossed a newer one: the newer one holds.
		default:
			ch.Rotated, ch.Previous = true, cur.Fingerprint
			replaced := ProviderKeySighting{
				Fingerprint: cur.Fingerprint, Source: cur.Source, FirstSeen: cur.FirstSeen, LastSeen: cur.LastSeen,
				Unauthorized: cur.Unauthorized, LastUnauthorized: cur.LastUnauthorized,
			}
			// A replaced key back in use keeps what it had: its clock did
			// not stop while it was out.
			back := ProviderKeySighting{FirstSeen: now}
			cur.ReusedAt = time.Time{}
			again := func(h ProviderKeySighting) bool { return h.Fingerprint == ch.Fingerprint }
			if i := slices.IndexFunc(cur.History, again); i >= 0 {
				// The oldest sighting, and every one of them leaves.
				back, ch.Reused, cur.ReusedAt = cur.History[i], true, now
				cur.History = slices.DeleteFunc(slices.Clone(cur.History), again)
			}
			cur.History = append(cur.History, replaced)
			if n := len(cur.History) - MaxProviderKeyHistory; n > 0 {
				cur.History = append([]ProviderKeySighting(nil), cur.History[n:]...)
			}
			cur.Fingerprint, cur.FirstSeen, cur.LastSeen = ch.Fingerprint, back.FirstSeen, now
			cur.Unauthorized, cur.LastUnauthorized = back.Unauthorized, back.LastUnauthorized
			cur.SourceKind, cur.Source = s.SourceKind, s.Source
		}
		cur.RotateBy = time.Time{}
		if cur.RotateEvery > 0 {
			cur.RotateBy = cur.FirstSeen.Add(cur.RotateEvery)
		}
		if err := putProviderKey(tx, cur); err != nil {
			return err
		}
		switch {
		case ch.First:
			return db.appendAudit(tx, AuditEntry{Time: now, Actor: actor, Action: "create", Kind: "provider_key", Target: s.Provider,
				Detail: fmt.Sprintf("first key seen: fingerprint %s from %s", ShortFingerprint(ch.Fingerprint), s.Source)})
		case ch.Reused:
			return db.appendAudit(tx, AuditEntry{Time: now, Actor: actor, Action: "rotate", Kind: "provider_key", Target: s.Provider,
				Detail: fmt.Sprintf("a replaced key is in use again: fingerprint %s -> %s from %s; it keeps its first-seen time %s",
					ShortFingerprint(ch.Previous), ShortFingerprint(ch.Fingerprint), s.Source, cur.FirstSeen.Format(time.RFC3339))})
		case ch.Rotated:
			return db.appendAudit(tx, AuditEntry{Time: now, Actor: actor, Action: "rotate", Kind: "provider_key", Target: s.Provider,
				Detail: fmt.Sprintf("key changed: fingerprint %s -> %s from %s", ShortFingerprint(ch.Previous), ShortFingerprint(ch.Fingerprint), s.Source)})
		}
		return nil
	})
	if err != nil {
		return ProviderKeyChange{}, err
	}
	return ch, nil
}

// AddUnauthorized adds n upstream 401s, the latest at last, to the current
// key of provider: the counts kept in memory, written at shutdown. A
// provider the ledger holds no key for is skipped: its key was never read,
// so no request carried it.
func (db *DB) AddUnauthorized(ctx context.Context, provider string, n uint64, last time.Time) error {
	if err := checkProviderName(provider); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	return db.update(ctx, func(tx *bolt.Tx) error {
		cur, found, err := getProviderKey(tx, provider)
		if err != nil || !found {
			return err
		}
		addUnauthorized(&cur, n, last)
		if err := putProviderKey(tx, cur); err != nil {
			return err
		}
		return db.detectKeyRejected(tx, provider, cur, n, last)
	})
}

// ProviderKeys returns the ledger of provider keys, by provider name.
func (db *DB) ProviderKeys() ([]ProviderKeyInfo, error) {
	var out []ProviderKeyInfo
	err := db.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketProviderKeys)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			info, err := decodeProviderKey(k, v)
			if err != nil {
				return err
			}
			out = append(out, info)
			return nil
		})
	})
	return out, err
}

func addUnauthorized(k *ProviderKeyInfo, n uint64, last time.Time) {
	if n == 0 {
		return
	}
	k.Unauthorized += n
	if last.After(k.LastUnauthorized) {
		k.LastUnauthorized = last.UTC()
	}
}

// checkProviderName refuses a provider name no config can hold.
func checkProviderName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("%w: the provider name is empty or longer than 64 bytes", ErrInvalidProviderKey)
	}
	return nil
}

// keyHMACSecret returns the fingerprint key, nil when none was made yet.
func keyHMACSecret(tx *bolt.Tx) ([]byte, error) {
	v := tx.Bucket(bucketMeta).Get(metaKeyHMAC)
	switch {
	case v == nil:
		return nil, nil
	case len(v) != 32:
		// A new key would change every fingerprint and record a rotation
		// of every provider's key that never happened.
		return nil, fmt.Errorf("%w: meta %q is %d bytes, want 32", ErrDamaged, metaKeyHMAC, len(v))
	}
	return bytes.Clone(v), nil
}

// fingerprint is the hex HMAC-SHA256 of key under secret.
func fingerprint(secret []byte, key string) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(key))
	return hex.EncodeToString(m.Sum(nil))
}

func getProviderKey(tx *bolt.Tx, provider string) (ProviderKeyInfo, bool, error) {
	b := tx.Bucket(bucketProviderKeys)
	if b == nil {
		return ProviderKeyInfo{}, false, nil
	}
	v := b.Get([]byte(provider))
	if v == nil {
		return ProviderKeyInfo{}, false, nil
	}
	info, err := decodeProviderKey([]byte(provider), v)
	return info, err == nil, err
}

func decodeProviderKey(k, v []byte) (ProviderKeyInfo, error) {
	var info ProviderKeyInfo
	if err := decodeStrict(v, &info); err != nil {
		return ProviderKeyInfo{}, fmt.Errorf("%w: %s entry %q: %v", ErrDamaged, bucketProviderKeys, truncate(k), err)
	}
	return info, nil
}

// putProviderKey writes k; only called after every check of the change.
func putProviderKey(tx *bolt.Tx, k ProviderKeyInfo) error {
	b, err := tx.CreateBucketIfNotExists(bucketProviderKeys)
	if err != nil {
		return fatal(err)
	}
	v, err := json.Marshal(k)
	if err != nil {
		return fatal(err)
	}
	return fatal(b.Put([]byte(k.Provider), v))
}
