package proxy

import (
	"context"
	"sync"
	"time"

	"github.com/hardcap/hardcap/budget"
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

// FlushSettlements ends the retry loop and tries every waiting settlement
// once more; call it at shutdown, after Wait and before the ledger closes.
// It returns what still could not be written: those reservations stay
// open, and the next start charges them in full.
func (p *Proxy) FlushSettlements(ctx context.Context) (n int, held budget.Money) {
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
