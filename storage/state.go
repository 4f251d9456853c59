package storage

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// state is the writer's copy in memory of what reserve, settle and the
// tenancy changes read: tokens, token hashes, projects, limits, spend
// counters, the global kill switch and the open reservations. Only the
// writer goroutine touches it (and Open, before the writer starts), so it
// needs no lock, and a reservation costs no JSON decode and no bbolt read.
//
// Every change goes to bbolt first and to the state second, and is noted
// in an undo log: when the transaction is rolled back (an operation failed
// with a fatalError and the batch runs again without it, or Commit failed)
// the log is played backwards, so that memory equals what is on disk;
// after a commit the log is dropped. Later operations of one batch see the
// changes of earlier ones, as they see them in the transaction.
type state struct {
	tokens   map[string]tokens.Token
	hashes   map[tokens.Hash]string // sha256 of the secret -> token id
	projects map[string]tokens.Project
	limits   map[budget.Scope]budget.Limit // no entry: no limit (budget.Limit{})
	spend    map[string]budget.Spend       // no entry: a window never charged
	res      map[string]budget.Reservation
	killAll  bool
	// ips are the client addresses each token was used from, by token id
	// and address (see bucketTokenIPs).
	ips map[string]map[string]tokens.ClientIP

	// The alerts' state (see alerts.go and detect.go): the once-marks in
	// force, the alerts and freezes of the batch (for the callbacks after
	// its commit), what the detectors remember.
	fired   map[string]struct{}
	raised  int
	freezes []KillTarget
	detect  detectState

	undo []undo
	// What reserve's noteUse changed since the last commit: each token's
	// and address entry's value before the first change, for a rollback,
	// and the order first changed, for flush (see tokenuse.go).
	useUndo  map[string]tokenUse
	useOrder []string
	ipUndo   map[ipKey]ipUndo
	ipOrder  []ipKey
	// refusals are each token's refused requests, and refusalDirty and
	// refusalOrder the entries changed since the last commit (see
	// refusals.go); a rollback keeps them for the next commit.
	refusals     map[string]*refusalBook
	refusalDirty map[refusalKey]struct{}
	refusalOrder []refusalKey
	// The tokens and projects changed since the last commit, and whether
	// the global kill switch was: what the authentication view must take
	// after the commit (see DB.publish).
	dirtyTokens   []string
	dirtyHashes   []tokens.Hash
	dirtyProjects []string
	dirtyKill     bool

	// windows caches each scope's current window key (Budget.Key), which
	// would otherwise be formatted for every budget of every reservation.
	windows map[budget.Scope]window
	// scopes caches a token's project and token scopes, by token id.
	scopes map[string][2]budget.Scope

	// The spend counters changed since the last commit, each once, in the
	// order first changed. flush writes their final values just before the
	// commit: a batch of 64 requests of one token changes the same three
	// counters 128 times, and writing each change to bbolt cost a cursor,
	// a key and a value every time.
	dirtySpend map[string]struct{}
	spendOrder []string
	// hours are what the batch's records add to the hour totals, written by
	// flush too (each record added two totals, a Get and a Put each).
	hours     map[hourKeyT]hourSum
	hourOrder []hourKeyT
	// strs caches the string dictionary (string -> id) for putRecord, so a
	// known string costs no Get. It is filled as strings are used (never
	// loaded whole: the dictionary holds every token that ever made a
	// request) and only holds what the disk does: an entry added inside a
	// transaction is in the undo log, and a miss reads the disk (rollUp
	// interns outside the cache, and the dictionary never changes an id).
	strs map[string]uint32
	// keyBuf and ixBuf are scratch for bbolt keys, which Put and Delete
	// copy or only read during the call; recBuf for a record's encoding.
	keyBuf, ixBuf, recBuf []byte
	// vals is the memory the writer's bbolt values are cut from (see
	// value), keySlab that of reservations' key lists (see keySlice).
	vals    []byte
	keySlab []string
	// resCursor deletes settled reservations in resTx, the transaction it
	// was made in: one cursor for the batch instead of one a call.
	resCursor *bolt.Cursor
	resTx     *bolt.Tx
}

// valueChunk is the size of the chunks value cuts from: about 40
// reservations and records.
const valueChunk = 8 << 10

// keySlabLen is how many key lists of three keySlice cuts from one slab.
const keySlabLen = 256

// hourKeyT is an hour total's key (see hourKey).
type hourKeyT [9]byte

