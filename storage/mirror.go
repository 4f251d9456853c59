package storage

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
)

// The mirror: what a replica of a cluster needs to share its tenancy
// (projects, tokens, their limits and the kill switches) with the others.
// Every change of one is told to Options.Changed after its commit (the
// change feed); MirrorExport reads the record to send, and MirrorApply
// writes a record another replica sent, as it is, without telling the
// feed (no echo).

// Kinds of mirror records, as the audit log names them.
const (
	MirrorProject = "project"
	MirrorToken   = "token"
	// MirrorAll is the global kill switch; its id is "".
	MirrorAll = "all"
)

// MirrorRecord is the current state of one project, token or the global
// kill switch. It holds hashes of secrets, never a secret.
type MirrorRecord struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
	// Deleted: the project no longer exists.
	Deleted bool            `json:"deleted,omitempty"`
	Project *tokens.Project `json:"project,omitempty"`
	// Token is the token without its use (last use, request count),
	// which each replica keeps for itself.
	Token *tokens.Token `json:"token,omitempty"`
	// Hashes are every hash (hex) that finds the token: the current
	// secret's, the one its last rotation replaced and older ones, so
	// that an old secret is told it was rotated everywhere.
	Hashes []string `json:"hashes,omitempty"`
	// Limit is the project's or token's own budget limit.
	Limit *MirrorLimit `json:"limit,omitempty"`
	// KillAll is the global kill switch (Kind MirrorAll).
	KillAll bool `json:"kill_all,omitempty"`
	// Mark is the number of the record's last change not yet marked
	// published, as the export saw it (0: none); for MirrorPublished and
	// MirrorSettle, and never sent.
	Mark uint64 `json:"-"`
	// Groups are the field groups the changes not yet published touched,
	// as the export saw them (0 with Mark 0); for MirrorMerge, and never
	// sent.
	Groups MirrorGroups `json:"-"`
}

// MirrorGroups is a set of a record's field groups, which a change
// touches and a publication overlays onto the cluster's record
// (MirrorMerge), so that concurrent changes of different groups on two
// replicas both stay.
type MirrorGroups uint8

const (
	// GroupKill is the kill switch (kill, resume): Killed, KillAll.
	GroupKill MirrorGroups = 1 << iota
	// GroupBudget is the budget limit (amount, period) and the alert
	// thresholds.
	GroupBudget
	// GroupConfig is a token's scopes and labels: name, owner, purpose,
	// models, routes, ips, rpm, expiry, max_concurrent, max_request.
	GroupConfig
	// GroupSecret is a token's secret (rotate, rotate_every): hash, the
	// rotation's fields and grace.
	GroupSecret
	// GroupRevoke is a token's revocation; sticky.
	GroupRevoke
	// GroupDelete is a project's deletion; sticky but for a create.
	GroupDelete
	// GroupCreate is a creation: every field is the publisher's (a
	// revocation still stays).
	GroupCreate

	// GroupAll is every group.
	GroupAll = GroupKill | GroupBudget | GroupConfig | GroupSecret | GroupRevoke | GroupDelete | GroupCreate
)

// auditGroups are the groups an audit entry's change touched; every group
// for an action it does not know.
func auditGroups(e AuditEntry) MirrorGroups {
	switch e.Action {
	case "kill", "resume":
		return GroupKill
	case "rotate":
		return GroupSecret
	case "revoke":
		return GroupRevoke
	case "delete":
		return GroupDelete
	case "change":
		if e.Kind == MirrorProject {
			return GroupBudget // UpdateProject: the limit and the thresholds
		}
		var g MirrorGroups
		for _, f := range strings.Split(e.Detail, ", ") {
			switch f {
			case "budget", "alert_at":
				g |= GroupBudget
			case "rotate_every":
				g |= GroupSecret
			case "name", "owner", "purpose", "models", "routes", "ips", "rpm", "max_concurrent", "max_request_usd", "expires":
				g |= GroupConfig
			default:
				return GroupBudget | GroupConfig | GroupSecret
			}
		}
		return g
	}
	return GroupAll
}

