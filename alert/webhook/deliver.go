package webhook

import (
	"context"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/rs/zerolog"
)

// Defaults of Options.
const (
	defaultMinBackoff = 5 * time.Second
	defaultMaxBackoff = time.Hour
	defaultPoll       = 5 * time.Second
)

const (
	// batch is how many entries one read of the outbox returns; a pass
	// reads page after page, so that entries waiting on a dead
	// channel's backoff never hide the newer ones behind them.
	batch = 1000
	// maxPages bounds the pages of one pass.
	maxPages = 1000
	// queueLen bounds each channel's queue of attempts; what does not fit
	// waits in the outbox for a later pass.
	queueLen = 64
	// recordTimeout bounds the outbox write after an attempt. It is not
	// cut short when Run ends: an attempt that happened is worth
	// recording, or its alert is sent again at the next start.
	recordTimeout = 10 * time.Second
)

// Deliverer delivers the alerts of an outbox to the configured channels,
// at least once each, under the alert's id.
type Deliverer struct {
	outbox   alert.Outbox
	channels []*channel
	byName   map[string]*channel
	routes   []Route
	dflt     []string
	client   *http.Client
	now      func() time.Time
	log      zerolog.Logger
	min, max time.Duration
	poll     time.Duration
	// attemptTimeout bounds a webhook attempt whatever the client says,
	// so that Run's end waits a bounded time for attempts in flight.
	attemptTimeout time.Duration

	wake chan struct{}

	mu sync.Mutex
	// pass counts the outbox reads; a read with a higher number than a
	// tracked entry's seq saw everything recorded for it.
	pass    uint64
	tracked map[string]*tracked
	// queued are the attempts waiting in a channel's queue, busy those
	// under way (closed when they end).
	queued map[key]bool
	busy   map[key]chan struct{}
}

// key is one alert on one channel.
type key struct{ id, channel string }

// job is an attempt waiting in a channel's queue.
type job struct{ t *tracked }

// tracked is what the deliverer knows of an entry it is working on: the
// outbox's copy with the deliveries recorded since merged in, so that the
// last channel to finish knows the entry is done.
type tracked struct {
	// rec serializes the recording of the entry's deliveries: each one
	// computes done from the others and writes in that order.
	rec      sync.Mutex
	entry    alert.Entry
	channels []string
	// refs counts the queued and running attempts and DeliverNow calls
	// that hold it; seq is the pass at its last record.
	refs int
	seq  uint64
	done bool
}

// New checks opts and returns a Deliverer. Its errors name a channel by
// position and name, never by URL, secret or password.
func New(opts Options) (*Deliverer, error) {
	if opts.Outbox == nil {
		return nil, ErrNoOutbox
	}
	chans, err := newChannels(opts)
	if err != nil {
		return nil, err
	}
	d := &Deliverer{
		outbox:   opts.Outbox,
		channels: chans,
		byName:   map[string]*channel{},
		routes:   slices.Clone(opts.Routes),
		dflt:     slices.Clone(opts.Default),
		client:   opts.Client,
		now:      opts.Now,
		log:      opts.Log,
		min:      opts.MinBackoff,
		max:      opts.MaxBackoff,
		poll:     opts.Poll,
		wake:     make(chan struct{}, 1),
		tracked:  map[string]*tracked{},
		queued:   map[key]bool{},
		busy:     map[key]chan struct{}{},
	}
	for _, c := range chans {
		c.queue = make(chan job, queueLen)
		d.byName[c.name] = c
	}
	if err := checkRoutes(d.routes, d.dflt, d.byName); err != nil {
		return nil, err
	}
	if d.client == nil {
		d.client = defaultClient()
	}
	d.attemptTimeout = clientTimeout
	if d.client.Timeout > 0 {
		d.attemptTimeout = d.client.Timeout
	}
	if d.now == nil {
		d.now = time.Now
	}
	if d.min <= 0 {
		d.min = defaultMinBackoff
	}
	if d.max <= 0 {
		d.max = defaultMaxBackoff
	}
	d.max = max(d.max, d.min)
	if d.poll <= 0 {
		d.poll = defaultPoll
	}
	return d, nil
}

// Wake makes Run read the outbox now rather than at its next poll; it
// never blocks. Storage calls it after a commit that added alerts.
func (d *Deliverer) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run delivers until ctx ends, then returns once the attempts under way
// have ended (each is bounded by the client's timeout).
func (d *Deliverer) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, c := range d.channels {
		wg.Go(func() { d.work(ctx, c) })
	}
	defer wg.Wait()
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-d.wake:
		}
		d.pass1(ctx)
		t.Reset(d.poll)
	}
}

