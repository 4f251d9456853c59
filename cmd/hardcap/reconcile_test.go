package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/fakeanthropic"
	"github.com/hardcap/hardcap/internal/fakecosts"
	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/hardcap/hardcap/internal/testlog"
)

const (
	openAIAdminKey    = "sk-admin-FAKEopenaiADMINforreconcile0123456789abcdef"
	anthropicAdminKey = "sk-ant-admin01-FAKEanthropicADMINforreconcile0123456789"
	fakeAnthropicKey  = "sk-ant-api03-FAKEanthropicAPIkeyforcmdtests0123456789"
)

// reconcileEnv is a hardcap server in front of fake OpenAI and Anthropic
// upstreams, a fake of both cost reports, and the CLI's config, which
// points the same providers at the cost reports with admin keys.
type reconcileEnv struct {
	t      *testing.T
	s      *server
	costs  *fakecosts.Server
	config string
	token  string
}

func startReconcile(t *testing.T) *reconcileEnv {
	t.Helper()
	t.Setenv("HARDCAP_TEST_FAKE_KEY", fakeKey)
	t.Setenv("HARDCAP_TEST_FAKE_ANTHROPIC_KEY", fakeAnthropicKey)
	t.Setenv("HARDCAP_TEST_OPENAI_ADMIN", openAIAdminKey)
	t.Setenv("HARDCAP_TEST_ANTHROPIC_ADMIN", anthropicAdminKey)
	t.Setenv("HARDCAP_ADMIN_TOKEN", "")
	t.Setenv("HARDCAP_CONFIG", "")
	up := fakeopenai.New(t, fakeopenai.Options{APIKey: fakeKey})
	ant := fakeanthropic.New(t, fakeanthropic.Options{APIKey: fakeAnthropicKey})
	e := &reconcileEnv{t: t, costs: fakecosts.New(t, fakecosts.Options{OpenAIKey: openAIAdminKey, AnthropicKey: anthropicAdminKey})}
	dir := t.TempDir()
	// groq is an OpenAI-compatible provider priced as openai, with no
	// admin key: its records must not count as openai's, and reconcile
	// skips it.
	providers := func(openai, anthropic, adminKeys string) string {
		oa, an := "", ""
		if adminKeys != "" {
			oa, an = "\n    admin_key: env:HARDCAP_TEST_OPENAI_ADMIN", "\n    admin_key: env:HARDCAP_TEST_ANTHROPIC_ADMIN"
		}
		return fmt.Sprintf(`listen: 127.0.0.1:0
providers:
  openai:
    base_url: %s
    api_key: env:HARDCAP_TEST_FAKE_KEY%s
  anthropic:
    base_url: %s
    api_key: env:HARDCAP_TEST_FAKE_ANTHROPIC_KEY%s
  groq:
    kind: openai
    base_url: %s
    api_key: env:HARDCAP_TEST_FAKE_KEY
    prices: openai
log:
  level: debug
  format: json
`, openai, oa, anthropic, an, up.URL())
	}
	serverConfig := filepath.Join(dir, "server.yaml")
	e.config = filepath.Join(dir, "hardcap.yaml")
	for path, text := range map[string]string{
		serverConfig: providers(up.URL(), ant.URL(), ""),
		e.config:     providers(e.costs.OpenAIBaseURL(), e.costs.URL(), "yes"),
	} {
		if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg, err := loadConfig(serverConfig)
	if err != nil {
		t.Fatal(err)
	}
	s := &server{t: t, up: up, dataDir: t.TempDir(), logs: &testlog.Buffer{}}
	s.main = &Main{Config: cfg, DataDir: s.dataDir, LogOutput: s.logs}
	if err := s.main.Open(); err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + s.main.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() { s.done <- s.main.Run(ctx) }()
	t.Cleanup(s.stop)
	e.s = s

	s.mustCLI("project", "create", "web")
	var created struct{ Token string }
	decodeJSON(t, s.mustCLI("token", "create", "--project", "web", "--json"), &created)
	e.token = created.Token
	return e
}

// reconcile runs hardcap reconcile with the CLI's config and returns what
// it printed and its exit code. It fails the test if an admin key shows in
// either stream.
func (e *reconcileEnv) reconcile(args ...string) (stdout, stderr string, code int) {
	e.t.Helper()
	var out, errOut bytes.Buffer
	args = append([]string{"reconcile"}, args...)
	args = append(args, "--server", e.s.url, "--data-dir", e.s.dataDir, "--config", e.config)
	code = run(context.Background(), args, &out, &errOut)
	stdout, stderr = out.String(), errOut.String()
	for _, k := range []string{openAIAdminKey, anthropicAdminKey, "FAKEopenaiADMIN", "FAKEanthropicADMIN"} {
		if strings.Contains(stdout, k) || strings.Contains(stderr, k) {
			e.t.Fatalf("hardcap %s printed (part of) an admin key:\nstdout: %s\nstderr: %s", strings.Join(args, " "), stdout, stderr)
		}
	}
	return stdout, stderr, code
}

// send makes requests through hardcap: openai and groq chat completions
// with gpt-4o, and an Anthropic message with claude-sonnet-4-5.
func (e *reconcileEnv) send() {
	e.t.Helper()
	body := `{"model":"gpt-4o","messages":[{"role":"user","content":"Hello"}]}`
	for _, path := range []string{"/v1", "/v1", "/p/groq/v1"} {
		if code, out := chat(e.t, e.s.url+strings.TrimSuffix(path, "/v1"), e.token, body); code != 200 {
			e.t.Fatalf("chat via %s got %d: %s", path, code, out)
		}
	}
	req, _ := http.NewRequest("POST", e.s.url+"/v1/messages", strings.NewReader(`{"model":"claude-sonnet-4-5","max_tokens":64,"messages":[{"role":"user","content":"Hello, Claude"}]}`))
	req.Header.Set("X-Api-Key", e.token)
	req.Header.Set("Anthropic-Version", "2023-06-01")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		e.t.Fatalf("messages got %d", resp.StatusCode)
	}
}