// MirrorMerge is the record to store when local, whose changes touched
// groups, is published over stored (the cluster's record; nil when it
// has none): stored with local's fields of those groups. A revoked token
// stays revoked (at its first revocation), a deleted project stays
// deleted unless local creates it again, and a token keeps every hash
// either knows (an old secret is told it was rotated). Same group on both
// sides: local, the later write, wins.
func MirrorMerge(stored *MirrorRecord, local MirrorRecord, groups MirrorGroups) MirrorRecord {
	local.Mark, local.Groups = 0, 0
	if stored == nil || stored.Kind != local.Kind || stored.ID != local.ID {
		return local
	}
	m := cloneRecord(*stored)
	m.Mark, m.Groups = 0, 0
	switch local.Kind {
	case MirrorAll:
		if groups&(GroupKill|GroupCreate) != 0 {
			m.KillAll = local.KillAll
		}
	case MirrorProject:
		switch {
		case local.Deleted:
			if groups&(GroupDelete|GroupCreate) != 0 {
				return MirrorRecord{Kind: local.Kind, ID: local.ID, Deleted: true}
			}
			return m // a deletion this publication does not carry
		case groups&GroupCreate != 0:
			return local
		case m.Deleted || m.Project == nil || local.Project == nil:
			return m // deleted stays deleted
		}
		p := *m.Project
		if groups&GroupKill != 0 {
			p.Killed = local.Project.Killed
		}
		if groups&GroupBudget != 0 {
			p.AlertAt = local.Project.AlertAt
			m.Limit = local.Limit
		}
		m.Project = &p
	case MirrorToken:
		if local.Token == nil || m.Token == nil {
			return local
		}
		revoked := m.Token.Revoked
		t := *m.Token
		lt := *local.Token
		if groups&GroupCreate != 0 {
			t = lt
			m.Limit = local.Limit
		}
		if groups&GroupKill != 0 {
			t.Killed = lt.Killed
		}
		if groups&GroupBudget != 0 {
			t.AlertAt = lt.AlertAt
			m.Limit = local.Limit
		}
		if groups&GroupConfig != 0 {
			t.Name, t.Owner, t.Purpose = lt.Name, lt.Owner, lt.Purpose
			t.Models, t.Routes, t.IPs = lt.Models, lt.Routes, lt.IPs
			t.Expires, t.RPM, t.MaxConcurrent, t.MaxRequest = lt.Expires, lt.RPM, lt.MaxConcurrent, lt.MaxRequest
		}
		if groups&GroupSecret != 0 {
			t.Hash, t.PrevHash, t.Rotated, t.RotatingUntil = lt.Hash, lt.PrevHash, lt.Rotated, lt.RotatingUntil
			t.RotateEvery, t.RotateBy = lt.RotateEvery, lt.RotateBy
		}
		t.Revoked = revoked
		if t.Revoked.IsZero() {
			t.Revoked = lt.Revoked // sticky: never undone, on either side
		}
		m.Token = &t
		m.Hashes = unionHashes(m.Hashes, local.Hashes)
	}
	return m
}

// cloneRecord copies r's pointers, so that a merge does not write into
// the record it read.
func cloneRecord(r MirrorRecord) MirrorRecord {
	if r.Project != nil {
		p := *r.Project
		r.Project = &p
	}
	if r.Token != nil {
		t := *r.Token
		r.Token = &t
	}
	if r.Limit != nil {
		l := *r.Limit
		r.Limit = &l
	}
	r.Hashes = slices.Clone(r.Hashes)
	return r
}

