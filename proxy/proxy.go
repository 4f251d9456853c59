package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptrace"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
	"github.com/hardcap/hardcap/tokens"
	"github.com/rs/zerolog"
)

// Provider is an upstream API hardcap forwards to.
type Provider struct {
	// Name is the provider's name in the config and in /p/{name}/ routes.
	Name string
	// Kind is the API family it speaks.
	Kind Kind
	// BaseURL is where its API lives, e.g. https://api.openai.com/v1.
	BaseURL *url.URL
	// Key is where its real key comes from.
	Key *KeySource
	// Prices is the provider id in the price data, e.g. "openai".
	Prices string
	// CapField is the request field hardcap writes an injected output cap
	// into; default "max_completion_tokens" for OpenAI's own API and
	// "max_tokens" for other OpenAI-compatible APIs, which know that one.
	CapField string
	// ExtraParams are request parameters beyond the ones hardcap knows that
	// the operator allows for this provider, having checked they do not
	// change the cost.
	ExtraParams map[string]bool
	// Allowances grant a per-request amount for inputs and tools the
	// request cannot bound, by name: AllowStoredState, AllowFiles,
	// AllowOpaque (per item), or a server tool ("web_search",
	// "file_search", "code_interpreter", "shell", "image_generation",
	// "mcp", USD only). Without one such requests are refused.
	Allowances map[string]Allowance
	// PriceMultiplier scales every rate and fee of this provider
	// (regional processing, data residency, a reseller's margin); the zero
	// value is 1.
	PriceMultiplier pricing.Multiplier
	// Organization and Project are sent as OpenAI-Organization and
	// OpenAI-Project to kind openai providers; clients cannot set them.
	Organization, Project string
	// Betas are anthropic-beta names the operator allows beyond the ones
	// hardcap knows the cost effect of.
	Betas map[string]bool
	// MaxToolCalls is the max_tool_calls written into Responses requests
	// with per-call server tools that set none; default
	// DefaultMaxToolCalls.
	MaxToolCalls int64
}

// PriceBook looks up the prices and limits of a model at a moment.
// *pricing.Catalog is the implementation.
type PriceBook interface {
	Lookup(provider, model string, at time.Time) (pricing.Model, error)
}

// Options configures a Proxy.
type Options struct {
	// Providers by name. The one named "openai" serves the /v1/ routes.
	Providers []*Provider
	// Tokens authenticates hardcap tokens.
	Tokens tokens.Authenticator
	// Ledger reserves and settles.
	Ledger budget.Ledger
	// Prices prices models.
	Prices PriceBook
	// Log receives one line per request. Default: no logging.
	Log zerolog.Logger
	// Now returns the current time; default time.Now.
	Now func() time.Time
	// MaxBodyBytes bounds request bodies; default 32 MiB.
	MaxBodyBytes int64
	// UpstreamTimeout bounds each upstream request from send to the last
	// byte; default 10 minutes.
	UpstreamTimeout time.Duration
	// Transport carries upstream requests; default a tuned
	// http.Transport.
	Transport http.RoundTripper
	// SettleRetry is the first wait before a settlement the ledger failed
	// to write is tried again, doubling up to SettleRetryMax; defaults
	// DefaultSettleRetry and DefaultSettleRetryMax.
	SettleRetry, SettleRetryMax time.Duration
	// TrustedProxies are the peers whose X-Forwarded-For is believed: a
	// request from one is taken to come from the rightmost address of the
	// header that is not itself a trusted proxy. Empty (the default): the
	// client is always the TCP peer.
	TrustedProxies []netip.Prefix
	// Refusals counts the requests refused with a known token; default
	// Tokens, or else Ledger, when it is one (storage.DB is).
	Refusals RefusalCounter
	// Observer is told of every settled request and every refusal, for
	// metrics; nil (the default) costs one nil check per request.
	Observer Observer
}

// Observer watches the data plane's outcomes. Its methods must be cheap and
// must not block: Settled runs where each settled record is logged (the
// ledger's writer may be waiting on it), Refused on the request's goroutine
// before the refusal is answered. metrics.Metrics is the implementation.
type Observer interface {
	// Settled is called once for each settled request's record.
	Settled(rec budget.Record)
	// Refused is called once for each refusal, with its public error code
	// (budget_exceeded, rate_limited, ...).
	Refused(code string)
	// Responded is called once for each metered request the provider
	// answered, with the time from its reservation to the answer's
	// headers (the upstream's time to first byte, as hardcap sees it).
	Responded(provider string, firstByte time.Duration)
}

