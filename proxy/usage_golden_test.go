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

// goldenTrackers gives, per API prefix of the fixture names in
// testdata/usage, the tracker a request of that API uses.
var goldenTrackers = map[string]func() usageTracker{
	"chat":        func() usageTracker { return &openAITracker{} },
	"completions": func() usageTracker { return &openAITracker{} },
	"embeddings":  func() usageTracker { return &embeddingsTracker{} },
	"messages":    func() usageTracker { return &anthropicTracker{} },
	"responses":   func() usageTracker { return &responsesTracker{} },
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
		newTracker, ok := goldenTrackers[api]
		if !ok {
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
			m := &meter{p: p, res: budget.Reservation{ID: "r", Amount: 1}, prices: prices, settled: make(chan struct{})}
			p.inflight.add(m)
			resp := &http.Response{StatusCode: 200, Body: io.NopCloser(iotest.HalfReader(&slowReader{b: body}))}
			mb := newMeteredBody(m, resp, ext == ".sse", newTracker())
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