// unionHashes is every hash of a and b, sorted.
func unionHashes(a, b []string) []string {
	out := make([]string, 0, len(a)+len(b))
	for _, h := range append(slices.Clone(a), b...) {
		if h != "" && !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	sort.Strings(out)
	return out
}

// MirrorLimit is a budget.Limit in a mirror record, in nano-USD.
type MirrorLimit struct {
	Amount int64         `json:"amount_nano"`
	Period budget.Period `json:"period,omitempty"`
	Zero   bool          `json:"zero,omitempty"`
}

// BudgetLimit is the record's limit; no limit when it has none.
func (r MirrorRecord) BudgetLimit() budget.Limit {
	if r.Limit == nil {
		return budget.Limit{}
	}
	return budget.Limit{Amount: budget.Money(r.Limit.Amount), Period: r.Limit.Period, Zero: r.Limit.Zero}
}

func mirrorLimit(l budget.Limit) *MirrorLimit {
	return &MirrorLimit{Amount: int64(l.Amount), Period: l.Period, Zero: l.Zero}
}

// MirrorExport reads the current record of kind and id from the last
// commit. A project that does not exist is a Deleted record; a token that
// does not exist is tokens.ErrTokenNotFound (tokens are revoked, never
// deleted).
func (db *DB) MirrorExport(kind, id string) (MirrorRecord, error) {
	var r MirrorRecord
	err := db.view(func(tx *bolt.Tx) error {
		var err error
		r, err = exportRecord(tx, kind, id, nil)
		return err
	})
	return r, err
}

// MirrorExportAll reads every record: each project, each token and the
// global kill switch.
func (db *DB) MirrorExportAll() ([]MirrorRecord, error) {
	var out []MirrorRecord
	err := db.view(func(tx *bolt.Tx) error {
		hashes, err := tokenHashes(tx, "")
		if err != nil {
			return err
		}
		for _, kind := range []string{MirrorProject, MirrorToken} {
			b := tx.Bucket(bucketProjects)
			if kind == MirrorToken {
				b = tx.Bucket(bucketTokens)
			}
			err := b.ForEach(func(k, _ []byte) error {
				r, err := exportRecord(tx, kind, string(k), hashes)
				if err == nil {
					out = append(out, r)
				}
				return err
			})
			if err != nil {
				return err
			}
		}
		r, err := exportRecord(tx, MirrorAll, "", nil)
		out = append(out, r)
		return err
	})
	return out, err
}

// tokenHashes lists token_hashes by token id (only id's when id is not
// empty), each sorted.
func tokenHashes(tx *bolt.Tx, id string) (map[string][]string, error) {
	out := map[string][]string{}
	err := tx.Bucket(bucketTokenHashes).ForEach(func(k, v []byte) error {
		if len(k) == len(tokens.Hash{}) && (id == "" || string(v) == id) {
			out[string(v)] = append(out[string(v)], hex.EncodeToString(k))
		}
		return nil
	})
	for _, hs := range out {
		sort.Strings(hs)
	}
	return out, err
}

// exportRecord reads one record in tx; hashes is tokenHashes of every
// token, or nil to read the token's own.
func exportRecord(tx *bolt.Tx, kind, id string, hashes map[string][]string) (MirrorRecord, error) {
	r := MirrorRecord{Kind: kind, ID: id}
	r.Mark, r.Groups = markerOf(tx.Bucket(bucketMeta).Get(pendingKey(kind, id)))
	switch kind {
	case MirrorProject:
		var p tokens.Project
		ok, err := getJSON(tx.Bucket(bucketProjects), []byte(id), &p)
		if err != nil {
			return r, err
		}
		if !ok {
			r.Deleted = true
			return r, nil
		}
		l, err := getLimit(tx, budget.ProjectScope(id))
		if err != nil {
			return r, err
		}
		r.Project, r.Limit = &p, mirrorLimit(l)
	case MirrorToken:
		var t tokens.Token
		ok, err := getJSON(tx.Bucket(bucketTokens), []byte(id), &t)
		if err != nil {
			return r, err
		}
		if !ok {
			return r, fmt.Errorf("%w: %s", tokens.ErrTokenNotFound, shownID(id))
		}
		l, err := getLimit(tx, budget.TokenScope(id))
		if err != nil {
			return r, err
		}
		if hashes == nil {
			if hashes, err = tokenHashes(tx, id); err != nil {
				return r, err
			}
		}
		t.LastUsed, t.Requests = tokens.Use{}, 0
		r.Token, r.Limit, r.Hashes = &t, mirrorLimit(l), hashes[id]
	case MirrorAll:
		if id != "" {
			return r, fmt.Errorf("storage: the global kill switch has no id")
		}
		r.KillAll = killedAll(tx)
	default:
		return r, fmt.Errorf("storage: unknown mirror kind %q", budget.Clip(kind))
	}
	return r, nil
}

// errMirror is a record MirrorApply cannot apply; it is refused before
// anything is written.
var errMirror = errors.New("storage: bad mirror record")

// checkMirror refuses a record that cannot be applied as it is.
func checkMirror(r MirrorRecord) ([]tokens.Hash, error) {
	switch r.Kind {
	case MirrorProject:
		if r.Deleted {
			return nil, nil
		}
		if r.Project == nil || r.Project.Name != r.ID || tokens.CheckName(r.ID) != nil {
			return nil, fmt.Errorf("%w: project %s", errMirror, budget.Clip(r.ID))
		}
	case MirrorToken:
		if r.Deleted || r.Token == nil || r.Token.ID != r.ID || r.ID == "" {
			return nil, fmt.Errorf("%w: token %s", errMirror, shownID(r.ID))
		}
		hs := append([]string{r.Token.Hash}, r.Hashes...)
		if r.Token.PrevHash != "" {
			hs = append(hs, r.Token.PrevHash)
		}
		out := make([]tokens.Hash, 0, len(hs))
		for _, s := range hs {
			h, err := parseHash(s)
			if err != nil {
				return nil, fmt.Errorf("%w: token %s has a bad hash", errMirror, shownID(r.ID))
			}
			out = append(out, h)
		}
		return out, nil
	case MirrorAll:
		if r.ID != "" {
			return nil, fmt.Errorf("%w: the global kill switch has no id", errMirror)
		}
	default:
		return nil, fmt.Errorf("%w: unknown kind %q", errMirror, budget.Clip(r.Kind))
	}
	return nil, nil
}

// sameJSON says a and b encode alike.
func sameJSON(a, b any) bool {
	x, err1 := json.Marshal(a)
	y, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(x, y)
}

// MirrorApply writes records another replica (origin) exported, in order,
// in one transaction, as they are: the state in memory and the
// authentication view follow as for the change itself, so the next
// Authenticate and Reserve see it. A record equal to what the ledger
// holds writes nothing; one that changes something gets an audit entry
// by "cluster:<origin>". The change feed is not told. A token's use (last
// use, request count, client addresses) stays this replica's. A period
// change carries spend as UpdateProject does. It returns how many records
// changed something; a bad record refuses the whole call, writing
// nothing.
func (db *DB) MirrorApply(ctx context.Context, origin string, recs []MirrorRecord) (int, error) {
	hashes := make([][]tokens.Hash, len(recs))
	for i, r := range recs {
		hs, err := checkMirror(r)
		if err != nil {
			return 0, err
		}
		hashes[i] = hs
	}
	actor := "cluster:" + budget.Clip(origin)
	n := 0
	err := db.update(ctx, func(tx *bolt.Tx) error {
		n = 0 // a batch run again counts again
		for i, r := range recs {
			changed, err := db.applyMirror(tx, r, hashes[i])
			if err != nil {
				return err
			}
			if !changed {
				continue
			}
			n++
			if err := db.writeAudit(tx, AuditEntry{Actor: actor, Action: "mirror", Kind: r.Kind, Target: r.ID, Detail: "the cluster's record"}); err != nil {
				return err
			}
		}
		return nil
	})
	return n, err
}

// applyLimit sets a scope's limit unless it already is l, carrying spend
// across a period change.
func (db *DB) applyLimit(tx *bolt.Tx, scope budget.Scope, l budget.Limit) (bool, error) {
	old := db.st.limits[scope]
	if _, had := db.st.limits[scope]; had && old == l {
		return false, nil
	}
	if err := db.carrySpend(tx, scope, old, l); err != nil {
		return false, fatal(err)
	}
	return true, db.setLimit(tx, scope, l)
}

// applyMirror writes one checked record in tx; changed says it changed
// something. Every error after a write is fatal, so a failure rolls back.
func (db *DB) applyMirror(tx *bolt.Tx, r MirrorRecord, hashes []tokens.Hash) (changed bool, err error) {
	st := db.st
	switch r.Kind {
	case MirrorProject:
		scope := budget.ProjectScope(r.ID)
		old, had := st.projects[r.ID]
		if r.Deleted {
			if !had {
				return false, nil
			}
			if err := fatal(tx.Bucket(bucketLimits).Delete([]byte(scope))); err != nil {
				return false, err
			}
			st.setLimit(scope, budget.Limit{}, false)
			if err := fatal(tx.Bucket(bucketProjects).Delete([]byte(r.ID))); err != nil {
				return false, err
			}
			st.deleteProject(r.ID)
			return true, nil
		}
		if !had || !sameJSON(old, *r.Project) {
			if err := db.putProject(tx, *r.Project); err != nil {
				return false, err
			}
			changed = true
		}
		lc, err := db.applyLimit(tx, scope, r.BudgetLimit())
		return changed || lc, err
	case MirrorToken:
		t := *r.Token
		old, had := st.tokens[r.ID]
		t.LastUsed, t.Requests = old.LastUsed, old.Requests
		if !had || !sameJSON(old, t) {
			if err := db.putToken(tx, t); err != nil {
				return false, err
			}
			changed = true
		}
		for _, h := range hashes {
			if id, ok := st.hashes[h]; ok && id == r.ID {
				continue
			}
			if err := fatal(tx.Bucket(bucketTokenHashes).Put(h[:], []byte(r.ID))); err != nil {
				return false, err
			}
			st.setHash(h, r.ID)
			changed = true
		}
		lc, err := db.applyLimit(tx, budget.TokenScope(r.ID), r.BudgetLimit())
		return changed || lc, err
	default: // MirrorAll
		if st.killAll == r.KillAll {
			return false, nil
		}
		v := []byte("0")
		if r.KillAll {
			v = []byte("1")
		}
		if err := fatal(tx.Bucket(bucketMeta).Put(metaKillAll, v)); err != nil {
			return false, err
		}
		st.setKillAll(r.KillAll)
		return true, nil
	}
}

// changeFeed carries the tenancy changes to Options.Changed: appendAudit
// notes each in set (the writer never waits), and feedChanges, on a
// goroutine of its own, tells them once their commit is done.
type changeFeed struct {
	fn   func(kind, target string)
	mu   sync.Mutex
	set  map[[2]string]struct{}
	wake chan struct{}
}

// startFeed starts the change feed of fn (none when nil).
func (db *DB) startFeed(fn func(kind, target string)) {
	if fn == nil {
		return
	}
	db.feed = &changeFeed{fn: fn, set: map[[2]string]struct{}{}, wake: make(chan struct{}, 1)}
	go db.feedChanges()
}

// The change markers: with a change feed, every change of a project,
// token or kill switch also writes, in its own transaction, a marker in
// the meta bucket (cluster_pending, 0x00, kind, 0x00, id -> 8 bytes: the
// change's number, from the counter cluster_mark). The cluster removes it
// once the record is published (MirrorPublished, MirrorSettle), so that a change a
// crash kept from being published is found again at the next start
// (MirrorPending).
var (
	metaMirrorMark    = []byte("cluster_mark")
	metaMirrorPending = []byte("cluster_pending\x00")
)

func pendingKey(kind, id string) []byte {
	k := append([]byte(nil), metaMirrorPending...)
	k = append(k, kind...)
	k = append(k, 0)
	return append(k, id...)
}

// markerOf reads a change marker: its number and groups (0, 0: none).
func markerOf(v []byte) (uint64, MirrorGroups) {
	switch len(v) {
	case 8:
		return binary.BigEndian.Uint64(v), GroupAll
	case 9:
		return binary.BigEndian.Uint64(v), MirrorGroups(v[8])
	}
	return 0, 0
}

func mirrorKind(kind string) bool {
	return kind == MirrorProject || kind == MirrorToken || kind == MirrorAll
}

// noteChange marks a change of a project, token or kill switch in tx and
// notes it for the feed. A change whose batch is rolled back may be told
// too (its marker is rolled back with it): the receiver reads the record
// as committed, so telling it is harmless.
//
// The marker keeps the groups of every change since the last publication
// (auditGroups of e), so that the publication overlays only those.
func (db *DB) noteChange(tx *bolt.Tx, e AuditEntry) error {
	f := db.feed
	kind, target := e.Kind, e.Target
	if f == nil || !mirrorKind(kind) {
		return nil
	}
	meta := tx.Bucket(bucketMeta)
	mark := getCounter(meta, metaMirrorMark) + 1
	if err := addCounter(meta, metaMirrorMark, 1); err != nil {
		return err
	}
	k := pendingKey(kind, target)
	_, groups := markerOf(meta.Get(k))
	groups |= auditGroups(e)
	v := append(binary.BigEndian.AppendUint64(nil, mark), byte(groups))
	if err := fatal(meta.Put(k, v)); err != nil {
		return err
	}
	f.mu.Lock()
	f.set[[2]string{kind, target}] = struct{}{}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
	return nil
}

// MirrorPending lists the records whose last change was not yet marked
// published (kind and id each), oldest change first.
func (db *DB) MirrorPending() ([][2]string, error) {
	type marked struct {
		k    [2]string
		mark uint64
	}
	var out []marked
	err := db.view(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketMeta).Cursor()
		for k, v := c.Seek(metaMirrorPending); k != nil && bytes.HasPrefix(k, metaMirrorPending); k, v = c.Next() {
			kind, id, ok := bytes.Cut(k[len(metaMirrorPending):], []byte{0})
			mark, _ := markerOf(v)
			if !ok || mark == 0 {
				return fmt.Errorf("%w: change marker %q", ErrDamaged, budget.Clip(string(k)))
			}
			out = append(out, marked{[2]string{string(kind), string(id)}, mark})
		}
		return nil
	})
	sort.Slice(out, func(i, j int) bool { return out[i].mark < out[j].mark })
	keys := make([][2]string, len(out))
	for i, m := range out {
		keys[i] = m.k
	}
	return keys, err
}

