package proxy

import (
	"context"
	"fmt"
	"net/netip"
	"time"
)

// table is the part of the data plane's configuration a reload may
// change: the providers, the price book and the per-request bounds. A
// published table is never modified; Reconfigure publishes a new one. A
// request loads the table once at its start and keeps it to its end, so a
// request in flight during a reload is routed, bounded and priced as it
// started, and no request is dropped by one.
type table struct {
	providers map[string]*Provider
	prices    PriceBook
	trusted   []netip.Prefix
	maxBody   int64
	timeout   time.Duration
}

// Reconfiguration is what Reconfigure replaces; its fields mean what
// Options' fields of the same names mean, with the same defaults.
type Reconfiguration struct {
	// Providers are the providers after the reload, all of them: one that
	// is not listed is no longer routable. A Provider must not be changed
	// after it is handed over.
	Providers []*Provider
	// Prices prices models from the next request on.
	Prices PriceBook
	// TrustedProxies, MaxBodyBytes and UpstreamTimeout apply from the next
	// request on.
	TrustedProxies  []netip.Prefix
	MaxBodyBytes    int64
	UpstreamTimeout time.Duration
}

// Reconfigure replaces the providers, the price book and the per-request
// bounds at once, for the requests that start after it returns: a request
// already in flight finishes with the ones it started with. It refuses
// (ErrReconfigure) a set with no price book, a provider without a name,
// base URL or key source, or two providers of the same name, and then
// changes nothing.
func (p *Proxy) Reconfigure(c Reconfiguration) error {
	if c.Prices == nil {
		return fmt.Errorf("%w: no price book", ErrReconfigure)
	}
	for i, prov := range c.Providers {
		switch {
		case prov == nil || prov.Name == "":
			return fmt.Errorf("%w: a provider has no name", ErrReconfigure)
		case prov.BaseURL == nil || prov.Key == nil:
			return fmt.Errorf("%w: provider %q has no base URL or no key source", ErrReconfigure, prov.Name)
		}
		for _, other := range c.Providers[:i] {
			if other.Name == prov.Name {
				return fmt.Errorf("%w: two providers are named %q", ErrReconfigure, prov.Name)
			}
		}
	}
	p.table.Store(newTable(c.Providers, c.Prices, c.TrustedProxies, c.MaxBodyBytes, c.UpstreamTimeout))
	return nil
}

// newTable builds a table, filling in the defaults. New takes what
// Options holds as it is (a later provider of a name wins); Reconfigure
// checks first.
func newTable(provs []*Provider, prices PriceBook, trusted []netip.Prefix, maxBody int64, timeout time.Duration) *table {
	t := &table{providers: make(map[string]*Provider, len(provs)), prices: prices, trusted: trusted, maxBody: maxBody, timeout: timeout}
	for _, prov := range provs {
		if prov.CapField == "" {
			prov.CapField = "max_tokens"
			if prov.Prices == "openai" {
				prov.CapField = "max_completion_tokens"
			}
		}
		t.providers[prov.Name] = prov
	}
	if t.maxBody <= 0 {
		t.maxBody = 32 << 20
	}
	if t.timeout <= 0 {
		t.timeout = 10 * time.Minute
	}
	return t
}

// Providers returns the providers the next request may be routed to, in
// no particular order.
func (p *Proxy) Providers() []*Provider {
	t := p.table.Load()
	out := make([]*Provider, 0, len(t.providers))
	for _, prov := range t.providers {
		out = append(out, prov)
	}
	return out
}

// Follow makes ks watch providers, the whole set after a reload, instead
// of the set it watched. A provider whose key source is the same as before
// (same name, kind, argument and rotation period) takes over the source it
// had, with the key held in memory, its fingerprint and its upstream 401
// counts, so a reload neither runs the source again nor loses a count. Any
// other source is attached as new: its first read is recorded in the key
// ledger as NewKeys' sources' are. The 401 counts of every source left
// behind go to the ledger now, under the key they were counted against;
// the error says which could not be written (the switch happens anyway).
// Call it before handing providers to Proxy.Reconfigure.
func (ks *Keys) Follow(ctx context.Context, providers []*Provider) error {
	old := map[string]*Provider{}
	for _, p := range ks.list() {
		old[p.Name] = p
	}
	next := make([]*Provider, 0, len(providers))
	kept := map[*KeySource]bool{}
	for _, p := range providers {
		if p == nil || p.Key == nil {
			continue
		}
		if o := old[p.Name]; o != nil && sameSource(o.Key, p.Key) {
			p.Key = o.Key
			kept[o.Key] = true
		} else {
			p.Key.keys, p.Key.provider = ks, p.Name
		}
		next = append(next, p)
	}
	sortProviders(next)
	var dropped []*Provider
	for _, o := range old {
		if !kept[o.Key] {
			dropped = append(dropped, o)
		}
	}
	ks.provsMu.Lock()
	ks.provs = next
	ks.provsMu.Unlock()
	return ks.flush(ctx, dropped)
}

// sameSource reports whether two key sources read the same key the same
// way. A static source is never the same as another: only the demo
// providers have one, and those are handed over as they are.
func sameSource(a, b *KeySource) bool {
	if a == b {
		return true
	}
	return a.kind != "static" && a.kind == b.kind && a.arg == b.arg && a.RotateEvery == b.RotateEvery
}

// list returns the providers watched now.
func (ks *Keys) list() []*Provider {
	ks.provsMu.Lock()
	defer ks.provsMu.Unlock()
	return ks.provs
}
