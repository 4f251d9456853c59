package proxy

import (
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hardcap/hardcap/tokens"
	"golang.org/x/time/rate"
)

// rateLimits holds one limiter per token that has an RPM. Limiters live in
// memory: a restart forgives at most one minute's burst.
type rateLimits struct {
	mu sync.Mutex
	m  map[string]*tokenLimiter
	// share is the number of replicas a cluster spreads each token's RPM
	// over (see SetRateShare); 0 or 1: all of it here.
	share atomic.Int64
}

type tokenLimiter struct {
	rpm int
	l   *rate.Limiter
}

// allow takes one request from the token's allowance, or returns the error
// to send with the seconds to wait.
func (r *rateLimits) allow(t tokens.Token, now time.Time) error {
	if t.RPM <= 0 {
		return nil
	}
	rpm := t.RPM
	if n := int(r.share.Load()); n > 1 {
		rpm = max((rpm+n-1)/n, 1)
	}
	r.mu.Lock()
	if r.m == nil {
		r.m = map[string]*tokenLimiter{}
	}
	tl := r.m[t.ID]
	if tl == nil || tl.rpm != rpm {
		tl = &tokenLimiter{rpm: rpm, l: rate.NewLimiter(rate.Every(time.Minute/time.Duration(rpm)), rpm)}
		r.m[t.ID] = tl
	}
	r.mu.Unlock()
	res := tl.l.ReserveN(now, 1)
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return rateLimited{seconds: int(math.Ceil(d.Seconds()))}
	}
	return nil
}

// SetRateShare spreads each token's RPM over n replicas of a cluster:
// each enforces its share, rounded up, of the token's rate. It is
// approximate (a load balancer that sends one replica more than its share
// of a token's requests refuses some early; replicas joining or leaving
// change the share at the next lease renewal).
func (p *Proxy) SetRateShare(n int) { p.limits.share.Store(int64(max(n, 1))) }