// pass1 reads the outbox once and queues every attempt that is due.
func (d *Deliverer) pass1(ctx context.Context) {
	d.mu.Lock()
	d.pass++
	p := d.pass
	d.mu.Unlock()
	var entries []alert.Entry
	after := ""
	for range maxPages {
		page, err := d.outbox.Undelivered(ctx, after, batch)
		if err != nil {
			if ctx.Err() == nil {
				d.log.Warn().Err(err).Msg("alerts: reading the outbox failed")
			}
			return
		}
		entries = append(entries, page...)
		if len(page) < batch {
			break
		}
		after = page[len(page)-1].Alert.ID
	}
	now := d.now()
	var unknown []alert.Delivery
	var unknownOf []*tracked
	var finished []*tracked
	d.mu.Lock()
	for _, e := range entries {
		t := d.track(e)
		waiting := false
		for _, name := range t.channels {
			k := key{e.Alert.ID, name}
			if d.queued[k] || d.busy[k] != nil {
				waiting = true
				continue
			}
			if !due(t.entry, name, now) {
				continue
			}
			waiting = true
			c := d.byName[name]
			prev, tried := t.entry.Delivery(name)
			// Past the retrying: a channel never tried, or whose last
			// attempt (due at the deadline) is an hour late (hardcap was
			// down), is not sent a day or more late.
			deadline := t.entry.Alert.Time.Add(alert.MaxAge)
			late := !now.Before(deadline) && (!tried || now.Sub(deadline) > time.Hour)
			if c == nil || late {
				why := ErrNoChannel
				if c != nil {
					why = ErrTooOld
				}
				unknown = append(unknown, d.outcome(t, name, prev.Attempts, why, now, true))
				unknownOf = append(unknownOf, t)
				t.refs++
				continue
			}
			select {
			case c.queue <- job{t}:
				d.queued[k] = true
				t.refs++
			default:
				// The channel is behind: its worker wakes the loop
				// when it has room.
				c.behind.Store(true)
			}
		}
		if !waiting && !t.done && t.final() {
			finished = append(finished, t)
			t.refs++
		}
	}
	d.mu.Unlock()
	for i, del := range unknown {
		d.logFailure(unknownOf[i].entry.Alert.ID, del)
		d.record(unknownOf[i], del)
		d.release(unknownOf[i])
	}
	for _, t := range finished {
		// Every channel is final but the outbox was never told (the
		// routes changed, or the write of the last one failed): say so
		// again with the last delivery.
		d.markDone(t)
		d.release(t)
	}
	d.sweep(p)
}

// due reports whether channel's delivery of e is to be attempted at now:
// never tried, or pending and its time come.
func due(e alert.Entry, channel string, now time.Time) bool {
	del, ok := e.Delivery(channel)
	return !ok || del.State == alert.Pending && !del.Next.After(now)
}

// final reports whether every channel of t has a final delivery.
func (t *tracked) final() bool {
	for _, c := range t.channels {
		del, ok := t.entry.Delivery(c)
		if !ok || del.State == alert.Pending {
			return false
		}
	}
	return true
}

// track returns the tracked form of e, merging e into what is known. The
// caller holds d.mu.
func (d *Deliverer) track(e alert.Entry) *tracked {
	t := d.tracked[e.Alert.ID]
	if t == nil {
		t = &tracked{entry: e, channels: uniq(d.channelsOf(e)), seq: d.pass}
		t.entry.Deliveries = slices.Clone(e.Deliveries)
		d.tracked[e.Alert.ID] = t
		return t
	}
	for _, del := range e.Deliveries {
		merge(&t.entry, del)
	}
	return t
}

// merge puts del into e unless e holds a later delivery of its channel.
func merge(e *alert.Entry, del alert.Delivery) {
	for i, old := range e.Deliveries {
		if old.Channel != del.Channel {
			continue
		}
		if del.Attempts > old.Attempts || del.Attempts == old.Attempts && del.Last.After(old.Last) {
			e.Deliveries[i] = del
		}
		return
	}
	e.Deliveries = append(e.Deliveries, del)
}

// release drops a hold on t.
func (d *Deliverer) release(t *tracked) {
	d.mu.Lock()
	t.refs--
	d.mu.Unlock()
}