// booked is what hardcap charged per provider, UTC day and model.
type booked map[[3]string]budget.Money

func (e *reconcileEnv) books() booked {
	e.t.Helper()
	var u struct {
		Records []struct {
			Time     time.Time    `json:"time"`
			Provider string       `json:"provider"`
			Model    string       `json:"model"`
			Charged  budget.Money `json:"charged_usd"`
		} `json:"records"`
	}
	decodeJSON(e.t, e.s.mustCLI("usage", "--json"), &u)
	b := booked{}
	for _, r := range u.Records {
		if r.Charged <= 0 {
			e.t.Fatalf("a record charged %s; the test needs real charges", r.Charged)
		}
		b[[3]string{r.Provider, r.Time.UTC().Format(time.DateOnly), r.Model}] += r.Charged
	}
	return b
}

// report fills the fake cost reports with what hardcap booked, plus
// extra nano-USD on gpt-4o, split into snapshot-named line items as the
// providers bill them.
func (e *reconcileEnv) report(b booked, extra budget.Money) {
	e.t.Helper()
	e.costs.Reset()
	for k, m := range b {
		provider, dayS, model := k[0], k[1], k[2]
		day, _ := time.Parse(time.DateOnly, dayS)
		switch provider {
		case "openai":
			if model != "gpt-4o" {
				e.t.Fatalf("unexpected model %s", model)
			}
			m += extra
			in := m / 3
			e.costs.AddOpenAI(
				fakecosts.OpenAICost{Day: day, LineItem: "gpt-4o-2024-08-06, input", USD: in.String()},
				fakecosts.OpenAICost{Day: day, LineItem: "gpt-4o-2024-08-06, output", USD: (m - in).String()},
			)
		case "anthropic":
			in := m / 4
			e.costs.AddAnthropic(
				fakecosts.AnthropicCost{Day: day, Model: "claude-sonnet-4-5-20250929", TokenType: "uncached_input_tokens", Cents: cents(in)},
				fakecosts.AnthropicCost{Day: day, Model: "claude-sonnet-4-5-20250929", TokenType: "output_tokens", Cents: cents(m - in)},
			)
		}
	}
	// Three days ago: costs hardcap never saw, below USD 0.01, so no drift;
	// they sit on an earlier page of the report.
	old := time.Now().UTC().Add(-3 * 24 * time.Hour)
	e.costs.AddOpenAI(fakecosts.OpenAICost{Day: old, LineItem: "web search tool calls", USD: "0.005"})
	e.costs.AddAnthropic(fakecosts.AnthropicCost{Day: old, CostType: "web_search", Cents: "0.5"})
}

