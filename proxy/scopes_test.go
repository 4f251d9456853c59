package proxy_test

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/fakeanthropic"
	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
)

// scoped is an authenticator that gives every token it authenticates the
// scopes edit sets, as the ledger would once an operator set them.
type scoped struct {
	tokens.Authenticator
	edit func(*tokens.Token)
}

func (s scoped) Authenticate(secret string) (tokens.Token, error) {
	t, err := s.Authenticator.Authenticate(secret)
	if err == nil {
		s.edit(&t)
	}
	return t, err
}

func withScopes(edit func(*tokens.Token)) func(tokens.Authenticator) tokens.Authenticator {
	return func(a tokens.Authenticator) tokens.Authenticator { return scoped{a, edit} }
}

// send makes a request with the harness's token and returns its status and
// body; header holds name, value pairs.
func (h *harness) send(method, path, body string, header ...string) (*http.Response, string) {
	h.t.Helper()
	req, err := http.NewRequest(method, h.srv.URL+path, strings.NewReader(body))
	if err != nil {
		h.t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+h.token)
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Add(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	return resp, readAll(h.t, resp)
}

// nothingReserved fails unless the ledger holds no reservation and no
// record, and upstream received calls calls.
func (h *harness) nothingReserved(calls int) {
	h.t.Helper()
	flushLedger(h.t, h.db)
	st, err := h.db.Status()
	if err != nil {
		h.t.Fatal(err)
	}
	u, err := h.db.Usage(storage.RecordFilter{})
	if err != nil {
		h.t.Fatal(err)
	}
	if st.OpenReservations != 0 || st.Global.Reserved != 0 || len(u.Records) != 0 {
		h.t.Fatalf("open reservations %d, reserved %s, %d records; want nothing", st.OpenReservations, st.Global.Reserved, len(u.Records))
	}
	if n := len(h.up.Calls()) + len(h.ant.Calls()); n != calls {
		h.t.Fatalf("upstream got %d calls, want %d", n, calls)
	}
}

const embedBody = `{"model":"text-embedding-3-small","input":"hello"}`

// TestScope_Routes: a token limited to some routes is refused the others
// with 403 not_allowed, in the calling API's shape, naming the route and
// the routes it may call; nothing is reserved or sent. The routes it may
// call work, the free ones too.
func TestScope_Routes(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true, auth: withScopes(func(t *tokens.Token) {
		t.Routes = []string{"embeddings", "count_tokens"}
	})})
	refused := []struct {
		name, method, path, body string
		header                   []string
		route                    string
	}{
		{"chat", "POST", "/v1/chat/completions", helloBody, nil, "chat (POST /v1/chat/completions)"},
		{"responses", "POST", "/v1/responses", `{"model":"gpt-4o-mini","input":"x","max_output_tokens":20}`, nil, "responses"},
		{"messages", "POST", "/v1/messages", haikuBody, []string{"Anthropic-Version", "2023-06-01"}, "messages"},
		{"models", "GET", "/v1/models", "", nil, "models (GET /v1/models)"},
		{"moderations", "POST", "/v1/moderations", `{"input":"x"}`, nil, "moderations"},
	}
	for _, tt := range refused {
		t.Run(tt.name, func(t *testing.T) {
			resp, body := h.send(tt.method, tt.path, tt.body, tt.header...)
			if resp.StatusCode != http.StatusForbidden {
				t.Fatalf("got %d, want 403: %s", resp.StatusCode, body)
			}
			msg := ""
			if tt.name == "messages" {
				var e struct {
					Type  string
					Error struct{ Type, Message string }
				}
				decode(t, body, &e)
				if e.Type != "error" || e.Error.Type != "not_allowed" {
					t.Fatalf("not Anthropic's shape with not_allowed: %s", body)
				}
				msg = e.Error.Message
			} else {
				code, _, m := apiError(t, body)
				if code != "not_allowed" {
					t.Fatalf("code %q, want not_allowed", code)
				}
				msg = m
			}
			if !strings.Contains(msg, tt.route) || !strings.Contains(msg, "embeddings, count_tokens only") {
				t.Fatalf("message %q does not name %q and the allowed routes", msg, tt.route)
			}
		})
	}
	h.nothingReserved(0)
	if resp, body := h.send("POST", "/v1/embeddings", embedBody); resp.StatusCode != 200 {
		t.Fatalf("embeddings: got %d: %s", resp.StatusCode, body)
	}
	if resp, body := h.send("POST", "/v1/messages/count_tokens", haikuBody, "Anthropic-Version", "2023-06-01"); resp.StatusCode != 200 {
		t.Fatalf("count_tokens: got %d: %s", resp.StatusCode, body)
	}
}

