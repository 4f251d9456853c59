package proxy

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
)

// maxMeteredJSON bounds how much of a non-streamed response hardcap keeps to
// read its usage. A larger body is still passed through whole, but charged
// at the full reservation.
const maxMeteredJSON = 16 << 20

// maxMeteredEvent bounds how much of one stream event hardcap keeps to read
// its usage, for the same reason and with the same rule: a larger event is
// passed through unchanged, and the request charged in full.
const maxMeteredEvent = 16 << 20

// meter follows one metered request from its reservation to its settlement.
type meter struct {
	p      *Proxy
	res    budget.Reservation
	prices pricing.Prices
	start  time.Time
	// req is the parsed request; its tracker reads the response's usage.
	req meteredRequest
	// surcharge is added to the cost of reported usage: granted allowances
	// for fees the usage does not carry.
	surcharge budget.Money
	// uplifted is set when prices already carry the US inference uplift;
	// reported is an uplift the response's usage reports (see
	// upliftReporter), applied at settlement when the prices lack it.
	uplifted bool
	reported pricing.Multiplier
	// callPrices are per-call server tool prices by output item type, and
	// maxToolCalls the most calls the response may make; calls and
	// callsSeen are what the response showed (see toolCallCounter).
	callPrices   map[string]budget.Money
	maxToolCalls int64
	calls        map[string]int64
	callsSeen    bool
	// unplacedWrites is set when the usage did not count cache writes: any
	// uncached input token may have been one.
	unplacedWrites bool
	// cut ends the upstream request (kill switch, shutdown).
	cut context.CancelCauseFunc
	// release ends the upstream context and its deadline; inflight.remove
	// calls it when the request settles.
	release func()

	// tokenID and project select the request for Cut; they are set before
	// the request is registered and never change.
	tokenID, project string
	// oldSecret marks a request authenticated with a rotated token's
	// previous secret, in its grace; a later rotation cuts it.
	oldSecret bool
	// sent is set once any byte of the request reached the connection.
	sent atomic.Bool
	// killed is set when the kill switch cut the request (see Cut).
	killed atomic.Bool
	// slot is set when the request holds a max_concurrent slot of its
	// token, given back when it settles.
	slot bool
	// requestID is the provider's id for the request, from its response
	// headers (see requestID); set before the response is metered.
	requestID string

	once sync.Once
	// attached is set once a response body took over settlement.
	attached bool
}

// settle charges the request exactly once: usage when the provider reported
// it, nothing when the request provably did not reach the provider or was
// refused before any output, and the full reservation otherwise.
func (m *meter) settle(usage *budget.Usage, status int, outcome budget.Outcome) {
	m.once.Do(func() {
		defer m.p.inflight.remove(m)
		if m.slot {
			defer m.p.conc.release(m.tokenID)
		}
		s := budget.Settlement{Status: status, Outcome: outcome, Ended: m.p.now(), RequestID: m.requestID}
		s.Latency = s.Ended.Sub(m.start)
		switch {
		case usage != nil:
			s.Usage = *usage
			prices, err := m.prices, error(nil)
			if !m.reported.One() && !m.uplifted {
				prices, err = prices.Scale(m.reported)
			}
			if m.unplacedWrites {
				prices = prices.WithUnplacedWrites()
			}
			cost, cerr := prices.Cost(*usage)
			err = errors.Join(err, cerr)
			if err == nil {
				cost, err = cost.Add(m.surcharge)
			}
			if err == nil {
				var calls budget.Money
				calls, err = m.callCharge()
				if err == nil {
					cost, err = cost.Add(calls)
				}
			}
			if err != nil {
				// Usage that cannot be priced is charged the upper bound.
				s.Charged, s.Outcome = m.res.Amount, budget.UsageMissing
			} else {
				s.Charged, s.Outcome = cost, budget.Complete
			}
		case outcome == budget.NotSent || outcome == budget.UpstreamRefused:
			s.Charged = 0
		default:
			s.Charged, s.Outcome = m.res.Amount, budget.UsageMissing
		}
		if outcome == budget.Killed {
			// The record says why the request ended; the charge above
			// stays what the usage (or its absence) makes it.
			s.Outcome = budget.Killed
		}
		// The settlement must be written even when the client is gone.
		m.p.record(m.res, s)
	})
}

// callCharge is what the response's per-call server tool calls cost: each
// call item at its tool's price, or, when the response did not show its
// output, the most calls it may make at the dearest price.
func (m *meter) callCharge() (budget.Money, error) {
	if len(m.callPrices) == 0 {
		return 0, nil
	}
	var total, dearest budget.Money
	for item, price := range m.callPrices {
		dearest = max(dearest, price)
		if n := m.calls[item]; m.callsSeen && n > 0 {
			if n > int64(budget.MaxMoney)/max(int64(price), 1) {
				return 0, budget.ErrOverflow
			}
			var err error
			if total, err = total.Add(budget.Money(n) * price); err != nil {
				return 0, err
			}
		}
	}
	if !m.callsSeen {
		if m.maxToolCalls > int64(budget.MaxMoney)/max(int64(dearest), 1) {
			return 0, budget.ErrOverflow
		}
		return budget.Money(m.maxToolCalls) * dearest, nil
	}
	return total, nil
}