// cents writes m (nano-USD) as a decimal string of cents, as Anthropic's
// cost report does.
func cents(m budget.Money) string {
	return strings.TrimRight(strings.TrimRight(new(big.Rat).SetFrac64(int64(m), 10_000_000).FloatString(7), "0"), ".")
}

func TestReconcile_EndToEnd(t *testing.T) {
	e := startReconcile(t)
	e.send()
	b := e.books()
	var gpt, claude budget.Money
	for k, m := range b {
		switch {
		case k[0] == "openai":
			gpt += m
		case k[0] == "anthropic":
			claude += m
		}
	}
	if gpt == 0 || claude == 0 {
		t.Fatalf("books %v lack openai or anthropic charges", b)
	}

	t.Run("matches", func(t *testing.T) {
		e.report(b, 0)
		out, errOut, code := e.reconcile()
		if code != 0 {
			t.Fatalf("exit %d, want 0\n%s\n%s", code, out, errOut)
		}
		if strings.Contains(out, "NOTE") || strings.Contains(out, "!") {
			t.Fatalf("a drift note without drift:\n%s", out)
		}
		for _, want := range []string{
			"groq: skipped, no providers.groq.admin_key",
			"web search tool calls", "web_search",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		for model, want := range map[string]budget.Money{"gpt-4o": gpt, "claude-sonnet-4-5": claude} {
			row := tableRow(t, out, model)
			if row[2] != want.String() || row[3] != want.String() || row[4] != "0.000000" {
				t.Errorf("%s row %q, want provider and hardcap %s, difference 0", model, row, want)
			}
		}
		if strings.Contains(out, "gpt-4o-2024-08-06") {
			t.Errorf("the snapshot name was not grouped under gpt-4o:\n%s", out)
		}
	})

	t.Run("paging and query", func(t *testing.T) {
		calls := e.costs.Calls()
		var oa, an []fakecosts.Call
		for _, c := range calls {
			switch c.Path {
			case fakecosts.OpenAIPath:
				oa = append(oa, c)
			case fakecosts.AnthropicPath:
				an = append(an, c)
			}
			if c.Status != 200 {
				t.Fatalf("call %+v not answered 200", c)
			}
		}
		// 30 days back plus today: 31 buckets, 2 a page.
		if len(oa) != 16 || len(an) != 16 {
			t.Fatalf("got %d OpenAI and %d Anthropic pages, want 16 each", len(oa), len(an))
		}
		start := time.Now().UTC().Add(-30 * 24 * time.Hour).Truncate(24 * time.Hour)
		q := oa[0].Query
		if q.Get("start_time") != fmt.Sprint(start.Unix()) || q.Get("bucket_width") != "1d" || q.Get("group_by") != "line_item" || q.Get("limit") != "180" || q.Has("page") {
			t.Errorf("first OpenAI query %v", q)
		}
		if oa[1].Query.Get("page") == "" {
			t.Errorf("second OpenAI page has no page cursor: %v", oa[1].Query)
		}
		q = an[0].Query
		if q.Get("starting_at") != start.Format(time.RFC3339) || q.Get("group_by[]") != "description" || q.Get("limit") != "31" {
			t.Errorf("first Anthropic query %v", q)
		}
	})

	t.Run("json", func(t *testing.T) {
		e.report(b, 0)
		out, errOut, code := e.reconcile("--json", "--provider", "openai", "--since", "7d")
		if code != 0 {
			t.Fatalf("exit %d\n%s\n%s", code, out, errOut)
		}
		var rep struct {
			Start     time.Time
			End       time.Time
			Drift     *bool
			Providers []struct {
				Provider, Kind, Prices string
				Drift                  bool
				Rows                   []struct {
					Day, Model    string
					ProviderNames []string `json:"provider_names"`
					HardcapNames  []string `json:"hardcap_names"`
					ProviderUSD   string   `json:"provider_usd"`
					HardcapUSD    string   `json:"hardcap_usd"`
					DifferenceUSD string   `json:"difference_usd"`
					Requests      int64
					RowDrift      bool `json:"drift"`
				}
				Total struct {
					ProviderUSD   string `json:"provider_usd"`
					HardcapUSD    string `json:"hardcap_usd"`
					DifferenceUSD string `json:"difference_usd"`
					Requests      int64
				}
			}
		}
		decodeJSON(t, out, &rep)
		if rep.Drift == nil || *rep.Drift || len(rep.Providers) != 1 || rep.Providers[0].Provider != "openai" || rep.Providers[0].Kind != "openai" {
			t.Fatalf("report %+v", rep)
		}
		if d := rep.End.Sub(rep.Start); d != 8*24*time.Hour || rep.Start.Location() != time.UTC || rep.Start.Hour() != 0 {
			t.Fatalf("window %s to %s, want 7 whole UTC days plus today", rep.Start, rep.End)
		}
		p := rep.Providers[0]
		var found bool
		for _, r := range p.Rows {
			if r.Model == "gpt-4o" {
				found = true
				if !slices.Equal(r.ProviderNames, []string{"gpt-4o-2024-08-06"}) || !slices.Equal(r.HardcapNames, []string{"gpt-4o"}) ||
					r.Requests != 2 || r.DifferenceUSD != "0.000000" || r.ProviderUSD != r.HardcapUSD || r.RowDrift {
					t.Errorf("gpt-4o row %+v", r)
				}
			}
		}
		if !found {
			t.Fatalf("no gpt-4o row in %+v", p.Rows)
		}
		if want := (gpt + 5_000_000).String(); p.Total.ProviderUSD != want || p.Total.HardcapUSD != gpt.String() || p.Total.DifferenceUSD != "0.005000" || p.Total.Requests != 2 {
			t.Errorf("total %+v, want provider %s, hardcap %s (groq's request not counted)", p.Total, want, gpt)
		}
	})

	t.Run("drift", func(t *testing.T) {
		e.report(b, 500_000_000) // the provider bills USD 0.50 more for gpt-4o
		out, errOut, code := e.reconcile()
		if code != 1 {
			t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
		}
		if row := tableRow(t, out, "gpt-4o"); len(row) != 6 || row[5] != "!" {
			t.Errorf("the gpt-4o row %q is not marked", row)
		}
		for _, want := range []string{"NOTE: openai's cost report is above hardcap's books", "hardcap prices check", "rotate it at the provider"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q:\n%s", want, out)
			}
		}
		if strings.Contains(out, "NOTE: anthropic") {
			t.Errorf("anthropic matches but has a note:\n%s", out)
		}
		if !strings.Contains(errOut, "above hardcap's books") {
			t.Errorf("stderr %q does not say why the exit is 1", errOut)
		}
		jsonOut, _, code := e.reconcile("--json")
		if code != 1 || !strings.Contains(jsonOut, `"drift": true`) || !strings.Contains(jsonOut, `"difference_usd": "0.505000"`) {
			t.Errorf("--json exit %d:\n%s", code, jsonOut)
		}
	})

	t.Run("excess below a cent", func(t *testing.T) {
		e.report(b, 4_000_000) // with the old USD 0.005, USD 0.009 in all
		if out, errOut, code := e.reconcile("--provider", "openai"); code != 0 || strings.Contains(out, "NOTE") {
			t.Fatalf("exit %d, want 0 without a note\n%s\n%s", code, out, errOut)
		}
	})

	t.Run("provider without admin_key", func(t *testing.T) {
		out, errOut, code := e.reconcile("--provider", "groq")
		if code != 1 || !strings.Contains(errOut, "providers.groq.admin_key is not set") || out != "" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errOut)
		}
		if _, errOut, code := e.reconcile("--provider", "mistral"); code != 2 || !strings.Contains(errOut, `no provider "mistral"`) {
			t.Fatalf("unknown provider: exit %d, stderr %q", code, errOut)
		}
		if _, errOut, code := e.reconcile("--since", "soon"); code != 2 {
			t.Fatalf("bad --since: exit %d, stderr %q", code, errOut)
		}
	})

	t.Run("provider errors", func(t *testing.T) {
		tests := []struct {
			name    string
			failure fakecosts.Failure
			args    []string
			want    []string
		}{
			{"echoes the key", fakecosts.Failure{Status: 403, EchoKey: true}, nil, []string{"openai: cost report: the provider answered 403 Forbidden", "anthropic: cost report: the provider answered 403", "[admin key]"}},
			{"server error", fakecosts.Failure{Status: 500}, []string{"--provider", "anthropic"}, []string{"answered 500", "the cost report is unavailable"}},
			{"after a page", fakecosts.Failure{Status: 529, EchoKey: true, AfterPages: 3}, []string{"--provider", "openai"}, []string{"answered 529"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				e.report(b, 0)
				e.costs.SetFailure(tt.failure)
				out, errOut, code := e.reconcile(tt.args...)
				if code != 1 {
					t.Fatalf("exit %d, want 1\n%s\n%s", code, out, errOut)
				}
				for _, want := range tt.want {
					if !strings.Contains(errOut, want) {
						t.Errorf("stderr lacks %q: %s", want, errOut)
					}
				}
				_, _, code = e.reconcile(append(tt.args, "--json")...)
				if code != 1 {
					t.Errorf("--json exit %d, want 1", code)
				}
			})
		}
	})

	t.Run("wrong admin key", func(t *testing.T) {
		e.report(b, 0)
		t.Setenv("HARDCAP_TEST_OPENAI_ADMIN", "sk-admin-FAKEwrongADMINkey0123456789")
		_, errOut, code := e.reconcile("--provider", "openai")
		if code != 1 || !strings.Contains(errOut, "answered 401") || strings.Contains(errOut, "FAKEwrong") {
			t.Fatalf("exit %d, stderr %q", code, errOut)
		}
		t.Setenv("HARDCAP_TEST_OPENAI_ADMIN", "")
		if _, errOut, code := e.reconcile("--provider", "openai"); code != 1 || !strings.Contains(errOut, "admin_key") {
			t.Fatalf("unset key: exit %d, stderr %q", code, errOut)
		}
	})

	if logs := e.s.logs.String(); strings.Contains(logs, "FAKEopenaiADMIN") || strings.Contains(logs, "FAKEanthropicADMIN") {
		t.Fatal("the server log carries an admin key")
	}
}