// TestScope_IPs: a token limited to address ranges is refused from any
// other address (403 not_allowed, naming the ranges), IPv4 and IPv6; an
// X-Forwarded-For counts only from a trusted proxy, and then its address is
// the record's client IP too.
func TestScope_IPs(t *testing.T) {
	loop := []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}
	tests := []struct {
		name    string
		ips     []string
		trusted []netip.Prefix
		xff     string
		status  int
		says    string // in the refusal
		client  string // the record's client IP
	}{
		{"inside the range", []string{"127.0.0.0/8"}, nil, "", 200, "", "127.0.0.1"},
		{"outside the range", []string{"10.0.0.0/8", "2001:db8::/32"}, nil, "", 403, "may be used from 10.0.0.0/8, 2001:db8::/32 only; this request came from 127.0.0.1", ""},
		{"IPv6 range only", []string{"::1/128"}, nil, "", 403, "may be used from ::1/128 only", ""},
		{"a forwarded address is not believed from an untrusted peer", []string{"203.0.113.0/24"}, nil, "203.0.113.5", 403, "came from 127.0.0.1", ""},
		{"a trusted proxy's forwarded address", []string{"203.0.113.0/24"}, loop, "198.51.100.1, 203.0.113.5", 200, "", "203.0.113.5"},
		{"a trusted proxy's forwarded IPv6 address", []string{"2001:db8::/32"}, loop, "2001:db8::42", 200, "", "2001:db8::42"},
		{"a trusted proxy's forwarded address outside the range", []string{"127.0.0.0/8"}, loop, "198.51.100.1", 403, "came from 198.51.100.1", ""},
		{"a malformed header from a trusted proxy: the peer", []string{"127.0.0.0/8"}, loop, "203.0.113.5, bogus", 200, "", "127.0.0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{noSync: true, trusted: tt.trusted, auth: withScopes(func(t *tokens.Token) { t.IPs = tt.ips })})
			var header []string
			if tt.xff != "" {
				header = []string{"X-Forwarded-For", tt.xff}
			}
			resp, body := h.send("POST", "/v1/chat/completions", helloBody, header...)
			if resp.StatusCode != tt.status {
				t.Fatalf("got %d, want %d: %s", resp.StatusCode, tt.status, body)
			}
			if tt.status != 200 {
				if code, _, msg := apiError(t, body); code != "not_allowed" || !strings.Contains(msg, tt.says) {
					t.Fatalf("got %s %q, want not_allowed saying %q", code, msg, tt.says)
				}
				h.nothingReserved(0)
				return
			}
			if rec := h.records(1)[0]; rec.ClientIP != tt.client {
				t.Fatalf("record's client IP %q, want %q", rec.ClientIP, tt.client)
			}
		})
	}
}

