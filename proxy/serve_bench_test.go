package proxy_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
	"github.com/rs/zerolog"
)

// BenchmarkServeHTTP measures hardcap's own work on the request path: the
// Proxy's handler is called in-process, the upstream is an in-memory
// http.RoundTripper that answers a canned response (no sockets, no
// client), and allocs/op and B/op count what hardcap and ReverseProxy do
// per request. Two ledgers:
//
//   - bolt: a real storage.DB with NoSync (no fsync: the disk is not what
//     is measured; everything else of a reservation and its settlement is);
//
//   - mem: an in-memory ledger and token store, which leaves the proxy's
//     share alone.
//
//     go test -run '^$' -bench ServeHTTP -benchmem ./proxy/
func BenchmarkServeHTTP(b *testing.B) {
	for _, ledger := range []string{"bolt", "mem"} {
		for _, tc := range serveBenchCases {
			b.Run(ledger+"/"+tc.name, func(b *testing.B) {
				bp := newServeBench(b, ledger == "mem")
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					bp.do(b, tc)
				}
				b.StopTimer()
				bp.wait(b)
			})
		}
	}
}

// BenchmarkServeHTTP_Concurrent is the chat JSON case of BenchmarkServeHTTP
// as a loaded server runs it: 64 requests at a time (as perf/run.sh's wrk
// connections) against a database with fsync on, so reservations and
// settlements share group commits. allocs/op is per request, everything
// hardcap does included:
//
//	go test -run '^$' -bench ServeHTTP_Concurrent -benchmem ./proxy/
func BenchmarkServeHTTP_Concurrent(b *testing.B) {
	tc := serveBenchCases[0]
	bp := newServeBenchSync(b, false, true)
	b.SetParallelism(32)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			bp.do(b, tc)
		}
	})
	b.StopTimer()
	bp.wait(b)
}

// TestServeBench runs each case of the benchmark once and checks its
// answer and its charge, so the benchmark measures requests that work.
func TestServeBench(t *testing.T) {
	for _, mem := range []bool{false, true} {
		for _, tc := range serveBenchCases {
			t.Run(fmt.Sprintf("mem=%v/%s", mem, tc.name), func(t *testing.T) {
				bp := newServeBench(t, mem)
				body := bp.do(t, tc)
				if !strings.Contains(body, tc.want) {
					t.Errorf("got body %q, want it to hold %q", body, tc.want)
				}
				bp.wait(t)
				if mem && bp.mem.settled.Load() != 1 {
					t.Errorf("got %d settlements, want 1", bp.mem.settled.Load())
				}
				if mem && bp.mem.charged.Load() == 0 {
					t.Error("got a charge of 0, want the usage's cost")
				}
			})
		}
	}
}

// serveBenchCase is one request of BenchmarkServeHTTP and the canned
// answer of its upstream.
type serveBenchCase struct {
	name, path, body string
	// contentType and answer are the upstream's response.
	contentType, answer string
	// want is a part of the body the client must receive.
	want string
}

