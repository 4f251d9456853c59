package proxy

// Active is how many max_concurrent slots token id holds, for the tests
// that no path leaks one.
func (p *Proxy) Active(id string) int { return p.conc.active(id) }
