package storage

import (
	"context"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/hardcap/hardcap/budget"
	bolt "go.etcd.io/bbolt"
)

// TestCompact_RollsUpOldRecords: with a 30-day retention on an injected
// clock, the records of the days before it are rolled up in small batches
// and deleted, and every total that counted them still does: Usage over
// everything, a token, a project, since a day in the rolled-up past; Daily;
// chargedSince (budgets); and Check's charges. A second run finds nothing.
func TestCompact_RollsUpOldRecords(t *testing.T) {
	defer func(n int) { rollupBatch = n }(rollupBatch)
	rollupBatch = 37
	const n = 600
	base := time.Date(2026, 9, 1, 5, 0, 0, 0, time.UTC)
	gen := func(i int) budget.Record { return genRecord(i, 6, base, 2*time.Hour+17*time.Minute) } // about 57 days
	path := emptyLedger(t)
	writeRecords(t, path, n, gen, false)
	now := base.Add(60 * 24 * time.Hour)
	clk := &clock{t: now}
	db, err := Open(path, Options{NoSync: true, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	rolledDay := now.Add(-45 * 24 * time.Hour).Truncate(24 * time.Hour)
	filters := []RecordFilter{
		{}, {TokenID: "t1"}, {Project: "p0"}, {TokenID: "t2", Project: "p0"},
		{Since: rolledDay}, {Since: rolledDay, TokenID: "t3"}, {Since: rolledDay, Project: "p1"},
	}
	type totals struct {
		matched int
		spent   budget.Money
	}
	read := func() ([]totals, []DailyUsage, [2]budget.Money) {
		t.Helper()
		var got []totals
		for _, f := range filters {
			u, err := db.Usage(f)
			if err != nil {
				t.Fatal(err)
			}
			got = append(got, totals{u.Matched, u.Spent})
		}
		days, err := db.Daily(DailyFilter{})
		if err != nil {
			t.Fatal(err)
		}
		var charged [2]budget.Money
		err = db.view(func(tx *bolt.Tx) error {
			var err error
			if charged[0], err = chargedSince(tx, time.Time{}, nil); err != nil {
				return err
			}
			charged[1], err = chargedSince(tx, rolledDay, func(r budget.Request) bool { return r.TokenID == "t4" })
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		return got, days, charged
	}
	wantTotals, wantDays, wantCharged := read()

	rolled, err := db.Compact(context.Background(), 30*24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	cutoff := now.Add(-30 * 24 * time.Hour).Truncate(24 * time.Hour)
	left := 0
	for i := range n {
		if !gen(i).Time.Before(cutoff) {
			left++
		}
	}
	if rolled != n-left || rolled == 0 {
		t.Fatalf("rolled up %d records, want %d", rolled, n-left)
	}
	u, err := db.Usage(RecordFilter{})
	if err != nil || len(u.Records) != left || u.Records[0].Time.Before(cutoff) {
		t.Fatalf("%d records left (%v), want %d, none before %s", len(u.Records), err, left, cutoff)
	}
	gotTotals, gotDays, gotCharged := read()
	if !reflect.DeepEqual(gotTotals, wantTotals) {
		t.Errorf("totals after the rollup %v, want %v", gotTotals, wantTotals)
	}
	if !reflect.DeepEqual(gotDays, wantDays) {
		t.Errorf("daily after the rollup differs: %d rows, want %d", len(gotDays), len(wantDays))
	}
	if gotCharged != wantCharged {
		t.Errorf("chargedSince after the rollup %v, want %v", gotCharged, wantCharged)
	}
	if again, err := db.Compact(context.Background(), 30*24*time.Hour); again != 0 || err != nil {
		t.Fatalf("a second run rolled up %d (%v), want 0", again, err)
	}
	db.Close()
	if rep, err := Check(path); err != nil || !rep.OK() {
		t.Fatalf("after the rollup: %v %v", rep.Problems, err)
	}
}

// TestCompact_LongStrings: a model name too long to intern (one above
// bbolt's key limit, one above maxInterned) is rolled up under a name
// within the limit, so Compact succeeds (and again later), the copy
// Salvage makes keeps every string, and the charges still add up.
func TestCompact_LongStrings(t *testing.T) {
	base := time.Date(2026, 9, 1, 5, 0, 0, 0, time.UTC)
	huge, long := "gpt-4o"+strings.Repeat("x", 40000), "gpt-4o"+strings.Repeat("é", 500)
	gen := func(i int) budget.Record {
		r := genRecord(i, 3, base, time.Hour)
		switch i {
		case 5:
			r.Model = huge
		case 6:
			r.Model = long
		}
		return r
	}
	path := emptyLedger(t)
	writeRecords(t, path, 100, gen, false)
	now := base.Add(60 * 24 * time.Hour)
	db, err := Open(path, Options{NoSync: true, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	if n, err := db.Compact(ctx, 30*24*time.Hour); n != 100 || err != nil {
		t.Fatalf("Compact rolled up %d of 100 records: %v", n, err)
	}
	days, err := db.Daily(DailyFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var models []string
	for _, d := range days {
		if len(d.Model) > 20 {
			models = append(models, d.Model)
			if len(d.Model) > maxInterned || !utf8.ValidString(d.Model) || !strings.HasPrefix(d.Model, "gpt-4o") {
				t.Errorf("a long model rolled up as %d bytes %q", len(d.Model), budget.Clip(d.Model))
			}
		}
	}
	if len(models) != 2 || models[0] == models[1] {
		t.Errorf("the two long models rolled up as %d names, want 2 distinct", len(models))
	}
	db.Close()
	dst := filepath.Join(t.TempDir(), "copy.db")
	srep, err := Salvage(path, dst)
	if err != nil || srep.Dropped["strings"] != 0 || srep.Dropped["usage_rollup"] != 0 {
		t.Fatalf("Salvage dropped %v: %v", srep.Dropped, err)
	}
}

// TestCompact_MarkMovesWithEachBatch: between two batches of a Compact
// (or after one cut short), a since in an hour the first batch rolled up
// counts the whole hour from the hour totals, as it does once Compact is
// done, and never fewer records than before the rollup began.
func TestCompact_MarkMovesWithEachBatch(t *testing.T) {
	base := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	gen := func(i int) budget.Record { return genRecord(i, 3, base, time.Minute) } // one a minute, about 3.5 days
	path := emptyLedger(t)
	writeRecords(t, path, 5000, gen, false)
	now := base.Add(33 * 24 * time.Hour)
	db, err := Open(path, Options{NoSync: true, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	since := base.Add(10*time.Hour + 30*time.Minute) // in the first batch's range
	filters := []RecordFilter{{Since: since}, {Since: since, Project: "p1"}}
	usage := func() []Usage {
		t.Helper()
		var out []Usage
		for _, f := range filters {
			u, err := db.Usage(RecordFilter{Since: f.Since, Project: f.Project, Limit: 1})
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, u)
		}
		return out
	}
	before := usage()
	cutoff := now.Add(-30 * 24 * time.Hour).Truncate(24 * time.Hour)
	err = db.update(ctx, func(tx *bolt.Tx) error { _, _, err := rollUp(tx, cutoff, 1000); return err })
	if err != nil {
		t.Fatal(err)
	}
	mid := usage()
	if _, err := db.Compact(ctx, 30*24*time.Hour); err != nil {
		t.Fatal(err)
	}
	after := usage()
	for i, f := range filters {
		if mid[i].Matched < before[i].Matched || mid[i].Matched != after[i].Matched || mid[i].Spent != after[i].Spent {
			t.Errorf("%+v: between two batches %d records %s USD; before %d, after %d %s USD",
				f, mid[i].Matched, mid[i].Spent, before[i].Matched, after[i].Matched, after[i].Spent)
		}
	}
}
