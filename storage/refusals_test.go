package storage

import (
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
)

// TestAuthenticate_ReturnsTheTokenOfARefusal: a secret that belongs to a
// token which is revoked, expired, killed or rotated is refused with the
// token, so that the refusal can be counted against it; an unknown secret
// still returns no token.
func TestAuthenticate_ReturnsTheTokenOfARefusal(t *testing.T) {
	past := testNow.Add(-time.Minute)
	tests := []struct {
		name   string
		change func(db *DB, tok tokens.Token) error
		want   error
	}{
		{"revoked", func(db *DB, tok tokens.Token) error { _, err := db.RevokeToken(ctx, tok.ID); return err }, tokens.ErrRevoked},
		{"token kill", func(db *DB, tok tokens.Token) error { return db.SetKill(ctx, KillTarget{Token: tok.ID}, true) }, tokens.ErrKilled},
		{"project kill", func(db *DB, tok tokens.Token) error { return db.SetKill(ctx, KillTarget{Project: "p"}, true) }, tokens.ErrKilled},
		{"global kill", func(db *DB, tok tokens.Token) error { return db.SetKill(ctx, KillTarget{}, true) }, tokens.ErrKilled},
		{"expired", func(db *DB, tok tokens.Token) error {
			_, err := db.UpdateToken(ctx, tok.ID, TokenChange{Expires: &past})
			return err
		}, tokens.ErrExpired},
		{"rotated", func(db *DB, tok tokens.Token) error { _, _, err := db.RotateToken(ctx, tok.ID, 0); return err }, tokens.ErrRotated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t, Options{NoSync: true, Now: func() time.Time { return testNow }})
			if _, err := db.CreateProject(ctx, "p", budget.Limit{}); err != nil {
				t.Fatal(err)
			}
			tok, secret, err := db.CreateToken(ctx, TokenSpec{Project: "p"})
			if err != nil {
				t.Fatal(err)
			}
			if err := tt.change(db, tok); err != nil {
				t.Fatal(err)
			}
			got, err := db.Authenticate(secret)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if got.ID != tok.ID || got.Project != "p" {
				t.Fatalf("refused token: got id %q project %q, want %q in p", got.ID, got.Project, tok.ID)
			}
		})
	}
	t.Run("unknown", func(t *testing.T) {
		db := openTest(t, Options{NoSync: true})
		other, err := tokens.NewSecret()
		if err != nil {
			t.Fatal(err)
		}
		got, err := db.Authenticate(other)
		if !errors.Is(err, tokens.ErrUnknown) || got.ID != "" {
			t.Fatalf("unknown secret: got %q, %v; want no token and ErrUnknown", got.ID, err)
		}
	})
}