// RefusalCounter counts refused requests per token. NoteRefusal must not
// block: it is called on the request's goroutine before the refusal is
// answered. storage.DB is the implementation.
type RefusalCounter interface {
	NoteRefusal(tokenID, code, clientIP string, at time.Time)
}

// Proxy is the data plane. It is an http.Handler for the data-plane paths.
type Proxy struct {
	// table holds the providers, prices and bounds (see Reconfigure).
	table    atomic.Pointer[table]
	auth     tokens.Authenticator
	ledger   budget.Ledger
	log      zerolog.Logger
	now      func() time.Time
	refusals RefusalCounter
	observer Observer

	rp       *httputil.ReverseProxy
	limits   rateLimits
	conc     concurrency
	inflight inflight
	settles  *settleQueue
}

// New returns a Proxy.
func New(opts Options) *Proxy {
	p := &Proxy{
		auth:     opts.Tokens,
		ledger:   opts.Ledger,
		log:      opts.Log,
		now:      opts.Now,
		refusals: opts.Refusals,
		observer: opts.Observer,
	}
	p.table.Store(newTable(opts.Providers, opts.Prices, opts.TrustedProxies, opts.MaxBodyBytes, opts.UpstreamTimeout))
	if p.refusals == nil {
		if rc, ok := opts.Tokens.(RefusalCounter); ok {
			p.refusals = rc
		} else if rc, ok := opts.Ledger.(RefusalCounter); ok {
			p.refusals = rc
		}
	}
	p.settles = newSettleQueue(p, opts.SettleRetry, opts.SettleRetryMax)
	if p.now == nil {
		p.now = time.Now
	}
	transport := opts.Transport
	if transport == nil {
		transport = newTransport()
	}
	p.rp = &httputil.ReverseProxy{
		Rewrite:        p.rewrite,
		ModifyResponse: p.modifyResponse,
		ErrorHandler:   p.errorHandler,
		Transport:      transport,
		ErrorLog:       log.New(debugLog{p.log}, "", 0),
		BufferPool:     &bufPool,
	}
	return p
}

// debugLog sends ReverseProxy's own messages (a client gone mid-copy, for
// example) to the debug level: the request line that follows says what
// happened.
type debugLog struct{ l zerolog.Logger }

func (d debugLog) Write(p []byte) (int, error) {
	d.l.Debug().Msg(strings.TrimSpace(string(p)))
	return len(p), nil
}

func newTransport() *http.Transport {
	return &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   128,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		// A connection's write buffer lives as long as the connection
		// (a stream's whole life) and mostly holds a request's headers:
		// once it is full, bufio hands the rest of the body to the
		// connection directly. 1 KB instead of 4 for each open stream.
		WriteBufferSize: 1 << 10,
	}
}

// forward is what the handler hands to the ReverseProxy hooks through the
// outgoing request's context.
type forward struct {
	// Context is the upstream request's context, set just before the
	// request is forwarded on a metered route: the forward is that
	// request's context itself (see Value), saving a context.WithValue.
	context.Context
	target *url.URL
	prov   *Provider
	key    string
	body   []byte
	meter  *meter // nil for free routes
	// url is where target points and rd the reader of body: held here so
	// a request allocates one struct for them, not two more.
	url url.URL
	rd  bytes.Reader
	// cancel ends a free route's deadline (a metered route's ends with
	// its meter).
	cancel context.CancelFunc
	// slot is the id of the token whose max_concurrent slot a free route
	// holds until its response is done, "" when it holds none (a metered
	// route's slot is its meter's).
	slot string
}

type forwardKey struct{}

// Value is the context's value for key, and the forward itself for
// forwardKey.
func (f *forward) Value(key any) any {
	if key == (forwardKey{}) {
		return f
	}
	return f.Context.Value(key)
}

func forwardFrom(ctx context.Context) *forward {
	f, _ := ctx.Value(forwardKey{}).(*forward)
	return f
}

// ServeHTTP runs one data-plane request: route, authenticate, rate-limit,
// bound, reserve, forward, meter, settle. Nothing is forwarded before its
// reservation is durable.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.serve(w, r, p.now())
}