var serveBenchCases = []serveBenchCase{
	{
		name: "chat_json", path: "/v1/chat/completions",
		body:        `{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"Hello there"}]}`,
		contentType: "application/json",
		answer:      `{"id":"chatcmpl-1","object":"chat.completion","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"message":{"role":"assistant","content":"Hi! How can I help?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":0}}}`,
		want:        "How can I help",
	},
	{
		name: "chat_stream", path: "/v1/chat/completions",
		body:        `{"model":"gpt-4o-mini","stream":true,"max_tokens":16,"messages":[{"role":"user","content":"Hello there"}]}`,
		contentType: "text/event-stream",
		answer: sse("",
			`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}`,
			`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":"Hi!"},"finish_reason":null}]}`,
			`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{"content":" How can I help?"},"finish_reason":null}]}`,
			`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}`,
			`{"id":"c1","object":"chat.completion.chunk","created":1,"model":"gpt-4o-mini","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}`,
			`[DONE]`),
		want: "How can I help",
	},
	{
		name: "responses_stream", path: "/v1/responses",
		body:        `{"model":"gpt-4o-mini","stream":true,"max_output_tokens":16,"input":"Hello there"}`,
		contentType: "text/event-stream",
		answer: sse("response.",
			`{"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","model":"gpt-4o-mini","output":[],"usage":null}}`,
			`{"type":"response.output_item.added","sequence_number":1,"output_index":0,"item":{"id":"msg_1","type":"message","status":"in_progress","role":"assistant","content":[]}}`,
			`{"type":"response.output_text.delta","sequence_number":2,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hi! How can I help?"}`,
			`{"type":"response.output_item.done","sequence_number":3,"output_index":0,"item":{"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hi! How can I help?","annotations":[]}]}}`,
			`{"type":"response.completed","sequence_number":4,"response":{"id":"resp_1","object":"response","status":"completed","model":"gpt-4o-mini","output":[{"id":"msg_1","type":"message","status":"completed","role":"assistant","content":[{"type":"output_text","text":"Hi! How can I help?","annotations":[]}]}],"usage":{"input_tokens":9,"input_tokens_details":{"cached_tokens":0},"output_tokens":6,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":15}}}`),
		want: "How can I help",
	},
	{
		name: "messages_stream", path: "/p/anthropic/v1/messages",
		body:        `{"model":"claude-sonnet-4-5","stream":true,"max_tokens":16,"messages":[{"role":"user","content":"Hello there"}]}`,
		contentType: "text/event-stream",
		answer: sse("anthropic",
			`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-sonnet-4-5","content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":9,"cache_creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":1}}}`,
			`{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`,
			`{"type":"ping"}`,
			`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi! How can I help?"}}`,
			`{"type":"content_block_stop","index":0}`,
			`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":6}}`,
			`{"type":"message_stop"}`),
		want: "How can I help",
	},
}

// sse frames data events: with an "event:" line of the data's type for the
// Responses API ("response.") and Anthropic ("anthropic"), without for chat.
func sse(kind string, events ...string) string {
	var sb strings.Builder
	for _, ev := range events {
		if kind != "" {
			typ := ev[len(`{"type":"`):]
			typ = typ[:strings.IndexByte(typ, '"')]
			sb.WriteString("event: " + typ + "\n")
		}
		sb.WriteString("data: " + ev + "\n\n")
	}
	return sb.String()
}

// cannedUpstream is an http.RoundTripper that reads the request body and
// answers the canned response of the path's case, in-process.
type cannedUpstream struct{}

func (cannedUpstream) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		_, _ = io.Copy(io.Discard, r.Body)
		_ = r.Body.Close()
	}
	var tc *serveBenchCase
	for i := range serveBenchCases {
		c := &serveBenchCases[i]
		if strings.HasSuffix(r.URL.Path, strings.TrimPrefix(strings.TrimPrefix(c.path, "/p/anthropic"), "/v1")) &&
			(c.contentType == "text/event-stream") == (r.Context().Value(streamKey{}) == true) {
			tc = c
			break
		}
	}
	if tc == nil {
		return nil, fmt.Errorf("no canned answer for %s", r.URL.Path)
	}
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {tc.contentType}, "Content-Length": {strconv.Itoa(len(tc.answer))}},
		Body:          io.NopCloser(strings.NewReader(tc.answer)),
		ContentLength: int64(len(tc.answer)),
		Request:       r,
	}, nil
}

// streamKey marks a benchmark request that asks for a stream, so the
// canned upstream need not parse the body.
type streamKey struct{}

// serveBench is a Proxy over the canned upstream with one token.
type serveBench struct {
	p      *proxy.Proxy
	secret string
	mem    *memLedger
}

func newServeBench(t testing.TB, mem bool) *serveBench {
	return newServeBenchSync(t, mem, false)
}

