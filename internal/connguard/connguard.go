// Package connguard keeps clients from hoarding hardcap's connections: a cap
// on open connections overall and per client IP. (A client stalled inside
// its request body is handled by http.Server.ReadTimeout, which net/http
// lifts once the body has been read, so responses may stream for longer.)
package connguard

import (
	"io"
	"net"
	"strconv"
	"sync"
	"time"
)

// Listener accepts connections from an inner listener while fewer than Max
// are open overall and fewer than PerIP from the connection's IP. A
// connection over either cap is answered at once with 503 and Retry-After
// (official SDKs retry it) and closed, so a client that hoards connections
// cannot make the others wait in the kernel's backlog.
type Listener struct {
	net.Listener
	// Max is the most connections open at once; 0 means no cap.
	Max int
	// PerIP is the most connections open at once from one IP; 0 means no
	// cap.
	PerIP int
	// OnRefuse, when set, is called for each refused connection with the
	// client's IP and which cap it hit ("max_connections" or
	// "max_connections_per_ip").
	OnRefuse func(ip, limit string)

	mu    sync.Mutex
	open  int
	perIP map[string]int
}

// Accept returns the next connection within the caps, refusing the ones
// over them.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := hostOf(c.RemoteAddr())
		if limit := l.acquire(ip); limit != "" {
			if l.OnRefuse != nil {
				l.OnRefuse(ip, limit)
			}
			go refuse(c, limit)
			continue
		}
		return &conn{Conn: c, release: func() { l.release(ip) }}, nil
	}
}

// Open is the number of connections open now.
func (l *Listener) Open() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.open
}

// acquire counts a new connection from ip, or names the cap it would break.
func (l *Listener) acquire(ip string) string {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Max > 0 && l.open >= l.Max {
		return "max_connections"
	}
	if l.PerIP > 0 && l.perIP[ip] >= l.PerIP {
		return "max_connections_per_ip"
	}
	if l.perIP == nil {
		l.perIP = make(map[string]int)
	}
	l.open++
	l.perIP[ip]++
	return ""
}

func (l *Listener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.open--
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

// refuseWrite bounds how long a refusal may take to write, so a client that
// does not read cannot hold the refusing goroutine.
const refuseWrite = time.Second

// refuse answers a connection over a cap in the OpenAI error shape, the
// shape most of hardcap's clients parse, and closes it.
func refuse(c net.Conn, limit string) {
	body := `{"error":{"message":"hardcap has too many open connections (` + limit + `); retry shortly.","type":"server_error","param":null,"code":"too_many_connections"}}` + "\n"
	_ = c.SetWriteDeadline(time.Now().Add(refuseWrite))
	_, _ = io.WriteString(c, "HTTP/1.1 503 Service Unavailable\r\n"+
		"Content-Type: application/json\r\n"+
		"Retry-After: 1\r\n"+
		"Connection: close\r\n"+
		"Content-Length: "+strconv.Itoa(len(body))+"\r\n\r\n"+body)
	_ = c.Close()
}

func hostOf(a net.Addr) string {
	if ta, ok := a.(*net.TCPAddr); ok {
		return ta.IP.String()
	}
	host, _, err := net.SplitHostPort(a.String())
	if err != nil {
		return a.String()
	}
	return host
}

// conn gives its slot back once, however many times it is closed.
type conn struct {
	net.Conn
	once    sync.Once
	release func()
}

func (c *conn) Close() error {
	err := c.Conn.Close()
	c.once.Do(c.release)
	return err
}
