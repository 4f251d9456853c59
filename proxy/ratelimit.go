package proxy

import (
	"math"
	"sync"
	"time"

	"github.com/hardcap/hardcap/tokens"
	"golang.org/x/time/rate"
)

// rateLimits holds one limiter per token that has an RPM. Limiters live in
// memory: a restart forgives at most one minute's burst.
type rateLimits struct {
	mu sync.Mutex
	m  map[string]*tokenLimiter
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
	r.mu.Lock()
	if r.m == nil {
		r.m = map[string]*tokenLimiter{}
	}
	tl := r.m[t.ID]
	if tl == nil || tl.rpm != t.RPM {
		tl = &tokenLimiter{rpm: t.RPM, l: rate.NewLimiter(rate.Every(time.Minute/time.Duration(t.RPM)), t.RPM)}
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