// sweep forgets the entries no attempt holds that were read since their
// last record: the outbox's copy is as new as the deliverer's.
func (d *Deliverer) sweep(pass uint64) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for id, t := range d.tracked {
		if t.refs == 0 && t.seq < pass {
			delete(d.tracked, id)
		}
	}
}

// work runs the attempts queued on c, one at a time, until ctx ends.
func (d *Deliverer) work(ctx context.Context, c *channel) {
	for {
		select {
		case <-ctx.Done():
			d.drain(c)
			return
		case j := <-c.queue:
			if ctx.Err() != nil {
				d.unqueue(c, j)
				d.drain(c)
				return
			}
			d.runQueued(ctx, c, j)
			if len(c.queue) == 0 && c.behind.Swap(false) {
				d.Wake()
			}
		}
	}
}

// drain drops the attempts left in c's queue when Run ends.
func (d *Deliverer) drain(c *channel) {
	for {
		select {
		case j := <-c.queue:
			d.unqueue(c, j)
		default:
			return
		}
	}
}

func (d *Deliverer) unqueue(c *channel, j job) {
	d.mu.Lock()
	delete(d.queued, key{j.t.entry.Alert.ID, c.name})
	j.t.refs--
	d.mu.Unlock()
}

// runQueued makes the attempt j on c, unless DeliverNow is making it or
// made it since it was queued.
func (d *Deliverer) runQueued(ctx context.Context, c *channel, j job) {
	t := j.t
	k := key{t.entry.Alert.ID, c.name}
	d.mu.Lock()
	delete(d.queued, k)
	if d.busy[k] != nil || !due(t.entry, c.name, d.now()) {
		t.refs--
		d.mu.Unlock()
		return
	}
	doneCh := make(chan struct{})
	d.busy[k] = doneCh
	prev, _ := t.entry.Delivery(c.name)
	d.mu.Unlock()

	// The attempt is not cut short by Run's end (it is bounded by its
	// timeout), so that what the receiver got is recorded as such.
	d.attempt(context.WithoutCancel(ctx), c, t, prev)

	d.mu.Lock()
	delete(d.busy, k)
	close(doneCh)
	t.refs--
	d.mu.Unlock()
}

// attempt delivers t's alert on c once and records the outcome.
func (d *Deliverer) attempt(ctx context.Context, c *channel, t *tracked, prev alert.Delivery) Result {
	a := t.entry.Alert
	start := d.now()
	res := Result{Channel: c.name}
	var err error
	if c.hook != nil {
		actx, cancel := context.WithTimeout(ctx, d.attemptTimeout)
		res.Status, err = d.post(actx, c.hook, a, start)
		cancel()
	} else {
		err = sendMail(ctx, c.mail, a, start)
	}
	res.OK = err == nil
	del := d.outcome(t, c.name, prev.Attempts, err, d.now(), false)
	if err != nil {
		res.Error = err.Error()
		d.logFailure(a.ID, del)
	}
	d.record(t, del)
	return res
}

// logFailure writes the warn line of a failed attempt; del.Error never
// holds a URL, secret or password.
func (d *Deliverer) logFailure(id string, del alert.Delivery) {
	ev := d.log.Warn().Str("alert", id).Str("channel", del.Channel).Int("attempt", del.Attempts).Str("error", del.Error)
	if del.State == alert.Failed {
		ev.Msg("alerts: delivery failed; no more attempts")
		return
	}
	ev.Time("next", del.Next).Msg("alerts: delivery failed; will retry")
}

// outcome is the delivery of t's alert on channel after attempt number
// attempts+1 ended at now with err. A failure is retried after the
// backoff, until the alert is MaxAge old; a test alert, or a channel that
// is gone (final), is not retried.
func (d *Deliverer) outcome(t *tracked, channel string, attempts int, err error, now time.Time, final bool) alert.Delivery {
	del := alert.Delivery{Channel: channel, Attempts: attempts + 1, Last: now, State: alert.Delivered}
	if err == nil {
		return del
	}
	del.Error = err.Error()
	deadline := t.entry.Alert.Time.Add(alert.MaxAge)
	if final || t.entry.Alert.Type == alert.TypeTest || !now.Before(deadline) {
		del.State = alert.Failed
		return del
	}
	del.State = alert.Pending
	del.Next = now.Add(d.backoff(del.Attempts))
	if del.Next.After(deadline) {
		// One last attempt as the retrying ends, not a backoff past it.
		del.Next = deadline
	}
	return del
}