// writePlacer is a usage tracker that knows whether its usage counted the
// input tokens written to the cache (OpenAI's).
type writePlacer interface {
	unplacedWrites() bool
}

// toolCallCounter is a usage tracker that counts the response's output
// items by type (Responses).
type toolCallCounter interface {
	toolCalls() (map[string]int64, bool)
}

// upliftReporter is a usage tracker whose usage can report a price factor
// the request did not ask for (Anthropic's inference_geo).
type upliftReporter interface {
	uplift() pricing.Multiplier
}

// meteredBody passes a response body through to the client while reading
// its usage, and settles when the body ends. If the client goes away first
// it keeps reading the upstream body in the background so the usage still
// arrives (the provider bills the whole generation either way).
type meteredBody struct {
	m      *meter
	src    io.ReadCloser
	status int
	sse    bool

	mu     sync.Mutex // Read and Close may race when the client leaves
	raw    []byte     // sse: bytes not yet framed into events
	out    []byte     // sse: bytes ready for the client
	whole  []byte     // json: the body so far, up to maxMeteredJSON
	tooBig bool       // a body or an event too large to meter: charge in full
	// scan frames raw without rescanning it; maxEvent bounds how much of
	// one event is kept (default maxMeteredEvent); skipping is set while
	// an event over it is passed through unframed.
	scan     eventScanner
	maxEvent int
	skipping bool
	// lastData is the data of the last event framed, which a kill event
	// may need (the Responses sequence number).
	lastData []byte
	// usage reads the usage of this response's API.
	usage   usageTracker
	done    bool
	doneErr error
}

// copyBufSize is the size of the buffers ReverseProxy copies response
// bodies with, and of the one a background drain reads with. A stream holds
// its buffer for its whole life, so it is one page: SSE events are a few
// hundred bytes, and a larger answer only takes more reads (measured: no
// change in throughput against 8 KB, 4 KB less per open stream).
const copyBufSize = 4 << 10

// copyBuffers recycles copy buffers: one per response would otherwise be
// the largest allocation on the request path. It holds array pointers, so
// Get and Put allocate nothing.
type copyBuffers struct{ pool sync.Pool }

// Get returns a buffer of copyBufSize bytes.
func (c *copyBuffers) Get() []byte {
	if a, ok := c.pool.Get().(*[copyBufSize]byte); ok {
		return a[:]
	}
	return new([copyBufSize]byte)[:]
}

// Put returns a buffer from Get; others are left to the collector.
func (c *copyBuffers) Put(b []byte) {
	if cap(b) >= copyBufSize {
		c.pool.Put((*[copyBufSize]byte)(b[:copyBufSize]))
	}
}

// bufPool serves ReverseProxy (its BufferPool) and background drains.
var bufPool copyBuffers

// keepBuf is the most capacity raw and out keep between reads once they
// are empty: an idle stream holds its unframed tail, not a read buffer.
const keepBuf = 4 << 10

func newMeteredBody(m *meter, resp *http.Response, sse bool, usage usageTracker) *meteredBody {
	return &meteredBody{m: m, src: resp.Body, status: resp.StatusCode, sse: sse, usage: usage, maxEvent: maxMeteredEvent}
}

// Read returns the next bytes for the client. Stream events are returned
// whole, as soon as they arrive. Upstream is read into p, the caller's own
// buffer (ReverseProxy's pooled copy buffer), so a response holds no read
// buffer of its own between reads.
func (b *meteredBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if len(p) == 0 {
		return 0, nil
	}
	if !b.sse {
		// A JSON body reaches the client as it comes: only a copy for
		// its usage is kept.
		if b.done {
			return 0, b.doneErr
		}
		if n := b.pull(p); n > 0 || !b.done {
			return n, nil
		}
		return 0, b.doneErr
	}
	for len(b.out) == 0 {
		if b.done {
			return 0, b.doneErr
		}
		b.pull(p)
	}
	n := copy(p, b.out)
	b.out = b.out[n:]
	if len(b.out) == 0 {
		b.out = trimmed(b.out)
	}
	return n, nil
}

// trimmed empties buf, and lets go of its memory when it grew past keepBuf.
func trimmed(buf []byte) []byte {
	if cap(buf) > keepBuf {
		return nil
	}
	return buf[:0]
}

// pull reads once from upstream into p and processes what came; it returns
// how many bytes were read.
func (b *meteredBody) pull(p []byte) int {
	n, err := b.src.Read(p)
	b.process(p[:n])
	if err != nil {
		b.finish(err)
	}
	return n
}

