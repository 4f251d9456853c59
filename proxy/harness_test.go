package proxy_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
	"github.com/hardcap/hardcap/internal/fakeanthropic"
	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/hardcap/hardcap/internal/testlog"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
	"github.com/rs/zerolog"
)

// realKey is the provider key the proxy must inject. It looks like a real
// key so the secrecy tests search for something realistic.
const realKey = "sk-proj-TESTKEYabcdefghijklmnopqrstuvwxyz0123456789"

// realAnthropicKey is the Anthropic key the proxy must inject.
const realAnthropicKey = "sk-ant-api03-TESTKEYabcdefghijklmnopqrstuvwxyz0123456789"

// harness is a proxy in front of a fake OpenAI, with a database, a project
// and a token.
type harness struct {
	t        testing.TB
	up       *fakeopenai.Server
	ant      *fakeanthropic.Server
	db       *storage.DB
	p        *proxy.Proxy
	srv      *httptest.Server
	token    string
	tokenID  string
	project  string
	logs     *testlog.Buffer
	catalog  *pricing.Catalog
	dbPath   string
	clock    func() time.Time
	keyEnvOK bool
}

type harnessOptions struct {
	global  budget.Limit
	project budget.Limit
	token   budget.Limit
	onLow   budget.OnLow
	rpm     int
	models  []string
	now     func() time.Time
	noSync  bool
	// ledger wraps the database's ledger, when set.
	ledger func(budget.Ledger) budget.Ledger
	// timeout is the upstream timeout; zero is the default.
	timeout time.Duration
	// providers, when set, changes the providers before the proxy starts.
	providers func([]*proxy.Provider) []*proxy.Provider
	// settleRetry and settleRetryMax set the settlement retry backoff.
	settleRetry, settleRetryMax time.Duration
	// auth wraps the database's authenticator, when set (to give the
	// token scopes, say).
	auth func(tokens.Authenticator) tokens.Authenticator
	// trusted are the proxy's trusted proxies.
	trusted []netip.Prefix
	// observer is the proxy's Observer, when set.
	observer proxy.Observer
}

func ledgerOrDB(wrap func(budget.Ledger) budget.Ledger, db *storage.DB) budget.Ledger {
	if wrap == nil {
		return db
	}
	return wrap(db)
}

var (
	catalogOnce sync.Once
	catalog     *pricing.Catalog
	catalogErr  error
)

func embeddedCatalog(t testing.TB) *pricing.Catalog {
	t.Helper()
	catalogOnce.Do(func() { catalog, catalogErr = pricing.Embedded() })
	if catalogErr != nil {
		t.Fatal(catalogErr)
	}
	return catalog
}

func newHarness(t testing.TB, o harnessOptions) *harness {
	t.Helper()
	h := &harness{t: t, project: "web", logs: &testlog.Buffer{}, catalog: embeddedCatalog(t)}
	h.up = fakeopenai.New(t, fakeopenai.Options{APIKey: realKey})
	h.ant = fakeanthropic.New(t, fakeanthropic.Options{APIKey: realAnthropicKey})
	h.dbPath = filepath.Join(t.TempDir(), "hardcap.db")
	var err error
	h.db, err = storage.Open(h.dbPath, storage.Options{Global: o.global, OnLow: o.onLow, Now: o.now, NoSync: o.noSync})
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("HARDCAP_TEST_OPENAI_KEY", realKey)
	key, err := proxy.ParseKeySource("env:HARDCAP_TEST_OPENAI_KEY")
	if err != nil {
		t.Fatal(err)
	}
	base, _ := url.Parse(h.up.URL())
	t.Setenv("HARDCAP_TEST_ANTHROPIC_KEY", realAnthropicKey)
	antKey, err := proxy.ParseKeySource("env:HARDCAP_TEST_ANTHROPIC_KEY")
	if err != nil {
		t.Fatal(err)
	}
	antBase, _ := url.Parse(h.ant.URL())
	log := zerolog.New(h.logs).Level(zerolog.DebugLevel)
	provs := []*proxy.Provider{
		{Name: "openai", Kind: proxy.KindOpenAI, BaseURL: base, Key: key, Prices: "openai"},
		// An OpenAI-compatible provider that reads max_tokens and allows
		// one extra parameter.
		{Name: "compat", Kind: proxy.KindOpenAI, BaseURL: base, Key: key, Prices: "openai", CapField: "max_tokens", ExtraParams: map[string]bool{"top_k": true}},
		{Name: "anthropic", Kind: proxy.KindAnthropic, BaseURL: antBase, Key: antKey, Prices: "anthropic"},
		// A second Anthropic-kind provider under /p/claude/.
		{Name: "claude", Kind: proxy.KindAnthropic, BaseURL: antBase, Key: antKey, Prices: "anthropic"},
	}
	if o.providers != nil {
		provs = o.providers(provs)
	}
	var auth tokens.Authenticator = h.db
	if o.auth != nil {
		auth = o.auth(h.db)
	}
	h.p = proxy.New(proxy.Options{
		Providers:       provs,
		Tokens:          auth,
		TrustedProxies:  o.trusted,
		Ledger:          ledgerOrDB(o.ledger, h.db),
		Prices:          h.catalog,
		Log:             log,
		Now:             o.now,
		UpstreamTimeout: o.timeout,
		SettleRetry:     o.settleRetry,
		SettleRetryMax:  o.settleRetryMax,
		Observer:        o.observer,
	})
	h.srv = httptest.NewServer(h.p)
	t.Cleanup(func() {
		h.srv.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := h.p.Wait(ctx); err != nil {
			t.Errorf("requests still unsettled at the end of the test: %v", err)
		}
		h.db.Close()
	})
	ctx := context.Background()
	if _, err := h.db.CreateProject(ctx, h.project, o.project); err != nil {
		t.Fatal(err)
	}
	tok, secret, err := h.db.CreateToken(ctx, storage.TokenSpec{Project: h.project, Limit: o.token, RPM: o.rpm, Models: o.models})
	if err != nil {
		t.Fatal(err)
	}
	h.token, h.tokenID = secret, tok.ID
	return h
}