// serve runs the request once prepare has reserved it.
//
// It is split from prepare so that the frames under a stream's whole life
// are small: prepare's locals (the token, the parse, the prices, the quote,
// the refusal's log line) are popped before the response is copied, and a
// goroutine that sits in a stream for minutes keeps a small stack (which
// the GC can shrink) instead of the deepest one the parse reached.
func (p *Proxy) serve(w http.ResponseWriter, r *http.Request, start time.Time) {
	fw := p.prepare(w, r, start)
	if fw == nil {
		return
	}
	if m := fw.meter; m != nil {
		defer func() {
			if !m.attached {
				// Neither a response body nor the error handler took the
				// request over (a panic in between): charge it in full.
				m.settle(nil, http.StatusBadGateway, budget.UsageMissing)
			}
		}()
	} else {
		defer func() {
			fw.cancel()
			if fw.slot != "" {
				p.conc.release(fw.slot)
			}
		}()
	}
	p.rp.ServeHTTP(w, r.WithContext(fw))
}

// prepare returns the request's forward, or nil once it has written the
// refusal.
//
//go:noinline
func (p *Proxy) prepare(w http.ResponseWriter, r *http.Request, start time.Time) *forward {
	fw, tok, err := p.prepareRequest(w, r, start)
	if err != nil {
		p.writeRefusal(w, r, start, &tok, err)
		return nil
	}
	return fw
}

// authenticate looks the secret up. A revoked, expired, killed or rotated
// token comes back with its error, so that its refusal is logged and
// counted against it; a token store that cannot answer (a damaged or
// closed database) fails closed as a ledger error, 503, not a 500.
func (p *Proxy) authenticate(secret string) (tokens.Token, error) {
	tok, err := p.auth.Authenticate(secret)
	if err != nil && !isDomainRefusal(err) && !errors.Is(err, tokens.ErrMalformed) {
		err = fmt.Errorf("%w: %w", ErrStorage, err)
	}
	return tok, err
}

// writeRefusal logs and writes the refusal of a request that nothing was
// reserved for (or whose reservation is settled), and counts it for its
// token.
//
//go:noinline
func (p *Proxy) writeRefusal(w http.ResponseWriter, r *http.Request, start time.Time, tok *tokens.Token, err error) {
	pe := publicError(err)
	ev := p.log.Info()
	if pe.Status >= 500 {
		ev = p.log.Error().AnErr("cause", err)
	}
	// The client as the records name it: the evidence of a refusal that
	// leaves no record is this line and the token's counts.
	_, client := clientAddr(r, p.table.Load().trusted)
	ev.Str("token", tok.ID).Str("project", tok.Project).Str("route", r.Method+" "+safePath(r.URL.Path)).
		Int("status", pe.Status).Str("code", pe.Code).
		Str("client_ip", client).Str("user_agent", userAgent(r.Header)).
		Int64("latency_ms", p.now().Sub(start).Milliseconds()).Msg("refused")
	if tok.ID != "" && p.refusals != nil {
		p.refusals.NoteRefusal(tok.ID, pe.Code, client, start)
	}
	if p.observer != nil {
		p.observer.Refused(pe.Code)
	}
	writeError(w, p.shapeOf(r), pe)
}

