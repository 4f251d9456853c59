package storage

import (
	"errors"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
)

func TestReserve_ZeroLimitIsZero(t *testing.T) {
	tests := []struct {
		name    string
		proj    budget.Limit
		wantErr bool
	}{
		{"zero ceiling refuses", budget.Ceiling(0, budget.Total), true},
		{"no limit serves", budget.NoLimit(budget.Total), false},
		{"ceiling that fits serves", budget.Ceiling(1000, budget.Day), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t, Options{NoSync: true, OnLow: budget.Reject})
			tok := newToken(t, db, "p", tt.proj, budget.Limit{})
			_, err := reserve(db, tok, flat(100))
			if got := errors.Is(err, budget.ErrExhausted); got != tt.wantErr {
				t.Fatalf("got %v, want exhausted %v", err, tt.wantErr)
			}
			l, err := db.Limit(budget.ProjectScope("p"))
			if err != nil || l != tt.proj {
				t.Fatalf("stored limit read back as %+v (%v), want %+v", l, err, tt.proj)
			}
		})
	}
}

// TestLimit_OldFilesKeepTheirMeaning writes limits in the form files made
// before zero ceilings existed, where 0 meant no limit, and checks they
// still read so; and that the new form keeps a zero ceiling for an older
// reader (limit_usd at least 1 nano-USD).
func TestLimit_OldFilesKeepTheirMeaning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"old-unlimited", "old-capped", "new-zero"} {
		if _, err := db.CreateProject(ctx, p, budget.Ceiling(0, budget.Total)); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	raw, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	err = raw.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLimits)
		if err := b.Put([]byte(budget.ProjectScope("old-unlimited")), []byte(`{"limit_usd":"0.000000","period":"month"}`)); err != nil {
			return err
		}
		return b.Put([]byte(budget.ProjectScope("old-capped")), []byte(`{"limit_usd":"5.000000","period":"day"}`))
	})
	if err != nil {
		t.Fatal(err)
	}
	var newZero []byte
	_ = raw.View(func(tx *bolt.Tx) error {
		newZero = append(newZero, tx.Bucket(bucketLimits).Get([]byte(budget.ProjectScope("new-zero")))...)
		return nil
	})
	raw.Close()
	if want := `{"limit_usd":"0.000000001","ceiling_usd":"0.000000","period":"total"}`; string(newZero) != want {
		t.Fatalf("a zero ceiling is stored as %s, want %s", newZero, want)
	}

	db, err = Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for name, want := range map[string]budget.Limit{
		"old-unlimited": budget.NoLimit(budget.Month),
		"old-capped":    budget.Ceiling(5*budget.NanoPerUSD, budget.Day),
		"new-zero":      budget.Ceiling(0, budget.Total),
	} {
		got, err := db.Limit(budget.ProjectScope(name))
		if err != nil || got != want {
			t.Errorf("%s: got %+v (%v), want %+v", name, got, err, want)
		}
	}
}

func TestUpdateProject(t *testing.T) {
	db := openTest(t, Options{NoSync: true})
	if _, err := db.CreateProject(ctx, "web", budget.Ceiling(500, budget.Day)); err != nil {
		t.Fatal(err)
	}
	unlimited := budget.NoLimit("")
	zero := budget.Ceiling(0, "")
	ten := budget.Ceiling(10, "")
	steps := []struct {
		name   string
		change LimitChange
		want   budget.Limit
	}{
		{"period only keeps the amount", LimitChange{Period: budget.Month}, budget.Ceiling(500, budget.Month)},
		{"amount only keeps the period", LimitChange{Amount: &ten}, budget.Ceiling(10, budget.Month)},
		{"zero", LimitChange{Amount: &zero}, budget.Ceiling(0, budget.Month)},
		{"unlimited", LimitChange{Amount: &unlimited}, budget.NoLimit(budget.Month)},
		{"nothing changes nothing", LimitChange{}, budget.NoLimit(budget.Month)},
	}
	for _, s := range steps {
		_, got, err := db.UpdateProject(ctx, "web", s.change)
		if err != nil || got != s.want {
			t.Fatalf("%s: got %+v (%v), want %+v", s.name, got, err, s.want)
		}
		if stored, _ := db.Limit(budget.ProjectScope("web")); stored != s.want {
			t.Fatalf("%s: stored %+v, want %+v", s.name, stored, s.want)
		}
	}
	if _, _, err := db.UpdateProject(ctx, "nope", LimitChange{}); !errors.Is(err, tokens.ErrProjectNotFound) {
		t.Fatalf("unknown project: got %v", err)
	}
}

