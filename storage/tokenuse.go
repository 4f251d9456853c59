package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
)

// bucketTokenIPs holds the distinct client addresses each token was used
// from: token id, 0x00, address -> 24 bytes: first use and last use (Unix
// ns) and the request count, big-endian. They live beside the token, not in
// its JSON, so that a commit rewrites only the addresses it saw.
var bucketTokenIPs = []byte("token_ips")

// maxIPLen bounds the client address kept (an IPv6 address with a zone is
// far shorter); the proxy fills it from the connection, never from a header
// it does not trust, but a bound keeps a key small whatever it holds.
const maxIPLen = 64

// tokenUse is what noteUse saves of a token before the first use of a
// batch changes it, to put back on a rollback.
type tokenUse struct {
	last     tokens.Use
	requests int64
}

// ipKey names one client address entry of one token.
type ipKey struct{ id, ip string }

// ipUndo is an address entry before the batch changed it.
type ipUndo struct {
	had bool
	e   tokens.ClientIP
}

// noteUse folds one reserved request into the token's last use, request
// count and client addresses, in memory only: flush writes what the batch
// changed with the commit that already happens, once per token and address
// however many requests the batch carried, and the authentication view is
// not republished for it (it does not show the last use).
func (st *state) noteUse(id string, now time.Time, ip, userAgent string) {
	t, ok := st.tokens[id]
	if !ok {
		return
	}
	if _, seen := st.useUndo[id]; !seen {
		st.useUndo[id] = tokenUse{last: t.LastUsed, requests: t.Requests}
		st.useOrder = append(st.useOrder, id)
	}
	now = now.UTC().Round(0)
	ip = strings.ToValidUTF8(budget.ClipTo(ip, maxIPLen), "?")
	t.LastUsed = tokens.Use{Time: now, IP: ip, UserAgent: strings.ToValidUTF8(budget.ClipTo(userAgent, tokens.MaxUserAgent), "?")}
	t.Requests++
	st.tokens[id] = t
	if ip == "" {
		return
	}
	ips := st.ips[id]
	if ips == nil {
		ips = map[string]tokens.ClientIP{}
		st.ips[id] = ips
	}
	e, had := ips[ip]
	if !had && len(ips) >= tokens.MaxClientIPs {
		// Full: every address not yet seen is counted under one entry.
		ip = tokens.OtherIPs
		e, had = ips[ip]
	}
	k := ipKey{id, ip}
	if _, seen := st.ipUndo[k]; !seen {
		st.ipUndo[k] = ipUndo{had: had, e: e}
		st.ipOrder = append(st.ipOrder, k)
	}
	if !had {
		e = tokens.ClientIP{IP: ip, First: now}
	}
	e.Last = now
	e.Requests++
	ips[ip] = e
}

// rollbackUse puts back what noteUse changed since the last commit. It runs
// after the undo log, which may have restored (or removed) a token changed
// in the same batch.
func (st *state) rollbackUse() {
	for id, u := range st.useUndo {
		if t, ok := st.tokens[id]; ok {
			t.LastUsed, t.Requests = u.last, u.requests
			st.tokens[id] = t
		}
	}
	for k, u := range st.ipUndo {
		ips := st.ips[k.id]
		if u.had {
			ips[k.ip] = u.e
			continue
		}
		delete(ips, k.ip)
		if len(ips) == 0 {
			delete(st.ips, k.id)
		}
	}
}

// forgetUse drops the batch's record of changed uses.
func (st *state) forgetUse() {
	clear(st.useUndo)
	st.useOrder = st.useOrder[:0]
	clear(st.ipUndo)
	st.ipOrder = st.ipOrder[:0]
}

// flushUse writes the tokens and addresses the batch's requests used.
func (st *state) flushUse(tx *bolt.Tx) error {
	if len(st.useOrder) > 0 {
		b := tx.Bucket(bucketTokens)
		for _, id := range st.useOrder {
			t, ok := st.tokens[id]
			if !ok {
				continue
			}
			raw, err := json.Marshal(t)
			if err != nil {
				return err
			}
			if err := b.Put([]byte(id), raw); err != nil {
				return err
			}
		}
	}
	if len(st.ipOrder) > 0 {
		b := tx.Bucket(bucketTokenIPs)
		for _, k := range st.ipOrder {
			e, ok := st.ips[k.id][k.ip]
			if !ok {
				continue
			}
			v := st.value(24)
			binary.BigEndian.PutUint64(v[0:], uint64(e.First.UnixNano()))
			binary.BigEndian.PutUint64(v[8:], uint64(e.Last.UnixNano()))
			binary.BigEndian.PutUint64(v[16:], uint64(e.Requests))
			if err := b.Put(tokenIPKey(k.id, k.ip), v); err != nil {
				return err
			}
		}
	}
	return nil
}

func tokenIPKey(id, ip string) []byte {
	k := make([]byte, 0, len(id)+1+len(ip))
	k = append(k, id...)
	k = append(k, 0)
	return append(k, ip...)
}

