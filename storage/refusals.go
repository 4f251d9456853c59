package storage

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
)

// bucketTokenRefusals holds the requests refused per token before (or
// instead of) a reservation: token id, 0x00, 'c' and a refusal code -> 24
// bytes (first and last refusal, Unix ns, and the count, big-endian) and
// the client address of the last one; token id, 0x00, 'a' and a client
// address -> the same 24 bytes. Created by the first commit that has
// refusals to write.
var bucketTokenRefusals = []byte("token_refusals")

// MaxRefusalCodes bounds the refusal codes kept per token; past it, a code
// not yet seen is counted under RefusalOtherCode. The proxy's codes are far
// fewer.
const MaxRefusalCodes = 64

// RefusalOtherCode counts a token's refusals whose code did not fit under
// MaxRefusalCodes.
const RefusalOtherCode = "other"

// MaxRefusalIPs bounds the client addresses kept per token for its
// refusals; past it, an address not yet seen is counted under
// tokens.OtherIPs.
const MaxRefusalIPs = 256

// refusalQueueLen bounds the refusals waiting for the writer; one that
// finds the queue full is dropped and counted (RefusalsDropped).
const refusalQueueLen = 4096

// maxCodeLen bounds a refusal code kept (the proxy's are a few words).
const maxCodeLen = 64

// Refusal counts one token's refusals with one code.
type Refusal struct {
	Code  string    `json:"code"`
	Count int64     `json:"count"`
	First time.Time `json:"first"`
	Last  time.Time `json:"last"`
	// LastIP is the client address of the last one.
	LastIP string `json:"last_ip"`
}

// TokenRefusals is what the ledger holds of one token's refusals: by code,
// most recent first, and by client address, most recent first.
type TokenRefusals struct {
	Codes []Refusal         `json:"codes"`
	IPs   []tokens.ClientIP `json:"ips"`
}

// refusal is one refused request on its way to the writer.
type refusal struct {
	id, code, ip string
	at           time.Time
}

// refusalBook is one token's refusals in the writer's memory.
type refusalBook struct {
	codes map[string]Refusal
	ips   map[string]tokens.ClientIP
}

// refusalKey names one entry of bucketTokenRefusals: a code, or an address
// when ip is set.
type refusalKey struct {
	id   string
	ip   bool
	name string
}

// NoteRefusal counts a request refused for token id with code (the
// answer's error code), from client address ip, at at. It never waits: the
// refusal is handed to the writer, which folds it into memory and writes
// it with the next commit that happens anyway (no disk write per refusal);
// when the writer's queue is full it is dropped and counted in
// RefusalsDropped. A crash loses the counts since the last commit. An
// empty id (an unknown secret) is not counted: it names no token.
func (db *DB) NoteRefusal(id, code, ip string, at time.Time) {
	if id == "" {
		return
	}
	select {
	case db.refusals <- refusal{id: id, code: code, ip: ip, at: at}:
	default:
		db.refusalsDropped.Add(1)
	}
}

// RefusalsDropped is how many refusals NoteRefusal dropped since Open
// because the writer's queue was full.
func (db *DB) RefusalsDropped() uint64 { return db.refusalsDropped.Load() }

// drainRefusals folds every refusal queued at the moment into the state.
// Writer only.
func (db *DB) drainRefusals() {
	for range refusalQueueLen {
		select {
		case r := <-db.refusals:
			db.st.noteRefusal(r)
		default:
			return
		}
	}
}

// persistRefusals commits the refusals folded since the last commit, if
// any: the writer runs it once the queue of operations is closed, so that
// a clean shutdown keeps them.
func (db *DB) persistRefusals() {
	db.drainRefusals()
	if len(db.st.refusalOrder) == 0 {
		return
	}
	db.commitBatch([]*writeOp{{fn: func(*bolt.Tx) error { return nil }, done: make(chan error, 1)}})
}

// noteRefusal folds one refusal into the token's counts in memory; flush
// writes what changed. A token the writer does not know is skipped.
func (st *state) noteRefusal(r refusal) {
	if _, ok := st.tokens[r.id]; !ok {
		return
	}
	if st.refusals == nil {
		st.refusals = map[string]*refusalBook{}
		st.refusalDirty = map[refusalKey]struct{}{}
	}
	at := r.at.UTC().Round(0)
	ip := strings.ToValidUTF8(budget.ClipTo(r.ip, maxIPLen), "?")
	code := strings.ToValidUTF8(budget.ClipTo(r.code, maxCodeLen), "?")
	if code == "" {
		code = RefusalOtherCode
	}
	b := st.refusals[r.id]
	if b == nil {
		b = &refusalBook{codes: map[string]Refusal{}, ips: map[string]tokens.ClientIP{}}
		st.refusals[r.id] = b
	}
	c, had := b.codes[code]
	if !had && len(b.codes) >= MaxRefusalCodes {
		code = RefusalOtherCode
		c, had = b.codes[code]
	}
	if !had {
		c = Refusal{Code: code, First: at}
	}
	c.Count++
	if !at.Before(c.Last) {
		c.Last, c.LastIP = at, ip
	}
	b.codes[code] = c
	st.markRefusal(refusalKey{id: r.id, name: code})
	if ip == "" {
		return
	}
	e, had := b.ips[ip]
	if !had && len(b.ips) >= MaxRefusalIPs {
		ip = tokens.OtherIPs
		e, had = b.ips[ip]
	}
	if !had {
		e = tokens.ClientIP{IP: ip, First: at}
	}
	if at.After(e.Last) {
		e.Last = at
	}
	e.Requests++
	b.ips[ip] = e
	st.markRefusal(refusalKey{id: r.id, ip: true, name: ip})
}

