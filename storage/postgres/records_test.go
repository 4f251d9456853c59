package postgres_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/pgtest"
	"github.com/hardcap/hardcap/storage/postgres"
)

var base = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// rec is the i-th test record: projects web (even) and api (odd), tokens
// t0..t2, models a and b, charged i+1, one a minute from base.
func rec(i int) budget.Record {
	return budget.Record{
		Time:          base.Add(time.Duration(i) * time.Minute).Add(123 * time.Nanosecond),
		ReservationID: fmt.Sprintf("r%04d", i),
		Request: budget.Request{
			TokenID: fmt.Sprintf("t%d", i%3), Project: []string{"web", "api"}[i%2],
			Provider: "openai", Model: []string{"a", "b"}[i%2], Route: "/v1/chat/completions", ClientIP: "127.0.0.1",
		},
		Status: 200, Outcome: budget.Complete, Usage: budget.Usage{InputTokens: int64(i), OutputTokens: 2},
		Reserved: budget.Money(1000 + i), Charged: budget.Money(i + 1), LatencyMS: 7, RequestID: "req_ab",
	}
}

func recs(from, to int) []budget.Record {
	var out []budget.Record
	for i := from; i < to; i++ {
		out = append(out, rec(i))
	}
	return out
}

// sum is the charges of records from..to-1 that keep says to count.
func sum(from, to int, keep func(budget.Record) bool) (int64, budget.Money) {
	var n int64
	var m budget.Money
	for _, r := range recs(from, to) {
		if keep(r) {
			n++
			m += r.Charged
		}
	}
	return n, m
}

func TestRecords(t *testing.T) {
	pg := pgtest.Start(t)
	for _, tt := range []struct {
		name string
		run  func(t *testing.T, dsn string)
	}{
		{"InsertIsIdempotent", testInsertIsIdempotent},
		{"ClusterUsage", testClusterUsage},
		{"RecordsPage", testRecordsPage},
		{"UntilIsExactToTheNanosecond", testUntilIsExact},
		{"ClaimAlert", testClaimAlert},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, pg.NewDatabase(t)) })
	}
}

