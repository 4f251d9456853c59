package proxy

import (
	"context"
	"sync"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/rs/zerolog"
)

// Defaults of the settlement retry backoff: a storage fault (a full disk)
// usually lasts seconds to minutes, and a retry of a batch of settlements
// costs one write.
const (
	// DefaultSettleRetry is the first wait before a failed settlement is
	// tried again; each later wait doubles.
	DefaultSettleRetry = time.Second
	// DefaultSettleRetryMax caps the wait between tries.
	DefaultSettleRetryMax = 4 * time.Minute
)

// settleQueue holds settlements the ledger failed to write. Their
// reservations stay held in the ledger meanwhile, which keeps committed +
// reserved under every limit; a retry loop tries them again with backoff
// for as long as the process lives, so they land with their real charge
// once storage works again. What never lands is charged in full by the
// next start's recovery.
type settleQueue struct {
	p          *Proxy
	first, max time.Duration

	mu      sync.Mutex
	items   []*pendingSettle
	running bool          // a retry loop runs
	stopped bool          // Flush ran: no more loops
	stop    chan struct{} // closed by Flush to end the loop
	done    chan struct{} // closed when the running loop ends
}

// pendingSettle is one settlement waiting to be written.
type pendingSettle struct {
	res   budget.Reservation
	s     budget.Settlement
	tries int
}

func newSettleQueue(p *Proxy, first, max time.Duration) *settleQueue {
	if first <= 0 {
		first = DefaultSettleRetry
	}
	if max <= 0 {
		max = DefaultSettleRetryMax
	}
	return &settleQueue{p: p, first: first, max: max, stop: make(chan struct{})}
}

// add queues a settlement that failed once, and starts the retry loop if
// none runs.
func (q *settleQueue) add(res budget.Reservation, s budget.Settlement) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.items = append(q.items, &pendingSettle{res: res, s: s, tries: 1})
	if !q.running && !q.stopped {
		q.running = true
		q.done = make(chan struct{})
		go q.loop(q.done)
	}
}

// loop retries the queue with doubling waits until it is empty or Flush
// stops it.
func (q *settleQueue) loop(done chan struct{}) {
	defer close(done)
	wait := q.first
	for {
		t := time.NewTimer(wait)
		select {
		case <-q.stop:
			t.Stop()
			q.mu.Lock()
			q.running = false
			q.mu.Unlock()
			return
		case <-t.C:
		}
		q.pass(context.Background())
		q.mu.Lock()
		if len(q.items) == 0 {
			q.running = false
			q.mu.Unlock()
			return
		}
		q.mu.Unlock()
		wait = min(wait*2, q.max)
	}
}

// pass tries every queued settlement once. One that lands, or that the
// ledger says can never land (already settled, ledger closed), leaves the
// queue.
func (q *settleQueue) pass(ctx context.Context) {
	q.mu.Lock()
	batch := append([]*pendingSettle(nil), q.items...)
	q.mu.Unlock()
	for _, it := range batch {
		rec, err := q.p.ledger.Settle(ctx, it.res.ID, it.s)
		if err != nil && retriable(err) {
			q.mu.Lock()
			it.tries++
			q.mu.Unlock()
			continue
		}
		q.remove(it)
		if err != nil {
			q.p.log.Error().Err(err).Str("reservation", it.res.ID).Int("tries", it.tries+1).
				Msg("settlement given up: the full reservation will be charged at the next start")
			continue
		}
		q.p.log.Info().Str("reservation", it.res.ID).Int("tries", it.tries+1).
			Msg("settlement recorded after retrying")
		q.p.logRecord(it.res, rec)
	}
}

func (q *settleQueue) remove(it *pendingSettle) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, x := range q.items {
		if x == it {
			q.items = append(q.items[:i], q.items[i+1:]...)
			return
		}
	}
}

// waiting is how many settlements wait and the money their reservations
// hold, in nano-USD.
func (q *settleQueue) waiting() (int, budget.Money) {
	q.mu.Lock()
	defer q.mu.Unlock()
	var held budget.Money
	for _, it := range q.items {
		held += it.res.Amount
	}
	return len(q.items), held
}

// SettlementsWaiting is how many settlements the ledger failed to write
// and that wait for a retry, and how much money (nano-USD) their
// reservations hold meanwhile.
func (p *Proxy) SettlementsWaiting() (n int, held budget.Money) { return p.settles.waiting() }