// TestScope_MaxRequest: a request whose worst case (before any clamp to
// the budget) is over the token's per-request limit is refused 403
// not_allowed naming the limit in USD, with nothing reserved or sent; one
// under it is served.
func TestScope_MaxRequest(t *testing.T) {
	// gpt-4o-mini's worst case with max_tokens 1000 is over 0.0006 USD
	// (1000 output tokens at 0.6 USD/Mtok) and far below 0.01.
	limit := budget.Money(600_000)
	h := newHarness(t, harnessOptions{noSync: true, onLow: budget.Clamp, token: budgetLimit(400_000), auth: withScopes(func(t *tokens.Token) {
		t.MaxRequest = int64(limit)
	})})
	resp, body := h.send("POST", "/v1/chat/completions", `{"model":"gpt-4o-mini","max_tokens":1000,"messages":[{"role":"user","content":"x"}]}`)
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("got %d, want 403: %s", resp.StatusCode, body)
	}
	if code, _, msg := apiError(t, body); code != "not_allowed" || !strings.Contains(msg, "limit of 0.000600 USD per request") {
		t.Fatalf("got %s %q, want not_allowed naming 0.000600 USD", code, msg)
	}
	h.nothingReserved(0)
	resp, body = h.send("POST", "/v1/chat/completions", `{"model":"gpt-4o-mini","max_tokens":100,"messages":[{"role":"user","content":"x"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("under the limit: got %d: %s", resp.StatusCode, body)
	}
	if rec := h.records(1)[0]; rec.Reserved > limit {
		t.Fatalf("reserved %s, over the per-request limit", rec.Reserved)
	}
}

// waitIdle waits until the token holds no max_concurrent slot: a request
// settles just after its response ends.
func (h *harness) waitIdle(what string) {
	h.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for h.p.Active(h.tokenID) != 0 {
		if time.Now().After(deadline) {
			h.t.Fatalf("after %s the token still holds %d slots", what, h.p.Active(h.tokenID))
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// panicLedger panics inside Reserve once armed.
type panicLedger struct {
	budget.Ledger
	armed *atomic.Bool
}

func (l panicLedger) Reserve(ctx context.Context, r budget.Request, q budget.Quote) (budget.Reservation, error) {
	if l.armed.CompareAndSwap(true, false) {
		panic("reserve failed in a test")
	}
	return l.Ledger.Reserve(ctx, r, q)
}

// TestScope_MaxConcurrent: a token with max_concurrent 1 has one request
// in flight at most; another is refused 429 rate_limited with Retry-After 1
// naming the limit; and no path leaks the slot: refusals of every kind, a
// panic, upstream errors, cut and complete streams, a client that leaves,
// the kill switch, free routes.
func TestScope_MaxConcurrent(t *testing.T) {
	var armed atomic.Bool
	h := newHarness(t, harnessOptions{noSync: true, rpm: 1000, models: []string{"gpt-4o-mini", "claude-haiku-4-5", "text-embedding-3-small"},
		ledger: func(l budget.Ledger) budget.Ledger { return panicLedger{l, &armed} },
		auth:   withScopes(func(t *tokens.Token) { t.MaxConcurrent = 1 })})
	streamBody := `{"model":"gpt-4o-mini","stream":true,"max_tokens":30,"messages":[{"role":"user","content":"x"}]}`

	// One request in flight (a stalled stream) holds the slot.
	h.up.SetBehavior(fakeopenai.Behavior{StallAfterEvents: 1})
	ctx, cancel := context.WithCancel(context.Background())
	req := mustRequest(t, h, streamBody).WithContext(ctx)
	first, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	if h.p.Active(h.tokenID) != 1 {
		t.Fatalf("a stream in flight holds %d slots, want 1", h.p.Active(h.tokenID))
	}
	resp, body := h.send("POST", "/v1/chat/completions", helloBody)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1" {
		t.Fatalf("second request: got %d, Retry-After %q, want 429 and 1: %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if code, _, msg := apiError(t, body); code != "rate_limited" || !strings.Contains(msg, "at most 1 requests in flight") {
		t.Fatalf("got %s %q, want rate_limited naming the limit", code, msg)
	}
	// The client leaves: the request stays in flight (its metering goes on)
	// until the kill switch cuts it.
	_, _ = io.ReadAll(io.LimitReader(first.Body, 10))
	cancel()
	first.Body.Close()
	if n := h.p.Cut(proxy.CutTarget{TokenID: h.tokenID}); n != 1 {
		t.Fatalf("cut %d requests, want 1", n)
	}
	h.waitIdle("a client that left and a kill")
	h.up.SetBehavior(fakeopenai.Behavior{})

	paths := []struct {
		name  string
		setup func()
		do    func() int
		want  int
	}{
		{"bad JSON", nil, func() int { r, _ := h.send("POST", "/v1/chat/completions", `{`); return r.StatusCode }, 400},
		{"model not allowed", nil, func() int {
			r, _ := h.send("POST", "/v1/chat/completions", `{"model":"gpt-4o","messages":[{"role":"user","content":"x"}]}`)
			return r.StatusCode
		}, 403},
		{"unpriced model", nil, func() int {
			r, _ := h.send("POST", "/v1/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"x"}],"n":0}`)
			return r.StatusCode
		}, 400},
		{"panic in reserve", func() { armed.Store(true) }, func() int {
			req := mustRequest(t, h, helloBody)
			if resp, err := http.DefaultClient.Do(req); err == nil {
				resp.Body.Close()
				return resp.StatusCode
			}
			return 0
		}, 0},
		{"upstream 500", func() { h.up.SetBehavior(fakeopenai.Behavior{Status: 500}) }, func() int {
			r, _ := h.send("POST", "/v1/chat/completions", helloBody)
			return r.StatusCode
		}, 500},
		{"stream cut upstream", func() { h.up.SetBehavior(fakeopenai.Behavior{CutAfterEvents: 2}) }, func() int {
			resp, err := http.DefaultClient.Do(mustRequest(t, h, streamBody))
			if err != nil {
				t.Fatal(err)
			}
			_, _ = readAllErr(resp) // the cut reaches the client
			return resp.StatusCode
		}, 200},
		{"stream to its end", nil, func() int { r, _ := h.send("POST", "/v1/chat/completions", streamBody); return r.StatusCode }, 200},
		{"whole answer", nil, func() int { r, _ := h.send("POST", "/v1/chat/completions", helloBody); return r.StatusCode }, 200},
		{"anthropic stream", func() { h.ant.SetBehavior(fakeanthropic.Behavior{CutAfterEvents: 3}) }, func() int {
			resp := h.postAnthropic("/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"x"}]}`)
			_, _ = readAllErr(resp) // the cut reaches the client
			return resp.StatusCode
		}, 200},
		{"free route", nil, func() int {
			r, _ := h.send("POST", "/v1/messages/count_tokens", haikuBody, "Anthropic-Version", "2023-06-01")
			return r.StatusCode
		}, 200},
		{"free route the fake lacks", nil, func() int { r, _ := h.send("GET", "/v1/models", ""); return r.StatusCode }, 404},
		{"free route refused upstream", func() { h.ant.SetBehavior(fakeanthropic.Behavior{Status: 529}) }, func() int {
			r, _ := h.send("POST", "/v1/messages/count_tokens", haikuBody, "Anthropic-Version", "2023-06-01")
			return r.StatusCode
		}, 529},
	}
	for _, tt := range paths {
		h.up.SetBehavior(fakeopenai.Behavior{})
		h.ant.SetBehavior(fakeanthropic.Behavior{})
		if tt.setup != nil {
			tt.setup()
		}
		if got := tt.do(); got != tt.want {
			t.Fatalf("%s: got %d, want %d", tt.name, got, tt.want)
		}
		h.waitIdle(tt.name)
		// The slot is free: the next request is served.
		h.up.SetBehavior(fakeopenai.Behavior{})
		if resp, body := h.send("POST", "/v1/embeddings", embedBody); resp.StatusCode != 200 {
			t.Fatalf("after %s: got %d: %s", tt.name, resp.StatusCode, body)
		}
		h.waitIdle(tt.name + " and the request after it")
	}
}