// post sends a JSON body to a data-plane path with the token.
func (h *harness) post(path, body string) *http.Response {
	h.t.Helper()
	req, err := http.NewRequest(http.MethodPost, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp
}

func readAll(t testing.TB, resp *http.Response) string {
	t.Helper()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// flushLedger waits for the settlements queued in db: a response ends
// before its settlement commits (see storage.DB.SettleAsync), so a test that
// reads usage or spend right after a response flushes first.
func flushLedger(t testing.TB, db *storage.DB) {
	t.Helper()
	if err := db.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// records waits until n usage records exist and returns them. A request
// whose client went away may still be settling after its response ended,
// so it polls; each poll flushes the settlements queued so far.
func (h *harness) records(n int) []budget.Record {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		flushLedger(h.t, h.db)
		u, err := h.db.Usage(storage.RecordFilter{})
		if err != nil {
			h.t.Fatal(err)
		}
		if len(u.Records) >= n {
			return u.Records
		}
		if time.Now().After(deadline) {
			h.t.Fatalf("got %d usage records, want %d", len(u.Records), n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// price computes a charge by hand: tokens times USD per million tokens.
// Rates are integers in nano-USD per million tokens, so this is exact.
func price(t testing.TB, prompt, completion int64, inUSDPerMTok, outUSDPerMTok string) budget.Money {
	t.Helper()
	in, err := pricing.ParseRate(inUSDPerMTok)
	if err != nil {
		t.Fatal(err)
	}
	out, err := pricing.ParseRate(outUSDPerMTok)
	if err != nil {
		t.Fatal(err)
	}
	m, err := budget.Cost(budget.TokenCharge{Tokens: prompt, Rate: in}, budget.TokenCharge{Tokens: completion, Rate: out})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// apiError decodes an OpenAI-shaped error body.
func apiError(t testing.TB, body string) (code, typ, msg string) {
	t.Helper()
	var e struct {
		Error struct {
			Code    string `json:"code"`
			Type    string `json:"type"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal([]byte(body), &e); err != nil {
		t.Fatalf("error body is not OpenAI-shaped JSON: %v: %s", err, body)
	}
	return e.Error.Code, e.Error.Type, e.Error.Message
}

func proxyCutProject(name string) proxy.CutTarget { return proxy.CutTarget{Project: name} }

func decode(t testing.TB, s string, v any) {
	t.Helper()
	if err := json.Unmarshal([]byte(s), v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, s)
	}
}

func errorsAs(err error, target any) bool { return errors.As(err, target) }

// sampleBudget checks committed + reserved of a scope's budget against
// limit, as often as it can, until the returned stop is called; stop
// reports how many samples were taken and how many were over the limit.
func (h *harness) sampleBudget(scope budget.Scope, limit budget.Money) (stop func() (samples, violations int64)) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var n, over int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-done:
				return
			default:
			}
			bs, err := h.db.BudgetStatus(scope)
			if err != nil {
				h.t.Error(err)
				return
			}
			n++
			if bs.Committed+bs.Reserved > limit {
				over++
			}
		}
	}()
	return func() (int64, int64) {
		close(done)
		wg.Wait()
		return n, over
	}
}

func budgetOf(nano int64) budget.Money { return budget.Money(nano) }

func budgetLimit(nano int64) budget.Limit { return budget.Limit{Amount: budget.Money(nano)} }
