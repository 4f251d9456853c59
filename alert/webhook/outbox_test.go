package webhook

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/internal/testlog"
	"github.com/rs/zerolog"
)

// fakeOutbox is an in-memory alert.Outbox that keeps every SetDelivery.
type fakeOutbox struct {
	mu      sync.Mutex
	order   []string
	entries map[string]*alert.Entry
	done    map[string]bool
	calls   map[key][]alert.Delivery
}

var _ alert.Outbox = (*fakeOutbox)(nil)

func newOutbox(entries ...alert.Entry) *fakeOutbox {
	o := &fakeOutbox{entries: map[string]*alert.Entry{}, done: map[string]bool{}, calls: map[key][]alert.Delivery{}}
	for _, e := range entries {
		o.add(e)
	}
	return o
}

func (o *fakeOutbox) add(e alert.Entry) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.order = append(o.order, e.Alert.ID)
	o.entries[e.Alert.ID] = &e
}

func (o *fakeOutbox) Undelivered(ctx context.Context, after string, n int) ([]alert.Entry, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	var out []alert.Entry
	skipping := after != ""
	for _, id := range o.order {
		if len(out) == n {
			break
		}
		if skipping {
			skipping = id != after
			continue
		}
		if o.done[id] {
			continue
		}
		e := *o.entries[id]
		e.Deliveries = slices.Clone(e.Deliveries)
		out = append(out, e)
	}
	return out, ctx.Err()
}

func (o *fakeOutbox) SetDelivery(_ context.Context, id string, d alert.Delivery, done bool) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	e := o.entries[id]
	if e == nil {
		e = &alert.Entry{Alert: alert.Alert{ID: id}}
		o.entries[id] = e
		o.order = append(o.order, id)
	}
	i := slices.IndexFunc(e.Deliveries, func(x alert.Delivery) bool { return x.Channel == d.Channel })
	if d.Channel == "" {
		// Closes the entry only (alert.Outbox).
	} else if i < 0 {
		e.Deliveries = append(e.Deliveries, d)
	} else {
		e.Deliveries[i] = d
	}
	if done {
		o.done[id] = true
	}
	k := key{id, d.Channel}
	o.calls[k] = append(o.calls[k], d)
	return nil
}

// delivery is the recorded delivery of id on channel.
func (o *fakeOutbox) delivery(id, channel string) (alert.Delivery, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if e := o.entries[id]; e != nil {
		return e.Delivery(channel)
	}
	return alert.Delivery{}, false
}

func (o *fakeOutbox) isDone(id string) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.done[id]
}

func (o *fakeOutbox) allDone() bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.done) == len(o.order)
}

// history is every delivery recorded for id on channel, in order.
func (o *fakeOutbox) history(id, channel string) []alert.Delivery {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.calls[key{id, channel}])
}

// fakeClock is a clock the test moves.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func newLog() (zerolog.Logger, *testlog.Buffer) {
	buf := &testlog.Buffer{}
	return zerolog.New(buf), buf
}

// testAlert is an alert of type typ for project web raised at at.
func testAlert(id string, typ alert.Type, at time.Time) alert.Alert {
	return alert.Alert{ID: id, Type: typ, Time: at, Scope: alert.Scope{Kind: "project", Project: "web"},
		Message: "alert " + id, Action: alert.ActionAlert}
}

// waitFor waits until cond holds; the bound only keeps a broken build
// from hanging.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting: %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// start runs d until the test ends and waits for Run to return.
func start(t *testing.T, d *Deliverer) context.CancelFunc {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	go func() {
		d.Run(ctx)
		close(ended)
	}()
	t.Cleanup(func() {
		cancel()
		<-ended
	})
	return cancel
}

func mustNew(t *testing.T, opts Options) *Deliverer {
	t.Helper()
	d, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return d
}

// newLoopbackServer serves h on loopback until the test ends and returns
// its URL.
func newLoopbackServer(t *testing.T, h http.Handler) string {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return srv.URL
}
