package storage

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
)

// settled writes one usage record that ended at ended and charged charged.
func settled(t *testing.T, db *DB, tok tokens.Token, provider, model string, ended time.Time, charged budget.Money) {
	t.Helper()
	res, err := db.Reserve(ctx, budget.Request{TokenID: tok.ID, Provider: provider, Model: model}, flat(1000))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: charged, Status: 200, Outcome: budget.Complete, Ended: ended}); err != nil {
		t.Fatal(err)
	}
}

func TestDaily_UTCDaysProviderAndSince(t *testing.T) {
	db := openTest(t, Options{NoSync: true})
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	plus2 := time.FixedZone("+02", 2*3600)
	plus5 := time.FixedZone("+05", 5*3600)
	// Written out of time order: the books are read in end-time order.
	settled(t, db, tok, "openai", "gpt-4o", time.Date(2026, 11, 30, 23, 0, 0, 0, plus2), 300)                    // 30th 21:00Z
	settled(t, db, tok, "openai", "gpt-4o", time.Date(2026, 11, 29, 23, 59, 59, 999999999, time.UTC), 100)       // last ns of the 29th
	settled(t, db, tok, "openai", "gpt-4o", time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC), 200)                  // first ns of the 30th
	settled(t, db, tok, "openai", "gpt-4o-mini", time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC), 0)              // refused, still a request
	settled(t, db, tok, "anthropic", "claude-sonnet-4-5", time.Date(2026, 11, 30, 1, 0, 0, 0, plus5), 7)         // 29th 20:00Z
	settled(t, db, tok, "openai", "gpt-4o", time.Date(2026, 12, 1, 0, 30, 0, 0, time.FixedZone("+01", 3600)), 5) // 30th 23:30Z
	settled(t, db, tok, "groq", "gpt-4o", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), 11)

	tests := []struct {
		name string
		f    DailyFilter
		want []DailyUsage
	}{
		{"all", DailyFilter{}, []DailyUsage{
			{Day: "2026-11-29", Provider: "anthropic", Model: "claude-sonnet-4-5", Requests: 1, Charged: 7},
			{Day: "2026-11-29", Provider: "openai", Model: "gpt-4o", Requests: 1, Charged: 100},
			{Day: "2026-11-30", Provider: "openai", Model: "gpt-4o", Requests: 3, Charged: 505},
			{Day: "2026-11-30", Provider: "openai", Model: "gpt-4o-mini", Requests: 1, Charged: 0},
			{Day: "2026-12-01", Provider: "groq", Model: "gpt-4o", Requests: 1, Charged: 11},
		}},
		{"provider", DailyFilter{Provider: "openai"}, []DailyUsage{
			{Day: "2026-11-29", Provider: "openai", Model: "gpt-4o", Requests: 1, Charged: 100},
			{Day: "2026-11-30", Provider: "openai", Model: "gpt-4o", Requests: 3, Charged: 505},
			{Day: "2026-11-30", Provider: "openai", Model: "gpt-4o-mini", Requests: 1, Charged: 0},
		}},
		{"since a day start", DailyFilter{Provider: "openai", Since: time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)}, []DailyUsage{
			{Day: "2026-11-30", Provider: "openai", Model: "gpt-4o", Requests: 3, Charged: 505},
			{Day: "2026-11-30", Provider: "openai", Model: "gpt-4o-mini", Requests: 1, Charged: 0},
		}},
		{"since inside a day", DailyFilter{Since: time.Date(2026, 11, 30, 22, 0, 0, 0, time.UTC)}, []DailyUsage{
			{Day: "2026-11-30", Provider: "openai", Model: "gpt-4o", Requests: 1, Charged: 5},
			{Day: "2026-12-01", Provider: "groq", Model: "gpt-4o", Requests: 1, Charged: 11},
		}},
		{"since in another zone", DailyFilter{Since: time.Date(2026, 12, 1, 1, 0, 0, 0, time.FixedZone("+01", 3600))}, []DailyUsage{
			{Day: "2026-12-01", Provider: "groq", Model: "gpt-4o", Requests: 1, Charged: 11},
		}},
		{"unknown provider", DailyFilter{Provider: "mistral"}, []DailyUsage{}},
		{"after everything", DailyFilter{Since: time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC)}, []DailyUsage{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := db.Daily(tt.f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("got %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

func TestDaily_Closed(t *testing.T) {
	db := openTest(t, Options{NoSync: true})
	db.Close()
	if _, err := db.Daily(DailyFilter{}); !errors.Is(err, ErrClosed) {
		t.Fatalf("got %v, want ErrClosed", err)
	}
}

// TestDaily_AcrossPages: a history longer than one read transaction's page
// sums as the records do, day by day, provider and model.
func TestDaily_AcrossPages(t *testing.T) {
	n := 3*dailyPage + 17
	gen := func(i int) budget.Record { return genRecord(i, 7, genBase, 97*time.Second) }
	path := emptyLedger(t)
	writeRecords(t, path, n, gen, false)
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	type key struct{ day, model string }
	want := map[key]DailyUsage{}
	for i := range n {
		r := gen(i)
		k := key{r.Time.UTC().Format(DayLayout), r.Model}
		row := want[k]
		row.Day, row.Provider, row.Model = k.day, r.Provider, r.Model
		row.Requests++
		row.Charged += r.Charged
		want[k] = row
	}
	days, err := db.Daily(DailyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(days) != len(want) {
		t.Fatalf("%d rows, want %d", len(days), len(want))
	}
	for i, d := range days {
		if w := want[key{d.Day, d.Model}]; d != w {
			t.Errorf("row %d: got %+v, want %+v", i, d, w)
		}
		if i > 0 && days[i-1].Day > d.Day {
			t.Errorf("row %d: day %s after %s", i, d.Day, days[i-1].Day)
		}
	}
}

// TestDaily_BesideCompact: a Compact batch between two of Daily's read
// transactions moves records Daily had yet to read into the rollup it had
// read already; Daily notices and starts again, so it counts every record
// once. A batch that moves only records read already changes nothing.
func TestDaily_BesideCompact(t *testing.T) {
	defer func(n int) { dailyPage = n }(dailyPage)
	defer func(f func()) { betweenReads = f }(betweenReads)
	dailyPage = 10
	const n = 300
	base := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	gen := func(i int) budget.Record { return genRecord(i, 4, base, 17*time.Minute) } // about 3.5 days
	for _, tc := range []struct {
		name  string
		batch int
	}{{"moves records not read yet", 50}, {"moves records read already", 5}} {
		t.Run(tc.name, func(t *testing.T) {
			db := openAged(t, n, gen, base)
			rollUpBetweenReads(t, db, 1, tc.batch)
			got, err := db.Daily(DailyFilter{})
			if err != nil {
				t.Fatal(err)
			}
			var req int64
			var sum, want budget.Money
			for _, d := range got {
				req += d.Requests
				sum += d.Charged
			}
			for i := range n {
				want += gen(i).Charged
			}
			if req != n || sum != want {
				t.Errorf("Daily beside a Compact batch counted %d records charging %s USD, want %d charging %s", req, sum, n, want)
			}
		})
	}
}

// openAged writes n records from gen into a new ledger and opens it 40
// days after base, with a clock that stays there.
func openAged(t *testing.T, n int, gen func(int) budget.Record, base time.Time) *DB {
	t.Helper()
	path := emptyLedger(t)
	writeRecords(t, path, n, gen, false)
	now := base.Add(40 * 24 * time.Hour)
	db, err := Open(path, Options{NoSync: true, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

// rollUpBetweenReads makes the call-th pause between two read
// transactions (betweenReads) run one rollUp batch of batch records older
// than 30 days, as a Compact beside the read would; the caller restores
// betweenReads.
func rollUpBetweenReads(t *testing.T, db *DB, call, batch int) {
	t.Helper()
	cutoff := db.now().Add(-30 * 24 * time.Hour).Truncate(24 * time.Hour)
	calls := 0
	betweenReads = func() {
		if calls++; calls != call {
			return
		}
		if err := db.update(ctx, func(tx *bolt.Tx) error { _, _, err := rollUp(tx, cutoff, batch); return err }); err != nil {
			t.Error(err)
		}
	}
}