func TestUpdateToken(t *testing.T) {
	db := openTest(t, Options{NoSync: true})
	tok := newToken(t, db, "p", budget.Limit{}, budget.Ceiling(100, budget.Week))
	name, models, rpm := "ci", []string{"gpt-4o"}, 30
	expires := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	got, err := db.UpdateToken(ctx, tok.ID, TokenChange{Name: &name, Models: &models, RPM: &rpm, Expires: &expires})
	if err != nil {
		t.Fatal(err)
	}
	if got.Name != "ci" || len(got.Models) != 1 || got.RPM != 30 || !got.Expires.Equal(expires) || got.Hash != tok.Hash {
		t.Fatalf("got %+v", got)
	}
	if l, _ := db.Limit(budget.TokenScope(tok.ID)); l != budget.Ceiling(100, budget.Week) {
		t.Fatalf("a change without a budget changed the budget to %+v", l)
	}
	zero := budget.Ceiling(0, "")
	if _, err := db.UpdateToken(ctx, tok.ID, TokenChange{Limit: LimitChange{Amount: &zero}}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Reserve(ctx, budget.Request{TokenID: tok.ID, Model: "gpt-4o"}, flat(1)); !errors.Is(err, budget.ErrExhausted) {
		t.Fatalf("after a zero budget: got %v, want exhausted", err)
	}
	never := time.Time{}
	if got, _ := db.UpdateToken(ctx, tok.ID, TokenChange{Expires: &never}); !got.Expires.IsZero() {
		t.Fatalf("expires never left %v", got.Expires)
	}
	long := strings.Repeat("x", tokens.MaxTokenName+1)
	neg := -1
	for label, change := range map[string]TokenChange{"long name": {Name: &long}, "negative rpm": {RPM: &neg}} {
		if _, err := db.UpdateToken(ctx, tok.ID, change); err == nil {
			t.Errorf("%s: accepted", label)
		}
	}
	if _, err := db.RevokeToken(ctx, tok.ID); err != nil {
		t.Fatal(err)
	}
	// Not ErrRevoked: that one is a refused credential (401), and the
	// admin CLI would blame its own admin token for it.
	if _, err := db.UpdateToken(ctx, tok.ID, TokenChange{RPM: &rpm}); !errors.Is(err, tokens.ErrTokenFinal) || errors.Is(err, tokens.ErrRevoked) ||
		!strings.Contains(err.Error(), tok.ID+" is revoked") {
		t.Fatalf("changing a revoked token: got %v, want ErrTokenFinal naming the token", err)
	}
	if _, err := db.UpdateToken(ctx, "tok_nope", TokenChange{}); !errors.Is(err, tokens.ErrTokenNotFound) {
		t.Fatalf("unknown token: got %v", err)
	}
}

func TestDeleteProject(t *testing.T) {
	clk := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	db := openTest(t, Options{NoSync: true, Now: clk.Now})
	live := newToken(t, db, "web", budget.Ceiling(1000, budget.Total), budget.Limit{})
	expired, secret, err := db.CreateToken(ctx, TokenSpec{Project: "web", Expires: clk.Now().Add(time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	res, err := reserve(db, live, flat(40))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 30}); err != nil {
		t.Fatal(err)
	}
	clk.Set(clk.Now().Add(time.Hour))

	if _, err := db.DeleteProject(ctx, "web", false); !errors.Is(err, tokens.ErrProjectHasTokens) || !strings.Contains(err.Error(), "has 1") {
		t.Fatalf("delete with a live token: got %v, want ErrProjectHasTokens counting 1", err)
	}
	if _, err := db.Authenticate(secret); !errors.Is(err, tokens.ErrExpired) {
		t.Fatalf("refused delete changed the expired token: %v", err)
	}
	revoked, err := db.DeleteProject(ctx, "web", true)
	if err != nil || len(revoked) != 2 {
		t.Fatalf("delete --revoke-tokens: got %v, %v; want both tokens revoked", revoked, err)
	}
	if ps, _ := db.Projects(); len(ps) != 0 {
		t.Fatalf("projects after delete: %+v", ps)
	}
	u, err := db.Usage(RecordFilter{Project: "web"})
	if err != nil || len(u.Records) != 1 || u.Spent != 30 {
		t.Fatalf("the deleted project's records: got %+v, %v; want the one record kept", u, err)
	}
	// A new project under the same name does not bring the old tokens back.
	if _, err := db.CreateProject(ctx, "web", budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{live.ID, expired.ID} {
		if _, err := db.Reserve(ctx, budget.Request{TokenID: id, Model: "m"}, flat(1)); !errors.Is(err, tokens.ErrRevoked) {
			t.Fatalf("token %s of the deleted project: got %v, want ErrRevoked", id, err)
		}
	}
	if _, err := db.DeleteProject(ctx, "nope", true); !errors.Is(err, tokens.ErrProjectNotFound) {
		t.Fatalf("unknown project: got %v", err)
	}
	if _, err := db.DeleteProject(ctx, "web", false); err != nil {
		t.Fatalf("a project with only revoked tokens: %v", err)
	}
}

func TestUsage_LimitAndUnknownFilters(t *testing.T) {
	db := openTest(t, Options{NoSync: true})
	tok := newToken(t, db, "p", budget.Limit{}, budget.Limit{})
	var ids []string
	for i := 0; i < 7; i++ {
		res, err := reserve(db, tok, flat(10))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 1, Ended: time.Unix(int64(1000+i), 0)}); err != nil {
			t.Fatal(err)
		}
		ids = append(ids, res.ID)
	}
	u, err := db.Usage(RecordFilter{Limit: 3})
	if err != nil || u.Matched != 7 || u.Spent != 7 || len(u.Records) != 3 || u.Records[0].ReservationID != ids[4] || u.Records[2].ReservationID != ids[6] {
		t.Fatalf("limit 3: got %d records of %d, spent %d, %v", len(u.Records), u.Matched, u.Spent, err)
	}
	if u, _ := db.Usage(RecordFilter{}); len(u.Records) != 7 {
		t.Fatalf("no limit: got %d records", len(u.Records))
	}
	if _, err := db.Usage(RecordFilter{Project: "nope"}); !errors.Is(err, tokens.ErrProjectNotFound) {
		t.Fatalf("unknown project: got %v", err)
	}
	if _, err := db.Usage(RecordFilter{TokenID: "tok_nope"}); !errors.Is(err, tokens.ErrTokenNotFound) {
		t.Fatalf("unknown token: got %v", err)
	}
	if u, err := db.Usage(RecordFilter{Project: "p", Since: time.Unix(5000, 0)}); err != nil || len(u.Records) != 0 {
		t.Fatalf("a known project with no records in range: got %+v, %v", u, err)
	}
}

func TestReserve_ExhaustedNamesTheBudget(t *testing.T) {
	tests := []struct {
		name       string
		global     budget.Limit
		proj, tokL budget.Limit
		want       budget.Scope
	}{
		{"project", budget.Limit{}, budget.Ceiling(5, ""), budget.Ceiling(50, ""), budget.ProjectScope("p")},
		{"token", budget.Ceiling(500, ""), budget.Ceiling(50, ""), budget.Ceiling(5, ""), "token"},
		{"global", budget.Ceiling(0, ""), budget.Limit{}, budget.Limit{}, budget.GlobalScope},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t, Options{NoSync: true, Global: tt.global, OnLow: budget.Reject})
			tok := newToken(t, db, "p", tt.proj, tt.tokL)
			want := tt.want
			if want == "token" {
				want = budget.TokenScope(tok.ID)
			}
			_, err := reserve(db, tok, flat(10))
			var ex *budget.ExhaustedError
			if !errors.As(err, &ex) || ex.Scope != want || !errors.Is(err, budget.ErrExhausted) {
				t.Fatalf("got %v, want an ExhaustedError naming %s", err, want)
			}
		})
	}
}

