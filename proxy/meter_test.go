package proxy

import (
	"context"
	"errors"
	"fmt"
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
			m := &meter{p: p, res: budget.Reservation{ID: "r1", Amount: 1_000_000}, prices: model.Prices}
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
	if typ, data, ok := eventFields([]byte("event: x\ndata: a\ndata:b\r\n\r\n")); string(typ) != "x" || string(data) != "a\nb" || !ok {
		t.Errorf("eventFields = %q, %q, %v; want x, %q", typ, data, ok, "a\nb")
	}
}

func nowForTest() time.Time { return time.Now() }

// chunkedReader returns its data in reads of at most size bytes, as a
// network connection would, then EOF.
type chunkedReader struct {
	data []byte
	size int
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if len(c.data) == 0 {
		return 0, io.EOF
	}
	n := copy(p[:min(len(p), c.size)], c.data)
	c.data = c.data[n:]
	return n, nil
}
func (c *chunkedReader) Close() error { return nil }

var (
	miniOnce  sync.Once
	miniModel pricing.Model
	miniErr   error
)

// meterStream runs stream through a metering body with the given event
// bound, read by the client in reads of size bytes, and returns what the
// client got and the one settlement.
func meterStream(t testing.TB, stream string, bound, size int) (string, budget.Settlement, budget.Money) {
	t.Helper()
	miniOnce.Do(func() {
		cat, err := pricing.Embedded()
		if err == nil {
			miniModel, err = cat.Lookup("openai", "gpt-4o-mini", nowForTest())
		}
		miniErr = err
	})
	if miniErr != nil {
		t.Fatal(miniErr)
	}
	l := &recordingLedger{}
	p := New(Options{Ledger: l})
	m := &meter{p: p, res: budget.Reservation{ID: "r1", Amount: 1_000_000}, prices: miniModel.Prices}
	p.inflight.add(m)
	resp := &http.Response{StatusCode: 200, Body: &chunkedReader{data: []byte(stream), size: size}}
	b := newMeteredBody(m, resp, true, &openAITracker{})
	if bound > 0 {
		b.maxEvent = bound
	}
	out, err := io.ReadAll(b)
	if err != nil {
		t.Fatal(err)
	}
	_ = b.Close()
	if len(l.settled) != 1 {
		t.Fatalf("settled %d times, want once", len(l.settled))
	}
	return string(out), l.settled[0], m.res.Amount
}

// TestMeteredBody_EventOverBound: an event larger than the bound reaches
// the client byte for byte, whatever the read sizes and however its blank
// line falls across them, and the request is charged its full reservation
// even though a usage chunk follows (the oversized event may have held
// the usage).
func TestMeteredBody_EventOverBound(t *testing.T) {
	big := `data: {"choices":[{"index":0,"delta":{"content":"` + strings.Repeat("x", 5000) + `"}}]}`
	for _, eol := range []string{"\n", "\r\n", "\r"} {
		stream := `data: {"choices":[{"index":0,"delta":{"content":"a"}}]}` + eol + eol +
			big + eol + eol + usageOnlyChunk + doneEvent
		for _, size := range []int{1, 7, 100, 1 << 20} {
			t.Run(fmt.Sprintf("eol %q, reads of %d", eol, size), func(t *testing.T) {
				out, s, reserved := meterStream(t, stream, 1000, size)
				if out != stream {
					t.Fatalf("the client got %d bytes that differ from the %d sent", len(out), len(stream))
				}
				if s.Outcome != budget.UsageMissing || s.Charged != reserved {
					t.Fatalf("got %s charged %s, want the full reservation %s", s.Outcome, s.Charged, reserved)
				}
			})
		}
	}
}

// TestMeteredBody_LargeEventBelowBound: a stream of many small events and
// one large event under the bound is passed on whole and charged its
// reported usage exactly.
func TestMeteredBody_LargeEventBelowBound(t *testing.T) {
	var sb strings.Builder
	for i := 0; i < 2000; i++ {
		sb.WriteString(`data: {"choices":[{"index":0,"delta":{"content":"a"}}]}` + "\n\n")
	}
	sb.WriteString(`data: {"choices":[{"index":0,"delta":{"content":"` + strings.Repeat("y", 3<<20) + `"}}]}` + "\n\n")
	for i := 0; i < 2000; i++ {
		sb.WriteString(`data: {"choices":[{"index":0,"delta":{"content":"b"}}]}` + "\r\n\r\n")
	}
	sb.WriteString(usageOnlyChunk + doneEvent)
	stream := sb.String()
	out, s, _ := meterStream(t, stream, 0, 32<<10)
	if out != stream {
		t.Fatalf("the client got %d bytes that differ from the %d sent", len(out), len(stream))
	}
	if s.Outcome != budget.Complete || s.Usage.InputTokens != 10 || s.Usage.OutputTokens != 2 {
		t.Fatalf("got %s with usage %+v, want complete with 10 in, 2 out", s.Outcome, s.Usage)
	}
}

// TestEventScanner_MatchesNextEvent: framing a buffer that grows a byte at
// a time finds the same events as framing it whole.
func TestEventScanner_MatchesNextEvent(t *testing.T) {
	in := "data: a\n\ndata: b\r\n\r\nevent: x\rdata: c\r\r\n\ndata: d\r\n\r"
	var whole []string
	for rest := []byte(in); ; {
		ev, r, ok := nextEvent(rest)
		if !ok {
			break
		}
		whole = append(whole, string(ev))
		rest = r
	}
	var s eventScanner
	var buf []byte
	var grown []string
	for i := 0; i < len(in); i++ {
		buf = append(buf, in[i])
		for {
			n, ok := s.next(buf)
			if !ok {
				break
			}
			grown = append(grown, string(buf[:n]))
			buf = buf[n:]
		}
	}
	if fmt.Sprint(grown) != fmt.Sprint(whole) {
		t.Fatalf("growing buffer framed %q, whole buffer %q", grown, whole)
	}
}

// BenchmarkMeteredBody_LargeEvent meters one large stream event arriving
// in 32 KiB reads. The cost per byte (shown as MB/s) stays flat as the
// event grows: the buffer is scanned once, not once per read.
func BenchmarkMeteredBody_LargeEvent(b *testing.B) {
	for _, size := range []int{256 << 10, 1 << 20, 4 << 20, 15 << 20} {
		stream := `data: {"choices":[{"index":0,"delta":{"content":"` + strings.Repeat("z", size) + `"}}]}` + "\n\n" + usageOnlyChunk + doneEvent
		b.Run(fmt.Sprintf("%dKiB", size>>10), func(b *testing.B) {
			b.SetBytes(int64(len(stream)))
			for i := 0; i < b.N; i++ {
				if _, s, _ := meterStream(b, stream, 0, 32<<10); s.Outcome != budget.Complete {
					b.Fatalf("got %s, want complete", s.Outcome)
				}
			}
		})
	}
}