// TestNoteRefusal_CountedAndWrittenWithTheNextCommit: refusals are folded
// into memory without a commit of their own, written by the next commit
// (Flush's here), bounded per token, and kept across a restart.
func TestNoteRefusal_CountedAndWrittenWithTheNextCommit(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	tok := newToken(t, db, "p", budget.Limit{}, budget.Limit{})
	t0 := testNow
	notes := []struct {
		code, ip string
		at       time.Time
	}{
		{"kill_switch", "203.0.113.7", t0},
		{"kill_switch", "203.0.113.8", t0.Add(time.Minute)},
		{"invalid_api_key", "203.0.113.7", t0.Add(2 * time.Minute)},
		{"kill_switch", "", t0.Add(30 * time.Second)}, // older than the last, no address
	}
	commits, _ := db.CommitStats()
	for _, n := range notes {
		db.NoteRefusal(tok.ID, n.code, n.ip, n.at)
	}
	db.NoteRefusal("", "invalid_api_key", "198.51.100.1", t0)            // no token: not counted
	db.NoteRefusal("tok_unknown", "invalid_api_key", "198.51.100.1", t0) // not a token: skipped
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	if after, _ := db.CommitStats(); after != commits+1 {
		t.Errorf("commits: %d refusals and a Flush made %d commits, want 1 (no write per refusal)", len(notes), after-commits)
	}
	check := func(db *DB) {
		t.Helper()
		got, err := db.Refusals(tok.ID)
		if err != nil {
			t.Fatal(err)
		}
		want := []Refusal{
			{Code: "invalid_api_key", Count: 1, First: t0.Add(2 * time.Minute), Last: t0.Add(2 * time.Minute), LastIP: "203.0.113.7"},
			{Code: "kill_switch", Count: 3, First: t0, Last: t0.Add(time.Minute), LastIP: "203.0.113.8"},
		}
		if fmt.Sprint(got.Codes) != fmt.Sprint(want) {
			t.Errorf("codes:\n got %v\nwant %v", got.Codes, want)
		}
		wantIPs := []tokens.ClientIP{
			{IP: "203.0.113.7", First: t0, Last: t0.Add(2 * time.Minute), Requests: 2},
			{IP: "203.0.113.8", First: t0.Add(time.Minute), Last: t0.Add(time.Minute), Requests: 1},
		}
		if fmt.Sprint(got.IPs) != fmt.Sprint(wantIPs) {
			t.Errorf("addresses:\n got %v\nwant %v", got.IPs, wantIPs)
		}
	}
	check(db)
	requireStateMatchesDisk(t, db)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(path, Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	check(db)
	if _, err := db.Refusals("tok_nope"); !errors.Is(err, tokens.ErrTokenNotFound) {
		t.Errorf("unknown token: got %v, want ErrTokenNotFound", err)
	}
}

// TestNoteRefusal_Bounds: past MaxRefusalCodes codes and MaxRefusalIPs
// addresses, new ones are counted under one entry each.
func TestNoteRefusal_Bounds(t *testing.T) {
	db := openTest(t, Options{NoSync: true})
	tok := newToken(t, db, "p", budget.Limit{}, budget.Limit{})
	for i := range MaxRefusalCodes + 6 {
		db.NoteRefusal(tok.ID, fmt.Sprintf("code_%d", i), fmt.Sprintf("10.0.%d.%d", i/250, i%250), testNow)
	}
	for i := range MaxRefusalIPs {
		db.NoteRefusal(tok.ID, "code_0", fmt.Sprintf("10.1.%d.%d", i/250, i%250), testNow)
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := db.Refusals(tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Codes) != MaxRefusalCodes+1 {
		t.Errorf("codes: got %d entries, want %d and %q", len(got.Codes), MaxRefusalCodes, RefusalOtherCode)
	}
	if len(got.IPs) != MaxRefusalIPs+1 {
		t.Errorf("addresses: got %d entries, want %d and %q", len(got.IPs), MaxRefusalIPs, tokens.OtherIPs)
	}
	var other, otherIPs int64
	for _, c := range got.Codes {
		if c.Code == RefusalOtherCode {
			other = c.Count
		}
	}
	for _, e := range got.IPs {
		if e.IP == tokens.OtherIPs {
			otherIPs = e.Requests
		}
	}
	if other != 6 {
		t.Errorf("%q: got %d refusals, want 6", RefusalOtherCode, other)
	}
	if want := int64(MaxRefusalCodes + 6); otherIPs != want {
		t.Errorf("%q addresses: got %d refusals, want %d", tokens.OtherIPs, otherIPs, want)
	}
}

// TestNoteRefusal_NeverWaits: with nobody taking them (the writer gone),
// refusals past the queue's bound are dropped and counted, not waited on;
// those queued before Close are written by it.
func TestNoteRefusal_NeverWaits(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	tok := newToken(t, db, "p", budget.Limit{}, budget.Limit{})
	db.NoteRefusal(tok.ID, "kill_switch", "203.0.113.7", testNow)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	for range refusalQueueLen + 10 {
		db.NoteRefusal(tok.ID, "kill_switch", "203.0.113.7", testNow)
	}
	if got := db.RefusalsDropped(); got != 10 {
		t.Errorf("dropped: got %d, want 10", got)
	}
	if db, err = Open(path, Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	got, err := db.Refusals(tok.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Codes) != 1 || got.Codes[0].Count != 1 {
		t.Errorf("the refusal queued before Close: got %v, want one kill_switch", got.Codes)
	}
}
