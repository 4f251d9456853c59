package proxy

import (
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
)

// A token's scopes beyond its models (which the request's parse checks):
// the routes it may call, the client addresses it may be used from, how many
// of its requests may be in flight, and what one request may cost at worst.
// The client's address and user agent, as the records keep them, are read
// here too.

// checkScopes refuses a request outside the token's route or address scope.
// It runs before anything is counted against the token (its rate limits, a
// slot in flight), so that a caller the token does not admit uses none of
// them.
func checkScopes(tok *tokens.Token, rt route, client netip.Addr) error {
	if !tok.AllowsRoute(rt.endpoint.scope) {
		return refuse(ErrRouteNotAllowed, "This token may not call %s (%s); it may call %s only.",
			rt.endpoint.scope, rt.name, strings.Join(tok.Routes, ", "))
	}
	if !tok.AllowsIP(client) {
		where := "an address hardcap could not read"
		if client.IsValid() {
			where = client.String()
		}
		return refuse(ErrIPNotAllowed, "This token may be used from %s only; this request came from %s.", prefixList(tok.IPs), where)
	}
	return nil
}

// maxListedPrefixes is how many of a token's address ranges a refusal
// names; a scope may hold tokens.MaxIPs.
const maxListedPrefixes = 3

// prefixList names a token's address ranges for a refusal, the first few
// and how many more.
func prefixList(ips []string) string {
	if len(ips) <= maxListedPrefixes {
		return strings.Join(ips, ", ")
	}
	return strings.Join(ips[:maxListedPrefixes], ", ") + " and " + strconv.Itoa(len(ips)-maxListedPrefixes) + " more ranges"
}

// checkMaxRequest refuses a request whose worst case, the quote before any
// clamping to the budget, is above the token's per-request limit.
func checkMaxRequest(tok *tokens.Token, q budget.Quote) error {
	if tok.MaxRequest <= 0 {
		return nil
	}
	worst, err := q.Cost(q.MaxOutput)
	if err != nil {
		return err
	}
	if limit := budget.Money(tok.MaxRequest); worst > limit {
		return refuse(ErrRequestTooCostly, "This request may cost up to %s USD, above this token's limit of %s USD per request (max_request_usd); ask for fewer output tokens (max_tokens) or a smaller input.",
			worst.String(), limit.String())
	}
	return nil
}

// concurrency counts the requests in flight of each token that has a
// max_concurrent, from the moment the token is known until the request
// settles or is refused. Tokens without one are not counted.
type concurrency struct {
	mu sync.Mutex
	n  map[string]int
}

// acquire takes a slot for a request of t. held reports whether one was
// taken (t has a limit), and must then be given back with release exactly
// once.
func (c *concurrency) acquire(t *tokens.Token) (held bool, err error) {
	if t.MaxConcurrent <= 0 {
		return false, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[t.ID] >= t.MaxConcurrent {
		return false, refuse(ErrTooManyInFlight, "This token may have at most %d requests in flight at once (max_concurrent), and has that many; a concurrency cap is a rate limit, so retry when one ends.", t.MaxConcurrent)
	}
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[t.ID]++
	return true, nil
}

// release gives back a slot acquire took for token id.
func (c *concurrency) release(id string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n[id] <= 1 {
		// No entry is kept for a token with nothing in flight.
		delete(c.n, id)
		return
	}
	c.n[id]--
}

// active is how many slots token id holds.
func (c *concurrency) active(id string) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n[id]
}

// clientAddr is the address a request comes from: the TCP peer, unless the
// peer is one of the trusted proxies, in which case the rightmost
// X-Forwarded-For entry that is not itself a trusted proxy (the standard
// right-to-left walk: entries left of it were written by whoever sent the
// request and prove nothing). All entries trusted: the leftmost. A header
// that does not parse: the peer. The string is the address as records show
// it; addr is invalid when even the peer is not an address.
func clientAddr(r *http.Request, trusted []netip.Prefix) (addr netip.Addr, s string) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	raw, err := netip.ParseAddr(host)
	if err != nil {
		return netip.Addr{}, budget.ClipTo(host, 64)
	}
	peer := canonicalAddr(raw)
	peerText := host
	if peer != raw {
		// net writes RemoteAddr in canonical form, so this is rare: a
		// zone, or an IPv4-mapped address.
		peerText = peer.String()
	}
	if len(trusted) == 0 || !inPrefixes(peer, trusted) {
		return peer, peerText
	}
	hops := r.Header.Values("X-Forwarded-For")
	var leftmost netip.Addr
	for i := len(hops) - 1; i >= 0; i-- {
		rest := hops[i]
		for rest != "" {
			var hop string
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				hop, rest = rest[j+1:], rest[:j]
			} else {
				hop, rest = rest, ""
			}
			a, ok := hopAddr(strings.TrimSpace(hop))
			if !ok {
				return peer, peerText
			}
			if !inPrefixes(a, trusted) {
				return a, a.String()
			}
			leftmost = a
		}
	}
	if leftmost.IsValid() {
		return leftmost, leftmost.String()
	}
	return peer, peerText
}

// hopAddr parses one X-Forwarded-For entry: an address, or an address and
// a port as some proxies write it.
func hopAddr(s string) (netip.Addr, bool) {
	if a, err := netip.ParseAddr(s); err == nil {
		return canonicalAddr(a), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return canonicalAddr(ap.Addr()), true
	}
	return netip.Addr{}, false
}

// canonicalAddr is a as scopes and records compare it: an IPv4-mapped IPv6
// address as its IPv4 address, without a zone.
func canonicalAddr(a netip.Addr) netip.Addr {
	return a.Unmap().WithZone("")
}

func inPrefixes(a netip.Addr, ps []netip.Prefix) bool {
	for _, p := range ps {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// Bounds of what a record keeps of client and provider text.
const (
	// maxUserAgent is the most bytes of a User-Agent a record keeps.
	maxUserAgent = 256
	// maxRequestID is the most bytes of a provider's request id a record
	// keeps; real ones are under 64.
	maxRequestID = 128
)

// printable is s fit for a record: at most n bytes (cut at a rune), each
// rune that is not printable text (control bytes, invalid UTF-8) replaced
// by '?'. Short printable ASCII, the usual case, is returned as it is.
func printable(s string, n int) string {
	plain := len(s) <= n
	for i := 0; plain && i < len(s); i++ {
		plain = s[i] >= 0x20 && s[i] < 0x7f
	}
	if plain {
		return s
	}
	var b strings.Builder
	b.Grow(min(len(s), n))
	for _, r := range s {
		if r == utf8.RuneError || !unicode.IsPrint(r) {
			r = '?'
		}
		if b.Len()+utf8.RuneLen(r) > n {
			break
		}
		b.WriteRune(r)
	}
	return b.String()
}

// userAgent is the client's User-Agent as records keep it.
func userAgent(h http.Header) string {
	return printable(strings.TrimSpace(h.Get("User-Agent")), maxUserAgent)
}

// requestID is the provider's id for a request, from its response headers:
// x-request-id (OpenAI and most compatible APIs) or request-id (Anthropic),
// whichever is there.
func requestID(h http.Header) string {
	id := h.Get("X-Request-Id")
	if id == "" {
		id = h.Get("Request-Id")
	}
	return printable(strings.TrimSpace(id), maxRequestID)
}
