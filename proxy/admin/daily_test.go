package admin

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
)

const testAdminToken = "hcadmin_testtoken"

// dailyServer is the admin API over a database holding the given usage
// records.
func dailyServer(t *testing.T, recs []dailyRec) *httptest.Server {
	t.Helper()
	db, err := storage.Open(filepath.Join(t.TempDir(), "hardcap.db"), storage.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	ctx := context.Background()
	if _, err := db.CreateProject(ctx, "web", budget.Limit{}); err != nil {
		t.Fatal(err)
	}
	tok, _, err := db.CreateToken(ctx, storage.TokenSpec{Project: "web"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		res, err := db.Reserve(ctx, budget.Request{TokenID: tok.ID, Provider: r.provider, Model: r.model}, budget.Quote{MaxOutput: 1 << 20, OutputRate: 1_000_000})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: r.charged, Status: 200, Outcome: budget.Complete, Ended: r.ended}); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(New(Options{DB: db, AdminToken: testAdminToken}))
	t.Cleanup(srv.Close)
	return srv
}

type dailyRec struct {
	provider, model string
	ended           time.Time
	charged         budget.Money
}

func getDaily(t *testing.T, srv *httptest.Server, query, token string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("GET", srv.URL+"/admin/v1/usage/daily"+query, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestDaily_Endpoint(t *testing.T) {
	midnight := time.Date(2026, 11, 30, 0, 0, 0, 0, time.UTC)
	srv := dailyServer(t, []dailyRec{
		{"openai", "gpt-4o", midnight.Add(-time.Nanosecond), 1_234_000},
		{"openai", "gpt-4o", midnight, 1_000},
		{"openai", "gpt-4o", midnight.Add(23 * time.Hour), 234},
		{"anthropic", "claude-sonnet-4-5", midnight.Add(time.Hour), 5},
		{"openai", "gpt-4o-mini", midnight.Add(24 * time.Hour), 450_000},
	})
	tests := []struct {
		name   string
		query  string
		status int
		want   string // the days, as JSON, or a fragment of the error
	}{
		{"provider and since at a day start", "?provider=openai&since=2026-11-30T00:00:00Z", 200,
			`[{"day":"2026-11-30","provider":"openai","model":"gpt-4o","requests":2,"charged_usd":"0.000001234"},` +
				`{"day":"2026-12-01","provider":"openai","model":"gpt-4o-mini","requests":1,"charged_usd":"0.000450"}]`},
		{"provider, no since", "?provider=openai", 200,
			`[{"day":"2026-11-29","provider":"openai","model":"gpt-4o","requests":1,"charged_usd":"0.001234"},` +
				`{"day":"2026-11-30","provider":"openai","model":"gpt-4o","requests":2,"charged_usd":"0.000001234"},` +
				`{"day":"2026-12-01","provider":"openai","model":"gpt-4o-mini","requests":1,"charged_usd":"0.000450"}]`},
		{"since in another zone", "?provider=anthropic&since=2026-11-30T01:00:00%2B01:00", 200,
			`[{"day":"2026-11-30","provider":"anthropic","model":"claude-sonnet-4-5","requests":1,"charged_usd":"0.000000005"}]`},
		{"since excludes all", "?provider=anthropic&since=2026-11-30T01:00:00.000000001Z", 200, `[]`},
		{"no such provider", "?provider=groq", 200, `[]`},
		{"bad since", "?since=30d", 400, "RFC 3339"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := getDaily(t, srv, tt.query, testAdminToken)
			if status != tt.status {
				t.Fatalf("got %d %s, want %d", status, body, tt.status)
			}
			if status != 200 {
				if !strings.Contains(body, tt.want) || !strings.Contains(body, "invalid_request") {
					t.Fatalf("got %s, want an invalid_request error mentioning %q", body, tt.want)
				}
				return
			}
			var got struct{ Days json.RawMessage }
			if err := json.Unmarshal([]byte(body), &got); err != nil {
				t.Fatal(err)
			}
			if g, w := canonical(t, got.Days), canonical(t, []byte(tt.want)); g != w {
				t.Fatalf("got days %s, want %s", g, w)
			}
		})
	}
}

func TestDaily_RequiresAdminToken(t *testing.T) {
	srv := dailyServer(t, nil)
	for name, token := range map[string]string{"none": "", "wrong": "hcadmin_wrong"} {
		t.Run(name, func(t *testing.T) {
			if status, body := getDaily(t, srv, "", token); status != http.StatusUnauthorized {
				t.Fatalf("got %d %s, want 401", status, body)
			}
		})
	}
}

// canonical re-encodes JSON with sorted keys and no spaces.
func canonical(t *testing.T, b []byte) string {
	t.Helper()
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	out, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}
