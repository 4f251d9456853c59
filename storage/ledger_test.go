package storage

import (
	"context"
	"errors"
	"math"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
)

// clock is a settable time source for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

var ctx = context.Background()

func openTest(t *testing.T, opts Options) *DB {
	t.Helper()
	db, err := Open(filepath.Join(t.TempDir(), "hardcap.db"), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// usd parses a dollar amount or fails the test.
func usd(t testing.TB, s string) budget.Money {
	t.Helper()
	m, err := budget.ParseUSD(s)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// newToken creates a project (if needed) and a token with the given limits.
func newToken(t testing.TB, db *DB, project string, projLimit, tokLimit budget.Limit) tokens.Token {
	t.Helper()
	if _, err := db.CreateProject(ctx, project, projLimit); err != nil && !errors.Is(err, tokens.ErrProjectExists) {
		t.Fatal(err)
	}
	tok, _, err := db.CreateToken(ctx, TokenSpec{Project: project, Limit: tokLimit})
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// flat is a quote with no input whose output tokens cost 1 nano-USD each,
// so its worst case is outputTokens nano-USD and a clamped cap equals the
// headroom.
func flat(outputTokens int64) budget.Quote {
	return budget.Quote{MaxOutput: outputTokens, OutputRate: 1_000_000}
}

func reserve(db *DB, tok tokens.Token, q budget.Quote) (budget.Reservation, error) {
	return db.Reserve(ctx, budget.Request{TokenID: tok.ID, Model: "m"}, q)
}

func TestReserve_SettleMovesReservedToCommitted(t *testing.T) {
	db := openTest(t, Options{Global: budget.Limit{Amount: 1000}})
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	res, err := reserve(db, tok, flat(300))
	if err != nil {
		t.Fatal(err)
	}
	if res.Amount != 300 || res.OutputCap != 300 || len(res.Keys) != 3 {
		t.Fatalf("got amount %d cap %d keys %v; want 300, 300, three keys", res.Amount, res.OutputCap, res.Keys)
	}
	if res.Request.Project != "web" {
		t.Fatalf("got project %q, want the token's project", res.Request.Project)
	}
	st, _ := db.Status()
	if st.Global.Reserved != 300 || st.Global.Committed != 0 || st.OpenReservations != 1 {
		t.Fatalf("after reserve got %+v", st)
	}
	rec, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 120, Outcome: budget.Complete, Status: 200})
	if err != nil {
		t.Fatal(err)
	}
	if rec.Charged != 120 || rec.Reserved != 300 {
		t.Fatalf("record got charged %d reserved %d, want 120 and 300", rec.Charged, rec.Reserved)
	}
	for _, scope := range []budget.Scope{budget.GlobalScope, budget.ProjectScope("web"), budget.TokenScope(tok.ID)} {
		bs, _ := db.BudgetStatus(scope)
		if bs.Committed != 120 || bs.Reserved != 0 {
			t.Errorf("%s: got committed %d reserved %d, want 120 and 0", scope, bs.Committed, bs.Reserved)
		}
	}
}

func TestSettle_ExactlyOnce(t *testing.T) {
	db := openTest(t, Options{})
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	res, _ := reserve(db, tok, flat(10))
	var wg sync.WaitGroup
	var ok atomic.Int32
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 10})
			if err == nil {
				ok.Add(1)
			} else if !errors.Is(err, ErrNotReserved) {
				t.Errorf("got %v, want nil or ErrNotReserved", err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 {
		t.Fatalf("settled %d times, want exactly once", ok.Load())
	}
	u, _ := db.Usage(RecordFilter{})
	if u.Spent != 10 || len(u.Records) != 1 {
		t.Fatalf("got spent %d with %d records, want 10 with 1", u.Spent, len(u.Records))
	}
}

func TestReserve_Exhausted(t *testing.T) {
	tests := []struct {
		name             string
		global, proj, tk budget.Money
		onLow            budget.OnLow
		wantCap          int64
		wantErr          error
	}{
		{"fits everywhere", 1000, 1000, 1000, budget.Reject, 500, nil},
		{"global too small, reject", 400, 0, 0, budget.Reject, 0, budget.ErrExhausted},
		{"project too small, clamp", 0, 300, 0, budget.Clamp, 300, nil},
		{"token smallest wins", 900, 800, 100, budget.Clamp, 100, nil},
		{"token too small, reject", 0, 0, 499, budget.Reject, 0, budget.ErrExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t, Options{Global: budget.Limit{Amount: tt.global}, OnLow: tt.onLow})
			tok := newToken(t, db, "p", budget.Limit{Amount: tt.proj}, budget.Limit{Amount: tt.tk})
			res, err := reserve(db, tok, flat(500))
			if !errors.Is(err, tt.wantErr) || (tt.wantErr == nil && err != nil) {
				t.Fatalf("got %v, want %v", err, tt.wantErr)
			}
			if res.OutputCap != tt.wantCap {
				t.Fatalf("got cap %d, want %d", res.OutputCap, tt.wantCap)
			}
			if err != nil {
				st, _ := db.Status()
				if st.OpenReservations != 0 || st.Global.Reserved != 0 {
					t.Fatalf("a refused reservation changed the books: %+v", st)
				}
			}
		})
	}
}

