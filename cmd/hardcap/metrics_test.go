package main

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testMetricsToken = "metrics-scrape-token-0123456789"

// scrapeMetrics gets /metrics with auth as the Authorization header ("" for
// none) and returns the status and body.
func scrapeMetrics(t *testing.T, s *server, method, auth string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(method, s.url+"/metrics", nil)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	return resp.StatusCode, string(b)
}

// TestServe_Metrics: after a request, /metrics with the admin token or the
// metrics_token shows the request, the project's spend and budget and the
// ledger's writer; without a token, or with a token of the data plane, it
// is 401, and another method is 405, never the data plane's refusal; no
// provider key, token secret, admin token, metrics token or webhook URL or
// secret is in the scrape.
func TestServe_Metrics(t *testing.T) {
	useFakeNotifier(t)
	t.Setenv("HARDCAP_TEST_HOOK_URL", testWebhookURL)
	t.Setenv("HARDCAP_TEST_HOOK_SECRET", testWebhookSecret)
	t.Setenv("HARDCAP_TEST_METRICS_TOKEN", testMetricsToken)
	s := startServer(t, `
metrics_token: env:HARDCAP_TEST_METRICS_TOKEN
alerts:
  webhooks:
    - {name: ops, url: env:HARDCAP_TEST_HOOK_URL, secret: env:HARDCAP_TEST_HOOK_SECRET}
`)
	token := s.newToken("web")
	if code, body := chat(t, s.url, token, hello); code != http.StatusOK {
		t.Fatalf("chat: got %d: %s", code, body)
	}
	if code, _ := chat(t, s.url, "hc_not-a-real-token", hello); code != http.StatusUnauthorized {
		t.Fatalf("chat with a bad token: got %d, want 401", code)
	}
	b, err := os.ReadFile(filepath.Join(s.dataDir, "admin.token"))
	if err != nil {
		t.Fatal(err)
	}
	admin := strings.TrimSpace(string(b))

	// The settlement is written asynchronously: wait until it is counted.
	var body string
	waitFor(t, "the request in /metrics", func() bool {
		var code int
		code, body = scrapeMetrics(t, s, http.MethodGet, "Bearer "+admin)
		return code == http.StatusOK && strings.Contains(body, "hardcap_requests_total{")
	})
	for _, want := range []string{
		`hardcap_requests_total{model="gpt-4o-mini",outcome="complete",provider="openai",route=`,
		`hardcap_refusals_total{code="invalid_api_key"} 1`,
		`hardcap_spent_usd{project="web"} `,
		`hardcap_budget_limit_usd{scope="project:web"} 1`,
		`hardcap_budget_remaining_usd{scope="project:web"} `,
		`hardcap_reservations_open 0`,
		`hardcap_overshoots_total 0`,
		`hardcap_settlements_waiting 0`,
		`hardcap_alerts_waiting `,
		`hardcap_ledger_commit_seconds_bucket{le="0.001"} `,
		`hardcap_upstream_first_byte_seconds_count{provider="openai"} 1`,
		`hardcap_request_duration_seconds_count{provider="openai"} 1`,
		`go_goroutines `,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("the scrape has no %q", want)
		}
	}
	if strings.Contains(body, `hardcap_spent_usd{project="web"} 0`+"\n") {
		t.Error("the project's spend is 0 after a request")
	}
	for name, secret := range map[string]string{
		"provider key": fakeKey, "token secret": token, "admin token": admin, "metrics token": testMetricsToken,
		"webhook URL": testWebhookURL, "webhook secret": testWebhookSecret, "token id": s.tokenID("web"),
	} {
		if strings.Contains(body, secret) {
			t.Errorf("the scrape holds the %s", name)
		}
	}

	if code, _ := scrapeMetrics(t, s, http.MethodGet, "Bearer "+testMetricsToken); code != http.StatusOK {
		t.Errorf("with the metrics_token: got %d, want 200", code)
	}
	for _, tt := range []struct {
		name, method, auth string
		want               int
	}{
		{"no token", http.MethodGet, "", http.StatusUnauthorized},
		{"a data-plane token", http.MethodGet, "Bearer " + token, http.StatusUnauthorized},
		{"a wrong token", http.MethodGet, "Bearer " + admin + "0", http.StatusUnauthorized},
		{"a POST", http.MethodPost, "Bearer " + admin, http.StatusMethodNotAllowed},
	} {
		code, got := scrapeMetrics(t, s, tt.method, tt.auth)
		if code != tt.want {
			t.Errorf("%s: got %d, want %d: %s", tt.name, code, tt.want, got)
		}
		if strings.Contains(got, "hardcap_") || strings.Contains(got, "not_allowed") {
			t.Errorf("%s: got body %q, want a short refusal", tt.name, got)
		}
	}
}

