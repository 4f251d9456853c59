package cluster_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/cluster"
	"github.com/hardcap/hardcap/internal/pgtest"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/storage/postgres"
	"github.com/hardcap/hardcap/tokens"
	"github.com/jackc/pgx/v5"
	"github.com/rs/zerolog"
)

// bound is how long a change may take to reach another replica before
// the test fails rather than hangs; the times are logged.
const bound = 10 * time.Second

type tenant struct {
	name string
	db   *storage.DB
	pg   *postgres.Store
	ten  *cluster.Tenancy
	stop func()
}

// newReplica opens a ledger in a directory of its own and its mirror
// through dsn, and runs it until the test ends.
func newReplica(t *testing.T, dsn, name string, onApply ...func(storage.MirrorRecord)) *tenant {
	t.Helper()
	return newReplicaAt(t, dsn, name, filepath.Join(t.TempDir(), "hardcap.db"), onApply...)
}

// newReplicaAt is newReplica on the ledger at path; stop ends it before
// the test does.
func newReplicaAt(t *testing.T, dsn, name, path string, onApply ...func(storage.MirrorRecord)) *tenant {
	t.Helper()
	ctx := context.Background()
	var ten atomic.Pointer[cluster.Tenancy]
	db, err := storage.Open(path, storage.Options{
		NoSync:  true,
		Changed: func(kind, target string) { ten.Load().Changed(kind, target) },
	})
	if err != nil {
		t.Fatal(err)
	}
	pg, err := postgres.Open(ctx, postgres.Options{DSN: dsn, Replica: name, Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	r := &tenant{name: name, db: db, pg: pg, ten: cluster.NewTenancy(pg, db, name, zerolog.New(zerolog.NewTestWriter(t)).With().Str("replica", name).Logger())}
	for _, f := range onApply {
		r.ten.OnApply = f
	}
	ten.Store(r.ten)
	if err := r.ten.Start(ctx); err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); r.ten.Run(runCtx) }()
	var once sync.Once
	r.stop = func() {
		once.Do(func() {
			cancel()
			<-done
			r.ten.Close()
			pg.Close()
			_ = db.Close()
		})
	}
	t.Cleanup(r.stop)
	return r
}