// TestReserve_ConcurrentBurstNeverOvershoots runs many goroutines against a
// limit that fits a tenth of them and checks the invariant from outside
// while they run.
func TestReserve_ConcurrentBurstNeverOvershoots(t *testing.T) {
	const limit = 2_000
	db := openTest(t, Options{Global: budget.Limit{Amount: limit}, OnLow: budget.Reject})
	tok := newToken(t, db, "p", budget.Limit{}, budget.Limit{})
	stop := make(chan struct{})
	var violations atomic.Int32
	var sampler sync.WaitGroup
	sampler.Add(1)
	go func() {
		defer sampler.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			st, err := db.Status()
			if err != nil {
				t.Error(err)
				return
			}
			if st.Global.Committed+st.Global.Reserved > limit {
				violations.Add(1)
			}
		}
	}()
	var wg sync.WaitGroup
	var granted atomic.Int32
	for i := 0; i < 200; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res, err := reserve(db, tok, flat(100))
			if errors.Is(err, budget.ErrExhausted) {
				return
			}
			if err != nil {
				t.Error(err)
				return
			}
			granted.Add(1)
			if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: res.Amount}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	close(stop)
	sampler.Wait()
	st, _ := db.Status()
	if violations.Load() != 0 {
		t.Fatalf("committed+reserved passed the limit %d times", violations.Load())
	}
	if st.Global.Committed > limit || granted.Load() != 20 {
		t.Fatalf("got committed %d with %d granted, want <= %d with 20", st.Global.Committed, granted.Load(), limit)
	}
	commits, ops := db.CommitStats()
	t.Logf("group commit: %d ops in %d transactions", ops, commits)
}

func TestOpen_RecoversUnsettledReservations(t *testing.T) {
	path := filepath.Join(t.TempDir(), "hardcap.db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	tok := newToken(t, db, "p", budget.Limit{}, budget.Limit{})
	a, _ := reserve(db, tok, flat(70))
	b, _ := reserve(db, tok, flat(30))
	if _, err := db.Settle(ctx, b.ID, budget.Settlement{Charged: 5}); err != nil {
		t.Fatal(err)
	}
	db.Close() // a is left open, as after a crash

	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rec := db.Recovered()
	if len(rec) != 1 || rec[0].ReservationID != a.ID || rec[0].Charged != 70 || rec[0].Outcome != budget.Recovered {
		t.Fatalf("got recovered %+v, want %s charged 70 in full", rec, a.ID)
	}
	st, _ := db.Status()
	if st.OpenReservations != 0 || st.Global.Reserved != 0 || st.Global.Committed != 75 {
		t.Fatalf("got %+v, want nothing open and 75 committed", st)
	}
	if _, err := db.Settle(ctx, a.ID, budget.Settlement{Charged: 1}); !errors.Is(err, ErrNotReserved) {
		t.Fatalf("settling a recovered reservation: got %v, want ErrNotReserved", err)
	}
}

func TestReserve_PeriodRollover(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 30, 23, 59, 0, 0, time.UTC)}
	db := openTest(t, Options{Now: clk.Now, Global: budget.Limit{Amount: 100, Period: budget.Month}, OnLow: budget.Reject})
	tok := newToken(t, db, "p", budget.Limit{Amount: 100, Period: budget.Day}, budget.Limit{})
	res, err := reserve(db, tok, flat(100))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(db, tok, flat(1)); !errors.Is(err, budget.ErrExhausted) {
		t.Fatalf("same month: got %v, want ErrExhausted", err)
	}
	clk.Set(time.Date(2026, 12, 1, 0, 0, 1, 0, time.UTC))
	// The November reservation still settles into November.
	if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 100}); err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(db, tok, flat(100)); err != nil {
		t.Fatalf("new month: got %v, want a fresh budget", err)
	}
	bs, _ := db.BudgetStatus(budget.GlobalScope)
	if bs.Window != "month:2026-12" || bs.Reserved != 100 || bs.Committed != 0 {
		t.Fatalf("got %+v, want December with 100 reserved and nothing committed", bs)
	}
}