func TestNames_AreBoundedAndNotEchoedWhole(t *testing.T) {
	db := openTest(t, Options{NoSync: true})
	huge := strings.Repeat("a", 100_000)
	_, err := db.CreateProject(ctx, huge, budget.Limit{})
	if !errors.Is(err, tokens.ErrInvalidName) || len(err.Error()) > 200 {
		t.Fatalf("a 100 kB project name: got an error of %d bytes (%v)", len(err.Error()), errors.Is(err, tokens.ErrInvalidName))
	}
	if _, err := db.CreateProject(ctx, strings.Repeat("a", tokens.MaxProjectName), budget.Limit{}); err != nil {
		t.Fatalf("a %d-character name: %v", tokens.MaxProjectName, err)
	}
	for _, f := range []func() error{
		func() error { _, err := db.Usage(RecordFilter{Project: huge}); return err },
		func() error { return db.SetKill(ctx, KillTarget{Project: huge}, true) },
		func() error { _, _, err := db.UpdateProject(ctx, huge, LimitChange{}); return err },
		func() error { _, err := db.DeleteProject(ctx, huge, false); return err },
		func() error { _, err := db.Token(huge); return err },
	} {
		if err := f(); err == nil || len(err.Error()) > 200 {
			t.Fatalf("an error echoing a 100 kB name is %d bytes", len(err.Error()))
		}
	}
	if _, _, err := db.CreateToken(ctx, TokenSpec{Project: "p", Name: strings.Repeat("é", tokens.MaxTokenName+1)}); !errors.Is(err, tokens.ErrInvalidName) {
		t.Fatalf("a 129-character token name: got %v", err)
	}
}

