// Package tcpproxy is a loopback TCP proxy for tests: it forwards each
// connection to a target, and can stop forwarding on demand (a network
// partition) and resume.
package tcpproxy

import (
	"errors"
	"io"
	"net"
	"sync"
)

// Mode is what the proxy does with connections.
type Mode int

const (
	// Forward passes connections through to the target.
	Forward Mode = iota
	// Refuse closes every new connection as soon as it is accepted, as a
	// host that resets connections does.
	Refuse
	// Blackhole accepts new connections and never answers nor forwards
	// (they stay open until the proxy resumes or closes), as a partition
	// that drops packets does.
	Blackhole
)

// Proxy listens on a loopback port and forwards to one target address.
type Proxy struct {
	ln     net.Listener
	target string

	mu    sync.Mutex
	mode  Mode
	conns map[net.Conn]struct{} // every open connection, both sides
	held  []net.Conn            // blackholed connections
	done  chan struct{}
	wg    sync.WaitGroup
}

// New starts a proxy on a free loopback port forwarding to target
// (host:port).
func New(target string) (*Proxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &Proxy{ln: ln, target: target, conns: make(map[net.Conn]struct{}), done: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Port is the proxy's port.
func (p *Proxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Cut stops forwarding: it closes every connection open now, and treats
// new ones as mode says (Refuse or Blackhole).
func (p *Proxy) Cut(mode Mode) {
	if mode == Forward {
		mode = Refuse
	}
	p.mu.Lock()
	p.mode = mode
	open := p.conns
	p.conns = make(map[net.Conn]struct{})
	p.mu.Unlock()
	for c := range open {
		_ = c.Close()
	}
}

// Resume forwards new connections again; connections blackholed
// meanwhile are closed (their clients saw nothing and must reconnect).
func (p *Proxy) Resume() {
	p.mu.Lock()
	p.mode = Forward
	held := p.held
	p.held = nil
	p.mu.Unlock()
	for _, c := range held {
		_ = c.Close()
	}
}

// Mode is the proxy's mode now.
func (p *Proxy) Mode() Mode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Close stops listening and closes every connection.
func (p *Proxy) Close() error {
	p.mu.Lock()
	select {
	case <-p.done:
		p.mu.Unlock()
		return nil
	default:
	}
	close(p.done)
	p.mu.Unlock()
	err := p.ln.Close()
	p.Cut(Refuse)
	p.Resume() // closes what was blackholed
	p.wg.Wait()
	return err
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		p.mu.Lock()
		mode := p.mode
		if mode == Blackhole {
			p.held = append(p.held, c)
		}
		p.mu.Unlock()
		switch mode {
		case Refuse:
			_ = c.Close()
		case Forward:
			p.wg.Add(1)
			go p.forward(c)
		}
	}
}

// forward pipes c to a new connection to the target until either side
// ends or Cut closes both.
func (p *Proxy) forward(c net.Conn) {
	defer p.wg.Done()
	up, err := net.Dial("tcp", p.target)
	if err != nil {
		_ = c.Close()
		return
	}
	p.mu.Lock()
	if p.mode != Forward {
		// Cut while dialing.
		p.mu.Unlock()
		_ = c.Close()
		_ = up.Close()
		return
	}
	p.conns[c], p.conns[up] = struct{}{}, struct{}{}
	p.mu.Unlock()
	var pipes sync.WaitGroup
	pipes.Add(2)
	pipe := func(dst, src net.Conn) {
		defer pipes.Done()
		_, _ = io.Copy(dst, src)
		// One direction ended: end both, as a TCP proxy would.
		_ = dst.Close()
		_ = src.Close()
	}
	go pipe(up, c)
	go pipe(c, up)
	pipes.Wait()
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, up)
	p.mu.Unlock()
}
