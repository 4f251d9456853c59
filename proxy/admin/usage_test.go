package admin

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
)

// TestUsage_Pages: the usage route pages back with next_cursor through
// every record, streams ndjson and csv of all of them, and answers a bad
// cursor or format 400 in the API's error shape.
func TestUsage_Pages(t *testing.T) {
	base := time.Now().Add(-2 * time.Hour).UTC()
	var recs []dailyRec
	for i := range 25 {
		recs = append(recs, dailyRec{"openai", "gpt-4o-mini", base.Add(time.Duration(i) * time.Minute), budget.Money(1000 * i)})
	}
	srv := dailyServer(t, recs)
	get := func(query string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+"/admin/v1/usage"+query, nil)
		req.Header.Set("Authorization", "Bearer "+testAdminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var sb strings.Builder
		sc := bufio.NewScanner(resp.Body)
		for sc.Scan() {
			sb.WriteString(sc.Text() + "\n")
		}
		return resp.StatusCode, sb.String()
	}

	var times []time.Time
	query := "?limit=10"
	for pages := 0; ; pages++ {
		code, body := get(query)
		var u storage.Usage
		if err := json.Unmarshal([]byte(body), &u); code != 200 || err != nil {
			t.Fatalf("%s: %d %v %s", query, code, err, body)
		}
		if u.Matched != 25 || u.Spent != 300_000 {
			t.Fatalf("page %d: matched %d spent %s, want 25 and 0.0003", pages, u.Matched, u.Spent)
		}
		var page []time.Time
		for _, r := range u.Records {
			page = append(page, r.Time)
		}
		times = append(page, times...)
		if u.NextCursor == "" {
			if pages != 2 {
				t.Fatalf("%d pages, want 3", pages+1)
			}
			break
		}
		query = "?limit=10&cursor=" + u.NextCursor
	}
	if len(times) != 25 {
		t.Fatalf("the pages hold %d records, want 25", len(times))
	}
	for i, tm := range times {
		if !tm.Equal(recs[i].ended) {
			t.Fatalf("record %d ended %s, want %s", i, tm, recs[i].ended)
		}
	}

	code, body := get("?format=ndjson")
	if lines := strings.Split(strings.TrimSpace(body), "\n"); code != 200 || len(lines) != 25 {
		t.Fatalf("ndjson: %d, %d lines, want 25", code, len(lines))
	}
	code, body = get("?format=csv&limit=5")
	if lines := strings.Split(strings.TrimSpace(body), "\n"); code != 200 || len(lines) != 6 || !strings.HasPrefix(lines[0], "time,id,token_id") {
		t.Fatalf("csv: %d, %d lines, want a header and 5", code, len(lines))
	}
	for _, q := range []string{"?cursor=zz", "?cursor=00", "?format=xml"} {
		code, body := get(q)
		if code != 400 || !strings.Contains(body, `"invalid_request"`) {
			t.Errorf("%s: got %d %s, want 400 invalid_request", q, code, body)
		}
	}
}