func (b *meteredBody) process(chunk []byte) {
	if len(chunk) == 0 {
		return
	}
	if !b.sse {
		if !b.tooBig {
			if len(b.whole)+len(chunk) > maxMeteredJSON {
				b.tooBig, b.whole = true, nil
			} else {
				b.whole = append(b.whole, chunk...)
			}
		}
		return
	}
	b.raw = append(b.raw, chunk...)
	start := 0
	for {
		n, ok := b.scan.next(b.raw[start:])
		if !ok {
			break
		}
		switch {
		case b.skipping:
			// The end of an event too large to meter: pass it on as it is.
			b.out = append(b.out, b.raw[start:start+n]...)
			b.skipping = false
		case n > b.maxEvent:
			b.oversized()
			b.out = append(b.out, b.raw[start:start+n]...)
		default:
			b.event(b.raw[start : start+n])
		}
		start += n
	}
	if b.skipping || len(b.raw)-start > b.maxEvent {
		// An event over the bound is not kept: it reaches the client
		// unchanged as it arrives.
		if !b.skipping {
			b.oversized()
		}
		b.skipping = true
		k := b.scan.scanned()
		b.out = append(b.out, b.raw[start:start+k]...)
		b.scan.drop(k)
		start += k
	}
	// Only the unframed tail stays; it is moved to the front so the
	// buffer does not grow with the stream.
	if start == len(b.raw) {
		b.raw = trimmed(b.raw)
	} else if start > 0 {
		b.raw = b.raw[:copy(b.raw, b.raw[start:])]
	}
}

// oversized marks the stream as holding an event over the bound: its usage
// may have been in it, so the request is charged the full reservation.
func (b *meteredBody) oversized() {
	if !b.tooBig {
		b.m.p.log.Warn().Str("reservation", b.m.res.ID).Int("bound_bytes", b.maxEvent).
			Msg("stream event too large to meter: the request is charged its full reservation")
	}
	b.tooBig = true
}

// event meters one stream event and queues it for the client unless the
// tracker hides it (a usage chunk the client did not ask for).
func (b *meteredBody) event(ev []byte) {
	if typ, data, ok := eventFields(ev); ok {
		// data aliases the stream's buffer, which later reads overwrite.
		b.lastData = append(b.lastData[:0], data...)
		if b.usage.event(typ, data) {
			return
		}
	}
	b.out = append(b.out, ev...)
}

// finish ends the body after the upstream read returned err, and settles.
func (b *meteredBody) finish(err error) {
	if b.done {
		return
	}
	b.done = true
	if errors.Is(err, io.EOF) {
		b.doneErr = io.EOF
	} else {
		b.doneErr = err
	}
	if b.sse && len(b.raw) > 0 {
		if b.skipping {
			b.out = append(b.out, b.raw...)
		} else {
			// A final event without its blank line still counts.
			b.event(b.raw)
		}
		b.raw = nil
	}
	clean := errors.Is(err, io.EOF)
	outcome := budget.UsageMissing
	if !clean && b.m.killed.Load() {
		outcome = budget.Killed
		if b.sse {
			// The client learns why its stream ends, in its API's own
			// error event, and the stream then ends cleanly.
			b.out = append(b.out, killEvent(b.m.req, b.lastData)...)
			b.doneErr = io.EOF
		}
	}
	if !b.sse && !b.tooBig && clean {
		b.usage.whole(b.whole)
		b.whole = nil
	}
	if b.tooBig {
		b.m.settle(nil, b.status, outcome)
		return
	}
	if u, ok := b.usage.result(clean); ok {
		if r, ok := b.usage.(upliftReporter); ok {
			b.m.reported = r.uplift()
		}
		if c, ok := b.usage.(toolCallCounter); ok {
			b.m.calls, b.m.callsSeen = c.toolCalls()
		}
		if w, ok := b.usage.(writePlacer); ok {
			b.m.unplacedWrites = w.unplacedWrites()
		}
		if outcome != budget.Killed {
			outcome = budget.Complete
		}
		b.m.settle(&u, b.status, outcome)
		return
	}
	b.m.settle(nil, b.status, outcome)
}

// Close ends the client's side. When the body was not read to its end (the
// client left, or the copy failed) the rest is drained in the background,
// bounded by the upstream deadline, so that usage still settles.
func (b *meteredBody) Close() error {
	b.mu.Lock()
	if b.done {
		b.mu.Unlock()
		return b.src.Close()
	}
	b.mu.Unlock()
	go func() {
		b.mu.Lock()
		defer b.mu.Unlock()
		buf := bufPool.Get()
		defer bufPool.Put(buf)
		for !b.done {
			b.out = b.out[:0]
			b.pull(buf)
		}
		b.out = nil
		_ = b.src.Close()
	}()
	return nil
}