func testInsertIsIdempotent(t *testing.T, dsn string) {
	a := open(t, dsn, "a")
	for _, batch := range [][]budget.Record{recs(0, 10), recs(5, 15), recs(0, 15)} {
		if err := a.InsertRecords(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}
	u, err := a.ClusterUsage(ctx, postgres.UsageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if n, m := sum(0, 15, func(budget.Record) bool { return true }); u.Records != n || u.Charged != m {
		t.Fatalf("got %d records charged %d; want %d, %d", u.Records, u.Charged, n, m)
	}
	// The ledger started afresh under the same replica id: its ids start
	// again, its records are other records.
	again := rec(0)
	again.Time = again.Time.Add(time.Hour)
	if err := a.InsertRecords(ctx, []budget.Record{again, again}); err != nil {
		t.Fatal(err)
	}
	u, err = a.ClusterUsage(ctx, postgres.UsageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if n, m := sum(0, 15, func(budget.Record) bool { return true }); u.Records != n+1 || u.Charged != m+again.Charged {
		t.Fatalf("after a record of a fresh ledger: got %d records charged %d; want %d, %d", u.Records, u.Charged, n+1, m+again.Charged)
	}
	for _, tt := range []struct {
		recs []budget.Record
		want error
	}{
		{[]budget.Record{rec(1), {Time: base}}, postgres.ErrNoRecordID},
		{recs(0, postgres.MaxInsert+1), postgres.ErrTooManyRecords},
	} {
		if err := a.InsertRecords(ctx, tt.recs); !errors.Is(err, tt.want) {
			t.Errorf("inserting %d records: got %v, want %v", len(tt.recs), err, tt.want)
		}
	}
}

// Two replicas with records of the same ids: both count, and the filters
// select by time, project and token.
func testClusterUsage(t *testing.T, dsn string) {
	a, b := open(t, dsn, "a"), open(t, dsn, "b")
	if err := a.InsertRecords(ctx, recs(0, 20)); err != nil {
		t.Fatal(err)
	}
	if err := b.InsertRecords(ctx, recs(10, 30)); err != nil {
		t.Fatal(err)
	}
	twice := func(keep func(budget.Record) bool) (int64, budget.Money) {
		n1, m1 := sum(0, 20, keep)
		n2, m2 := sum(10, 30, keep)
		return n1 + n2, m1 + m2
	}
	for _, tt := range []struct {
		name string
		f    postgres.UsageFilter
		keep func(budget.Record) bool
	}{
		{"all", postgres.UsageFilter{}, func(budget.Record) bool { return true }},
		{"since until", postgres.UsageFilter{Since: base.Add(5 * time.Minute), Until: base.Add(15 * time.Minute)},
			func(r budget.Record) bool {
				return !r.Time.Before(base.Add(5*time.Minute)) && r.Time.Before(base.Add(15*time.Minute))
			}},
		{"project", postgres.UsageFilter{Project: "api"}, func(r budget.Record) bool { return r.Project == "api" }},
		{"token", postgres.UsageFilter{Token: "t1"}, func(r budget.Record) bool { return r.TokenID == "t1" }},
		{"project and token", postgres.UsageFilter{Project: "web", Token: "t1"},
			func(r budget.Record) bool { return r.Project == "web" && r.TokenID == "t1" }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			u, err := b.ClusterUsage(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			n, m := twice(tt.keep)
			if u.Records != n || u.Charged != m {
				t.Fatalf("got %d records charged %d; want %d, %d", u.Records, u.Charged, n, m)
			}
			var rn int64
			var rm budget.Money
			for _, r := range u.Rows {
				rn, rm = rn+r.Records, rm+r.Charged
			}
			if rn != n || rm != m || u.Truncated {
				t.Fatalf("rows add up to %d records charged %d (truncated %v); want %d, %d", rn, rm, u.Truncated, n, m)
			}
		})
	}
}

// Pages of 7 walk every record of both replicas once, in order, each
// decoded as it was inserted.
func testRecordsPage(t *testing.T, dsn string) {
	a, b := open(t, dsn, "a"), open(t, dsn, "b")
	if err := a.InsertRecords(ctx, recs(0, 20)); err != nil {
		t.Fatal(err)
	}
	if err := b.InsertRecords(ctx, recs(10, 25)); err != nil {
		t.Fatal(err)
	}
	var got []postgres.ClusterRecord
	var cur postgres.PageCursor
	for range 10 {
		page, next, err := a.RecordsPage(ctx, postgres.UsageFilter{Project: "web"}, cur, 7)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		got, cur = append(got, page...), next
	}
	n1, _ := sum(0, 20, func(r budget.Record) bool { return r.Project == "web" })
	n2, _ := sum(10, 25, func(r budget.Record) bool { return r.Project == "web" })
	if int64(len(got)) != n1+n2 {
		t.Fatalf("got %d records, want %d", len(got), n1+n2)
	}
	seen := map[string]bool{}
	for i, r := range got {
		k := r.Replica + "/" + r.ReservationID
		if seen[k] {
			t.Fatalf("%s twice", k)
		}
		seen[k] = true
		if i > 0 && r.Time.Before(got[i-1].Time) {
			t.Fatalf("record %d (%s) ends before the one before it", i, k)
		}
		var idx int
		if _, err := fmt.Sscanf(r.ReservationID, "r%d", &idx); err != nil {
			t.Fatalf("id %q: %v", r.ReservationID, err)
		}
		want := rec(idx)
		if !r.Time.Equal(want.Time) || r.Charged != want.Charged || r.Usage != want.Usage || r.RequestID != want.RequestID || r.Project != "web" {
			t.Fatalf("record %s decoded as %+v, want %+v", k, r.Record, want)
		}
	}
}

func testClaimAlert(t *testing.T, dsn string) {
	a, b := open(t, dsn, "a"), open(t, dsn, "b")
	for _, tt := range []struct {
		s    *postgres.Store
		key  string
		want bool
	}{
		{a, "threshold:project:web:2026-12:80", true},
		{b, "threshold:project:web:2026-12:80", false},
		{a, "threshold:project:web:2026-12:80", true}, // its own retry
		{b, "threshold:project:web:2026-12:100", true},
		{a, "threshold:project:web:2026-12:100", false},
	} {
		got, err := tt.s.ClaimAlert(ctx, tt.key)
		if err != nil || got != tt.want {
			t.Errorf("%s claims %s: %v, %v; want %v", tt.s.Replica(), tt.key, got, err, tt.want)
		}
	}
	if _, err := a.ClaimAlert(ctx, ""); !errors.Is(err, postgres.ErrNoAlertKey) {
		t.Errorf("an empty key: got %v, want ErrNoAlertKey", err)
	}
}

// A record that ended a nanosecond before until counts, and one that ended
// at since: PostgreSQL rounds to the microsecond, and a record rounded up
// to until would be left out. (Times are compared to the microsecond.)
func testUntilIsExact(t *testing.T, dsn string) {
	a := open(t, dsn, "a")
	until := base.Add(time.Hour)
	r1, r2 := rec(1), rec(2)
	r1.Time, r2.Time = until.Add(-time.Nanosecond), base
	if err := a.InsertRecords(ctx, []budget.Record{r1, r2}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		f    postgres.UsageFilter
		want int64
	}{
		{postgres.UsageFilter{Since: base, Until: until}, 2},
		{postgres.UsageFilter{Since: base.Add(time.Microsecond), Until: until}, 1},
		{postgres.UsageFilter{Since: until}, 0},
	} {
		u, err := a.ClusterUsage(ctx, tt.f)
		if err != nil {
			t.Fatal(err)
		}
		if u.Records != tt.want {
			t.Errorf("%+v: %d records, want %d", tt.f, u.Records, tt.want)
		}
	}
}
