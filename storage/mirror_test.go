package storage

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
)

// feedLog records what a change feed was told, with the record as the
// ledger had it at that moment.
type feedLog struct {
	mu   sync.Mutex
	db   *DB
	told []MirrorRecord
}

func (f *feedLog) changed(kind, target string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	r, err := f.db.MirrorExport(kind, target)
	if err != nil {
		r = MirrorRecord{Kind: kind, ID: target}
	}
	f.told = append(f.told, r)
}

func (f *feedLog) wait(t *testing.T, n int) []MirrorRecord {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		got := append([]MirrorRecord(nil), f.told...)
		f.mu.Unlock()
		if len(got) >= n {
			return got
		}
		if time.Now().After(deadline) {
			t.Fatalf("the feed was told %d changes, want %d", len(got), n)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestMirror_FeedTellsCommittedChanges(t *testing.T) {
	f := &feedLog{}
	db := openTest(t, Options{NoSync: true, Changed: f.changed})
	f.mu.Lock()
	f.db = db
	f.mu.Unlock()
	tok := newToken(t, db, "p", budget.Ceiling(5, budget.Day), budget.Limit{})
	got := f.wait(t, 2)
	if got[0].Kind != MirrorProject || got[0].Project == nil || got[0].Limit == nil || got[0].Limit.Amount != 5 {
		t.Fatalf("first change told %+v, want project p as committed", got[0])
	}
	if got[1].Kind != MirrorToken || got[1].Token == nil || got[1].Token.ID != tok.ID || len(got[1].Hashes) != 1 {
		t.Fatalf("second change told %+v, want the token with its hash", got[1])
	}
	if err := db.SetKill(ctx, KillTarget{}, true); err != nil {
		t.Fatal(err)
	}
	got = f.wait(t, 3)
	if got[2].Kind != MirrorAll || !got[2].KillAll {
		t.Fatalf("kill all told %+v", got[2])
	}
	// Every change is marked until published; a marker older than the
	// last change stays.
	pending, err := db.MirrorPending()
	if err != nil || len(pending) != 3 || pending[0] != [2]string{MirrorProject, "p"} || pending[2] != [2]string{MirrorAll, ""} {
		t.Fatalf("pending %v, %v", pending, err)
	}
	stale := got[2].Mark
	if err := db.SetKill(ctx, KillTarget{}, false); err != nil {
		t.Fatal(err)
	}
	for _, p := range []struct {
		kind, id string
		mark     uint64
	}{{MirrorProject, "p", got[0].Mark}, {MirrorToken, tok.ID, got[1].Mark}, {MirrorAll, "", stale}} {
		if err := db.MirrorPublished(ctx, p.kind, p.id, p.mark); err != nil {
			t.Fatal(err)
		}
	}
	if pending, err := db.MirrorPending(); err != nil || len(pending) != 1 || pending[0][0] != MirrorAll {
		t.Fatalf("pending %v after publishing all but the last kill switch change, %v", pending, err)
	}
}

func TestMirror_ApplyCopiesAndDoesNotEcho(t *testing.T) {
	src := openTest(t, Options{NoSync: true})
	f := &feedLog{}
	dst := openTest(t, Options{NoSync: true, Changed: f.changed})
	f.mu.Lock()
	f.db = dst
	f.mu.Unlock()
	if _, err := src.CreateProject(ctx, "p", budget.Ceiling(1000, budget.Day)); err != nil {
		t.Fatal(err)
	}
	tok, old, err := src.CreateToken(ctx, TokenSpec{Project: "p", Name: "t", Limit: budget.Ceiling(100, budget.Total)})
	if err != nil {
		t.Fatal(err)
	}
	_, secret, err := src.RotateToken(ctx, tok.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	_, older, err := src.CreateToken(ctx, TokenSpec{Project: "p", Name: "u"})
	if err != nil {
		t.Fatal(err)
	}
	if err := src.SetKill(ctx, KillTarget{}, true); err != nil {
		t.Fatal(err)
	}
	all, err := src.MirrorExportAll()
	if err != nil {
		t.Fatal(err)
	}
	n, err := dst.MirrorApply(ctx, "a", all)
	if err != nil || n != len(all) {
		t.Fatalf("applied %d of %d: %v", n, len(all), err)
	}
	if n, err := dst.MirrorApply(ctx, "a", all); err != nil || n != 0 {
		t.Fatalf("applying the same records again changed %d: %v", n, err)
	}
	unknown, err := tokens.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		secret string
		want   error
	}{
		{"new secret, killed for everything", secret, tokens.ErrKilled},
		{"old secret in its grace, killed too", old, tokens.ErrKilled},
		{"the other token", older, tokens.ErrKilled},
		{"an unknown secret", unknown, tokens.ErrUnknown},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := dst.Authenticate(tt.secret); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
	resume := MirrorRecord{Kind: MirrorAll}
	deleted := MirrorRecord{Kind: MirrorProject, ID: "p", Deleted: true}
	if _, err := dst.MirrorApply(ctx, "a", []MirrorRecord{resume}); err != nil {
		t.Fatal(err)
	}
	if got, err := dst.Authenticate(old); err != nil || !got.OldSecret {
		t.Fatalf("the old secret within its grace after resume: %v (old %v)", err, got.OldSecret)
	}
	if l, err := dst.Limit(budget.TokenScope(tok.ID)); err != nil || l != budget.Ceiling(100, budget.Total) {
		t.Fatalf("token limit %+v, %v", l, err)
	}
	if _, err := dst.MirrorApply(ctx, "a", []MirrorRecord{deleted}); err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Authenticate(secret); !errors.Is(err, tokens.ErrProjectNotFound) {
		t.Fatalf("after the project's deletion: %v", err)
	}
	if err := dst.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond) // a feed told anything would have by now
	f.mu.Lock()
	told := len(f.told)
	f.mu.Unlock()
	if told != 0 {
		t.Fatalf("MirrorApply told the feed %d changes, want none (an echo)", told)
	}
	log, err := dst.AuditLog(AuditFilter{Target: tok.ID})
	if err != nil || len(log) == 0 || log[0].Actor != "cluster:a" {
		t.Fatalf("audit log of the mirrored token: %+v, %v", log, err)
	}
}

func TestMirror_ApplyRefusesBadRecords(t *testing.T) {
	db := openTest(t, Options{NoSync: true})
	tests := []struct {
		name string
		r    MirrorRecord
	}{
		{"unknown kind", MirrorRecord{Kind: "provider_key", ID: "x"}},
		{"project without its record", MirrorRecord{Kind: MirrorProject, ID: "p"}},
		{"project under another name", MirrorRecord{Kind: MirrorProject, ID: "p", Project: &tokens.Project{Name: "q"}}},
		{"token with a bad hash", MirrorRecord{Kind: MirrorToken, ID: "t1", Token: &tokens.Token{ID: "t1", Hash: "zz"}}},
		{"kill switch with an id", MirrorRecord{Kind: MirrorAll, ID: "x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			good := MirrorRecord{Kind: MirrorAll, KillAll: true}
			if _, err := db.MirrorApply(ctx, "a", []MirrorRecord{good, tt.r}); !errors.Is(err, errMirror) {
				t.Fatalf("got %v, want a bad record", err)
			}
			if all, err := db.MirrorExport(MirrorAll, ""); err != nil || all.KillAll {
				t.Fatalf("a refused call wrote its good record: %+v, %v", all, err)
			}
		})
	}
}

func TestMirror_MergeByGroups(t *testing.T) {
	revoked := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	base := func() MirrorRecord {
		return MirrorRecord{Kind: MirrorToken, ID: "tok_x", Token: &tokens.Token{ID: "tok_x", Project: "p", Hash: "h1", RPM: 1},
			Hashes: []string{"h1"}, Limit: &MirrorLimit{Amount: 10}}
	}
	with := func(f func(*MirrorRecord)) MirrorRecord { r := base(); f(&r); return r }
	cases := []struct {
		name          string
		stored, local MirrorRecord
		groups        MirrorGroups
		check         func(MirrorRecord) error
	}{
		{"kill over a budget change", with(func(r *MirrorRecord) { r.Limit.Amount = 1 }), with(func(r *MirrorRecord) { r.Token.Killed = true }), GroupKill,
			func(m MirrorRecord) error {
				if !m.Token.Killed || m.Limit.Amount != 1 {
					return errors.New("lost the kill or the budget")
				}
				return nil
			}},
		{"rotate over a kill", with(func(r *MirrorRecord) { r.Token.Killed = true }),
			with(func(r *MirrorRecord) { r.Token.Hash, r.Token.PrevHash, r.Hashes = "h2", "h1", []string{"h1", "h2"} }), GroupSecret,
			func(m MirrorRecord) error {
				if !m.Token.Killed || m.Token.Hash != "h2" || len(m.Hashes) != 2 {
					return errors.New("lost the kill or the rotation")
				}
				return nil
			}},
		{"change over a revocation", with(func(r *MirrorRecord) { r.Token.Revoked = revoked }), with(func(r *MirrorRecord) { r.Token.RPM = 5 }), GroupConfig,
			func(m MirrorRecord) error {
				if !m.Token.Revoked.Equal(revoked) || m.Token.RPM != 5 {
					return errors.New("revocation undone or change lost")
				}
				return nil
			}},
		{"a create does not undo a revocation", with(func(r *MirrorRecord) { r.Token.Revoked = revoked }), base(), GroupAll,
			func(m MirrorRecord) error {
				if m.Token.Revoked.IsZero() {
					return errors.New("revocation undone")
				}
				return nil
			}},
		{"resume after kill: the later write wins", with(func(r *MirrorRecord) { r.Token.Killed = true }), base(), GroupKill,
			func(m MirrorRecord) error {
				if m.Token.Killed {
					return errors.New("the later resume lost")
				}
				return nil
			}},
		{"budget change of a deleted project stays deleted",
			MirrorRecord{Kind: MirrorProject, ID: "p", Deleted: true},
			MirrorRecord{Kind: MirrorProject, ID: "p", Project: &tokens.Project{Name: "p"}, Limit: &MirrorLimit{Amount: 3}}, GroupBudget,
			func(m MirrorRecord) error {
				if !m.Deleted {
					return errors.New("deletion undone")
				}
				return nil
			}},
		{"project kill keeps the other's budget",
			MirrorRecord{Kind: MirrorProject, ID: "p", Project: &tokens.Project{Name: "p"}, Limit: &MirrorLimit{Amount: 1}},
			MirrorRecord{Kind: MirrorProject, ID: "p", Project: &tokens.Project{Name: "p", Killed: true}, Limit: &MirrorLimit{Amount: 10}}, GroupKill,
			func(m MirrorRecord) error {
				if !m.Project.Killed || m.Limit.Amount != 1 {
					return errors.New("lost the kill or the budget")
				}
				return nil
			}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			stored := c.stored
			if err := c.check(MirrorMerge(&stored, c.local, c.groups)); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestMirror_AuditGroups(t *testing.T) {
	for _, c := range []struct {
		e    AuditEntry
		want MirrorGroups
	}{
		{AuditEntry{Action: "kill", Kind: MirrorProject}, GroupKill},
		{AuditEntry{Action: "change", Kind: MirrorProject}, GroupBudget},
		{AuditEntry{Action: "change", Kind: MirrorToken, Detail: "budget, rpm"}, GroupBudget | GroupConfig},
		{AuditEntry{Action: "rotate", Kind: MirrorToken}, GroupSecret},
		{AuditEntry{Action: "revoke", Kind: MirrorToken}, GroupRevoke},
		{AuditEntry{Action: "create", Kind: MirrorToken}, GroupAll},
	} {
		if got := auditGroups(c.e); got != c.want {
			t.Errorf("%+v: groups %b, want %b", c.e, got, c.want)
		}
	}
}