// prepareRequest authenticates, bounds and reserves a request and returns its
// forward, ready for the ReverseProxy; on an error nothing is reserved
// (or what was is settled) and nothing was written. A free route's forward
// has no meter and a cancel the caller runs when the response is done.
//
//go:noinline
func (p *Proxy) prepareRequest(w http.ResponseWriter, r *http.Request, start time.Time) (*forward, tokens.Token, error) {
	// One table for the whole request: a reload while it runs changes
	// nothing of it.
	t := p.table.Load()
	rt, err := p.resolve(r, t)
	if err != nil {
		return nil, tokens.Token{}, err
	}
	secret, err := presentedSecret(r.Header)
	if err != nil {
		return nil, tokens.Token{}, err
	}
	tok, err := p.authenticate(secret)
	if err != nil {
		return nil, tok, err
	}
	client, clientStr := clientAddr(r, t.trusted)
	if err := checkScopes(&tok, rt, client); err != nil {
		return nil, tok, err
	}
	// The slot is held from here until the request settles or is refused:
	// by this function until it hands the slot to the forward (a free
	// route) or to the meter (a reserved one), on every path, panics
	// included.
	held, err := p.conc.acquire(&tok)
	if err != nil {
		return nil, tok, err
	}
	if held {
		defer func() {
			if held {
				p.conc.release(tok.ID)
			}
		}()
	}
	if err := p.limits.allow(tok, start); err != nil {
		return nil, tok, err
	}
	// Not URL.JoinPath: on a base URL without a path it makes a relative
	// path ("v1/messages").
	fw := &forward{url: *rt.provider.BaseURL, prov: rt.provider}
	fw.url.Path = strings.TrimSuffix(fw.url.Path, "/") + rt.endpoint.upstream
	fw.url.RawPath = ""
	if tokenInQuery(r.URL.RawQuery) {
		// The token headers are removed before forwarding; a token in the
		// query string would reach the provider (and every log of URLs).
		return nil, tok, refuse(ErrBadRequest, "The query string holds a hardcap token: send it only as the API key (Authorization: Bearer, x-api-key or api-key), never in a URL.")
	}
	fw.url.RawQuery = r.URL.RawQuery
	fw.target = &fw.url

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, t.maxBody))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, tok, refuse(ErrTooLarge, "The body is over %d bytes.", t.maxBody)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			return nil, tok, refuse(ErrBadRequest, "The body did not arrive within the server's read_timeout; send it whole, or ask the operator to raise read_timeout.")
		}
		return nil, tok, refuse(ErrBadRequest, "The body could not be read.")
	}
	// The body may have taken its time (up to read_timeout): look the
	// secret up again, so that a revoke, kill, rotation or narrowed scope
	// committed meanwhile applies to this request too. The ledger checks
	// the first three once more when it reserves; a free route has no
	// reservation, so this is its last check.
	// The token is replaced only when it is found again: the slot's release
	// (the defer above) names the token by tok.ID, and an error may come
	// back with no token.
	again, err := p.authenticate(secret)
	if err != nil {
		if again.ID == "" {
			again = tok
		}
		return nil, again, err
	}
	tok = again
	if err := checkScopes(&tok, rt, client); err != nil {
		return nil, tok, err
	}
	if rt.endpoint.api == nil {
		// A free route (model lists, token counting) is forwarded as it
		// came, with the real key in place of the token.
		if fw.key, err = rt.provider.Key.Key(r.Context()); err != nil {
			return nil, tok, err
		}
		fw.body = body
		fw.Context, fw.cancel = context.WithTimeout(r.Context(), t.timeout)
		if held {
			fw.slot, held = tok.ID, false
		}
		return fw, tok, nil
	}
	req, err := rt.endpoint.api.parse(body, rt.provider)
	if err != nil {
		return nil, tok, err
	}
	if !tok.Allows(req.model()) {
		return nil, tok, refuse(tokens.ErrModelNotAllowed, "This token may not use %q.", req.model())
	}
	model, err := t.prices.Lookup(rt.provider.Prices, req.model(), start)
	if err != nil {
		if errors.Is(err, pricing.ErrModelNotPriced) || errors.Is(err, pricing.ErrUnknownProvider) {
			return nil, tok, refuse(err, "No price is known for %q at provider %q.", req.model(), rt.provider.Prices)
		}
		return nil, tok, err
	}
	if err := checkHeaders(r.Header, rt.provider, model); err != nil {
		return nil, tok, err
	}
	b := req.bounds()
	if model.Prices, err = p.priceRequest(&b, model, rt.provider, req.model(), t.timeout); err != nil {
		return nil, tok, err
	}
	q, err := quote(b, model)
	if err != nil {
		return nil, tok, err
	}
	if err := checkMaxRequest(&tok, q); err != nil {
		return nil, tok, err
	}
	// The key is read before reserving, so a missing key holds no money.
	if fw.key, err = rt.provider.Key.Key(r.Context()); err != nil {
		return nil, tok, err
	}

	// The request is registered for the kill switch before it reserves: a
	// kill that commits while the reservation is being taken either refuses
	// it inside the ledger or cuts it here, never neither. The upstream
	// context does not end with the client's: a client that leaves does not
	// stop the metering.
	ctx, cancelTimeout := context.WithTimeout(context.WithoutCancel(r.Context()), t.timeout)
	ctx, cut := context.WithCancelCause(ctx)
	m := &meter{p: p, prices: model.Prices, start: start, cut: cut, tokenID: tok.ID, project: tok.Project, oldSecret: tok.OldSecret}
	// The deadline must outlive the handler while a drain reads on: it
	// ends when the request leaves the in-flight set (inflight.remove),
	// with no goroutine waiting for it.
	m.release = func() { cancelTimeout(); cut(nil) }
	if !p.inflight.add(m) {
		m.release()
		return nil, tok, refuse(ErrShuttingDown, "hardcap is shutting down.")
	}
	reserved := false
	defer func() {
		// A refusal, or a panic inside Reserve, leaves nothing to settle
		// (a reservation that did commit is charged in full at the next
		// start); the request must not keep shutdown waiting.
		if !reserved {
			p.inflight.remove(m)
		}
	}()
	res, err := p.ledger.Reserve(r.Context(), budget.Request{
		TokenID:   tok.ID,
		Project:   tok.Project,
		Provider:  rt.provider.Name,
		Model:     req.model(),
		Route:     rt.name,
		ClientIP:  clientStr,
		UserAgent: userAgent(r.Header),
		OldSecret: tok.OldSecret,
		// The ledger checks again that this secret is still accepted: a
		// rotation may have committed since Authenticate.
		SecretHash: [32]byte(tok.Presented),
	}, q)
	if err != nil {
		if isDomainRefusal(err) {
			return nil, tok, err
		}
		return nil, tok, fmt.Errorf("%w: %w", ErrStorage, err)
	}

	// From here the reservation is durable and every path settles it.
	reserved = true
	m.res = res
	// The meter gives the slot back when it settles.
	m.slot, held = held, false
	handedOver := false
	defer func() {
		if !handedOver && !m.attached {
			// A panic before serve took the request over: charge it in
			// full.
			m.settle(nil, http.StatusBadGateway, budget.UsageMissing)
		}
	}()
	if errors.Is(context.Cause(ctx), ErrCut) {
		m.attached = true
		m.settle(nil, http.StatusForbidden, budget.NotSent)
		return nil, tok, refuse(tokens.ErrKilled, "The request was cut before it was sent.")
	}

	m.req = req
	m.surcharge = b.surcharge
	m.uplifted = b.geoUplift
	m.callPrices, m.maxToolCalls = b.callPrices, b.maxToolCalls
	fw.body, err = req.rewrite(res.OutputCap, rt.provider)
	if err != nil {
		m.attached = true
		m.settle(nil, http.StatusInternalServerError, budget.NotSent)
		return nil, tok, err
	}
	fw.meter = m
	// Once a byte of the request is written the provider may act on it;
	// before that, a failure provably cost nothing.
	ctx = httptrace.WithClientTrace(ctx, &httptrace.ClientTrace{
		WroteHeaderField: func(string, []string) { m.sent.Store(true) },
	})
	fw.Context = ctx
	handedOver = true
	return fw, tok, nil
}