// TestConfig_MetricsToken: metrics_token is read from its source; one that
// cannot be read or is too short to be safe is refused, and the error never
// quotes the value.
func TestConfig_MetricsToken(t *testing.T) {
	t.Setenv("HARDCAP_TEST_METRICS_TOKEN", testMetricsToken)
	t.Setenv("HARDCAP_TEST_EMPTY", "")
	file := filepath.Join(t.TempDir(), "metrics.token")
	if err := os.WriteFile(file, []byte(testMetricsToken+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, spec, want string
		err              error
	}{
		{"none", "", "", nil},
		{"env", "env:HARDCAP_TEST_METRICS_TOKEN", testMetricsToken, nil},
		{"file", "file:" + file, testMetricsToken, nil},
		{"literal", testMetricsToken, testMetricsToken, nil},
		{"empty variable", "env:HARDCAP_TEST_EMPTY", "", errCredentialSource},
		{"missing file", "file:" + file + ".missing", "", errCredentialSource},
		{"too short", "short-token", "", errShortMetricsToken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := defaultConfig()
			cfg.MetricsToken = tt.spec
			set, err := cfg.check()
			if !errors.Is(err, tt.err) {
				t.Fatalf("got error %v, want %v", err, tt.err)
			}
			if err != nil {
				if !strings.Contains(err.Error(), "metrics_token") || strings.Contains(err.Error(), "short-token") {
					t.Errorf("got error %q, want one naming metrics_token and not its value", err)
				}
				return
			}
			if set.metricsToken != tt.want {
				t.Errorf("got token of %d characters, want %d", len(set.metricsToken), len(tt.want))
			}
		})
	}
}

// TestServe_MetricsListen: metrics_listen serves GET /metrics with no
// token and nothing else (no admin API, no data plane); with
// metrics_per_token the scrape names the token by id, never its secret;
// the main listener still wants a token.
func TestServe_MetricsListen(t *testing.T) {
	s := startServer(t, "metrics_listen: 127.0.0.1:0\nmetrics_per_token: true\n")
	addr := s.main.MetricsAddr()
	if addr == "" || addr == s.main.Addr() {
		t.Fatalf("metrics address %q (main %q)", addr, s.main.Addr())
	}
	token := s.newToken("web")
	if code, body := chat(t, s.url, token, hello); code != http.StatusOK {
		t.Fatalf("chat: got %d: %s", code, body)
	}
	get := func(method, path string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, "http://"+addr+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
		return resp.StatusCode, string(b)
	}
	id := s.tokenID("web")
	var body string
	waitFor(t, "the token's request on metrics_listen", func() bool {
		var code int
		code, body = get(http.MethodGet, "/metrics")
		return code == http.StatusOK && strings.Contains(body, `hardcap_token_requests_total{outcome="complete",project="web",token="`+id+`"} 1`)
	})
	for _, want := range []string{`hardcap_token_spent_usd{project="web",token="` + id + `"} `, `hardcap_spent_usd{project="web"} `} {
		if !strings.Contains(body, want) {
			t.Errorf("the scrape has no %q", want)
		}
	}
	if strings.Contains(body, token) || strings.Contains(body, fakeKey) {
		t.Error("the scrape holds a token secret or the provider key")
	}
	for _, tt := range []struct {
		method, path string
		want         int
	}{
		{http.MethodPost, "/metrics", http.StatusMethodNotAllowed},
		{http.MethodGet, "/admin/v1/projects", http.StatusNotFound},
		{http.MethodPost, "/v1/chat/completions", http.StatusNotFound},
	} {
		if code, got := get(tt.method, tt.path); code != tt.want {
			t.Errorf("%s %s on metrics_listen: got %d, want %d: %s", tt.method, tt.path, code, tt.want, got)
		}
	}
	if code, _ := scrapeMetrics(t, s, http.MethodGet, ""); code != http.StatusUnauthorized {
		t.Errorf("/metrics on the main listener without a token: got %d, want 401", code)
	}
}

// TestConfig_MetricsListen: bad metrics_listen values are refused with
// the key named.
func TestConfig_MetricsListen(t *testing.T) {
	for _, tt := range []struct{ addr, listen string }{
		{"9090", "127.0.0.1:8080"},
		{"127.0.0.1:", "127.0.0.1:8080"},
		{"metrics.example:9090", "127.0.0.1:8080"},
		{"127.0.0.1:8080", "127.0.0.1:8080"},
	} {
		err := checkMetricsListen(tt.addr, tt.listen)
		if err == nil || !strings.Contains(err.Error(), "metrics_listen") {
			t.Errorf("metrics_listen %q (listen %q): got %v, want an error naming metrics_listen", tt.addr, tt.listen, err)
		}
	}
	for _, ok := range []string{"", "127.0.0.1:9090", "[::1]:9090", ":9090", "localhost:9090"} {
		if err := checkMetricsListen(ok, "127.0.0.1:8080"); err != nil {
			t.Errorf("metrics_listen %q: %v", ok, err)
		}
	}
}