func TestReserve_RefusedAfterRevokeOrKill(t *testing.T) {
	tests := []struct {
		name string
		act  func(db *DB, tok tokens.Token) error
		want error
	}{
		{"revoke", func(db *DB, tok tokens.Token) error { _, err := db.RevokeToken(ctx, tok.ID); return err }, tokens.ErrRevoked},
		{"kill token", func(db *DB, tok tokens.Token) error { return db.SetKill(ctx, KillTarget{Token: tok.ID}, true) }, tokens.ErrKilled},
		{"kill project", func(db *DB, tok tokens.Token) error { return db.SetKill(ctx, KillTarget{Project: tok.Project}, true) }, tokens.ErrKilled},
		{"kill all", func(db *DB, tok tokens.Token) error { return db.SetKill(ctx, KillTarget{}, true) }, tokens.ErrKilled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := openTest(t, Options{})
			tok := newToken(t, db, "p", budget.Limit{}, budget.Limit{})
			if err := tt.act(db, tok); err != nil {
				t.Fatal(err)
			}
			if _, err := reserve(db, tok, flat(1)); !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAuthenticate(t *testing.T) {
	clk := &clock{t: time.Date(2026, 11, 26, 0, 0, 0, 0, time.UTC)}
	db := openTest(t, Options{Now: clk.Now})
	if _, err := db.CreateProject(ctx, "p", budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	tok, secret, err := db.CreateToken(ctx, TokenSpec{Project: "p", Expires: clk.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	got, err := db.Authenticate(secret)
	if err != nil || got.ID != tok.ID {
		t.Fatalf("got %v, %v; want %s", got.ID, err, tok.ID)
	}
	other, _ := tokens.NewSecret()
	if _, err := db.Authenticate(other); !errors.Is(err, tokens.ErrUnknown) {
		t.Fatalf("unknown: got %v, want ErrUnknown", err)
	}
	typo := "x"
	if strings.HasSuffix(secret, typo) {
		typo = "y" // a typo must change the secret
	}
	if _, err := db.Authenticate(secret[:len(secret)-1] + typo); !errors.Is(err, tokens.ErrMalformed) {
		t.Fatalf("typo: got %v, want ErrMalformed", err)
	}
	clk.Set(clk.Now().Add(time.Hour))
	if _, err := db.Authenticate(secret); !errors.Is(err, tokens.ErrExpired) {
		t.Fatalf("expired: got %v, want ErrExpired", err)
	}
	if _, _, err := db.CreateToken(ctx, TokenSpec{Project: "nope"}); !errors.Is(err, tokens.ErrProjectNotFound) {
		t.Fatalf("unknown project: got %v, want ErrProjectNotFound", err)
	}
}

func TestSettle_OvershootIsRecordedAndCounted(t *testing.T) {
	db := openTest(t, Options{Global: budget.Limit{Amount: 100}})
	tok := newToken(t, db, "p", budget.Limit{}, budget.Limit{})
	res, _ := reserve(db, tok, flat(100))
	if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 130}); err != nil {
		t.Fatal(err)
	}
	st, _ := db.Status()
	if st.Global.Committed != 130 || st.Overshoots != 1 || st.OvershootUSD != 30 {
		t.Fatalf("got %+v, want 130 committed and one overshoot of 30", st)
	}
}

func BenchmarkReserveSettle(b *testing.B) {
	db, err := Open(filepath.Join(b.TempDir(), "hardcap.db"), Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	tok := newToken(b, db, "p", budget.Limit{Amount: budget.MaxMoney}, budget.Limit{})
	b.SetParallelism(64) // many requests in flight, as on a busy proxy
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			res, err := reserve(db, tok, flat(10))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 3}); err != nil {
				b.Fatal(err)
			}
		}
	})
	commits, ops := db.CommitStats()
	b.ReportMetric(float64(ops)/float64(max(commits, 1)), "ops/commit")
}

// TestReservationID_Form: ids are "r" and at least ten base-36 digits,
// zero-padded, so that they sort in the order they were taken.
func TestReservationID_Form(t *testing.T) {
	tests := []struct {
		seq  uint64
		want string
	}{
		{0, "r0000000000"},
		{1, "r0000000001"},
		{35, "r000000000z"},
		{36, "r0000000010"},
		{36*36*36*36*36*36*36*36*36*36 - 1, "rzzzzzzzzzz"},
		{36 * 36 * 36 * 36 * 36 * 36 * 36 * 36 * 36 * 36, "r10000000000"},
		{math.MaxUint64, "r3w5e11264sgsf"},
	}
	for _, tt := range tests {
		if got := reservationID(tt.seq); got != tt.want {
			t.Errorf("reservationID(%d) = %q, want %q", tt.seq, got, tt.want)
		}
	}
	for seq := uint64(1); seq < 5000; seq += 7 {
		if a, b := reservationID(seq), reservationID(seq+1); a >= b {
			t.Fatalf("reservationID(%d) = %q does not sort before reservationID(%d) = %q", seq, a, seq+1, b)
		}
	}
}