// FlushSettlements waits for the settlements queued in the ledger (so
// that those it fails join the retry queue), ends the retry loop and tries
// every waiting settlement once more; call it at shutdown, after Wait and
// before the ledger closes. It returns what still could not be written:
// those reservations stay open, and the next start charges them in full.
func (p *Proxy) FlushSettlements(ctx context.Context) (n int, held budget.Money) {
	if f, ok := p.ledger.(flusher); ok {
		// An error (a closed or broken ledger) leaves the queued
		// settlements to their callbacks, which log them.
		_ = f.Flush(ctx)
	}
	q := p.settles
	q.mu.Lock()
	var done chan struct{}
	if !q.stopped {
		q.stopped = true
		close(q.stop)
		if q.running {
			done = q.done
		}
	}
	q.mu.Unlock()
	if done != nil {
		<-done
	}
	q.pass(ctx)
	return q.waiting()
}

// asyncSettler is a ledger that can queue a settlement without waiting for
// its commit (storage.DB): the response then ends when its body does, and
// the settlement lands in the writer's next group commit while its
// reservation stays held.
type asyncSettler interface {
	SettleAsync(id string, s budget.Settlement, done func(budget.Record, error))
}

// flusher is a ledger that can wait for the settlements queued in it.
type flusher interface {
	Flush(ctx context.Context) error
}

// record writes a settlement: it queues it in a ledger that can settle
// asynchronously (and returns once it is queued), else writes it and
// waits. One the ledger fails to write for a reason that may pass (a full
// disk) is queued and retried until it lands; its reservation stays held
// meanwhile.
func (p *Proxy) record(res budget.Reservation, s budget.Settlement) {
	if a, ok := p.ledger.(asyncSettler); ok {
		a.SettleAsync(res.ID, s, func(rec budget.Record, err error) { p.recorded(res, s, rec, err) })
		return
	}
	rec, err := p.ledger.Settle(context.Background(), res.ID, s)
	p.recorded(res, s, rec, err)
}

// recorded logs a settlement's result, and queues it for a retry when its
// error may pass.
func (p *Proxy) recorded(res budget.Reservation, s budget.Settlement, rec budget.Record, err error) {
	switch {
	case err == nil:
		p.logRecord(res, rec)
	case retriable(err):
		n, held := p.settles.waiting()
		p.log.Error().Err(err).Str("reservation", res.ID).Str("token", res.Request.TokenID).Str("project", res.Request.Project).
			Stringer("reserved_usd", res.Amount).Stringer("charged_usd", s.Charged).Int("waiting", n+1).Stringer("waiting_usd", held+res.Amount).
			Msg("settlement not recorded: kept in memory and retried until it lands; its reservation stays held")
		p.settles.add(res, s)
	default:
		// The reservation stays open and is charged in full on the next
		// start: never less than the provider could bill.
		p.log.Error().Err(err).Str("reservation", res.ID).Msg("settlement not recorded; the full reservation will be charged at the next start")
		p.logRecord(res, budget.NewRecord(res, s))
	}
}

// logRecord writes the request's log line, and alerts on a charge above
// its reservation.
func (p *Proxy) logRecord(res budget.Reservation, rec budget.Record) {
	if p.observer != nil {
		p.observer.Settled(rec)
	}
	level := zerolog.InfoLevel
	if rec.Charged > res.Amount {
		level = zerolog.WarnLevel
	}
	ev := p.log.WithLevel(level).
		Str("token", rec.TokenID).Str("project", rec.Project).
		Str("provider", rec.Provider).Str("model", rec.Model).Str("route", rec.Route).
		Int("status", rec.Status).Str("outcome", string(rec.Outcome)).
		Int64("input_tokens", rec.Usage.InputTokens).Int64("output_tokens", rec.Usage.OutputTokens).
		Stringer("reserved_usd", rec.Reserved).Stringer("charged_usd", rec.Charged).
		Int64("latency_ms", rec.LatencyMS)
	if rec.Charged > res.Amount {
		// The ledger raised the overshoot alert in the settlement's
		// transaction (storage's detectors).
		ev.Msg("charge above reservation: the price data or the provider's usage is off")
		return
	}
	ev.Msg("request")
}