func TestReconcile_ServerDown(t *testing.T) {
	t.Setenv("HARDCAP_TEST_OPENAI_ADMIN", openAIAdminKey)
	t.Setenv("HARDCAP_ADMIN_TOKEN", "hcadmin_test")
	costs := fakecosts.New(t, fakecosts.Options{OpenAIKey: openAIAdminKey, AnthropicKey: anthropicAdminKey})
	path := filepath.Join(t.TempDir(), "hardcap.yaml")
	cfg := fmt.Sprintf("providers:\n  openai:\n    base_url: %s\n    api_key: env:HARDCAP_TEST_OPENAI_ADMIN\n    admin_key: env:HARDCAP_TEST_OPENAI_ADMIN\n", costs.OpenAIBaseURL())
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var out, errOut bytes.Buffer
	code := run(t.Context(), []string{"reconcile", "--config", path, "--server", "http://127.0.0.1:1"}, &out, &errOut)
	if code != 1 || !strings.Contains(errOut.String(), "is `hardcap serve` running?") {
		t.Fatalf("exit %d, stderr %q", code, errOut.String())
	}
	if len(costs.Calls()) != 0 {
		t.Fatal("the admin key was used although hardcap's books could not be read")
	}
}

func TestReconcile_RefusesPlainHTTP(t *testing.T) {
	pc := ProviderConfig{BaseURL: "http://api.example.com/v1", APIKey: "env:X", AdminKey: "env:X"}
	r := &reconciler{}
	p := &reconcileProvider{Provider: "openai", Kind: "openai", Prices: "openai"}
	err := r.compare(t.Context(), pc, p, time.Now(), time.Now())
	if err == nil || !strings.Contains(err.Error(), "only sent over https") {
		t.Fatalf("got %v, want a refusal to send the admin key in clear", err)
	}
}