// TestScope_RateLimitRefusalFreesTheSlot: a request refused by the
// requests-per-minute limit, which runs after the slot is taken, gives it
// back.
func TestScope_RateLimitRefusalFreesTheSlot(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true, rpm: 1, auth: withScopes(func(t *tokens.Token) { t.MaxConcurrent = 1 })})
	if resp, body := h.send("POST", "/v1/chat/completions", helloBody); resp.StatusCode != 200 {
		t.Fatalf("first: got %d: %s", resp.StatusCode, body)
	}
	h.waitIdle("a request")
	if resp, body := h.send("POST", "/v1/chat/completions", helloBody); resp.StatusCode != 429 || !strings.Contains(body, "rate_limited") {
		t.Fatalf("over the rpm: got %d: %s", resp.StatusCode, body)
	}
	h.waitIdle("an rpm refusal")
}

// TestRecords_UserAgentOldSecretRequestID: a record keeps the client's
// user agent (clipped, printable), whether the token's previous secret was
// used, and the provider's request id (x-request-id, or Anthropic's
// request-id), for answers and for upstream refusals alike.
func TestRecords_UserAgentOldSecretRequestID(t *testing.T) {
	// OpenAI's fake sends no x-request-id: a relay in front of it adds one.
	var h *harness
	relay := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Request-Id", "req_0123456789abcdef0123456789abcdef")
		u, _ := url.Parse(h.up.URL())
		u.Path = ""
		httputil.NewSingleHostReverseProxy(u).ServeHTTP(w, r)
	}))
	defer relay.Close()
	h = newHarness(t, harnessOptions{noSync: true,
		auth: withScopes(func(t *tokens.Token) { t.OldSecret = true }),
		providers: func(ps []*proxy.Provider) []*proxy.Provider {
			base, _ := url.Parse(relay.URL + "/v1")
			ps[0].BaseURL = base
			return ps
		}})
	longUA := "agent/" + strings.Repeat("x", 400)
	if resp, body := h.send("POST", "/v1/chat/completions", helloBody, "User-Agent", longUA); resp.StatusCode != 200 {
		t.Fatalf("chat: %d %s", resp.StatusCode, body)
	}
	h.up.SetBehavior(fakeopenai.Behavior{Status: 429})
	if resp, _ := h.send("POST", "/v1/chat/completions", helloBody, "User-Agent", "refused/1"); resp.StatusCode != 429 {
		t.Fatalf("upstream refusal: got %d", resp.StatusCode)
	}
	if resp, body := h.send("POST", "/v1/messages", haikuBody, "Anthropic-Version", "2023-06-01", "User-Agent", "Anthropic/Python 0.70.0"); resp.StatusCode != 200 {
		t.Fatalf("messages: %d %s", resp.StatusCode, body)
	}
	recs := h.records(3)
	byUA := map[string]budget.Record{}
	for _, r := range recs {
		if !r.OldSecret {
			t.Errorf("record %s is not marked as made with the old secret", r.ReservationID)
		}
		byUA[r.UserAgent] = r
	}
	if r, ok := byUA[longUA[:256]]; !ok || r.RequestID != "req_0123456789abcdef0123456789abcdef" {
		t.Errorf("chat record: %+v; want the user agent clipped to 256 bytes and the x-request-id", r)
	}
	if r, ok := byUA["refused/1"]; !ok || r.RequestID != "req_0123456789abcdef0123456789abcdef" || r.Status != 429 {
		t.Errorf("refused record: %+v; want the x-request-id of the refusal", r)
	}
	if r, ok := byUA["Anthropic/Python 0.70.0"]; !ok || !strings.HasPrefix(r.RequestID, "req_") {
		t.Errorf("messages record: %+v; want Anthropic's request-id", r)
	}
}
