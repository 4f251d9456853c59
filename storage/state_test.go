package storage

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// stateJSON renders what a state holds (not its caches and undo log) in a
// form two states are compared by.
func stateJSON(t *testing.T, st *state) string {
	t.Helper()
	hashes := map[string]string{}
	for h, id := range st.hashes {
		hashes[hex.EncodeToString(h[:])] = id
	}
	b, err := json.Marshal(map[string]any{
		"tokens": st.tokens, "hashes": hashes, "projects": st.projects,
		"limits": st.limits, "spend": st.spend, "res": st.res, "kill_all": st.killAll, "ips": st.ips,
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// authJSON renders what an authentication view holds.
func authJSON(t *testing.T, a *authView) string {
	t.Helper()
	a.mu.RLock()
	defer a.mu.RUnlock()
	byHash := map[string]tokens.Token{}
	for h, id := range a.byHash {
		byHash[hex.EncodeToString(h[:])] = a.tokens[id].tok
	}
	b, err := json.Marshal(map[string]any{"tokens": byHash, "projects": a.projects, "kill_all": a.killAll})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// requireStateMatchesDisk rebuilds the state and the authentication view
// from the file, inside the writer, and fails unless the writer's equal
// them.
func requireStateMatchesDisk(t *testing.T, db *DB) {
	t.Helper()
	var mem, disk, memAuth, diskAuth string
	run := db.update
	if db.broken.Load() != nil {
		// The writer refuses every write now and runs nothing: read
		// beside it.
		run = func(_ context.Context, fn func(*bolt.Tx) error) error { return db.bolt.View(fn) }
	}
	var pending, stale []string
	err := run(ctx, func(tx *bolt.Tx) error {
		// Alone in its batch (the tests run one call at a time): nothing
		// may wait for a flush an earlier batch should have made.
		pending = append(pending, db.st.spendOrder...)
		for _, k := range db.st.hourOrder {
			pending = append(pending, fmt.Sprintf("hour %x", k))
		}
		for s, id := range db.st.strs {
			if got, ok := lookupID(tx, s); !ok || got != id {
				stale = append(stale, fmt.Sprintf("%q: cached %d, on disk %d (%v)", s, id, got, ok))
			}
		}
		fromDisk, err := loadState(tx)
		if err != nil {
			return err
		}
		mem, disk = stateJSON(t, db.st), stateJSON(t, fromDisk)
		memAuth, diskAuth = authJSON(t, db.auth), authJSON(t, newAuthView(fromDisk))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(pending) > 0 {
		t.Fatalf("changes left unflushed after their commit: %v", pending)
	}
	if len(stale) > 0 {
		t.Fatalf("the dictionary cache differs from disk: %v", stale)
	}
	if mem != disk {
		t.Fatalf("memory differs from disk:\nmemory %s\ndisk   %s", mem, disk)
	}
	if memAuth != diskAuth {
		t.Fatalf("authentication view differs from disk:\nmemory %s\ndisk   %s", memAuth, diskAuth)
	}
	// The counters against the open reservations, the hour totals against
	// the records, every record's strings in the dictionary.
	var problems []string
	err = db.bolt.View(func(tx *bolt.Tx) error {
		var err error
		_, problems, err = checkLedger(tx, true, nil)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(problems) > 0 {
		t.Fatalf("the file fails its check: %v", problems)
	}
}

func op(fn func(tx *bolt.Tx) error) *writeOp {
	return &writeOp{fn: fn, done: make(chan error, 1)}
}

// TestCommitBatch_RollbackLeavesMemoryEqualToDisk: an operation that
// writes and then fails (with a fatalError or a panic) mid-batch, and a
// Commit that fails, leave the writer's memory equal to the file, while
// the batch's other operations (which saw each other's changes) commit.
func TestCommitBatch_RollbackLeavesMemoryEqualToDisk(t *testing.T) {
	tests := []struct {
		name string
		// bad writes and then fails its batch
		bad func(db *DB, tok tokens.Token, open budget.Reservation) func(tx *bolt.Tx) error
		// others says whether the batch's other operations commit
		others bool
	}{
		{"fatal error after writing", func(db *DB, tok tokens.Token, open budget.Reservation) func(tx *bolt.Tx) error {
			return func(tx *bolt.Tx) error {
				tok.Revoked = db.now()
				if err := db.putToken(tx, tok); err != nil {
					return err
				}
				if err := db.setSpend(open.Keys[0], budget.Spend{Committed: 1}); err != nil {
					return err
				}
				// A counter no other operation changes: the batch run
				// again must not write it.
				if err := db.setSpend("token:only-the-bad-op:total", budget.Spend{Committed: 1}); err != nil {
					return err
				}
				db.st.deleteRes(open.ID)
				if err := db.putProject(tx, tokens.Project{Name: tok.Project, Killed: true}); err != nil {
					return err
				}
				db.st.setKillAll(true)
				return fatal(errors.New("disk full"))
			}
		}, true},
		{"panic after writing", func(db *DB, tok tokens.Token, open budget.Reservation) func(tx *bolt.Tx) error {
			return func(tx *bolt.Tx) error {
				if _, err := db.settle(tx, open, budget.Settlement{Charged: 5}); err != nil {
					return err
				}
				if err := db.setLimit(tx, budget.TokenScope(tok.ID), budget.Ceiling(1, budget.Day)); err != nil {
					return err
				}
				panic("a hardcap bug")
			}
		}, true},
		{"key too large after writing", func(db *DB, tok tokens.Token, open budget.Reservation) func(tx *bolt.Tx) error {
			return func(tx *bolt.Tx) error {
				// The token's first record: it interns the token's strings
				// and adds to the hour totals.
				if _, err := db.settle(tx, open, budget.Settlement{Charged: 5, Ended: db.now()}); err != nil {
					return err
				}
				// bbolt would refuse the key at the flush: refused here,
				// with only this operation.
				err := db.setSpend(strings.Repeat("k", bolt.MaxKeySize+1), budget.Spend{Committed: 1})
				if !errors.Is(err, berrors.ErrKeyTooLarge) {
					t.Errorf("setSpend of a key too large: got %v, want ErrKeyTooLarge", err)
				}
				return err
			}
		}, true},
		{"a use noted, then a fatal error", func(db *DB, tok tokens.Token, open budget.Reservation) func(tx *bolt.Tx) error {
			return func(tx *bolt.Tx) error {
				// What reserve folds into the commit: the token's last use,
				// its request count and a client address never seen.
				db.st.noteUse(tok.ID, db.now(), "192.0.2.99", "bad-op/1")
				db.st.noteUse(tok.ID, db.now(), "192.0.2.99", "bad-op/1")
				return fatal(errors.New("disk full"))
			}
		}, true},
		{"commit fails", func(db *DB, tok tokens.Token, open budget.Reservation) func(tx *bolt.Tx) error {
			return func(tx *bolt.Tx) error {
				tok.Killed = true
				if err := db.putToken(tx, tok); err != nil {
					return err
				}
				if _, err := db.settle(tx, open, budget.Settlement{Charged: 5}); err != nil {
					return err
				}
				// The transaction is gone: Commit fails (ErrTxClosed),
				// as it would on a failed write; the writer cannot tell
				// whether it reached the file and refuses every later
				// write.
				return tx.Rollback()
			}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t, Options{NoSync: true})
			tok := newToken(t, db, "p", budget.Ceiling(1000, budget.Month), budget.NoLimit(""))
			other := newToken(t, db, "p", budget.NoLimit(""), budget.NoLimit(""))
			open, err := reserve(db, tok, flat(100))
			if err != nil {
				t.Fatal(err)
			}
			before := stateJSON(t, db.st)
			var first budget.Reservation
			good := op(func(tx *bolt.Tx) error {
				var err error
				first, err = db.reserve(tx, budget.Request{TokenID: tok.ID, Model: "m"}, flat(10), false)
				return err
			})
			revoke := op(func(tx *bolt.Tx) error {
				other.Revoked = db.now()
				return db.putToken(tx, other)
			})
			// Sees the reservation the first operation took.
			later := op(func(tx *bolt.Tx) error {
				_, err := db.settleOp(tx, first.ID, &budget.Settlement{Charged: 3})
				return err
			})
			ops := []*writeOp{good, revoke, op(tt.bad(db, tok, open)), later}
			if !tt.others {
				ops = []*writeOp{good, revoke, later, op(tt.bad(db, tok, open))}
			}
			db.commitBatch(ops)
			errs := make([]error, len(ops))
			for i, o := range ops {
				errs[i] = <-o.done
			}
			requireStateMatchesDisk(t, db)
			if tt.others {
				if errs[0] != nil || errs[1] != nil || errs[3] != nil || errs[2] == nil {
					t.Fatalf("got %v; want only the bad operation refused", errs)
				}
				if _, ok := db.st.res[open.ID]; !ok {
					t.Fatalf("the rolled back settlement of %s stayed in memory", open.ID)
				}
				if _, err := reserve(db, tok, flat(10)); err != nil {
					t.Fatalf("the rolled back revoke or kill stayed in memory: %v", err)
				}
				return
			}
			for i, err := range errs {
				if err == nil {
					t.Fatalf("operation %d of a batch whose commit failed got nil", i)
				}
			}
			if got := stateJSON(t, db.st); got != before {
				t.Fatalf("a failed commit changed memory:\ngot  %s\nwant %s", got, before)
			}
		})
	}
}

// TestState_MatchesDiskAfterEveryChange runs every tenancy change, reserve,
// settle, a period change with a reservation open and a reopen, and
// compares memory with the file after each.
func TestState_MatchesDiskAfterEveryChange(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { db.Close() }()
	tok := newToken(t, db, "web", budget.Ceiling(usd(t, "10"), budget.Month), budget.NoLimit(""))
	requireStateMatchesDisk(t, db)
	open, err := reserve(db, tok, flat(500))
	if err != nil {
		t.Fatal(err)
	}
	requireStateMatchesDisk(t, db)
	amount := budget.Ceiling(usd(t, "5"), "")
	if _, _, err := db.UpdateProject(ctx, "web", LimitChange{Amount: &amount, Period: budget.Day}); err != nil {
		t.Fatal(err)
	}
	requireStateMatchesDisk(t, db)
	name := "renamed"
	if _, err := db.UpdateToken(ctx, tok.ID, TokenChange{Name: &name, Limit: LimitChange{Period: budget.Week}}); err != nil {
		t.Fatal(err)
	}
	requireStateMatchesDisk(t, db)
	for _, target := range []KillTarget{{Token: tok.ID}, {Project: "web"}, {}} {
		if err := db.SetKill(ctx, target, true); err != nil {
			t.Fatal(err)
		}
		requireStateMatchesDisk(t, db)
	}
	if _, err := db.Settle(ctx, open.ID, budget.Settlement{Charged: 7}); err != nil {
		t.Fatal(err)
	}
	requireStateMatchesDisk(t, db)
	if _, err := db.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	newToken(t, db, "api", budget.Limit{}, budget.Limit{})
	if _, err := db.DeleteProject(ctx, "web", true); err != nil {
		t.Fatal(err)
	}
	requireStateMatchesDisk(t, db)
	other := newToken(t, db, "api", budget.Limit{}, budget.Limit{})
	if err := db.SetKill(ctx, KillTarget{}, false); err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(db, other, flat(10)); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if db, err = Open(path, Options{NoSync: true}); err != nil {
		t.Fatal(err)
	}
	requireStateMatchesDisk(t, db)
	if n := len(db.Recovered()); n != 1 {
		t.Fatalf("recovered %d reservations, want 1", n)
	}
}

// testNow is the fixed time of tests that need one.
var testNow = time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)

// TestAuthenticate_SeesEveryChangeOnReturn: once a revoke, kill, expiry
// change or project deletion returns, the next Authenticate refuses the
// token, without any read of the file; and a kill committed between
// authentication and reservation refuses the reservation.
func TestAuthenticate_SeesEveryChangeOnReturn(t *testing.T) {
	past := testNow.Add(-time.Minute)
	tests := []struct {
		name   string
		change func(db *DB, tok tokens.Token) error
		want   error
	}{
		{"revoke", func(db *DB, tok tokens.Token) error { _, err := db.RevokeToken(ctx, tok.ID); return err }, tokens.ErrRevoked},
		{"token kill", func(db *DB, tok tokens.Token) error { return db.SetKill(ctx, KillTarget{Token: tok.ID}, true) }, tokens.ErrKilled},
		{"project kill", func(db *DB, tok tokens.Token) error { return db.SetKill(ctx, KillTarget{Project: "p"}, true) }, tokens.ErrKilled},
		{"global kill", func(db *DB, tok tokens.Token) error { return db.SetKill(ctx, KillTarget{}, true) }, tokens.ErrKilled},
		{"expiry", func(db *DB, tok tokens.Token) error {
			_, err := db.UpdateToken(ctx, tok.ID, TokenChange{Expires: &past})
			return err
		}, tokens.ErrExpired},
		{"project deleted", func(db *DB, tok tokens.Token) error { _, err := db.DeleteProject(ctx, "p", true); return err }, tokens.ErrRevoked},
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
			if _, err := db.Authenticate(secret); err != nil {
				t.Fatalf("before the change: %v", err)
			}
			if err := tt.change(db, tok); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Authenticate(secret); !errors.Is(err, tt.want) {
				t.Fatalf("authenticate after the change: got %v, want %v", err, tt.want)
			}
			if _, err := reserve(db, tok, flat(1)); !errors.Is(err, tt.want) {
				t.Fatalf("reserve after the change: got %v, want %v", err, tt.want)
			}
			requireStateMatchesDisk(t, db)
		})
	}
	t.Run("closed", func(t *testing.T) {
		db := openTest(t, Options{NoSync: true})
		if _, err := db.CreateProject(ctx, "p", budget.Limit{}); err != nil {
			t.Fatal(err)
		}
		_, secret, err := db.CreateToken(ctx, TokenSpec{Project: "p"})
		if err != nil {
			t.Fatal(err)
		}
		db.Close()
		if _, err := db.Authenticate(secret); !errors.Is(err, ErrClosed) {
			t.Fatalf("got %v, want ErrClosed", err)
		}
	})
	t.Run("broken", func(t *testing.T) {
		db := openTest(t, Options{NoSync: true})
		if _, err := db.CreateProject(ctx, "p", budget.Limit{}); err != nil {
			t.Fatal(err)
		}
		_, secret, err := db.CreateToken(ctx, TokenSpec{Project: "p"})
		if err != nil {
			t.Fatal(err)
		}
		broken := fmt.Errorf("%w: a test", ErrDamaged)
		db.broken.Store(&broken)
		if _, err := db.Authenticate(secret); !errors.Is(err, ErrDamaged) {
			t.Fatalf("got %v, want ErrDamaged", err)
		}
		db.broken.Store(nil)
	})
}

// TestWindowKey_MatchesBudgetKey: the cached window key is Budget.Key at
// every time, across day, week and month boundaries and period changes.
func TestWindowKey_MatchesBudgetKey(t *testing.T) {
	st := newState()
	loc := time.FixedZone("UTC-5", -5*3600)
	start := time.Date(2026, 12, 30, 22, 0, 0, 0, time.UTC)
	scope := budget.ProjectScope("web")
	for _, p := range []budget.Period{budget.Day, budget.Week, budget.Month, budget.Total, "", budget.Day} {
		l := budget.Ceiling(1, p)
		for step := range 96 {
			now := start.Add(time.Duration(step) * 37 * time.Minute)
			got := st.windowKey(scope, l, now, loc)
			if want := (budget.Budget{Scope: scope, Limit: l}).Key(now, loc); got != want {
				t.Fatalf("period %q at %s: got %q, want %q", p, now, got, want)
			}
		}
	}
}

// TestCommitBatch_ManyChangesOfOneCounterFlushOnce: a batch whose
// operations change the same spend counters and hour totals many times
// (reservations and settlements of two tokens of one project, a request
// refused between them) commits each counter's final value and totals
// that count every record, and the next batch starts with nothing left to
// flush.
func TestCommitBatch_ManyChangesOfOneCounterFlushOnce(t *testing.T) {
	db := openTest(t, Options{NoSync: true, Now: func() time.Time { return testNow }})
	a := newToken(t, db, "p", budget.NoLimit(""), budget.Ceiling(25, ""))
	b := newToken(t, db, "p", budget.NoLimit(""), budget.NoLimit(""))
	const n = 5
	var ress []budget.Reservation
	var ops []*writeOp
	for i := range 2 * n {
		tok := a
		if i%2 == 1 {
			tok = b
		}
		ops = append(ops, op(func(tx *bolt.Tx) error {
			res, err := db.reserve(tx, budget.Request{TokenID: tok.ID, Model: "m"}, flat(10), false)
			if err == nil {
				ress = append(ress, res)
			}
			return err
		}))
	}
	db.commitBatch(ops)
	refused := 0
	for _, o := range ops {
		if err := <-o.done; errors.Is(err, budget.ErrExhausted) {
			refused++
		} else if err != nil {
			t.Fatal(err)
		}
	}
	// a's cap of 25 nano-USD holds two reservations of 10 and a clamped 5,
	// then refuses the rest.
	if refused != 2 {
		t.Fatalf("refused %d reservations, want 2", refused)
	}
	requireStateMatchesDisk(t, db)
	var reserved budget.Money
	for _, res := range ress {
		reserved += res.Amount
	}
	global := ress[0].Keys[0]
	if got := spendOnDisk(t, db, global); got.Reserved != reserved || got.Committed != 0 {
		t.Fatalf("global counter on disk %+v, want reserved %d", got, reserved)
	}
	ops = ops[:0]
	for _, res := range ress {
		ops = append(ops, op(func(tx *bolt.Tx) error {
			_, err := db.settleOp(tx, res.ID, &budget.Settlement{Charged: 3, Ended: testNow})
			return err
		}))
	}
	db.commitBatch(ops)
	for _, o := range ops {
		if err := <-o.done; err != nil {
			t.Fatal(err)
		}
	}
	requireStateMatchesDisk(t, db)
	if got, want := spendOnDisk(t, db, global), (budget.Spend{Committed: budget.Money(3 * len(ress))}); got != want {
		t.Fatalf("global counter on disk %+v, want %+v", got, want)
	}
	u, err := db.Usage(RecordFilter{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	if u.Matched != len(ress) || u.Spent != budget.Money(3*len(ress)) {
		t.Fatalf("usage of the project: %d records charging %d, want %d charging %d", u.Matched, u.Spent, len(ress), 3*len(ress))
	}
}