// backoff is the wait after the n-th failed attempt: MinBackoff doubled
// n-1 times, at most MaxBackoff.
func (d *Deliverer) backoff(n int) time.Duration {
	b := d.min
	for i := 1; i < n && b < d.max; i++ {
		b *= 2
	}
	return min(b, d.max)
}

// record writes del to the outbox, saying done when it makes every
// channel of t final.
func (d *Deliverer) record(t *tracked, del alert.Delivery) {
	t.rec.Lock()
	defer t.rec.Unlock()
	d.mu.Lock()
	merge(&t.entry, del)
	done := t.final()
	d.mu.Unlock()
	d.write(t, del, done)
}

// markDone tells the outbox that t, whose every channel is final, is done.
func (d *Deliverer) markDone(t *tracked) {
	t.rec.Lock()
	defer t.rec.Unlock()
	d.mu.Lock()
	var last alert.Delivery
	for _, del := range t.entry.Deliveries {
		if slices.Contains(t.channels, del.Channel) && !del.Last.Before(last.Last) {
			last = del
		}
	}
	// An entry routed nowhere (default_channels: []) is done with no
	// delivery: an empty Delivery only closes it.
	ok := !t.done && t.final() && (last.Channel != "" || len(t.channels) == 0)
	d.mu.Unlock()
	if ok {
		d.write(t, last, true)
	}
}

// write calls SetDelivery; the caller holds t.rec. Its context is not
// the caller's: an attempt that happened is recorded even as Run ends.
func (d *Deliverer) write(t *tracked, del alert.Delivery, done bool) {
	ctx, cancel := context.WithTimeout(context.Background(), recordTimeout)
	defer cancel()
	err := d.outbox.SetDelivery(ctx, t.entry.Alert.ID, del, done)
	d.mu.Lock()
	// Reads numbered above this one see the write (or, if it failed,
	// the outbox's older copy, which is then retried).
	t.seq = d.pass
	d.mu.Unlock()
	if err != nil {
		d.log.Warn().Err(err).Str("alert", t.entry.Alert.ID).Str("channel", del.Channel).
			Msg("alerts: recording a delivery failed; it may be sent again")
		return
	}
	if done {
		d.mu.Lock()
		t.done = true
		d.mu.Unlock()
	}
}

// DeliverNow makes one attempt now on each channel of e (its own, or the
// route's), at once on all of them, and records each as Run does. An
// attempt Run has under way for the same alert and channel is waited for
// and, if it ended the delivery, reported instead of a second one.
func (d *Deliverer) DeliverNow(ctx context.Context, e alert.Entry) []Result {
	d.mu.Lock()
	t := d.track(e)
	t.refs++
	d.mu.Unlock()
	defer d.release(t)
	out := make([]Result, len(t.channels))
	var wg sync.WaitGroup
	for i, name := range t.channels {
		wg.Go(func() { out[i] = d.deliverNow(ctx, t, name) })
	}
	wg.Wait()
	return out
}

func (d *Deliverer) deliverNow(ctx context.Context, t *tracked, name string) Result {
	c := d.byName[name]
	if c == nil {
		d.mu.Lock()
		prev, _ := t.entry.Delivery(name)
		d.mu.Unlock()
		del := d.outcome(t, name, prev.Attempts, ErrNoChannel, d.now(), true)
		d.logFailure(t.entry.Alert.ID, del)
		d.record(t, del)
		return Result{Channel: name, Error: ErrNoChannel.Error()}
	}
	k := key{t.entry.Alert.ID, name}
	waited := false
	d.mu.Lock()
	for d.busy[k] != nil {
		w := d.busy[k]
		d.mu.Unlock()
		select {
		case <-w:
		case <-ctx.Done():
			return Result{Channel: name, Error: cause(ctx.Err())}
		}
		waited = true
		d.mu.Lock()
	}
	prev, _ := t.entry.Delivery(name)
	if waited && prev.State != alert.Pending {
		d.mu.Unlock()
		return Result{Channel: name, OK: prev.State == alert.Delivered, Error: prev.Error}
	}
	doneCh := make(chan struct{})
	d.busy[k] = doneCh
	d.mu.Unlock()
	defer func() {
		d.mu.Lock()
		delete(d.busy, k)
		close(doneCh)
		d.mu.Unlock()
	}()
	return d.attempt(ctx, c, t, prev)
}

// uniq drops repeated names, keeping the first of each.
func uniq(names []string) []string {
	out := make([]string, 0, len(names))
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}