// rewrite is the ReverseProxy Rewrite hook: it points the request at the
// provider, swaps the client's credentials for the real key and installs the
// shaped body. It changes only pr.Out.
func (p *Proxy) rewrite(pr *httputil.ProxyRequest) {
	fw := forwardFrom(pr.In.Context())
	pr.Out.URL = fw.target
	pr.Out.Host = ""
	setHeaders(pr.Out.Header, fw.prov, fw.key)
	pr.Out.Body = http.NoBody
	pr.Out.ContentLength = 0
	pr.Out.Header.Del("Content-Length")
	if fw.meter != nil {
		// The body is the JSON hardcap bounded and wrote: the provider must
		// read it as that, whatever the client said it was.
		pr.Out.Header.Set("Content-Type", "application/json")
	}
	if len(fw.body) > 0 {
		// io.NopCloser of a *bytes.Reader, as net/http recognises an
		// in-memory body by (it then writes headers and body together).
		fw.rd.Reset(fw.body)
		pr.Out.Body = io.NopCloser(&fw.rd)
		pr.Out.ContentLength = int64(len(fw.body))
		pr.Out.Header.Set("Content-Length", strconv.Itoa(len(fw.body)))
		// No GetBody: without it the transport never replays a POST on a
		// broken connection, which would run one reservation twice.
		pr.Out.GetBody = nil
	}
}

// releases reports whether an error status releases a reservation: the
// provider refused the request before doing any work. Other errors (408, gateway
// errors and timeouts from intermediaries that may sit in front of a model
// still generating) are charged the full reservation.
func releases(status int) bool {
	switch {
	case status == http.StatusRequestTimeout || status == 499:
		return false
	case status >= 300 && status < 500:
		return true
	}
	switch status {
	case http.StatusInternalServerError, http.StatusNotImplemented, http.StatusServiceUnavailable, 529:
		return true
	}
	return false
}

// maxErrorBody bounds how much of an upstream error body hardcap reads.
const maxErrorBody = 1 << 20