func TestDecimalMoney(t *testing.T) {
	tests := []struct {
		in     string
		perUSD int64
		want   budget.Money
		err    bool
	}{
		{"0.06", 1, 60_000_000, false},
		{"1", 1, 1_000_000_000, false},
		{"0.0000000015", 1, 2, false},  // half a nano-USD rounds up
		{"0.0000000014", 1, 1, false},  // below half rounds down
		{"0.00000000149", 1, 1, false}, // no double rounding
		{"1.5e-7", 1, 150, false},
		{"2E+2", 1, 200_000_000_000, false},
		{"-0.25", 1, -250_000_000, false}, // a credit
		{"-0.0000000005", 1, 0, false},    // half up is toward +inf
		{"123.45", 100, 1_234_500_000, false},
		{"0.00000005", 100, 1, false}, // half a nano-USD in cents
		{"0.5", 100, 5_000_000, false},
		{"9223372036.854775807", 1, budget.MaxMoney, false},
		{"9223372036.854775808", 1, 0, true},
		{"1e999", 1, 0, true},
		{"1e1000", 1, 0, true}, // exponent too long to accept
		{"1/3", 1, 0, true},
		{"", 1, 0, true},
		{"0x10", 1, 0, true},
		{"1.", 1, 0, true},
		{".5", 1, 0, true},
		{"NaN", 1, 0, true},
		{" 1", 1, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := decimalMoney(tt.in, tt.perUSD)
			if (err != nil) != tt.err || got != tt.want {
				t.Fatalf("decimalMoney(%q, %d) = %d, %v; want %d (error %v)", tt.in, tt.perUSD, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestDrifts(t *testing.T) {
	const cent = budget.Money(10_000_000)
	tests := []struct {
		name              string
		provider, hardcap budget.Money
		want              bool
	}{
		{"equal", 5 * cent, 5 * cent, false},
		{"provider below", 1 * cent, 500 * cent, false},
		{"a cent over on nothing", cent, 0, false},
		{"over a cent on nothing", cent + 1, 0, true},
		{"over a cent but under 1 %", 1000*cent + 2*cent, 1000 * cent, false},
		{"exactly 1 %", 1010 * cent, 1000 * cent, false},
		{"just over 1 %", 1010*cent + 1, 1000 * cent, true},
		{"over 1 % but under a cent", cent, cent / 2, false},
		{"huge books, 0.5 % over", budget.MaxMoney, budget.MaxMoney - budget.MaxMoney/200, false},
		{"huge books, 1.01 % over", budget.MaxMoney, budget.MaxMoney - budget.MaxMoney/100, true},
		{"huge excess", budget.MaxMoney, 0, true},
		{"credit", -5 * cent, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := drifts(tt.provider, tt.hardcap); got != tt.want {
				t.Fatalf("drifts(%s, %s) = %v, want %v", tt.provider, tt.hardcap, got, tt.want)
			}
		})
	}
}

func TestCostExcerpt_ScrubsKeys(t *testing.T) {
	const key = "sk-admin-ABCDEFGHIJKLMNOP0123456789"
	a := costAPI{key: key}
	tests := []struct {
		name, body string
		want       string
	}{
		{"plain", "not found", "not found"},
		{"the key", `{"error":{"message":"bad key ` + key + `"}}`, `{"error":{"message":"bad key [admin key]"}}`},
		{"escaped", "key=" + strings.ReplaceAll(key, "-", "%2D"), "key=sk%2Dadmin%2D[admin key]"},
		{"another key", "also sk-proj-ZZZZZZZZZZZZ99999999", "also [redacted]"},
		{"an error code", "admin_key_not_found_error", "admin_key_not_found_error"},
		{"lines", "a\n\tb\r\n", "a b"},
		{"empty", "", "(empty body)"},
		{"long", strings.Repeat("x", 400) + key, strings.Repeat("x", costExcerpt) + "..."},
		{"key across the cut", strings.Repeat("x", costExcerpt-5) + key, strings.Repeat("x", costExcerpt-5) + "[admi..."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := a.excerpt([]byte(tt.body))
			if got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			if strings.Contains(got, "ABCDEFGH") {
				t.Fatal("the excerpt carries the key")
			}
		})
	}
}

// tableRow returns the fields of the first table line whose model column
// is model.
func tableRow(t *testing.T, out, model string) []string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 5 && f[1] == model {
			return f
		}
	}
	t.Fatalf("no %s row in:\n%s", model, out)
	return nil
}

func TestCostAPI_BadAnswers(t *testing.T) {
	const key = "sk-admin-BADANSWERSkey0123456789abcdef"
	bucket := func(amount string) string {
		return `{"object":"bucket","start_time":1764547200,"end_time":1764633600,"results":[{"object":"organization.costs.result","amount":{"value":` + amount + `,"currency":"usd"},"line_item":"gpt-4o, input","project_id":null}]}`
	}
	page := func(data, more string) string {
		return `{"object":"page","data":[` + data + `],"has_more":` + more + `}`
	}
	var leaked []string
	tests := []struct {
		name   string
		handle func(w http.ResponseWriter, r *http.Request)
		want   string // in the error; "" for success
	}{
		{"ok", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, page(bucket("0.5"), "false")) }, ""},
		{"not json", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>"+key) }, "not JSON"},
		{"wrong shape", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, `{"data":{"a":1}}`) }, "documented shape"},
		{"string amount", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, page(bucket(`"`+key+`"`), "false")) }, "documented shape"},
		{"huge amount", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, page(bucket("1e300"), "false")) }, "out of range"},
		{"euros", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, strings.Replace(page(bucket("1"), "false"), `"usd"`, `"eur"`, 1))
		}, "an amount is in eur"},
		{"currency carrying the key", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, strings.Replace(page(bucket("1"), "false"), `"usd"`, `"`+key+`"`, 1))
		}, "an unknown currency"},
		{"more without a cursor", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, page(bucket("1"), "true")) }, "without a new next_page"},
		{"the same cursor again", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, strings.TrimSuffix(page(bucket("1"), "true"), "}")+`,"next_page":"page_x"}`)
		}, "without a new next_page"},
		{"too large", func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, `{"data":[],"pad":"`)
			io.WriteString(w, strings.Repeat("x", costMaxBody))
			io.WriteString(w, `"}`)
		}, "larger than 16 MiB"},
		{"redirect", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Path == "/elsewhere" {
				leaked = append(leaked, r.Header.Get("Authorization"))
			}
			http.Redirect(w, r, "/elsewhere", http.StatusFound)
		}, "answered 302 Found"},
		{"status text carrying the key", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(418)
			io.WriteString(w, "\n\n  teapot says "+key+"\n")
		}, "answered 418 I'm a teapot: teapot says [admin key]"},
		{"stall", func(w http.ResponseWriter, r *http.Request) { <-r.Context().Done() }, "context deadline exceeded"},
		{"cursor carrying the key", func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("page") != "" {
				<-r.Context().Done()
				return
			}
			io.WriteString(w, strings.TrimSuffix(page(bucket("1"), "true"), "}")+`,"next_page":"`+key+`"}`)
		}, "context deadline exceeded"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(tt.handle))
			defer srv.Close()
			api := costAPI{http: costHTTPClient(), base: srv.URL + "/v1", key: key, timeout: 200 * time.Millisecond}
			if tt.name == "too large" {
				// 16 MiB takes longer than the stalls' short timeout.
				api.timeout = costCallTimeout
			}
			costs, err := api.openAI(t.Context(), time.Unix(1764547200, 0), time.Unix(1764633600, 0))
			if tt.want == "" {
				if err != nil || len(costs) != 1 || costs[0].amount != 500_000_000 || costs[0].name != "gpt-4o" || costs[0].day != "2025-12-01" {
					t.Fatalf("got %+v, %v", costs, err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "BADANSWERS") {
				t.Fatalf("the error carries the key: %v", err)
			}
		})
	}
	if len(leaked) != 0 {
		t.Fatalf("a redirect was followed with the key: %d requests", len(leaked))
	}
}

// With providers.NAME.project set, the OpenAI report is asked for that
// project only, so another project's spend is not drift.
func TestCostAPI_ProjectFilter(t *testing.T) {
	const key = "sk-admin-PROJECTkey0123456789abcdef"
	var got []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = append(got, r.URL.Query()["project_ids"]...)
		io.WriteString(w, `{"object":"page","data":[],"has_more":false}`)
	}))
	defer srv.Close()
	for _, project := range []string{"", "proj_hardcap"} {
		got = nil
		api := costAPI{http: costHTTPClient(), base: srv.URL + "/v1", key: key, timeout: time.Second, project: project}
		if _, err := api.openAI(t.Context(), time.Unix(1764547200, 0), time.Unix(1764633600, 0)); err != nil {
			t.Fatal(err)
		}
		if want := []string{project}; project == "" && len(got) != 0 || project != "" && !slices.Equal(got, want) {
			t.Errorf("project %q: got project_ids %v", project, got)
		}
	}
}