// TestReserve_LimitLoweredMidLoad lowers a project's limit step by step
// (to zero at the end) while many goroutines reserve and settle. Since a
// settlement never charges more than it reserved, max(committed+reserved,
// limit) can only fall once limits only fall: a reservation taken under a
// limit must fit it, and money already reserved is never taken back. A
// sampler checks that in every consistent snapshot, and the end state
// checks that nothing was taken after the limit became zero.
func TestReserve_LimitLoweredMidLoad(t *testing.T) {
	db := openTest(t, Options{NoSync: true, OnLow: budget.Clamp})
	const start = 20_000
	tok := newToken(t, db, "p", budget.Ceiling(start, budget.Total), budget.Limit{})
	scope := budget.ProjectScope("p")

	stop := make(chan struct{})
	var bad atomic.Value
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		prev := budget.Money(start)
		for {
			select {
			case <-stop:
				return
			default:
			}
			bs, err := db.BudgetStatus(scope)
			if err != nil {
				bad.Store(err.Error())
				return
			}
			c, _ := bs.Limit.Ceiling()
			f := max(bs.Committed+bs.Reserved, c)
			if f > prev {
				bad.Store("max(committed+reserved, limit) rose from " + prev.String() + " to " + f.String())
				return
			}
			prev = f
		}
	}()

	var wg sync.WaitGroup
	var lowered atomic.Bool
	var afterZero atomic.Int32
	for w := 0; w < 16; w++ {
		wg.Add(1)
		go func(seed uint64) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(seed, 1))
			for i := 0; i < 150; i++ {
				wasZero := lowered.Load()
				res, err := reserve(db, tok, budget.Quote{MaxOutput: int64(50 + rng.IntN(400)), MinOutput: 1, OutputRate: 1_000_000})
				if errors.Is(err, budget.ErrExhausted) {
					continue
				}
				if err != nil {
					t.Error(err)
					return
				}
				if wasZero {
					afterZero.Add(1)
				}
				charge := budget.Money(rng.Int64N(int64(res.Amount) + 1))
				if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: charge}); err != nil {
					t.Error(err)
					return
				}
			}
		}(uint64(w))
	}
	for _, l := range []budget.Money{15_000, 9_000, 4_000, 1_000, 0} {
		amount := budget.Ceiling(l, "")
		if _, _, err := db.UpdateProject(ctx, "p", LimitChange{Amount: &amount}); err != nil {
			t.Fatal(err)
		}
		if l == 0 {
			lowered.Store(true)
		}
		time.Sleep(2 * time.Millisecond) // let some load run under each limit
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	if msg := bad.Load(); msg != nil {
		t.Fatal(msg)
	}
	if n := afterZero.Load(); n != 0 {
		t.Fatalf("%d reservations were taken after the limit became zero", n)
	}
	bs, _ := db.BudgetStatus(scope)
	if bs.Reserved != 0 || bs.Committed > start {
		t.Fatalf("end: committed %s, reserved %s; want nothing reserved and at most %d committed", bs.Committed, bs.Reserved, start)
	}
}