// modifyResponse is the ReverseProxy ModifyResponse hook. Error answers are
// passed on with the real key scrubbed and release the reservation or charge
// it in full (see releases); success answers get a metering body that
// settles at its end.
func (p *Proxy) modifyResponse(resp *http.Response) error {
	fw := forwardFrom(resp.Request.Context())
	if fw.meter != nil {
		fw.meter.requestID = requestID(resp.Header)
		if p.observer != nil {
			p.observer.Responded(fw.prov.Name, p.now().Sub(fw.meter.start))
		}
	}
	if resp.StatusCode == http.StatusUnauthorized && fw.key != "" {
		// The provider refused the real key: counted for hardcap keys.
		p.keyRejected(fw.prov)
	}
	scrubHeaders(resp.Header, fw.key)
	if resp.StatusCode >= 300 {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		_ = resp.Body.Close()
		body = scrub(body, fw.key)
		resp.Body = io.NopCloser(bytes.NewReader(body))
		resp.ContentLength = int64(len(body))
		resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
		if fw.meter != nil {
			fw.meter.attached = true
			outcome := budget.UpstreamRefused
			if !releases(resp.StatusCode) {
				outcome = budget.UsageMissing
			}
			fw.meter.settle(nil, resp.StatusCode, outcome)
		}
		return nil
	}
	if fw.meter == nil {
		return nil
	}
	fw.meter.attached = true
	sse := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
	resp.Body = newMeteredBody(fw.meter, resp, sse, fw.meter.req.tracker())
	if sse {
		// Hidden events change the length.
		resp.Header.Del("Content-Length")
		resp.ContentLength = -1
	}
	return nil
}

// errorHandler is the ReverseProxy ErrorHandler hook: the provider could not
// be reached or did not answer. A request that provably never left (the
// connection was not made) is released; any other may have been processed
// and is charged its full reservation.
func (p *Proxy) errorHandler(w http.ResponseWriter, r *http.Request, err error) {
	fw := forwardFrom(r.Context())
	shape := KindOpenAI
	if fw != nil {
		shape = fw.prov.Kind
	}
	e := &Error{Status: http.StatusBadGateway, Code: "upstream_error", Message: publicMessages["upstream_error"]}
	cut := false
	if errors.Is(err, context.DeadlineExceeded) {
		e.Status, e.Code = http.StatusGatewayTimeout, "upstream_error"
		e.Message = "The provider did not answer within hardcap's upstream timeout."
	} else if errors.Is(err, ErrCut) || errors.Is(context.Cause(r.Context()), ErrCut) {
		cut = true
		e.Status, e.Code, e.Message = http.StatusForbidden, "kill_switch", publicMessages["kill_switch"]
	}
	if fw != nil && fw.meter != nil {
		// The record carries the status the client is sent.
		fw.meter.attached = true
		switch {
		case !fw.meter.sent.Load():
			fw.meter.settle(nil, e.Status, budget.NotSent)
		case cut && fw.meter.killed.Load():
			fw.meter.settle(nil, e.Status, budget.Killed)
		default:
			fw.meter.settle(nil, e.Status, budget.UsageMissing)
		}
	}
	writeError(w, shape, e)
}

// scrub removes every occurrence of the real key from an upstream body, in
// case a provider echoes it back.
// scrubHeaders replaces the real key wherever a response header repeats
// it (an upstream or an intermediary that echoes the request's
// credentials): the client must never learn it.
func scrubHeaders(h http.Header, key string) {
	if key == "" {
		return
	}
	for name, vs := range h {
		for i, v := range vs {
			if strings.Contains(v, key) {
				vs[i] = strings.ReplaceAll(v, key, "[redacted]")
			}
		}
		if strings.Contains(name, key) {
			delete(h, name)
		}
	}
}

// tokenInQuery reports whether a raw query string holds something shaped
// like a hardcap token, escaped or not.
func tokenInQuery(raw string) bool {
	if raw == "" {
		return false
	}
	if q, err := url.QueryUnescape(raw); err == nil {
		raw += "&" + q
	}
	for i := strings.Index(raw, tokens.Prefix); i >= 0; i = strings.Index(raw, tokens.Prefix) {
		raw = raw[i+len(tokens.Prefix):]
		n := 0
		for n < len(raw) && (raw[n] >= '0' && raw[n] <= '9' || raw[n] >= 'a' && raw[n] <= 'z' || raw[n] >= 'A' && raw[n] <= 'Z') {
			n++
		}
		if n >= 16 {
			return true
		}
	}
	return false
}

func scrub(body []byte, key string) []byte {
	if key == "" {
		return body
	}
	return bytes.ReplaceAll(body, []byte(key), []byte("[redacted]"))
}
