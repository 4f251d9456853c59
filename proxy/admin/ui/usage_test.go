package ui

import (
	"encoding/csv"
	"html"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

var (
	rowRe  = regexp.MustCompile(`<tr class="record" data-id="([^"]+)">`)
	linkRe = regexp.MustCompile(`<a id="(next|csv)" href="([^"]+)"`)
)

// rows are the reservation ids of a usage page, in order.
func rows(body string) []string {
	var out []string
	for _, m := range rowRe.FindAllStringSubmatch(body, -1) {
		out = append(out, m[1])
	}
	return out
}

func link(body, id string) string {
	for _, m := range linkRe.FindAllStringSubmatch(body, -1) {
		if m[1] == id {
			return html.UnescapeString(m[2])
		}
	}
	return ""
}

func TestUsage_FiltersPagesCSV(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	b.login()
	web, _ := b.createToken("web", "name", "a")
	api, _ := b.createToken("api", "name", "b")
	// 70 requests of web's token, every third of another model; 5 of
	// api's; one of web's two days ago.
	var newest string
	e.record(web, "gpt-4o", 7, -48*time.Hour)
	for i := range 70 {
		model := "gpt-4o-mini"
		if i%3 == 0 {
			model = "gpt-4o"
		}
		newest = e.record(web, model, 1000, time.Duration(i-70)*time.Second).ReservationID
	}
	for i := range 5 {
		e.record(api, "claude-haiku-4-5", 5000, time.Duration(i-5)*time.Second)
	}

	// Every record, newest first, a page at a time.
	a := b.get("/ui/usage")
	mustContain(t, "usage", a.body, `id="usage"`, "76 requests", `id="csv"`)
	page := rows(a.body)
	if len(page) != UsagePageSize {
		t.Fatalf("first page: %d rows, want %d", len(page), UsagePageSize)
	}
	seen := map[string]bool{}
	total := 0
	for path := "/ui/usage"; path != ""; {
		a := b.get(path)
		for _, id := range rows(a.body) {
			if seen[id] {
				t.Fatalf("record %s on two pages", id)
			}
			seen[id] = true
			total++
		}
		path = link(a.body, "next")
	}
	if total != 76 {
		t.Fatalf("%d records over the pages, want 76", total)
	}

	tests := []struct {
		query string
		want  int
	}{
		{"?project=api", 5},
		{"?token=" + web, 71},
		{"?project=web&since=1h", 70},
		{"?project=web&model=gpt-4o", 25},
		{"?model=claude-haiku-4-5", 5},
		{"?model=none", 0},
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			n := 0
			for path := "/ui/usage" + tt.query; path != ""; {
				a := b.get(path)
				if a.status != http.StatusOK {
					t.Fatalf("%s: %d", path, a.status)
				}
				n += len(rows(a.body))
				path = link(a.body, "next")
			}
			if n != tt.want {
				t.Fatalf("%d records, want %d", n, tt.want)
			}
			// The CSV of the same filter: a header and the same records.
			csvPath := link(b.get("/ui/usage"+tt.query).body, "csv")
			if !strings.HasPrefix(csvPath, "/ui/usage.csv?") {
				t.Fatalf("csv link %q", csvPath)
			}
			a := b.get(csvPath)
			if a.status != http.StatusOK || !strings.HasPrefix(a.header.Get("Content-Type"), "text/csv") ||
				!strings.HasPrefix(a.header.Get("Content-Disposition"), "attachment") {
				t.Fatalf("csv: %d %v", a.status, a.header)
			}
			recs, err := csv.NewReader(strings.NewReader(a.body)).ReadAll()
			if err != nil || len(recs) != tt.want+1 || recs[0][0] != "time" {
				t.Fatalf("csv: %d lines (%v), want a header and %d:\n%s", len(recs), err, tt.want, clipBody(a.body))
			}
		})
	}

	// A filter the admin API refuses shows its message.
	if a := b.get("/ui/usage?project=nope"); a.status != http.StatusNotFound || !strings.Contains(a.body, `class="error"`) {
		t.Fatalf("unknown project: %d", a.status)
	}
	if a := b.get("/ui/usage.csv?since=soon"); a.status != http.StatusBadRequest {
		t.Fatalf("a bad since in the csv: %d, want 400", a.status)
	}

	// A request's detail, from its row's link.
	a = b.get("/ui/usage?project=web")
	m := regexp.MustCompile(`<a href="(/ui/usage/` + newest + `[^"]*)"`).FindStringSubmatch(a.body)
	if m == nil {
		t.Fatalf("no link to %s's detail", newest)
	}
	d := b.get(html.UnescapeString(m[1]))
	mustContain(t, "detail", d.body, `id="record"`, newest, web, "192.0.2.7", "gpt-4o")
	// Without hints it is found too, and an unknown id is a 404.
	if d := b.get("/ui/usage/" + newest); d.status != http.StatusOK {
		t.Fatalf("detail without hints: %d", d.status)
	}
	if d := b.get("/ui/usage/r9999999999"); d.status != http.StatusNotFound {
		t.Fatalf("unknown record: %d, want 404", d.status)
	}
}
