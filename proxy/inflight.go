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
	closed bool
}

// add registers m, or reports false once the proxy is closed.
func (f *inflight) add(m *meter) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return false
	}
	if f.meters == nil {
		f.meters = map[*meter]struct{}{}
	}
	f.meters[m] = struct{}{}
	f.wg.Add(1)
	return true
}

// remove takes m out of the set and ends its upstream context (its
// release), once m has settled or was refused.
func (f *inflight) remove(m *meter) {
	f.mu.Lock()
	if _, ok := f.meters[m]; ok {
		delete(f.meters, m)
		f.wg.Done()
	}
	f.mu.Unlock()
	if m.release != nil {
		m.release()
	}
}

// CutTarget selects requests to cut: all when both fields are empty, else
// one project's or one token's.
type CutTarget struct {
	Project string
	TokenID string
	// OldSecret, with TokenID, selects only the token's requests made with
	// its previous secret (see tokens.Token.OldSecret).
	OldSecret bool
}

// Cut ends the upstream side of every in-flight request that target
// selects, for the kill switch or a revocation. Each is then settled by the
// usual rule (its usage if it already arrived, else its full reservation)
// and recorded with outcome killed; a stream gets a final error event in
// its API's shape. It returns how many were cut.
func (p *Proxy) Cut(target CutTarget) int { return p.cutWhere(target, true) }

// cutWhere cuts the requests target selects; kill marks them killed, as
// opposed to cut by a shutdown.
func (p *Proxy) cutWhere(target CutTarget, kill bool) int {
	p.inflight.mu.Lock()
	defer p.inflight.mu.Unlock()
	n := 0
	for m := range p.inflight.meters {
		if (target.Project == "" || m.project == target.Project) && (target.TokenID == "" || m.tokenID == target.TokenID) &&
			(!target.OldSecret || m.oldSecret) {
			if kill {
				// Set before the cut, so whoever sees the cut sees the flag.
				m.killed.Store(true)
			}
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

// Close refuses new requests and cuts every request in flight; each is
// settled by the usual rule. Use Wait to let the settlements finish.
func (p *Proxy) Close() int {
	p.inflight.mu.Lock()
	p.inflight.closed = true
	p.inflight.mu.Unlock()
	return p.cutWhere(CutTarget{}, false)
}