// hourSum is what a batch adds to one hour total.
type hourSum struct {
	n       uint64
	charged budget.Money
}

// window is a cached budget window key and the times it is the key for.
type window struct {
	period      budget.Period
	from, until time.Time // until zero: forever (a total budget)
	key         string
}

type undoKind uint8

const (
	undoSpend undoKind = iota
	undoRes
	undoString
	undoFunc
)

// undo restores one entry of the state. Spend and reservations, changed by
// every request, are restored without a closure; the rare tenancy changes
// use fn.
type undo struct {
	kind  undoKind
	had   bool
	key   string
	spend budget.Spend
	res   budget.Reservation
	fn    func()
}

func newState() *state {
	return &state{
		tokens:   map[string]tokens.Token{},
		hashes:   map[tokens.Hash]string{},
		projects: map[string]tokens.Project{},
		limits:   map[budget.Scope]budget.Limit{},
		spend:    map[string]budget.Spend{},
		res:      map[string]budget.Reservation{},
		windows:  map[budget.Scope]window{},
		scopes:   map[string][2]budget.Scope{},
		ips:      map[string]map[string]tokens.ClientIP{},
		fired:    map[string]struct{}{},
		detect:   newDetectState(),
		useUndo:  map[string]tokenUse{},
		ipUndo:   map[ipKey]ipUndo{},

		dirtySpend: map[string]struct{}{},
		hours:      map[hourKeyT]hourSum{},
		strs:       map[string]uint32{},
	}
}

