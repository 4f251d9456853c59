package proxy

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
)

// goldenRequests gives, per API prefix of the fixture names in
// testdata/usage, the route whose parse builds the tracker and the request
// body it parses (stream is set to match the fixture), so the fixtures run
// through the tracker production builds for that request, not one made by
// hand.
var goldenRequests = map[string]struct {
	kind Kind
	path string
	body string
}{
	"chat":        {KindOpenAI, "/chat/completions", `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`},
	"completions": {KindOpenAI, "/completions", `{"model":"gpt-3.5-turbo-instruct","prompt":"hi"}`},
	"embeddings":  {KindOpenAI, "/embeddings", `{"model":"text-embedding-3-small","input":"hi"}`},
	"messages":    {KindAnthropic, "/messages", `{"model":"claude-sonnet-4-5","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`},
	"responses":   {KindOpenAI, "/responses", `{"model":"gpt-4o-mini","input":"hi"}`},
}

// goldenTracker parses the API's request through its route, as production
// does (streamed when stream is set, asking for the usage chunk as a client
// that wants it would), rewrites it and returns the tracker it builds.
func goldenTracker(t *testing.T, api string, stream bool) usageTracker {
	t.Helper()
	g := goldenRequests[api]
	var ep *endpoint
	for i := range endpoints[g.kind] {
		if endpoints[g.kind][i].path == g.path {
			ep = &endpoints[g.kind][i]
		}
	}
	if ep == nil || ep.api == nil {
		t.Fatalf("no metered route %s for %s", g.path, g.kind)
	}
	var fields map[string]any
	if err := json.Unmarshal([]byte(g.body), &fields); err != nil {
		t.Fatal(err)
	}
	if stream && api != "embeddings" { // embeddings never stream
		fields["stream"] = true
		if api == "chat" || api == "completions" {
			fields["stream_options"] = map[string]any{"include_usage": true}
		}
	}
	body, _ := json.Marshal(fields)
	prov := &Provider{Name: string(g.kind), Kind: g.kind, Prices: string(g.kind), CapField: "max_completion_tokens", Allowances: map[string]Allowance{}}
	req, err := ep.api.parse(body, prov)
	if err != nil {
		t.Fatalf("parse %s: %v", body, err)
	}
	if _, err := req.rewrite(max(req.bounds().clientCap, 100), prov); err != nil {
		t.Fatal(err)
	}
	return req.tracker()
}

// TestUsageGolden runs every fixture in testdata/usage (bodies in each
// API's documented shape) through the metering body, a few bytes at a time,
// and checks the usage it settles against the fixture's .want.json.
func TestUsageGolden(t *testing.T) {
	bodies, err := filepath.Glob(filepath.Join("testdata", "usage", "*.*"))
	if err != nil {
		t.Fatal(err)
	}
	ran := 0
	for _, path := range bodies {
		ext := filepath.Ext(path)
		if ext != ".json" && ext != ".sse" || strings.HasSuffix(path, ".want.json") {
			continue
		}
		name := strings.TrimSuffix(filepath.Base(path), ext)
		api, _, _ := strings.Cut(name, "_")
		if _, ok := goldenRequests[api]; !ok {
			continue
		}
		t.Run(name, func(t *testing.T) {
			body, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(strings.TrimSuffix(path, ext) + ".want.json")
			if err != nil {
				t.Fatal(err)
			}
			var want struct {
				Found bool         `json:"found"`
				Usage budget.Usage `json:"usage"`
			}
			if err := json.Unmarshal(raw, &want); err != nil {
				t.Fatal(err)
			}
			l := &recordingLedger{}
			p := New(Options{Ledger: l})
			prices := pricing.Prices{Input: pricing.Flat(1), Output: pricing.Flat(1)}
			m := &meter{p: p, res: budget.Reservation{ID: "r", Amount: 1}, prices: prices}
			p.inflight.add(m)
			resp := &http.Response{StatusCode: 200, Body: io.NopCloser(iotest.HalfReader(&slowReader{b: body}))}
			mb := newMeteredBody(m, resp, ext == ".sse", goldenTracker(t, api, ext == ".sse"))
			out, err := io.ReadAll(mb)
			mb.Close()
			if err != nil {
				t.Fatal(err)
			}
			if ext == ".json" && string(out) != string(body) {
				t.Fatal("a JSON body reached the client changed")
			}
			if len(l.settled) != 1 {
				t.Fatalf("settled %d times", len(l.settled))
			}
			s := l.settled[0]
			if got := s.Outcome == budget.Complete; got != want.Found {
				t.Fatalf("usage found = %v (%s), want %v", got, s.Outcome, want.Found)
			}
			if want.Found && s.Usage != want.Usage {
				t.Fatalf("got usage %+v, want %+v", s.Usage, want.Usage)
			}
		})
		ran++
	}
	if ran < 24 {
		t.Fatalf("ran %d fixtures; the testdata is missing", ran)
	}
}

// slowReader returns at most 7 bytes a read, so events and lines arrive
// split.
type slowReader struct{ b []byte }

func (s *slowReader) Read(p []byte) (int, error) {
	if len(s.b) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), 7)], s.b)
	s.b = s.b[n:]
	return n, nil
}
