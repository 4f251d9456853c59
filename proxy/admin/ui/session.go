package ui

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"net"
	"net/http"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// CookieName is the session cookie's name.
const CookieName = "hardcap_session"

// MaxSessions is the most sessions held at once; a new login past it drops
// the oldest, so a flood of logins cannot grow the server's memory.
const MaxSessions = 1000

// MaxSessionAge is a session's absolute lifetime, however active.
const MaxSessionAge = 24 * time.Hour

// DefaultSessionTTL is how long a session lives without a request.
const DefaultSessionTTL = 12 * time.Hour

// Login attempts allowed per client address: LoginBurst at once, then one
// every LoginEvery.
const (
	LoginBurst = 5
	LoginEvery = 12 * time.Second
)

// maxLoginLimiters bounds the per-address limiters kept; past it the idle
// ones are forgotten.
const maxLoginLimiters = 10000

// session is one logged-in browser. It holds no credential: the admin
// token stays in the server's memory, the cookie carries only the id.
type session struct {
	id      string
	csrf    string
	created time.Time
	seen    time.Time
	// flash is a message for the next page shown, once.
	flash string
}

// sessions is the in-memory session store: a restart logs everyone out.
type sessions struct {
	now func() time.Time
	ttl time.Duration

	mu     sync.Mutex
	byID   map[string]*session
	logins map[string]*loginLimit
}

type loginLimit struct {
	lim  *rate.Limiter
	last time.Time
}

func newSessions(now func() time.Time, ttl time.Duration) *sessions {
	return &sessions{now: now, ttl: ttl, byID: map[string]*session{}, logins: map[string]*loginLimit{}}
}

// randomHex is n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b)
}

// create starts a session, dropping the oldest when MaxSessions are held.
func (s *sessions) create() *session {
	now := s.now()
	se := &session{id: randomHex(32), csrf: randomHex(32), created: now, seen: now}
	s.mu.Lock()
	defer s.mu.Unlock()
	for len(s.byID) >= MaxSessions {
		var oldest *session
		for _, o := range s.byID {
			if oldest == nil || o.created.Before(oldest.created) {
				oldest = o
			}
		}
		delete(s.byID, oldest.id)
	}
	s.byID[se.id] = se
	return se
}

// get returns the request's live session and marks it used; an expired
// one is deleted.
func (s *sessions) get(r *http.Request) (*session, bool) {
	c, err := r.Cookie(CookieName)
	if err != nil || len(c.Value) != 64 {
		return nil, false
	}
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	se, ok := s.byID[c.Value]
	if !ok {
		return nil, false
	}
	if now.Sub(se.seen) > s.ttl || now.Sub(se.created) > MaxSessionAge {
		delete(s.byID, se.id)
		return nil, false
	}
	se.seen = now
	return se, true
}

// delete ends a session.
func (s *sessions) delete(se *session) {
	s.mu.Lock()
	delete(s.byID, se.id)
	s.mu.Unlock()
}

// setFlash keeps a message for the session's next page.
func (s *sessions) setFlash(se *session, msg string) {
	s.mu.Lock()
	se.flash = msg
	s.mu.Unlock()
}

// takeFlash returns and clears the session's message.
func (s *sessions) takeFlash(se *session) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	f := se.flash
	se.flash = ""
	return f
}

// csrfOK compares a form's csrf field with the session's in constant time.
func csrfOK(se *session, got string) bool {
	return len(got) == len(se.csrf) && subtle.ConstantTimeCompare([]byte(got), []byte(se.csrf)) == 1
}

// allowLogin takes one login attempt from the client address's allowance.
func (s *sessions) allowLogin(r *http.Request) bool {
	ip := clientIP(r)
	now := s.now()
	s.mu.Lock()
	defer s.mu.Unlock()
	l, ok := s.logins[ip]
	if !ok {
		if len(s.logins) >= maxLoginLimiters {
			// A full allowance refills within LoginBurst*LoginEvery: an
			// address idle that long has nothing left to remember.
			for k, o := range s.logins {
				if now.Sub(o.last) > LoginBurst*LoginEvery {
					delete(s.logins, k)
				}
			}
			if len(s.logins) >= maxLoginLimiters {
				return false
			}
		}
		l = &loginLimit{lim: rate.NewLimiter(rate.Every(LoginEvery), LoginBurst)}
		s.logins[ip] = l
	}
	l.last = now
	return l.lim.AllowN(now, 1)
}

// clientIP is the address of the connection: the dashboard is a control
// plane, so it trusts no forwarding header.
func clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

// tokenMatches compares a presented admin token with the real one in
// constant time, through their hashes so that the length does not leak
// either.
func tokenMatches(got, want string) bool {
	if want == "" {
		return false
	}
	a, b := sha256.Sum256([]byte(got)), sha256.Sum256([]byte(want))
	return subtle.ConstantTimeCompare(a[:], b[:]) == 1
}