// loadState reads the state from the buckets of tx.
func loadState(tx *bolt.Tx) (*state, error) {
	st := newState()
	err := tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
		var t tokens.Token
		if err := json.Unmarshal(v, &t); err != nil {
			return fmt.Errorf("storage: token %s: %w", budget.Clip(string(k)), err)
		}
		st.tokens[string(k)] = t
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketTokenHashes).ForEach(func(k, v []byte) error {
		var h tokens.Hash
		if len(k) != len(h) {
			return nil // never a secret's hash: no secret finds it
		}
		copy(h[:], k)
		st.hashes[h] = string(v)
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketProjects).ForEach(func(k, v []byte) error {
		var p tokens.Project
		if err := json.Unmarshal(v, &p); err != nil {
			return fmt.Errorf("storage: project %s: %w", budget.Clip(string(k)), err)
		}
		st.projects[string(k)] = p
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketLimits).ForEach(func(k, v []byte) error {
		l, err := decodeLimit(v)
		if err != nil {
			return fmt.Errorf("storage: limit of %s: %w", budget.Clip(string(k)), err)
		}
		st.limits[budget.Scope(k)] = l
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketSpend).ForEach(func(k, v []byte) error {
		if len(v) == 16 {
			st.spend[string(k)] = getSpend(tx, string(k))
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	err = tx.Bucket(bucketReservations).ForEach(func(k, v []byte) error {
		res, err := decodeReservation(k, v, false)
		if err != nil {
			return err
		}
		st.res[string(k)] = res
		return nil
	})
	if err != nil {
		return nil, err
	}
	st.killAll = killedAll(tx)
	if err := st.loadIPs(tx); err != nil {
		return nil, err
	}
	if err := st.loadRefusals(tx); err != nil {
		return nil, err
	}
	return st, nil
}

// rollback undoes every change since the last commit. What flush would
// have written is dropped with it: the transaction is gone, and a batch
// run again dirties again what its operations change.
func (st *state) rollback() {
	for i := len(st.undo) - 1; i >= 0; i-- {
		u := &st.undo[i]
		switch u.kind {
		case undoSpend:
			if u.had {
				st.spend[u.key] = u.spend
			} else {
				delete(st.spend, u.key)
			}
		case undoRes:
			if u.had {
				st.res[u.key] = u.res
			} else {
				delete(st.res, u.key)
			}
		case undoString:
			delete(st.strs, u.key)
		case undoFunc:
			u.fn()
		}
	}
	st.rollbackUse()
	st.rollbackDetect()
	st.forget()
}

// committed drops the undo log once the transaction is on disk.
func (st *state) committed() {
	st.forget()
	st.committedRefusals()
}

func (st *state) forget() {
	clear(st.undo) // let go of the reservations and closures it holds
	st.undo = st.undo[:0]
	st.dirtyTokens = st.dirtyTokens[:0]
	st.dirtyHashes = st.dirtyHashes[:0]
	st.forgetUse()
	st.dirtyProjects = st.dirtyProjects[:0]
	st.dirtyKill = false
	clear(st.dirtySpend)
	clear(st.spendOrder)
	st.spendOrder = st.spendOrder[:0]
	clear(st.hours)
	st.hourOrder = st.hourOrder[:0]
	st.resCursor, st.resTx = nil, nil
	st.forgetDetect()
}

// setSpend changes a window's spend in memory and marks it for flush.
func (st *state) setSpend(key string, sp budget.Spend) {
	old, had := st.spend[key]
	st.undo = append(st.undo, undo{kind: undoSpend, key: key, had: had, spend: old})
	st.spend[key] = sp
	if _, ok := st.dirtySpend[key]; !ok {
		st.dirtySpend[key] = struct{}{}
		st.spendOrder = append(st.spendOrder, key)
	}
}

// addHour adds one record of charged to the hour total k, for flush.
func (st *state) addHour(k hourKeyT, charged budget.Money) {
	h, ok := st.hours[k]
	if !ok {
		st.hourOrder = append(st.hourOrder, k)
	}
	h.n++
	h.charged += charged
	st.hours[k] = h
}

// addString caches the dictionary's id of s.
func (st *state) addString(s string, id uint32) {
	st.undo = append(st.undo, undo{kind: undoString, key: s})
	st.strs[s] = id
}

// key is k in the scratch key buffer, for a bbolt call that copies it.
func (st *state) key(k string) []byte {
	st.keyBuf = append(st.keyBuf[:0], k...)
	return st.keyBuf
}

// value is n bytes of memory of their own for a bbolt value: bbolt keeps
// a value (not a key) until the commit, so each needs memory no later
// write touches. They are cut from chunks, one allocation for many
// values; a chunk is never handed out twice, so it stays valid for as long
// as anything refers to it, and the collector frees it after.
func (st *state) value(n int) []byte {
	if cap(st.vals)-len(st.vals) < n {
		st.vals = make([]byte, 0, max(valueChunk, n))
	}
	i := len(st.vals)
	st.vals = st.vals[:i+n]
	return st.vals[i : i+n : i+n]
}

// keySlice is a list of n keys for a reservation, cut from a slab as value
// cuts bytes. Its capacity is n, so an append (carrySpend's) copies it.
func (st *state) keySlice(n int) []string {
	if cap(st.keySlab)-len(st.keySlab) < n {
		st.keySlab = make([]string, 0, max(3*keySlabLen, n))
	}
	i := len(st.keySlab)
	st.keySlab = st.keySlab[:i+n]
	return st.keySlab[i : i+n : i+n]
}

// deleteReservation deletes the entry of reservation id from tx, as
// Bucket.Delete does (nothing when there is none), with a cursor kept for
// the transaction.
func (st *state) deleteReservation(tx *bolt.Tx, id string) error {
	if st.resTx != tx {
		st.resCursor, st.resTx = tx.Bucket(bucketReservations).Cursor(), tx
	}
	k, _ := st.resCursor.Seek(st.key(id))
	if string(k) != id {
		return nil
	}
	return st.resCursor.Delete()
}

// indexKey is the scratch buffer of an index key: 4 bytes for the string
// id, with room for a record key of n bytes after them.
func (st *state) indexKey(n int) []byte {
	if cap(st.ixBuf) < 4+n {
		st.ixBuf = make([]byte, 4, 4+n)
	}
	return st.ixBuf[:4]
}

// flush writes what the batch's operations changed in memory only: the
// final value of every spend counter they changed, what their records
// add to the hour totals, and the last use of every token they reserved
// for (see noteUse). The writer runs it just before the commit (and
// Open before its recovery commits), so nothing inside the transaction may
// read those from bbolt: reserve, settle and the tenancy changes read
// st.spend, and nothing in a write transaction reads an hour total.
func (st *state) flush(tx *bolt.Tx) error {
	if len(st.spendOrder) == 0 && len(st.hourOrder) == 0 && len(st.useOrder) == 0 && len(st.refusalOrder) == 0 {
		return nil
	}
	if tx.DB() == nil {
		// An operation closed the transaction (a test's failed commit).
		return berrors.ErrTxClosed
	}
	if err := st.flushUse(tx); err != nil {
		return err
	}
	if err := st.flushRefusals(tx); err != nil {
		return err
	}
	next := func() []byte { return st.value(16) }
	if len(st.spendOrder) > 0 {
		b := tx.Bucket(bucketSpend)
		for _, k := range st.spendOrder {
			v := next()
			encodeSpend(v, st.spend[k])
			if err := b.Put(st.key(k), v); err != nil {
				return err
			}
		}
	}
	if len(st.hourOrder) > 0 {
		b := tx.Bucket(bucketUsageHours)
		b.FillPercent = appendFill
		for _, k := range st.hourOrder {
			add := st.hours[k]
			st.keyBuf = append(st.keyBuf[:0], k[:]...)
			n, sum := hourTotal(b.Get(st.keyBuf))
			v := next()
			binary.BigEndian.PutUint64(v[:8], n+add.n)
			binary.BigEndian.PutUint64(v[8:], uint64(sum+add.charged))
			if err := b.Put(st.keyBuf, v); err != nil {
				return err
			}
		}
	}
	return nil
}

func (st *state) setRes(res budget.Reservation) {
	old, had := st.res[res.ID]
	st.undo = append(st.undo, undo{kind: undoRes, key: res.ID, had: had, res: old})
	st.res[res.ID] = res
}

func (st *state) deleteRes(id string) {
	old, had := st.res[id]
	st.undo = append(st.undo, undo{kind: undoRes, key: id, had: had, res: old})
	delete(st.res, id)
}

func (st *state) setToken(t tokens.Token) {
	old, had := st.tokens[t.ID]
	st.undo = append(st.undo, undo{kind: undoFunc, fn: func() {
		if had {
			st.tokens[t.ID] = old
		} else {
			delete(st.tokens, t.ID)
		}
	}})
	st.tokens[t.ID] = t
	st.dirtyTokens = append(st.dirtyTokens, t.ID)
}

func (st *state) setHash(h tokens.Hash, id string) {
	old, had := st.hashes[h]
	st.undo = append(st.undo, undo{kind: undoFunc, fn: func() {
		if had {
			st.hashes[h] = old
		} else {
			delete(st.hashes, h)
		}
	}})
	st.hashes[h] = id
	st.dirtyTokens = append(st.dirtyTokens, id)
	st.dirtyHashes = append(st.dirtyHashes, h)
}

func (st *state) setProject(p tokens.Project) {
	old, had := st.projects[p.Name]
	st.undo = append(st.undo, undo{kind: undoFunc, fn: func() {
		if had {
			st.projects[p.Name] = old
		} else {
			delete(st.projects, p.Name)
		}
	}})
	st.projects[p.Name] = p
	st.dirtyProjects = append(st.dirtyProjects, p.Name)
}

func (st *state) deleteProject(name string) {
	old, had := st.projects[name]
	st.undo = append(st.undo, undo{kind: undoFunc, fn: func() {
		if had {
			st.projects[name] = old
		}
	}})
	delete(st.projects, name)
	st.dirtyProjects = append(st.dirtyProjects, name)
}

func (st *state) setLimit(scope budget.Scope, l budget.Limit, present bool) {
	old, had := st.limits[scope]
	st.undo = append(st.undo, undo{kind: undoFunc, fn: func() {
		if had {
			st.limits[scope] = old
		} else {
			delete(st.limits, scope)
		}
	}})
	if present {
		st.limits[scope] = l
	} else {
		delete(st.limits, scope)
	}
}

func (st *state) setKillAll(on bool) {
	old := st.killAll
	st.undo = append(st.undo, undo{kind: undoFunc, fn: func() { st.killAll = old }})
	st.killAll = on
	st.dirtyKill = true
}

// tokenAndProject finds a token and its project, with the errors of
// authentication.
func (st *state) tokenAndProject(id string) (tokens.Token, tokens.Project, error) {
	tok, ok := st.tokens[id]
	if !ok {
		return tok, tokens.Project{}, tokens.ErrUnknown
	}
	if !tok.Revoked.IsZero() {
		// A revoked token's project may be gone (project delete revokes
		// them); it is refused as revoked either way.
		return tok, tokens.Project{}, tokens.ErrRevoked
	}
	proj, ok := st.projects[tok.Project]
	if !ok {
		return tok, proj, fmt.Errorf("%w: %s", tokens.ErrProjectNotFound, budget.Clip(tok.Project))
	}
	return tok, proj, nil
}

// tokenScopes is the project and token scope of a token, formatted once.
func (st *state) tokenScopes(tok tokens.Token) (budget.Scope, budget.Scope) {
	s, ok := st.scopes[tok.ID]
	if !ok || s[0] != budget.ProjectScope(tok.Project) {
		s = [2]budget.Scope{budget.ProjectScope(tok.Project), budget.TokenScope(tok.ID)}
		st.scopes[tok.ID] = s
	}
	return s[0], s[1]
}

// windowKey is Budget{scope, l}.Key(now, loc), from the cache while now is
// in the cached window.
func (st *state) windowKey(scope budget.Scope, l budget.Limit, now time.Time, loc *time.Location) string {
	p := l.Period
	if p == "" {
		p = budget.Total
	}
	if w, ok := st.windows[scope]; ok && w.period == p && !now.Before(w.from) && (w.until.IsZero() || now.Before(w.until)) {
		return w.key
	}
	w := window{period: p, key: budget.Budget{Scope: scope, Limit: l}.Key(now, loc)}
	if p != budget.Total {
		w.from, w.until = p.Start(now, loc), p.End(now, loc)
		if w.until.IsZero() {
			// An unknown period: never cache it.
			return w.key
		}
	}
	st.windows[scope] = w
	return w.key
}

// authView is what Authenticate reads: every hash a token's secret ever
// had (the current one, and those rotations replaced) to the token's id,
// a copy of each token with its current and previous hash, the projects
// and the global kill switch, safe for concurrent readers. The writer
// updates it after each commit and before it answers the commit's callers
// (see DB.publish), so a revoke, kill or rotation is seen by the next
// authentication once its call returns. A token's last use is left out:
// it changes with every request, and the view is not republished for it.
type authView struct {
	mu       sync.RWMutex
	byHash   map[tokens.Hash]string
	tokens   map[string]authToken
	projects map[string]tokens.Project
	killAll  bool
}

// authToken is a token in the view, with its hashes parsed once.
type authToken struct {
	tok     tokens.Token
	hash    tokens.Hash
	prev    tokens.Hash
	hasPrev bool
}

// newAuthView builds the view of st.
func newAuthView(st *state) *authView {
	a := &authView{byHash: map[tokens.Hash]string{}, tokens: map[string]authToken{}, projects: map[string]tokens.Project{}}
	for h, id := range st.hashes {
		a.byHash[h] = id
	}
	for id := range st.tokens {
		a.setToken(st, id)
	}
	for name, p := range st.projects {
		a.projects[name] = p
	}
	a.killAll = st.killAll
	return a
}

// setToken copies token id into the view; a token whose hash does not
// parse is left out (no secret finds it).
func (a *authView) setToken(st *state, id string) {
	t, ok := st.tokens[id]
	h, err := parseHash(t.Hash)
	if !ok || err != nil {
		delete(a.tokens, id)
		return
	}
	at := authToken{hash: h}
	if t.PrevHash != "" {
		if p, err := parseHash(t.PrevHash); err == nil {
			at.prev, at.hasPrev = p, true
		}
	}
	// Never shared with the writer's copy.
	t.Models, t.Routes, t.IPs = slices.Clone(t.Models), slices.Clone(t.Routes), slices.Clone(t.IPs)
	t.LastUsed, t.Requests = tokens.Use{}, 0
	at.tok = t
	a.tokens[id] = at
}

// publish brings the authentication view up to date with what the last
// commit changed. It runs on the writer after Commit returned and before
// any caller of the batch is answered.
func (db *DB) publish() {
	st := db.st
	if len(st.dirtyTokens) == 0 && len(st.dirtyProjects) == 0 && !st.dirtyKill {
		return
	}
	a := db.auth
	a.mu.Lock()
	for _, h := range st.dirtyHashes {
		if id, ok := st.hashes[h]; ok {
			a.byHash[h] = id
		} else {
			delete(a.byHash, h)
		}
	}
	for _, id := range st.dirtyTokens {
		a.setToken(st, id)
	}
	for _, name := range st.dirtyProjects {
		if p, ok := st.projects[name]; ok {
			a.projects[name] = p
		} else {
			delete(a.projects, name)
		}
	}
	a.killAll = st.killAll
	a.mu.Unlock()
}

// putJSONState writes v as JSON under key and returns what reading it back
// gives, so that the state holds exactly what the disk does (times in UTC,
// without a monotonic reading).
func putJSONState[T any](b *bolt.Bucket, key []byte, v T) (T, error) {
	raw, err := json.Marshal(v)
	if err != nil {
		return v, fatal(err)
	}
	if err := fatal(b.Put(key, raw)); err != nil {
		return v, err
	}
	var back T
	if err := json.Unmarshal(raw, &back); err != nil {
		return v, fatal(err)
	}
	return back, nil
}