func (st *state) markRefusal(k refusalKey) {
	if _, ok := st.refusalDirty[k]; !ok {
		st.refusalDirty[k] = struct{}{}
		st.refusalOrder = append(st.refusalOrder, k)
	}
}

// committedRefusals drops the record of what changed once it is on disk.
// A rollback keeps it: the counts stay in memory and the next commit
// writes them.
func (st *state) committedRefusals() {
	clear(st.refusalDirty)
	st.refusalOrder = st.refusalOrder[:0]
}

// flushRefusals writes the refusal entries changed since the last commit.
func (st *state) flushRefusals(tx *bolt.Tx) error {
	if len(st.refusalOrder) == 0 {
		return nil
	}
	b, err := tx.CreateBucketIfNotExists(bucketTokenRefusals)
	if err != nil {
		return err
	}
	for _, k := range st.refusalOrder {
		book := st.refusals[k.id]
		if book == nil {
			continue
		}
		var first, last time.Time
		var n int64
		var tail string
		if k.ip {
			e, ok := book.ips[k.name]
			if !ok {
				continue
			}
			first, last, n = e.First, e.Last, e.Requests
		} else {
			c, ok := book.codes[k.name]
			if !ok {
				continue
			}
			first, last, n, tail = c.First, c.Last, c.Count, c.LastIP
		}
		v := st.value(24 + len(tail))
		binary.BigEndian.PutUint64(v[0:], uint64(first.UnixNano()))
		binary.BigEndian.PutUint64(v[8:], uint64(last.UnixNano()))
		binary.BigEndian.PutUint64(v[16:], uint64(n))
		copy(v[24:], tail)
		if err := b.Put(refusalEntryKey(k), v); err != nil {
			return err
		}
	}
	return nil
}

func refusalEntryKey(k refusalKey) []byte {
	out := make([]byte, 0, len(k.id)+2+len(k.name))
	out = append(out, k.id...)
	out = append(out, 0)
	if k.ip {
		out = append(out, 'a')
	} else {
		out = append(out, 'c')
	}
	return append(out, k.name...)
}

// decodeRefusal reads one entry of bucketTokenRefusals.
func decodeRefusal(k, v []byte) (refusalKey, Refusal, error) {
	i := bytes.IndexByte(k, 0)
	if i < 0 || i+1 >= len(k) || (k[i+1] != 'a' && k[i+1] != 'c') || len(v) < 24 || (k[i+1] == 'a' && len(v) != 24) {
		return refusalKey{}, Refusal{}, fmt.Errorf("%w: refusal entry %q", ErrDamaged, budget.Clip(string(k)))
	}
	rk := refusalKey{id: string(k[:i]), ip: k[i+1] == 'a', name: string(k[i+2:])}
	r := Refusal{
		Code:   rk.name,
		First:  time.Unix(0, int64(binary.BigEndian.Uint64(v[0:]))).UTC(),
		Last:   time.Unix(0, int64(binary.BigEndian.Uint64(v[8:]))).UTC(),
		Count:  int64(binary.BigEndian.Uint64(v[16:])),
		LastIP: string(v[24:]),
	}
	return rk, r, nil
}

// loadRefusals reads every token's refusals into st.
func (st *state) loadRefusals(tx *bolt.Tx) error {
	b := tx.Bucket(bucketTokenRefusals)
	if b == nil {
		return nil
	}
	st.refusals = map[string]*refusalBook{}
	st.refusalDirty = map[refusalKey]struct{}{}
	return b.ForEach(func(k, v []byte) error {
		rk, r, err := decodeRefusal(k, v)
		if err != nil {
			return err
		}
		book := st.refusals[rk.id]
		if book == nil {
			book = &refusalBook{codes: map[string]Refusal{}, ips: map[string]tokens.ClientIP{}}
			st.refusals[rk.id] = book
		}
		if rk.ip {
			book.ips[rk.name] = tokens.ClientIP{IP: rk.name, First: r.First, Last: r.Last, Requests: r.Count}
		} else {
			book.codes[rk.name] = r
		}
		return nil
	})
}

// Refusals returns token id's refusals as of the last commit (DB.Flush
// first commits those noted before it): by code and by client address,
// most recent first.
func (db *DB) Refusals(id string) (TokenRefusals, error) {
	out := TokenRefusals{Codes: []Refusal{}, IPs: []tokens.ClientIP{}}
	err := db.view(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketTokens).Get([]byte(id)) == nil {
			return fmt.Errorf("%w: %s", tokens.ErrTokenNotFound, shownID(id))
		}
		b := tx.Bucket(bucketTokenRefusals)
		if b == nil {
			return nil
		}
		prefix := append([]byte(id), 0)
		c := b.Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			rk, r, err := decodeRefusal(k, v)
			if err != nil {
				return err
			}
			if rk.ip {
				out.IPs = append(out.IPs, tokens.ClientIP{IP: rk.name, First: r.First, Last: r.Last, Requests: r.Count})
			} else {
				out.Codes = append(out.Codes, r)
			}
		}
		return nil
	})
	sort.SliceStable(out.Codes, func(i, j int) bool { return out.Codes[i].Last.After(out.Codes[j].Last) })
	sort.SliceStable(out.IPs, func(i, j int) bool { return out.IPs[i].Last.After(out.IPs[j].Last) })
	return out, err
}
