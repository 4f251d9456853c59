package storage

import (
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
)

// wantUsage is what a filter selects among the records gen made, counted
// one by one.
func wantUsage(gen func(int) budget.Record, n int, f RecordFilter) (int, budget.Money, []string) {
	var ids []string
	var sum budget.Money
	for i := range n {
		if r := gen(i); f.match(r.Request) && !r.Time.Before(f.Since) {
			ids = append(ids, r.ReservationID)
			sum += r.Charged
		}
	}
	return len(ids), sum, ids
}

// TestUsage_ReadsInPages: a token's totals and a stream's window are read
// in transactions of streamPage entries, and answer as one would: totals,
// the newest Limit records, and every record once over the cursor's pages.
func TestUsage_ReadsInPages(t *testing.T) {
	defer func(n int) { streamPage = n }(streamPage)
	defer func(f func()) { betweenReads = f }(betweenReads)
	streamPage = 7
	const n = 300
	gen := func(i int) budget.Record { return genRecord(i, 4, genBase, time.Minute) }
	path := emptyLedger(t)
	writeRecords(t, path, n, gen, false)
	db, err := Open(path, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	since := genBase.Add(95 * time.Minute)
	for _, f := range []RecordFilter{
		{TokenID: "t1"}, {TokenID: "t1", Project: "p1"}, {TokenID: "t2", Since: since},
		{TokenID: "t3", Limit: 20}, {TokenID: "t3", Project: "p1", Limit: 23}, {Project: "p0", Limit: 50}, {Limit: 61},
	} {
		reads := 0
		betweenReads = func() { reads++ }
		wantN, wantSum, wantIDs := wantUsage(gen, n, f)
		var ids []string
		cursor := ""
		for pages := 0; ; pages++ {
			g := f
			g.Cursor = cursor
			u, err := db.Usage(g)
			if err != nil {
				t.Fatalf("%+v: %v", g, err)
			}
			if u.Matched != wantN || u.Spent != wantSum {
				t.Errorf("%+v: %d records %s USD, want %d %s", g, u.Matched, u.Spent, wantN, wantSum)
			}
			if f.Limit > 0 && len(u.Records) > f.Limit {
				t.Errorf("%+v: %d records, limit %d", g, len(u.Records), f.Limit)
			}
			var page []string
			for _, r := range u.Records {
				page = append(page, r.ReservationID)
			}
			ids = append(page, ids...) // pages go back in time
			if cursor = u.NextCursor; cursor == "" || pages > n {
				break
			}
		}
		if len(ids) != len(wantIDs) {
			t.Fatalf("%+v: %d records over the pages, want %d", f, len(ids), len(wantIDs))
		}
		for i := range ids {
			if ids[i] != wantIDs[i] {
				t.Fatalf("%+v: record %d is %s, want %s", f, i, ids[i], wantIDs[i])
			}
		}
		if reads == 0 && (f.TokenID != "" || f.Limit > streamPage) {
			t.Errorf("%+v: read in one transaction", f)
		}
	}
}

// TestUsage_TokenTotalsBesideCompact: a Compact batch between two of a
// token's totals' read transactions moves entries not read yet into the
// rollup read already; the count starts again and counts each record once.
func TestUsage_TokenTotalsBesideCompact(t *testing.T) {
	defer func(n int) { streamPage = n }(streamPage)
	defer func(f func()) { betweenReads = f }(betweenReads)
	streamPage = 7
	const n = 300
	base := time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC)
	gen := func(i int) budget.Record { return genRecord(i, 2, base, 17*time.Minute) }
	db := openAged(t, n, gen, base)
	rollUpBetweenReads(t, db, 2, 60)
	f := RecordFilter{TokenID: "t1"}
	u, err := db.Usage(f)
	if err != nil {
		t.Fatal(err)
	}
	if wantN, wantSum, _ := wantUsage(gen, n, f); u.Matched != wantN || u.Spent != wantSum {
		t.Errorf("beside a Compact batch: %d records %s USD, want %d %s", u.Matched, u.Spent, wantN, wantSum)
	}
}