// eventually polls check until it returns nil, and fails the test with
// its last error after bound. It returns how long it took.
func eventually(t *testing.T, what string, check func() error) time.Duration {
	t.Helper()
	began := time.Now()
	for {
		err := check()
		if err == nil {
			took := time.Since(began)
			t.Logf("%s: %s", what, took)
			return took
		}
		if time.Since(began) > bound {
			t.Fatalf("%s: not after %s: %v", what, bound, err)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// authIs checks that secret authenticates on db with an error that is
// want (nil: accepted).
func authIs(db *storage.DB, secret string, want error) func() error {
	return func() error {
		_, err := db.Authenticate(secret)
		if want == nil && err != nil {
			return fmt.Errorf("refused: %w", err)
		}
		if want != nil && !errors.Is(err, want) {
			return fmt.Errorf("got %v, want %v", err, want)
		}
		return nil
	}
}

func limitIs(db *storage.DB, scope budget.Scope, want budget.Limit) func() error {
	return func() error {
		l, err := db.Limit(scope)
		if err != nil {
			return err
		}
		if l != want {
			return fmt.Errorf("limit %+v, want %+v", l, want)
		}
		return nil
	}
}

// pgLimit reads a scope's row of hardcap.limits: the escrow's limit.
func pgLimit(t *testing.T, dsn string, scope budget.Scope) (limit *int64, period string, ok bool) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	err = conn.QueryRow(ctx, `SELECT limit_nano, period FROM hardcap.limits WHERE scope = $1`, string(scope)).Scan(&limit, &period)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", false
	}
	if err != nil {
		t.Fatal(err)
	}
	return limit, period, true
}

const usd = budget.Money(budget.NanoPerUSD)

var quote = budget.Quote{MaxOutput: 1, OutputRate: 1_000_000}

func TestTenancy_ReachesEveryReplica(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	// What a is told it applied: the proxy's cue to cut requests.
	var killedOnA atomic.Int32
	a := newReplica(t, dsn, "a", func(r storage.MirrorRecord) {
		if r.Token != nil && r.Token.Killed {
			killedOnA.Add(1)
		}
	})
	b := newReplica(t, dsn, "b")

	ten := budget.Ceiling(10*usd, budget.Day)
	if _, err := a.db.CreateProject(ctx, "p", ten); err != nil {
		t.Fatal(err)
	}
	tok, secret, err := a.db.CreateToken(ctx, storage.TokenSpec{Project: "p", Name: "ci", Limit: budget.Ceiling(usd, budget.Total)})
	if err != nil {
		t.Fatal(err)
	}
	var times []time.Duration
	times = append(times, eventually(t, "a token made on a authenticates on b", authIs(b.db, secret, nil)))
	eventually(t, "the project's limit on b", limitIs(b.db, budget.ProjectScope("p"), ten))
	if l, period, ok := pgLimit(t, dsn, budget.ProjectScope("p")); !ok || l == nil || *l != int64(10*usd) || period != string(budget.Day) {
		t.Fatalf("hardcap.limits of project:p = %v %q %v, want 10 USD/day", l, period, ok)
	}
	if l, _, ok := pgLimit(t, dsn, budget.TokenScope(tok.ID)); !ok || l == nil || *l != int64(usd) {
		t.Fatalf("hardcap.limits of the token = %v %v, want 1 USD", l, ok)
	}

	if err := b.db.SetKill(ctx, storage.KillTarget{Token: tok.ID}, true); err != nil {
		t.Fatal(err)
	}
	times = append(times, eventually(t, "a kill on b reaches a", authIs(a.db, secret, tokens.ErrKilled)))
	if _, err := a.db.Reserve(ctx, budget.Request{TokenID: tok.ID, Model: "m"}, quote); !errors.Is(err, tokens.ErrKilled) {
		t.Fatalf("a reserved for a token b killed: %v", err)
	}
	eventually(t, "a's OnApply is told of the killed token", func() error {
		if killedOnA.Load() == 0 {
			return errors.New("not told")
		}
		return nil
	})
	if err := b.db.SetKill(ctx, storage.KillTarget{Token: tok.ID}, false); err != nil {
		t.Fatal(err)
	}
	times = append(times, eventually(t, "a resume on b reaches a", authIs(a.db, secret, nil)))
	if _, err := a.db.Reserve(ctx, budget.Request{TokenID: tok.ID, Model: "m"}, quote); err != nil {
		t.Fatalf("a refused a resumed token: %v", err)
	}

	steps := []struct {
		name  string
		on    *tenant
		do    func(db *storage.DB) error
		check func() error
	}{
		{"kill all on a reaches b", a, func(db *storage.DB) error { return db.SetKill(ctx, storage.KillTarget{}, true) }, authIs(b.db, secret, tokens.ErrKilled)},
		{"resume all on a reaches b", a, func(db *storage.DB) error { return db.SetKill(ctx, storage.KillTarget{}, false) }, authIs(b.db, secret, nil)},
		{"kill the project on b reaches a", b, func(db *storage.DB) error { return db.SetKill(ctx, storage.KillTarget{Project: "p"}, true) }, authIs(a.db, secret, tokens.ErrKilled)},
		{"resume the project on b reaches a", b, func(db *storage.DB) error { return db.SetKill(ctx, storage.KillTarget{Project: "p"}, false) }, authIs(a.db, secret, nil)},
		{"a budget change on b reaches a", b, func(db *storage.DB) error {
			amount := budget.Ceiling(3*usd, budget.Total)
			_, _, err := db.UpdateProject(ctx, "p", storage.LimitChange{Amount: &amount, Period: budget.Week})
			return err
		}, limitIs(a.db, budget.ProjectScope("p"), budget.Ceiling(3*usd, budget.Week))},
	}
	for _, s := range steps {
		if err := s.do(s.on.db); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		times = append(times, eventually(t, s.name, s.check))
	}
	if l, period, ok := pgLimit(t, dsn, budget.ProjectScope("p")); !ok || l == nil || *l != int64(3*usd) || period != string(budget.Week) {
		t.Fatalf("hardcap.limits of project:p = %v %q %v after the change, want 3 USD/week", l, period, ok)
	}

	_, newSecret, err := a.db.RotateToken(ctx, tok.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	times = append(times, eventually(t, "a rotation on a reaches b", authIs(b.db, newSecret, nil)))
	if got, err := b.db.Authenticate(secret); err != nil || !got.OldSecret {
		t.Fatalf("the old secret within its grace on b: %+v, %v; want accepted as old", got.OldSecret, err)
	}

	if _, err := a.db.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	times = append(times, eventually(t, "a revocation on a reaches b", authIs(b.db, newSecret, tokens.ErrRevoked)))

	if _, err := b.db.DeleteProject(ctx, "p", false); err != nil {
		t.Fatal(err)
	}
	times = append(times, eventually(t, "a deletion on b reaches a", func() error {
		ps, err := a.db.Projects()
		if err != nil {
			return err
		}
		if slices.ContainsFunc(ps, func(p tokens.Project) bool { return p.Name == "p" }) {
			return errors.New("project p still on a")
		}
		return limitIs(a.db, budget.ProjectScope("p"), budget.Limit{})()
	}))
	// A zero ceiling, so that no grant for the deleted project is made.
	if l, _, ok := pgLimit(t, dsn, budget.ProjectScope("p")); !ok || l == nil || *l != 0 {
		t.Fatalf("hardcap.limits has project:p at %v after its deletion, want a zero ceiling", l)
	}

	// PostgreSQL down: the change waits on a, and reaches b once it is back.
	srv.Stop()
	if _, err := a.db.CreateProject(ctx, "q", budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	_, qSecret, err := a.db.CreateToken(ctx, storage.TokenSpec{Project: "q", Name: "down"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the changes made while PostgreSQL is down wait on a", func() error {
		if n := a.ten.Pending(); n < 2 {
			return fmt.Errorf("%d pending", n)
		}
		return nil
	})
	if _, err := b.db.Authenticate(qSecret); !errors.Is(err, tokens.ErrUnknown) {
		t.Fatalf("b knew a token made while PostgreSQL was down: %v", err)
	}
	srv.Start()
	back := eventually(t, "a change made while PostgreSQL was down reaches b once it is back", authIs(b.db, qSecret, nil))
	eventually(t, "a's pending set empties", func() error {
		if n := a.ten.Pending(); n != 0 {
			return fmt.Errorf("%d pending", n)
		}
		return nil
	})

	// A replica that starts later reads everything at Start.
	c := newReplica(t, dsn, "c")
	if err := authIs(c.db, qSecret, nil)(); err != nil {
		t.Fatalf("a replica started later: %v", err)
	}
	if err := authIs(c.db, newSecret, tokens.ErrRevoked)(); err != nil {
		t.Fatalf("a replica started later, the revoked token: %v", err)
	}
	slices.Sort(times)
	t.Logf("propagation: %d changes, median %s, max %s; after PostgreSQL came back %s", len(times), times[len(times)/2], times[len(times)-1], back)
}

// A replica that finds the cluster store empty seeds it with its ledger;
// a replica with its own tenancy that joins keeps what the cluster has
// and publishes what only it has.
func TestTenancy_StartSeedsAndMerges(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	dir := t.TempDir()
	seed := func(path, project string) string {
		db, err := storage.Open(path, storage.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.CreateProject(ctx, project, budget.Ceiling(usd, budget.Total)); err != nil {
			t.Fatal(err)
		}
		_, secret, err := db.CreateToken(ctx, storage.TokenSpec{Project: project, Name: "t"})
		if err != nil {
			t.Fatal(err)
		}
		return secret
	}
	first := seed(filepath.Join(dir, "a.db"), "first")
	second := seed(filepath.Join(dir, "b.db"), "second")
	open := func(path, name string) *tenant {
		db, err := storage.Open(path, storage.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		pg, err := postgres.Open(ctx, postgres.Options{DSN: dsn, Replica: name, Timeout: 5 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		r := &tenant{name: name, db: db, pg: pg, ten: cluster.NewTenancy(pg, db, name, zerolog.Nop())}
		t.Cleanup(func() { pg.Close(); _ = db.Close() })
		if err := r.ten.Start(ctx); err != nil {
			t.Fatal(err)
		}
		return r
	}
	a := open(filepath.Join(dir, "a.db"), "a")
	b := open(filepath.Join(dir, "b.db"), "b")
	tests := []struct {
		name   string
		db     *storage.DB
		secret string
	}{
		{"the seed's own token on the seed", a.db, first},
		{"the seed's token on the replica that joined", b.db, first},
		{"the joiner's own token on the joiner", b.db, second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := authIs(tt.db, tt.secret, nil)(); err != nil {
				t.Fatal(err)
			}
		})
	}
	if _, _, ok := pgLimit(t, dsn, budget.ProjectScope("second")); !ok {
		t.Fatal("the joiner's project is not in the cluster store")
	}
	// The joiner's project reaches the seed at its next start.
	a2 := cluster.NewTenancy(a.pg, a.db, "a", zerolog.Nop())
	if err := a2.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if err := authIs(a.db, second, nil)(); err != nil {
		t.Fatalf("the joiner's token on the seed after its restart: %v", err)
	}
}

// A change the replica committed but could not publish (PostgreSQL was
// down, then the replica stopped) is published at its next start, and wins
// over PostgreSQL's older record.
func TestTenancy_UnpublishedChangeSurvivesRestart(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "a.db")
	a := newReplicaAt(t, dsn, "a", path)
	b := newReplica(t, dsn, "b")
	if _, err := a.db.CreateProject(ctx, "p", budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	tok, secret, err := a.db.CreateToken(ctx, storage.TokenSpec{Project: "p"})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, "the token reaches b", authIs(b.db, secret, nil))

	srv.Stop()
	if _, err := a.db.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the revocation waits on a", func() error {
		if a.ten.Pending() == 0 {
			return errors.New("not pending")
		}
		return nil
	})
	a.stop()
	srv.Start()
	a = newReplicaAt(t, dsn, "a", path)
	if err := authIs(a.db, secret, tokens.ErrRevoked)(); err != nil {
		t.Fatalf("PostgreSQL's older record undid a's revocation: %v", err)
	}
	eventually(t, "the revocation a could not publish reaches b after a's restart", authIs(b.db, secret, tokens.ErrRevoked))
	pending, err := a.db.MirrorPending()
	if err != nil || len(pending) != 0 {
		t.Fatalf("change markers left after publishing: %v, %v", pending, err)
	}
}

// killWhileApart kills project p on the ledger at path, with no mirror
// running: the kill is marked for publication, as on a replica that has
// not yet applied what another published.
func killWhileApart(t *testing.T, path, p string) {
	t.Helper()
	db, err := storage.Open(path, storage.Options{NoSync: true, Changed: func(string, string) {}})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetKill(context.Background(), storage.KillTarget{Project: p}, true); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestTenancy_ConcurrentKillAndBudgetMerge(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	ctx := context.Background()
	a := newReplica(t, dsn, "a")
	pathB := filepath.Join(t.TempDir(), "hardcap.db")
	b := newReplicaAt(t, dsn, "b", pathB)
	old, low := budget.Ceiling(10*usd, budget.Day), budget.Ceiling(usd, budget.Day)
	if _, err := a.db.CreateProject(ctx, "p", old); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the project reaches b", limitIs(b.db, budget.ProjectScope("p"), old))
	b.stop()

	// a lowers the budget; b, which has not applied it, kills the project.
	if _, _, err := a.db.UpdateProject(ctx, "p", storage.LimitChange{Amount: &low}); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the lowered budget in PostgreSQL", func() error {
		if l, _, ok := pgLimit(t, dsn, budget.ProjectScope("p")); !ok || l == nil || *l != int64(usd) {
			return fmt.Errorf("hardcap.limits %v", l)
		}
		return nil
	})
	killWhileApart(t, pathB, "p")
	b = newReplicaAt(t, dsn, "b", pathB)

	killed := func(db *storage.DB) func() error {
		return func() error {
			r, err := db.MirrorExport(storage.MirrorProject, "p")
			if err != nil {
				return err
			}
			if r.Project == nil || !r.Project.Killed {
				return errors.New("not killed")
			}
			return nil
		}
	}
	eventually(t, "b's kill reaches a", killed(a.db))
	eventually(t, "b has the budget a lowered", limitIs(b.db, budget.ProjectScope("p"), low))
	if err := killed(b.db)(); err != nil {
		t.Fatalf("b: %v", err)
	}
	if err := limitIs(a.db, budget.ProjectScope("p"), low)(); err != nil {
		t.Fatalf("a: %v", err)
	}
	if l, _, ok := pgLimit(t, dsn, budget.ProjectScope("p")); !ok || l == nil || *l != int64(usd) {
		t.Fatalf("hardcap.limits of project:p = %v, want the lowered 1 USD", l)
	}
	if b.ten.Pending() != 0 {
		t.Fatalf("b has %d changes pending after the merge (an echo?)", b.ten.Pending())
	}
}
