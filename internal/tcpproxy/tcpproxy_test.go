package tcpproxy

import (
	"bufio"
	"net"
	"testing"
	"time"
)

// echo is a loopback server writing back every line it reads.
func echo(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				rd := bufio.NewReader(c)
				for {
					line, err := rd.ReadString('\n')
					if err != nil {
						return
					}
					if _, err := c.Write([]byte(line)); err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// roundTrip dials the proxy and sends a line; it reports whether the echo
// came back within a second.
func roundTrip(addr string) (net.Conn, bool) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return nil, false
	}
	_ = c.SetDeadline(time.Now().Add(time.Second))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return c, false
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	_ = c.SetDeadline(time.Time{})
	return c, err == nil && line == "ping\n"
}

func TestProxy_CutAndResume(t *testing.T) {
	for _, mode := range []Mode{Refuse, Blackhole} {
		p, err := New(echo(t))
		if err != nil {
			t.Fatal(err)
		}
		old, ok := roundTrip(p.Addr())
		if !ok {
			t.Fatalf("mode %d: nothing forwarded before the cut", mode)
		}
		p.Cut(mode)
		if p.Mode() != mode {
			t.Fatalf("mode is %d after Cut(%d)", p.Mode(), mode)
		}
		// The connection open at the cut is closed.
		_ = old.SetReadDeadline(time.Now().Add(2 * time.Second))
		if n, err := old.Read(make([]byte, 1)); err == nil || n != 0 {
			t.Fatalf("mode %d: a connection open at the cut still reads", mode)
		} else if ne, ok := err.(net.Error); ok && ne.Timeout() {
			t.Fatalf("mode %d: a connection open at the cut was left open", mode)
		}
		if c, ok := roundTrip(p.Addr()); ok {
			t.Fatalf("mode %d: a new connection was forwarded during the cut", mode)
		} else if c != nil {
			_ = c.Close()
		}
		p.Resume()
		c, ok := roundTrip(p.Addr())
		if !ok {
			t.Fatalf("mode %d: nothing forwarded after Resume", mode)
		}
		_ = c.Close()
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
			t.Fatalf("mode %d: the proxy still listens after Close", mode)
		}
	}
}