// decodeClientIP reads one entry of bucketTokenIPs.
func decodeClientIP(k, v []byte) (id string, e tokens.ClientIP, err error) {
	i := bytes.IndexByte(k, 0)
	if i < 0 || len(v) != 24 {
		return "", e, fmt.Errorf("%w: client address entry %q", ErrDamaged, budget.Clip(string(k)))
	}
	e = tokens.ClientIP{
		IP:       string(k[i+1:]),
		First:    time.Unix(0, int64(binary.BigEndian.Uint64(v[0:]))).UTC(),
		Last:     time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))).UTC(),
		Requests: int64(binary.BigEndian.Uint64(v[16:])),
	}
	return string(k[:i]), e, nil
}

// loadIPs reads every token's client addresses into st.
func (st *state) loadIPs(tx *bolt.Tx) error {
	b := tx.Bucket(bucketTokenIPs)
	if b == nil {
		return nil
	}
	return b.ForEach(func(k, v []byte) error {
		id, e, err := decodeClientIP(k, v)
		if err != nil {
			return err
		}
		if st.ips[id] == nil {
			st.ips[id] = map[string]tokens.ClientIP{}
		}
		st.ips[id][e.IP] = e
		return nil
	})
}

// ClientIPs lists the distinct client addresses token id was used from, as
// of the last commit, most recently used first. Past tokens.MaxClientIPs
// addresses, the entry tokens.OtherIPs counts the rest.
func (db *DB) ClientIPs(id string) ([]tokens.ClientIP, error) {
	var out []tokens.ClientIP
	err := db.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketTokens).Get([]byte(id)) == nil {
			return fmt.Errorf("%w: %s", tokens.ErrTokenNotFound, shownID(id))
		}
		prefix := append([]byte(id), 0)
		c := tx.Bucket(bucketTokenIPs).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			_, e, err := decodeClientIP(k, v)
			if err != nil {
				return err
			}
			out = append(out, e)
		}
		return nil
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Last.After(out[j].Last) })
	return out, err
}

// RotateToken issues a new secret for token id, in one transaction: the
// same id, budget, scopes and history, the new secret's hash in
// token_hashes, and the old one kept there so that a request with it is
// told the token was rotated. The old secret is still accepted for grace
// (Authenticate marks such a token OldSecret); with grace 0 it is refused
// at once. RotateBy moves to now plus the token's RotateEvery. It refuses,
// changing nothing, an unknown id (tokens.ErrTokenNotFound), a revoked or
// expired token (tokens.ErrTokenFinal), and a negative grace or one
// that ends after the token expires (tokens.ErrInvalidGrace). It returns
// the token and the new secret, which is not stored.
func (db *DB) RotateToken(ctx context.Context, id string, grace time.Duration) (tokens.Token, string, error) {
	if grace < 0 {
		return tokens.Token{}, "", fmt.Errorf("%w: the grace must not be negative", tokens.ErrInvalidGrace)
	}
	secret, err := tokens.NewSecret()
	if err != nil {
		return tokens.Token{}, "", err
	}
	hash := tokens.HashOf(secret)
	var t tokens.Token
	err = db.update(ctx, func(tx *bolt.Tx) error {
		var ok bool
		if t, ok = db.st.tokens[id]; !ok {
			return fmt.Errorf("%w: %s", tokens.ErrTokenNotFound, shownID(id))
		}
		now := db.now().UTC()
		switch {
		case !t.Revoked.IsZero():
			return fmt.Errorf("%w: token %s is revoked, and a revoked token cannot be rotated; create a new one with `hardcap token create`", tokens.ErrTokenFinal, t.ID)
		case !t.Expires.IsZero() && !now.Before(t.Expires):
			return fmt.Errorf("%w: token %s has expired, and an expired token cannot be rotated; extend it with `hardcap token set %s --expires DURATION` or create a new one", tokens.ErrTokenFinal, t.ID, t.ID)
		case !t.Expires.IsZero() && now.Add(grace).After(t.Expires):
			return fmt.Errorf("%w: a grace of %s ends after token %s expires (%s); give a shorter one", tokens.ErrInvalidGrace, grace, t.ID, t.Expires.Format(time.RFC3339))
		}
		// Every check has passed; from here on only writes.
		detail := "grace " + grace.String()
		if t.RotatingUntil.After(now) {
			detail += "; the secret replaced before, still in its grace until " + t.RotatingUntil.Format(time.RFC3339) + ", is refused from now"
		}
		t.PrevHash, t.Hash = t.Hash, hash.String()
		t.Rotated = now
		t.RotatingUntil = time.Time{}
		if grace > 0 {
			t.RotatingUntil = now.Add(grace)
		}
		t.RotateBy = time.Time{}
		if t.RotateEvery > 0 {
			t.RotateBy = now.Add(t.RotateEvery)
		}
		if err := db.putToken(tx, t); err != nil {
			return err
		}
		if err := fatal(tx.Bucket(bucketTokenHashes).Put(hash[:], []byte(id))); err != nil {
			return err
		}
		db.st.setHash(hash, id)
		t = db.st.tokens[id]
		return db.appendAudit(tx, AuditEntry{Time: now, Actor: ActorFrom(ctx), Action: "rotate", Kind: "token", Target: id, Detail: detail})
	})
	if err != nil {
		return tokens.Token{}, "", err
	}
	return t, secret, nil
}
