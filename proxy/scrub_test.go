package proxy_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
)

// TestUpstreamErrorEchoingKeyIsScrubbed uses an upstream that echoes the
// Authorization header it received in its error body, as a misbehaving
// provider or gateway might.
func TestUpstreamErrorEchoingKeyIsScrubbed(t *testing.T) {
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(401)
		w.Write([]byte(`{"error":{"message":"bad key ` + r.Header.Get("Authorization") + `"}}`))
	}))
	defer up.Close()
	db, err := storage.Open(filepath.Join(t.TempDir(), "db"), storage.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx := t.Context()
	db.CreateProject(ctx, "p", budget.Limit{})
	_, secret, _ := db.CreateToken(ctx, storage.TokenSpec{Project: "p"})
	t.Setenv("SCRUB_TEST_KEY", realKey)
	key, _ := proxy.ParseKeySource("env:SCRUB_TEST_KEY")
	base, _ := url.Parse(up.URL + "/v1")
	p := proxy.New(proxy.Options{
		Providers: []*proxy.Provider{{Name: "openai", Kind: proxy.KindOpenAI, BaseURL: base, Key: key, Prices: "openai"}},
		Tokens:    db, Ledger: db, Prices: embeddedCatalog(t),
	})
	srv := httptest.NewServer(p)
	defer srv.Close()
	req, _ := http.NewRequest("POST", srv.URL+"/v1/chat/completions", strings.NewReader(helloBody))
	req.Header.Set("Authorization", "Bearer "+secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body := readAll(t, resp)
	if resp.StatusCode != 401 || strings.Contains(body, realKey) || !strings.Contains(body, "[redacted]") {
		t.Fatalf("got %d %q; want the upstream 401 with the key redacted", resp.StatusCode, body)
	}
	flushLedger(t, db) // the settlement commits after the response ends
	u, _ := db.Usage(storage.RecordFilter{})
	if len(u.Records) != 1 || u.Records[0].Charged != 0 {
		t.Fatalf("a refused upstream request must be released: %+v", u.Records)
	}
}

// TestRefusal_TokenInPathIsRedacted: a client that puts its token in the
// URL of an unmetered path does not find it in the error or the log.
func TestRefusal_TokenInPathIsRedacted(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	for _, path := range []string{"/v1/" + h.token, "/p/" + h.token + "/v1/chat/completions"} {
		req, _ := http.NewRequest(http.MethodGet, h.srv.URL+path, nil)
		req.Header.Set("Authorization", "Bearer "+h.token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusForbidden || strings.Contains(string(b), h.token) {
			t.Fatalf("GET %s: %d %s", path, resp.StatusCode, b)
		}
	}
	if strings.Contains(h.logs.String(), h.token) {
		t.Fatal("the token secret is in the log")
	}
}