// MirrorPublished removes the change marker of kind and id when it is
// still mark (the MirrorRecord.Mark of the export that was published): a
// change since keeps its marker. Mark 0 does nothing.
func (db *DB) MirrorPublished(ctx context.Context, kind, id string, mark uint64) error {
	if mark == 0 {
		return nil
	}
	return db.update(ctx, func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		k := pendingKey(kind, id)
		if m, _ := markerOf(meta.Get(k)); m == mark {
			return fatal(meta.Delete(k))
		}
		return nil
	})
}

// MirrorSettle ends the publication of a record exported with mark: when
// the record's change marker is still mark (none, for mark 0), merged
// (what PostgreSQL stored, MirrorMerge of the export and the cluster's
// record) is applied as MirrorApply would, by "cluster:<origin>", and
// the marker removed, in one transaction. A change since keeps its
// marker and is published in turn, so merged is not applied over it.
// applied says merged was applied (not that it changed something);
// changed that it changed the ledger. The feed is not told.
func (db *DB) MirrorSettle(ctx context.Context, origin string, mark uint64, merged MirrorRecord) (applied, changed bool, err error) {
	hashes, err := checkMirror(merged)
	if err != nil {
		return false, false, err
	}
	actor := "cluster:" + budget.Clip(origin)
	err = db.update(ctx, func(tx *bolt.Tx) error {
		applied, changed = false, false // a batch run again decides again
		meta := tx.Bucket(bucketMeta)
		k := pendingKey(merged.Kind, merged.ID)
		if m, _ := markerOf(meta.Get(k)); m != mark {
			return nil
		}
		if mark != 0 {
			if err := fatal(meta.Delete(k)); err != nil {
				return err
			}
		}
		applied = true
		var err error
		if changed, err = db.applyMirror(tx, merged, hashes); err != nil || !changed {
			return err
		}
		return db.writeAudit(tx, AuditEntry{Actor: actor, Action: "mirror", Kind: merged.Kind, Target: merged.ID, Detail: "the cluster's record, merged"})
	})
	if err != nil {
		applied, changed = false, false
	}
	return applied, changed, err
}

// feedChanges tells the noted changes until the writer ends. It takes the
// set first and then waits for a Flush: every change in the set was noted
// by an operation of a batch that began before the Flush was queued, so
// it is committed (or rolled back) when the Flush returns.
func (db *DB) feedChanges() {
	f := db.feed
	for {
		select {
		case <-db.writerDone:
			return
		case <-f.wake:
		}
		f.mu.Lock()
		set := f.set
		f.set = map[[2]string]struct{}{}
		f.mu.Unlock()
		_ = db.Flush(context.Background())
		keys := make([][2]string, 0, len(set))
		for k := range set {
			keys = append(keys, k)
		}
		rank := map[string]int{MirrorProject: 0, MirrorToken: 1, MirrorAll: 2}
		sort.Slice(keys, func(i, j int) bool {
			if keys[i][0] != keys[j][0] {
				return rank[keys[i][0]] < rank[keys[j][0]] // projects before their tokens
			}
			return keys[i][1] < keys[j][1]
		})
		for _, k := range keys {
			f.fn(k[0], k[1])
		}
	}
}