// newServeBenchSync is newServeBench; sync turns fsync on in the database.
func newServeBenchSync(t testing.TB, mem, sync bool) *serveBench {
	t.Helper()
	t.Setenv("HARDCAP_BENCH_KEY", realKey)
	key, err := proxy.ParseKeySource("env:HARDCAP_BENCH_KEY")
	if err != nil {
		t.Fatal(err)
	}
	oai, _ := url.Parse("http://openai.invalid/v1")
	ant, _ := url.Parse("http://anthropic.invalid")
	opts := proxy.Options{
		Providers: []*proxy.Provider{
			{Name: "openai", Kind: proxy.KindOpenAI, BaseURL: oai, Key: key, Prices: "openai"},
			{Name: "anthropic", Kind: proxy.KindAnthropic, BaseURL: ant, Key: key, Prices: "anthropic"},
		},
		Prices:    embeddedCatalog(t),
		Log:       zerolog.New(io.Discard),
		Transport: cannedUpstream{},
	}
	bp := &serveBench{}
	if mem {
		bp.mem = &memLedger{}
		bp.secret = "hc_bench_secret"
		opts.Tokens, opts.Ledger = bp.mem, bp.mem
	} else {
		db, err := storage.Open(filepath.Join(t.TempDir(), "hardcap.db"), storage.Options{NoSync: !sync, Alerts: alert.DefaultPolicy()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		ctx := context.Background()
		if _, err := db.CreateProject(ctx, "web", budget.Limit{}); err != nil {
			t.Fatal(err)
		}
		_, secret, err := db.CreateToken(ctx, storage.TokenSpec{Project: "web"})
		if err != nil {
			t.Fatal(err)
		}
		bp.secret = secret
		opts.Tokens, opts.Ledger = db, db
	}
	bp.p = proxy.New(opts)
	return bp
}

// do sends one request of tc through the handler and returns the body.
func (bp *serveBench) do(t testing.TB, tc serveBenchCase) string {
	req := httptest.NewRequest(http.MethodPost, tc.path, strings.NewReader(tc.body))
	req.Header.Set("Content-Type", "application/json")
	if strings.HasPrefix(tc.path, "/p/anthropic") {
		req.Header.Set("X-Api-Key", bp.secret)
		req.Header.Set("Anthropic-Version", "2023-06-01")
	} else {
		req.Header.Set("Authorization", "Bearer "+bp.secret)
	}
	if tc.contentType == "text/event-stream" {
		req = req.WithContext(context.WithValue(req.Context(), streamKey{}, true))
	}
	w := &benchWriter{header: http.Header{}}
	bp.p.ServeHTTP(w, req)
	if w.status != http.StatusOK {
		// Errorf, not Fatalf: RunParallel calls this from its goroutines.
		t.Errorf("%s: got status %d, want 200: %s", tc.name, w.status, w.body.String())
	}
	return w.body.String()
}

// wait waits for every request to settle.
func (bp *serveBench) wait(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := bp.p.Wait(ctx); err != nil {
		t.Fatal(err)
	}
}

// benchWriter is a ResponseWriter that keeps the body in a reused buffer,
// so the benchmark counts the proxy's allocations, not the recorder's.
type benchWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *benchWriter) Header() http.Header { return w.header }
func (w *benchWriter) WriteHeader(s int) {
	if w.status == 0 {
		w.status = s
	}
}
func (w *benchWriter) Write(p []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(p)
}
func (w *benchWriter) Flush() {}

// memLedger is an in-memory budget.Ledger and tokens.Authenticator with no
// limits: what the proxy costs without storage.
type memLedger struct {
	mu      sync.Mutex
	n       int64
	open    map[string]budget.Reservation
	settled atomic.Int64
	charged atomic.Int64
}

var (
	_ budget.Ledger        = (*memLedger)(nil)
	_ tokens.Authenticator = (*memLedger)(nil)
)

func (l *memLedger) Authenticate(secret string) (tokens.Token, error) {
	if secret != "hc_bench_secret" {
		return tokens.Token{}, tokens.ErrUnknown
	}
	return tokens.Token{ID: "tok_bench", Project: "web"}, nil
}

func (l *memLedger) Reserve(_ context.Context, r budget.Request, q budget.Quote) (budget.Reservation, error) {
	amount, err := q.Cost(q.MaxOutput)
	if err != nil {
		return budget.Reservation{}, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.open == nil {
		l.open = map[string]budget.Reservation{}
	}
	l.n++
	res := budget.Reservation{ID: "r" + strconv.FormatInt(l.n, 10), Amount: amount, OutputCap: q.MaxOutput, Request: r}
	l.open[res.ID] = res
	return res, nil
}

func (l *memLedger) Settle(_ context.Context, id string, s budget.Settlement) (budget.Record, error) {
	l.mu.Lock()
	res, ok := l.open[id]
	delete(l.open, id)
	l.mu.Unlock()
	if !ok {
		return budget.Record{}, fmt.Errorf("settle %s: not open", id)
	}
	l.settled.Add(1)
	l.charged.Add(int64(s.Charged))
	return budget.NewRecord(res, s), nil
}