// TestUpdate_PeriodChangeKeepsSpend: changing a budget's period must not
// hand it a fresh window: open reservations and the charges already made in
// the new window count there, and a reservation carried over leaves the new
// window when it settles. Before, a 1000/month project with 900 in flight
// took 1000 more after `--period day` and 1000 more again after `--period
// total`.
func TestUpdate_PeriodChangeKeepsSpend(t *testing.T) {
	c := &clock{t: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)}
	db := openTest(t, Options{Now: c.Now, NoSync: true, OnLow: budget.Reject})
	tok := newToken(t, db, "p", budget.Ceiling(1000, budget.Month), budget.NoLimit(""))
	done, err := reserve(db, tok, flat(300))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Settle(ctx, done.ID, budget.Settlement{Charged: 300}); err != nil {
		t.Fatal(err)
	}
	open, err := reserve(db, tok, flat(500))
	if err != nil {
		t.Fatal(err)
	}
	held := func() budget.Money {
		t.Helper()
		bs, err := db.BudgetStatus(budget.ProjectScope("p"))
		if err != nil {
			t.Fatal(err)
		}
		return bs.Spend.Committed + bs.Spend.Reserved
	}
	for _, p := range []budget.Period{budget.Day, budget.Total, budget.Week, budget.Month, budget.Day} {
		if _, _, err := db.UpdateProject(ctx, "p", LimitChange{Period: p}); err != nil {
			t.Fatal(err)
		}
		if got := held(); got != 800 {
			t.Fatalf("after --period %s the window holds %d, want 800 (300 charged + 500 open)", p, got)
		}
		if _, err := reserve(db, tok, flat(201)); !errors.Is(err, budget.ErrExhausted) {
			t.Fatalf("after --period %s a 201 reservation beside 800 of 1000: %v, want exhausted", p, err)
		}
	}
	if _, err := db.Settle(ctx, open.ID, budget.Settlement{Charged: 100}); err != nil {
		t.Fatal(err)
	}
	if got := held(); got != 400 {
		t.Fatalf("after the carried reservation settled at 100 the window holds %d, want 400", got)
	}
	// The token's own budget is carried the same way.
	tl := budget.Ceiling(1000, budget.Month)
	tok2 := newToken(t, db, "q", budget.NoLimit(""), tl)
	r, err := reserve(db, tok2, flat(700))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.UpdateToken(ctx, tok2.ID, TokenChange{Limit: LimitChange{Period: budget.Day}}); err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(db, tok2, flat(301)); !errors.Is(err, budget.ErrExhausted) {
		t.Fatalf("token: 301 beside 700 open of 1000 after --period day: %v, want exhausted", err)
	}
	if _, err := db.Settle(ctx, r.ID, budget.Settlement{Charged: 700}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	rep, err := Check(db.Path())
	if err != nil || !rep.OK() {
		t.Fatalf("db check after period changes: %v %v", err, rep.Problems)
	}
}
