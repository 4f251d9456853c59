package proxy

import (
	"context"
	"errors"
	"sync"
)

// ErrCut is the cause given to requests cut by the kill switch or by a
// shutdown that ran out of time.
var ErrCut = errors.New("request cut by hardcap")

// inflight tracks every reserved request until it settles, so the kill
// switch can cut running streams and shutdown can wait for settlements.
type inflight struct {
	mu     sync.Mutex
	meters map[*meter]struct{}
	wg     sync.WaitGroup
}

func (f *inflight) add(m *meter) {
	f.mu.Lock()
	if f.meters == nil {
		f.meters = map[*meter]struct{}{}
	}
	f.meters[m] = struct{}{}
	f.wg.Add(1)
	f.mu.Unlock()
}

func (f *inflight) remove(m *meter) {
	f.mu.Lock()
	if _, ok := f.meters[m]; ok {
		delete(f.meters, m)
		f.wg.Done()
	}
	f.mu.Unlock()
}

// CutTarget selects requests to cut: all when both fields are empty, else
// one project's or one token's.
type CutTarget struct {
	Project string
	TokenID string
}

// Cut ends the upstream side of every in-flight request that target
// selects. Each is then settled by the usual rule: its usage if it already
// arrived, else its full reservation. It returns how many were cut.
func (p *Proxy) Cut(target CutTarget) int {
	p.inflight.mu.Lock()
	defer p.inflight.mu.Unlock()
	n := 0
	for m := range p.inflight.meters {
		r := m.res.Request
		if (target.Project == "" || r.Project == target.Project) && (target.TokenID == "" || r.TokenID == target.TokenID) {
			m.cut(ErrCut)
			n++
		}
	}
	return n
}

// InFlight is the number of reserved requests not yet settled.
func (p *Proxy) InFlight() int {
	p.inflight.mu.Lock()
	defer p.inflight.mu.Unlock()
	return len(p.inflight.meters)
}

// Wait blocks until every in-flight request has settled or ctx ends.
func (p *Proxy) Wait(ctx context.Context) error {
	done := make(chan struct{})
	go func() { p.inflight.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
