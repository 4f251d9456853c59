package cluster

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/pgtest"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/storage/postgres"
	"github.com/hardcap/hardcap/tokens"
	"github.com/rs/zerolog"
)

var bg = context.Background()

// replica is one replica's ledger, token and store.
type replica struct {
	path    string
	db      *storage.DB
	tok     tokens.Token
	pg      *postgres.Store
	charged budget.Money // what settle charged in all
	n       int          // how many it settled
}

func newReplica(t *testing.T, dsn, name string) *replica {
	t.Helper()
	r := &replica{path: filepath.Join(t.TempDir(), "hardcap.db")}
	r.open(t)
	if _, err := r.db.CreateProject(bg, "web", budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	tok, _, err := r.db.CreateToken(bg, storage.TokenSpec{Project: "web"})
	if err != nil {
		t.Fatal(err)
	}
	r.tok = tok
	pg, err := postgres.Open(bg, postgres.Options{DSN: dsn, Replica: name, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(pg.Close)
	r.pg = pg
	return r
}

// open opens (or reopens) the ledger with its outbox.
func (r *replica) open(t *testing.T) {
	t.Helper()
	db, err := storage.Open(r.path, storage.Options{Outbox: true, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	r.db = db
}

// reserve takes a reservation of up to 1000 nano-USD.
func (r *replica) reserve(t *testing.T) budget.Reservation {
	t.Helper()
	res, err := r.db.Reserve(bg, budget.Request{TokenID: r.tok.ID, Model: "m"}, budget.Quote{MaxOutput: 1000, OutputRate: 1_000_000})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// settle settles n requests, each charged a different amount.
func (r *replica) settle(t *testing.T, n int) {
	t.Helper()
	for range n {
		res := r.reserve(t)
		r.n++
		c := budget.Money(r.n%997 + 1)
		if _, err := r.db.Settle(bg, res.ID, budget.Settlement{Charged: c, Status: 200, Outcome: budget.Complete, Ended: time.Now()}); err != nil {
			t.Fatal(err)
		}
		r.charged += c
	}
}

func (r *replica) outbox() *Outbox {
	o := NewOutbox(r.pg, r.db, zerolog.Nop())
	o.interval, o.backoff, o.maxBackoff = 5*time.Millisecond, 5*time.Millisecond, 50*time.Millisecond
	return o
}

// wantShipped checks that the cluster store holds exactly n records of
// replica name, charged charged in all.
func wantShipped(t *testing.T, pg *postgres.Store, name string, n int, charged budget.Money) {
	t.Helper()
	var got int64
	var sum budget.Money
	var cur postgres.PageCursor
	seen := map[string]bool{}
	for {
		page, next, err := pg.RecordsPage(bg, postgres.UsageFilter{}, cur, postgres.MaxPage)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			if r.Replica != name {
				continue
			}
			if seen[r.ReservationID] {
				t.Fatalf("record %s of %s twice", r.ReservationID, name)
			}
			seen[r.ReservationID] = true
			got++
			sum += r.Charged
		}
		cur = next
	}
	if got != int64(n) || sum != charged {
		t.Fatalf("%s: the cluster store has %d records charged %d; want %d, %d", name, got, sum, n, charged)
	}
}

// waitFor polls cond; the bound only turns a hang into a failure.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("still waiting for %s after 30s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestOutbox(t *testing.T) {
	srv := pgtest.Start(t)
	for _, tt := range []struct {
		name string
		run  func(t *testing.T, srv *pgtest.Server, dsn string)
	}{
		{"DrainShipsEverything", testDrainShipsEverything},
		{"CrashShipsOnce", testCrashShipsOnce},
		{"TwoReplicas", testTwoReplicas},
		// Last: it stops and restarts the server.
		{"PostgresDown", testPostgresDown},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, srv, srv.NewDatabase(t)) })
	}
}

// More records than a batch: Drain ships all of them, once.
func testDrainShipsEverything(t *testing.T, _ *pgtest.Server, dsn string) {
	r := newReplica(t, dsn, "a")
	r.settle(t, 1234)
	o := r.outbox()
	if o.Waiting() != 1234 {
		t.Fatalf("Waiting = %d before shipping, want 1234", o.Waiting())
	}
	if err := o.Drain(bg); err != nil {
		t.Fatal(err)
	}
	if o.Waiting() != 0 {
		t.Fatalf("Waiting = %d after Drain, want 0", o.Waiting())
	}
	wantShipped(t, r.pg, "a", r.n, r.charged)
	if err := o.Drain(bg); err != nil {
		t.Fatal(err)
	}
	wantShipped(t, r.pg, "a", r.n, r.charged)
}

// A crash after a batch is inserted in PostgreSQL but before the outbox
// lets go of it, and a crash with a reservation open and nothing shipped:
// after the restart every record arrives, once, the recovered one too.
func testCrashShipsOnce(t *testing.T, _ *pgtest.Server, dsn string) {
	r := newReplica(t, dsn, "a")
	r.settle(t, 40)
	recs, cur, err := r.db.OutboxBatch(25)
	if err != nil || cur == 0 {
		t.Fatal(cur, err)
	}
	if err := r.pg.InsertRecords(bg, recs); err != nil {
		t.Fatal(err)
	}
	open := r.reserve(t)
	if err := r.db.Close(); err != nil { // no OutboxDone, no Drain
		t.Fatal(err)
	}

	r.open(t)
	rec := r.db.Recovered()
	if len(rec) != 1 || rec[0].ReservationID != open.ID {
		t.Fatalf("recovered %+v, want %s", rec, open.ID)
	}
	r.n++
	r.charged += rec[0].Charged
	r.settle(t, 10)
	o := r.outbox()
	if o.Waiting() != r.n {
		t.Fatalf("Waiting = %d after the restart, want %d", o.Waiting(), r.n)
	}
	if err := o.Drain(bg); err != nil {
		t.Fatal(err)
	}
	wantShipped(t, r.pg, "a", r.n, r.charged)
}

// Two replicas' ledgers, each shipped by its own outbox: the cluster's
// usage is the sum of both.
func testTwoReplicas(t *testing.T, _ *pgtest.Server, dsn string) {
	a, b := newReplica(t, dsn, "a"), newReplica(t, dsn, "b")
	a.settle(t, 30)
	b.settle(t, 45)
	for _, r := range []*replica{a, b} {
		if err := r.outbox().Drain(bg); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []postgres.UsageFilter{{}, {Project: "web"}} {
		u, err := a.pg.ClusterUsage(bg, f)
		if err != nil {
			t.Fatal(err)
		}
		if u.Records != int64(a.n+b.n) || u.Charged != a.charged+b.charged {
			t.Fatalf("%+v: cluster usage %d records charged %d; want %d, %d", f, u.Records, u.Charged, a.n+b.n, a.charged+b.charged)
		}
	}
	u, err := b.pg.ClusterUsage(bg, postgres.UsageFilter{Token: a.tok.ID})
	if err != nil {
		t.Fatal(err)
	}
	// Token ids are random, so a's token is a's alone.
	if u.Records != int64(a.n) || u.Charged != a.charged {
		t.Fatalf("a's token: %d records charged %d; want %d, %d", u.Records, u.Charged, a.n, a.charged)
	}
}

// PostgreSQL stops while Run ships: records wait in the ledger (Drain
// fails while it is down) and Run ships them when it is back.
func testPostgresDown(t *testing.T, srv *pgtest.Server, dsn string) {
	r := newReplica(t, dsn, "a")
	o := r.outbox()
	ctx, cancel := context.WithCancel(bg)
	done := make(chan struct{})
	go func() { defer close(done); o.Run(ctx) }()
	defer func() { cancel(); <-done }()

	r.settle(t, 20)
	o.Signal()
	waitFor(t, "the first records to ship", func() bool { n, _ := r.db.OutboxLen(); return n == 0 })

	srv.Stop()
	r.settle(t, 30)
	o.Signal()
	short, stop := context.WithTimeout(bg, 300*time.Millisecond)
	err := o.Drain(short)
	stop()
	if err == nil {
		t.Fatal("Drain with PostgreSQL stopped: no error")
	}
	if n, _ := r.db.OutboxLen(); n != 30 {
		t.Fatalf("%d records wait while PostgreSQL is down, want 30", n)
	}

	srv.Start()
	r.settle(t, 5)
	waitFor(t, "Run to ship after the restart", func() bool { n, _ := r.db.OutboxLen(); return n == 0 })
	waitFor(t, "Waiting to say so", func() bool { return o.Waiting() == 0 })
	wantShipped(t, r.pg, "a", r.n, r.charged)
}
