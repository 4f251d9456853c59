package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
)

// recordingLedger records settlements.
type recordingLedger struct {
	mu      sync.Mutex
	settled []budget.Settlement
}

func (l *recordingLedger) Reserve(context.Context, budget.Request, budget.Quote) (budget.Reservation, error) {
	return budget.Reservation{}, errors.New("not used")
}

func (l *recordingLedger) Settle(_ context.Context, id string, s budget.Settlement) (budget.Record, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.settled = append(l.settled, s)
	return budget.Record{}, nil
}

// failingReader returns its data, then err.
type failingReader struct {
	r   io.Reader
	err error
}

func (f *failingReader) Read(p []byte) (int, error) {
	n, err := f.r.Read(p)
	if err == io.EOF {
		return n, f.err
	}
	return n, err
}
func (f *failingReader) Close() error { return nil }

const (
	chunkWithRunningUsage = `data: {"choices":[{"index":0,"delta":{"content":"a"}}],"usage":{"prompt_tokens":10,"completion_tokens":1}}` + "\n\n"
	usageOnlyChunk        = `data: {"choices":[],"usage":{"prompt_tokens":10,"completion_tokens":2}}` + "\n\n"
	doneEvent             = "data: [DONE]\n\n"
)

// TestMeteredBody_TrustsOnlyFinalUsage: a stream that reports running totals
// in every chunk and is then cut has not reported what the provider will
// bill, so it is charged the full reservation; a final usage is charged
// exactly.
func TestMeteredBody_TrustsOnlyFinalUsage(t *testing.T) {
	cut := errors.New("connection reset")
	tests := []struct {
		name    string
		stream  string
		end     error
		want    budget.Outcome
		wantOut int64
	}{
		{"running usage, then cut", chunkWithRunningUsage + chunkWithRunningUsage, cut, budget.UsageMissing, 0},
		{"running usage, then EOF without [DONE]", chunkWithRunningUsage, io.EOF, budget.UsageMissing, 0},
		{"running usage, then [DONE]", chunkWithRunningUsage + doneEvent, io.EOF, budget.Complete, 1},
		{"usage-only chunk, then cut", chunkWithRunningUsage + usageOnlyChunk, cut, budget.Complete, 2},
		{"final usage in a chunk split across reads, then EOF", usageOnlyChunk + doneEvent, io.EOF, budget.Complete, 2},
		{"no usage at all", "data: {\"choices\":[]}\n\n" + doneEvent, io.EOF, budget.UsageMissing, 0},
	}
	cat, err := pricing.Embedded()
	if err != nil {
		t.Fatal(err)
	}
	model, err := cat.Lookup("openai", "gpt-4o-mini", nowForTest())
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := &recordingLedger{}
			p := New(Options{Ledger: l})
			m := &meter{p: p, res: budget.Reservation{ID: "r1", Amount: 1_000_000}, prices: model.Prices, settled: make(chan struct{})}
			p.inflight.add(m)
			resp := &http.Response{StatusCode: 200, Body: &failingReader{r: strings.NewReader(tt.stream), err: tt.end}}
			b := newMeteredBody(m, resp, true, &openAITracker{})
			out, _ := io.ReadAll(b)
			_ = b.Close()
			if len(out) == 0 {
				t.Fatal("nothing reached the client")
			}
			if len(l.settled) != 1 {
				t.Fatalf("settled %d times, want once", len(l.settled))
			}
			s := l.settled[0]
			if s.Outcome != tt.want || s.Usage.OutputTokens != tt.wantOut {
				t.Fatalf("got %s with %d output tokens, want %s with %d", s.Outcome, s.Usage.OutputTokens, tt.want, tt.wantOut)
			}
			if tt.want == budget.UsageMissing && s.Charged != m.res.Amount {
				t.Fatalf("charged %s, want the full reservation", s.Charged)
			}
		})
	}
}

func TestNextEvent(t *testing.T) {
	tests := []struct {
		in, event, rest string
		ok              bool
	}{
		{"data: a\n\nrest", "data: a\n\n", "rest", true},
		{"data: a\r\n\r\nrest", "data: a\r\n\r\n", "rest", true},
		{"data: a\r\rrest", "data: a\r\r", "rest", true},
		{"data: a\n", "", "data: a\n", false},
		{"data: a\r", "", "data: a\r", false},
		{"data: a\r\n\r", "", "data: a\r\n\r", false},
		{"event: x\ndata: a\ndata: b\n\n", "event: x\ndata: a\ndata: b\n\n", "", true},
	}
	for _, tt := range tests {
		ev, rest, ok := nextEvent([]byte(tt.in))
		if ok != tt.ok || string(ev) != tt.event || string(rest) != tt.rest {
			t.Errorf("nextEvent(%q) = %q, %q, %v; want %q, %q, %v", tt.in, ev, rest, ok, tt.event, tt.rest, tt.ok)
		}
	}
	if typ, data, ok := eventFields([]byte("event: x\ndata: a\ndata:b\r\n\r\n")); typ != "x" || string(data) != "a\nb" || !ok {
		t.Errorf("eventFields = %q, %q, %v; want x, %q", typ, data, ok, "a\nb")
	}
}

func nowForTest() time.Time { return time.Now() }
