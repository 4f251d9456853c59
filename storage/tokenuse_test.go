package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
)

// TestReserve_FoldsLastUseIntoItsCommit: each reservation updates the
// token's last use (time, address, user agent), its request count and its
// client addresses, written with the reservation's own commit (one commit
// per request, no more), and they survive a restart.
func TestReserve_FoldsLastUseIntoItsCommit(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	tok := newToken(t, db, "p", budget.Limit{}, budget.Limit{})
	uses := []struct{ ip, ua string }{{"192.0.2.1", "app/1"}, {"2001:db8::7", "app/2"}, {"192.0.2.1", strings.Repeat("u", 1000)}}
	commits := db.WriterStats().Commits
	for i, u := range uses {
		clk.Set(clk.Now().Add(time.Minute))
		res, err := db.Reserve(ctx, budget.Request{TokenID: tok.ID, Model: "m", ClientIP: u.ip, UserAgent: u.ua}, flat(10))
		if err != nil {
			t.Fatalf("reserve %d: %v", i, err)
		}
		if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 1}); err != nil {
			t.Fatal(err)
		}
	}
	if got := db.WriterStats().Commits - commits; got != 2*uint64(len(uses)) {
		t.Errorf("got %d commits for %d requests, want one reserve and one settle each", got, len(uses))
	}
	requireStateMatchesDisk(t, db)
	db.Close()
	if db, err = Open(path, Options{Now: clk.Now}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.Token(tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Requests != 3 || !got.LastUsed.Time.Equal(clk.Now()) || got.LastUsed.IP != "192.0.2.1" || len(got.LastUsed.UserAgent) > tokens.MaxUserAgent+20 {
		t.Errorf("got requests %d, last use %+v (user agent %d bytes); want 3, at %s from 192.0.2.1, user agent clipped to %d",
			got.Requests, got.LastUsed.Time, len(got.LastUsed.UserAgent), clk.Now(), tokens.MaxUserAgent)
	}
	ips, err := db.ClientIPs(tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	want := []tokens.ClientIP{
		{IP: "192.0.2.1", First: start.Add(time.Minute), Last: start.Add(3 * time.Minute), Requests: 2},
		{IP: "2001:db8::7", First: start.Add(2 * time.Minute), Last: start.Add(2 * time.Minute), Requests: 1},
	}
	if fmt.Sprint(ips) != fmt.Sprint(want) {
		t.Errorf("client addresses:\n got %v\nwant %v", ips, want)
	}
	if _, err := db.ClientIPs("tok_nope"); !errors.Is(err, tokens.ErrTokenNotFound) {
		t.Errorf("unknown token: got %v, want ErrTokenNotFound", err)
	}
}

// TestNoteUse_AddressesAreBounded: past tokens.MaxClientIPs distinct
// addresses, the requests of new ones are counted under tokens.OtherIPs.
func TestNoteUse_AddressesAreBounded(t *testing.T) {
	db := openTest(t, Options{NoSync: true})
	tok := newToken(t, db, "p", budget.Limit{}, budget.Limit{})
	const extra = 5
	err := db.update(ctx, func(tx *bolt.Tx) error {
		for i := range tokens.MaxClientIPs + extra {
			db.st.noteUse(tok.ID, db.now(), fmt.Sprintf("10.%d.%d.1", i/256, i%256), "")
		}
		db.st.noteUse(tok.ID, db.now(), "10.0.0.1", "") // a known one still counts as itself
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ips, err := db.ClientIPs(tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(ips) != tokens.MaxClientIPs+1 {
		t.Fatalf("got %d entries, want %d and one for the rest", len(ips), tokens.MaxClientIPs)
	}
	for _, e := range ips {
		switch {
		case e.IP == tokens.OtherIPs && e.Requests != extra:
			t.Errorf("the rest: got %d requests, want %d", e.Requests, extra)
		case e.IP == "10.0.0.1" && e.Requests != 2:
			t.Errorf("10.0.0.1: got %d requests, want 2", e.Requests)
		}
	}
	requireStateMatchesDisk(t, db)
}

// rotationFixture is a project, a token with a daily budget, and its
// secret, on a database with a clock.
func rotationFixture(t *testing.T, spec TokenSpec) (*DB, *clock, tokens.Token, string) {
	t.Helper()
	clk := &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	db := openTest(t, Options{Now: clk.Now, NoSync: true})
	if _, err := db.CreateProject(ctx, "p", budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	spec.Project = "p"
	spec.Limit = budget.Ceiling(500, budget.Day)
	tok, secret, err := db.CreateToken(WithActor(ctx, "admin:test"), spec)
	if err != nil {
		t.Fatal(err)
	}
	return db, clk, tok, secret
}

func TestRotateToken_Grace(t *testing.T) {
	db, clk, tok, old := rotationFixture(t, TokenSpec{Name: "web", Models: []string{"m"}, RotateEvery: 30 * 24 * time.Hour})
	clk.Set(clk.Now().Add(time.Hour))
	rotated, fresh, err := db.RotateToken(WithActor(ctx, "admin:test"), tok.ID, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if rotated.ID != tok.ID || rotated.Name != "web" || rotated.Models[0] != "m" || !rotated.Created.Equal(tok.Created) {
		t.Errorf("rotation changed the token: got %+v", rotated)
	}
	if want := clk.Now().Add(30 * 24 * time.Hour); !rotated.RotateBy.Equal(want) {
		t.Errorf("rotate_by: got %s, want %s", rotated.RotateBy, want)
	}
	if want := clk.Now().Add(24 * time.Hour); !rotated.RotatingUntil.Equal(want) {
		t.Errorf("rotating_until: got %s, want %s", rotated.RotatingUntil, want)
	}
	if l, _ := db.Limit(budget.TokenScope(tok.ID)); l != budget.Ceiling(500, budget.Day) {
		t.Errorf("the budget changed: got %+v", l)
	}
	if got, err := db.Authenticate(fresh); err != nil || got.ID != tok.ID || got.OldSecret {
		t.Fatalf("new secret: got %s old=%v, %v; want the token, not old", got.ID, got.OldSecret, err)
	}
	if got, err := db.Authenticate(old); err != nil || got.ID != tok.ID || !got.OldSecret {
		t.Fatalf("old secret in grace: got %s old=%v, %v; want the token marked old", got.ID, got.OldSecret, err)
	}
	clk.Set(clk.Now().Add(24 * time.Hour))
	_, err = db.Authenticate(old)
	var re *tokens.RotatedError
	if !errors.Is(err, tokens.ErrRotated) || !errors.As(err, &re) || !strings.Contains(err.Error(), "rotated at 2026-12-01T10:00:00Z") {
		t.Fatalf("old secret after grace: got %v, want ErrRotated saying when", err)
	}
	if _, err := db.Authenticate(fresh); err != nil {
		t.Fatalf("new secret after grace: %v", err)
	}
	// A second rotation: the first secret is still told it was rotated.
	_, newest, err := db.RotateToken(ctx, tok.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(old); !errors.Is(err, tokens.ErrRotated) {
		t.Errorf("the first secret after two rotations: got %v, want ErrRotated", err)
	}
	if got, err := db.Authenticate(fresh); err != nil || !got.OldSecret {
		t.Errorf("the second secret in the second grace: got old=%v, %v", got.OldSecret, err)
	}
	if _, err := db.Authenticate(newest); err != nil {
		t.Errorf("the newest secret: %v", err)
	}
	// Revoking stops every secret of the token.
	if _, err := db.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{fresh, newest} {
		if _, err := db.Authenticate(s); !errors.Is(err, tokens.ErrRevoked) {
			t.Errorf("after revoke: got %v, want ErrRevoked", err)
		}
	}
	requireStateMatchesDisk(t, db)
}

func TestRotateToken_NoGraceRefusesTheOldSecretAtOnce(t *testing.T) {
	db, _, tok, old := rotationFixture(t, TokenSpec{})
	_, fresh, err := db.RotateToken(ctx, tok.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Authenticate(old); !errors.Is(err, tokens.ErrRotated) {
		t.Fatalf("old secret: got %v, want ErrRotated", err)
	}
	if _, err := db.Authenticate(fresh); err != nil {
		t.Fatal(err)
	}
	if got, _ := db.Token(tok.ID); !got.RotateBy.IsZero() {
		t.Errorf("rotate_by of a token never due: got %s, want none", got.RotateBy)
	}
}

// TestRotateToken_Refused: bad rotations change nothing and log nothing.
func TestRotateToken_Refused(t *testing.T) {
	db, clk, tok, old := rotationFixture(t, TokenSpec{Expires: time.Date(2026, 12, 2, 9, 0, 0, 0, time.UTC)})
	revoked, _, err := db.CreateToken(ctx, TokenSpec{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.RevokeToken(ctx, revoked.ID); err != nil {
		t.Fatal(err)
	}
	before, _ := db.AuditLog(AuditFilter{})
	tests := []struct {
		name  string
		id    string
		grace time.Duration
		want  error
	}{
		{"unknown id", "tok_000000000000", 0, tokens.ErrTokenNotFound},
		{"revoked", revoked.ID, 0, tokens.ErrTokenFinal},
		{"negative grace", tok.ID, -time.Second, tokens.ErrInvalidGrace},
		{"grace past expiry", tok.ID, 25 * time.Hour, tokens.ErrInvalidGrace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, s, err := db.RotateToken(ctx, tt.id, tt.grace)
			if !errors.Is(err, tt.want) || s != "" {
				t.Fatalf("got %q, %v; want no secret and %v", s, err, tt.want)
			}
			if strings.Contains(err.Error(), "rotation period") {
				t.Errorf("refused as a bad rotation period: %v", err)
			}
		})
	}
	if _, err := db.Authenticate(old); err != nil {
		t.Errorf("the secret stopped working: %v", err)
	}
	if got, _ := db.Token(tok.ID); got.PrevHash != "" || !got.Rotated.IsZero() {
		t.Errorf("a refused rotation changed the token: %+v", got)
	}
	if after, _ := db.AuditLog(AuditFilter{}); len(after) != len(before) {
		t.Errorf("refused rotations wrote %d audit entries", len(after)-len(before))
	}
	clk.Set(tok.Expires)
	if _, _, err := db.RotateToken(ctx, tok.ID, 0); !errors.Is(err, tokens.ErrTokenFinal) || strings.Contains(err.Error(), "rotation period") ||
		!strings.Contains(err.Error(), "token "+tok.ID+" has expired, and an expired token cannot be rotated; extend it with `hardcap token set "+tok.ID+" --expires DURATION`") {
		t.Errorf("expired: got %v, want ErrTokenFinal saying it expired, not a word on rotation periods", err)
	}
	requireStateMatchesDisk(t, db)
}

// TestRotateToken_CrashLeavesOldOrNew: a rotation whose commit never
// reaches the disk leaves the old secret working after a restart, and a
// committed one leaves the new secret working and the old in its grace.
func TestRotateToken_CrashLeavesOldOrNew(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateProject(ctx, "p", budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	tok, old, err := db.CreateToken(ctx, TokenSpec{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	db.dropCommits.Store(true)
	if _, _, err := db.RotateToken(ctx, tok.ID, time.Hour); !errors.Is(err, errCrashed) {
		t.Fatalf("got %v, want the crash", err)
	}
	db.Close()
	if db, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	if got, err := db.Authenticate(old); err != nil || got.OldSecret {
		t.Fatalf("after the crashed rotation: got old=%v, %v; want the old secret current", got.OldSecret, err)
	}
	_, fresh, err := db.RotateToken(ctx, tok.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Authenticate(fresh); err != nil {
		t.Fatalf("new secret after restart: %v", err)
	}
	if got, err := db.Authenticate(old); err != nil || !got.OldSecret {
		t.Fatalf("old secret after restart: got old=%v, %v; want it in grace", got.OldSecret, err)
	}
}

// TestAuditLog_EveryChange: each admin change writes one entry with its
// actor in its own transaction; refused changes write none; the filter
// selects by kind, target and time.
func TestAuditLog_EveryChange(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)}
	db := openTest(t, Options{Now: clk.Now, NoSync: true})
	admin := WithActor(ctx, "admin:1234abcd")
	step := func() { clk.Set(clk.Now().Add(time.Minute)) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	_, err := db.CreateProject(admin, "p", budget.Limit{})
	must(err)
	step()
	tok, _, err := db.CreateToken(admin, TokenSpec{Project: "p", Owner: "ana"})
	must(err)
	if tok.CreatedBy != "admin:1234abcd" {
		t.Errorf("created_by: got %q", tok.CreatedBy)
	}
	step()
	since := clk.Now()
	owner := "bob"
	_, err = db.UpdateToken(admin, tok.ID, TokenChange{Owner: &owner})
	must(err)
	step()
	must(db.SetKill(admin, KillTarget{Token: tok.ID}, true))
	step()
	must(db.SetKill(admin, KillTarget{Token: tok.ID}, false))
	step()
	_, _, err = db.RotateToken(admin, tok.ID, time.Hour)
	must(err)
	step()
	amount := budget.Ceiling(5, budget.Day)
	_, _, err = db.UpdateProject(admin, "p", LimitChange{Amount: &amount})
	must(err)
	step()
	must(db.SetKill(ctx, KillTarget{}, true))
	step()
	_, err = db.RevokeToken(admin, tok.ID)
	must(err)
	step()
	_, err = db.DeleteProject(admin, "p", false)
	must(err)

	// Refused: nothing is written.
	n, _ := db.AuditLog(AuditFilter{})
	bad := []string{"-x"}
	if _, _, err := db.CreateToken(admin, TokenSpec{Project: "nope"}); err == nil {
		t.Error("a token in an unknown project was created")
	}
	if _, _, err := db.CreateToken(admin, TokenSpec{Project: "p", IPs: bad}); !errors.Is(err, tokens.ErrInvalidScope) {
		t.Errorf("bad --ips: got %v", err)
	}
	if _, err := db.UpdateToken(admin, tok.ID, TokenChange{Owner: &owner}); !errors.Is(err, tokens.ErrTokenFinal) {
		t.Errorf("change of a revoked token: got %v", err)
	}
	if _, err := db.RevokeToken(admin, tok.ID); err != nil {
		t.Errorf("second revoke: %v", err)
	}
	if err := db.SetKill(admin, KillTarget{Project: "gone"}, true); !errors.Is(err, tokens.ErrProjectNotFound) {
		t.Errorf("kill of an unknown project: got %v", err)
	}
	all, err := db.AuditLog(AuditFilter{})
	must(err)
	if len(all) != len(n) {
		t.Errorf("refused changes wrote %d entries", len(all)-len(n))
	}
	var got []string
	for _, e := range all {
		got = append(got, e.Actor+" "+e.Action+" "+e.Kind+" "+e.Target)
	}
	want := []string{
		"admin:1234abcd create project p",
		"admin:1234abcd create token " + tok.ID,
		"admin:1234abcd change token " + tok.ID,
		"admin:1234abcd kill token " + tok.ID,
		"admin:1234abcd resume token " + tok.ID,
		"admin:1234abcd rotate token " + tok.ID,
		"admin:1234abcd change project p",
		"system kill all ",
		"admin:1234abcd revoke token " + tok.ID,
		"admin:1234abcd delete project p",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("audit log:\n got %q\nwant %q", got, want)
	}
	if all[2].Detail != "owner" || all[5].Detail != "grace 1h0m0s" || all[6].Detail != "budget 0.000000005 USD/total" {
		t.Errorf("details: %q, %q, %q", all[2].Detail, all[5].Detail, all[6].Detail)
	}
	// A project deleted with its tokens: each token's revocation is in
	// its own history.
	if _, err := db.CreateProject(admin, "q", budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	inQ, _, err := db.CreateToken(admin, TokenSpec{Project: "q"})
	must(err)
	_, err = db.DeleteProject(admin, "q", true)
	must(err)
	if h, _ := db.AuditLog(AuditFilter{Kind: "token", Target: inQ.ID}); len(h) != 2 || h[1].Action != "revoke" || h[1].Detail != "project q deleted" {
		t.Errorf("history of a token revoked by its project's deletion: %+v", h)
	}
	byToken, err := db.AuditLog(AuditFilter{Kind: "token", Target: tok.ID, Since: since})
	must(err)
	if len(byToken) != 5 || byToken[0].Action != "change" || byToken[4].Action != "revoke" {
		t.Errorf("token filter since the change: got %+v", byToken)
	}
	for _, e := range all {
		if strings.Contains(e.Detail, "hc_") {
			t.Errorf("an entry holds a secret: %+v", e)
		}
	}
}

// TestUpdateToken_LedgerAndScopes: token set changes owner, purpose and
// scopes, an empty list clears one, a bad one changes nothing, and
// rotate_every moves rotate_by.
func TestUpdateToken_LedgerAndScopes(t *testing.T) {
	db, clk, tok, _ := rotationFixture(t, TokenSpec{Owner: "ana", Purpose: "nightly batch", Routes: []string{"chat"}, IPs: []string{"10.0.0.0/8"}, MaxConcurrent: 2, MaxRequest: 1000})
	if tok.IPs[0] != "10.0.0.0/8" || tok.Owner != "ana" || tok.MaxRequest != 1000 {
		t.Fatalf("created: %+v", tok)
	}
	routes, ips, every := []string{}, []string{"2001:db8::1"}, 10*24*time.Hour
	got, err := db.UpdateToken(ctx, tok.ID, TokenChange{Routes: &routes, IPs: &ips, RotateEvery: &every})
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Routes) != 0 || got.IPs[0] != "2001:db8::1/128" || got.Owner != "ana" || !got.RotateBy.Equal(clk.Now().Add(every)) {
		t.Errorf("got %+v", got)
	}
	for name, c := range map[string]TokenChange{
		"bad route":   {Routes: &[]string{"images"}},
		"bad ips":     {IPs: &[]string{"example.com"}},
		"negative":    {MaxConcurrent: new(-1)},
		"owner ctl":   {Owner: new("a\nb")},
		"purpose big": {Purpose: new(strings.Repeat("x", tokens.MaxPurpose+1))},
	} {
		if _, err := db.UpdateToken(ctx, tok.ID, c); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if after, _ := db.Token(tok.ID); fmt.Sprint(after) != fmt.Sprint(got) {
		t.Errorf("a refused change changed the token:\n%+v\n%+v", after, got)
	}
}

// TestSalvage_KeepsARotatedTokensGrace: a salvaged copy rebuilds the hash
// index with the previous secret too, so it still works in its grace and
// the client addresses are copied.
func TestSalvage_KeepsARotatedTokensGrace(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.CreateProject(ctx, "p", budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	tok, old, err := db.CreateToken(ctx, TokenSpec{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	res, err := db.Reserve(ctx, budget.Request{TokenID: tok.ID, Model: "m", ClientIP: "192.0.2.1"}, flat(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 1}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.RotateToken(ctx, tok.ID, time.Hour); err != nil {
		t.Fatal(err)
	}
	db.Close()
	out := filepath.Join(t.TempDir(), "out.db")
	if _, err := Salvage(path, out); err != nil {
		t.Fatal(err)
	}
	db, err = Open(out, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got, err := db.Authenticate(old); err != nil || !got.OldSecret {
		t.Errorf("old secret after salvage: old=%v, %v; want it in grace", got.OldSecret, err)
	}
	if ips, err := db.ClientIPs(tok.ID); err != nil || len(ips) != 1 {
		t.Errorf("client addresses after salvage: %v, %v", ips, err)
	}
}
