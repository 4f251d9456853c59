package connguard

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// serve runs h behind a Listener with the given caps and returns its
// address.
func serve(t *testing.T, l *Listener, h http.Handler) string {
	t.Helper()
	inner, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l.Listener = inner
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return inner.Addr().String()
}

// dialFrom opens a connection from the loopback address local (Linux
// answers all of 127.0.0.0/8).
func dialFrom(t *testing.T, local, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(local)}, Timeout: 2 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot dial from %s: %v", local, err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// get sends one GET on c and returns the status code, or 0 when the
// connection gave no answer.
func get(t *testing.T, c net.Conn) int {
	t.Helper()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.WriteString(c, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"); err != nil {
		return 0
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return 0
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	return resp.StatusCode
}

func ok(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") }

func TestListener_Caps(t *testing.T) {
	tests := []struct {
		name      string
		max, ip   int
		from      []string // one held connection per entry, in order
		want      []int    // status of a GET on each
		wantLimit string
	}{
		{"per ip", 0, 2, []string{"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.2"}, []int{200, 200, 503, 200}, "max_connections_per_ip"},
		{"overall", 3, 0, []string{"127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4"}, []int{200, 200, 200, 503}, "max_connections"},
		{"no caps", 0, 0, []string{"127.0.0.1", "127.0.0.1", "127.0.0.1"}, []int{200, 200, 200}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var refused atomic.Value
			l := &Listener{Max: tt.max, PerIP: tt.ip, OnRefuse: func(ip, limit string) { refused.Store(limit) }}
			addr := serve(t, l, http.HandlerFunc(ok))
			for i, from := range tt.from {
				c := dialFrom(t, from, addr)
				if got := get(t, c); got != tt.want[i] {
					t.Fatalf("connection %d from %s: got %d, want %d", i, from, got, tt.want[i])
				}
			}
			if got, _ := refused.Load().(string); got != tt.wantLimit {
				t.Fatalf("refused by %q, want %q", got, tt.wantLimit)
			}
		})
	}
}

// TestListener_SlotReturns: a closed connection gives its slot back.
func TestListener_SlotReturns(t *testing.T) {
	l := &Listener{PerIP: 1}
	addr := serve(t, l, http.HandlerFunc(ok))
	c := dialFrom(t, "127.0.0.1", addr)
	if got := get(t, c); got != 200 {
		t.Fatalf("first: %d", got)
	}
	_ = c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for l.Open() != 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := get(t, dialFrom(t, "127.0.0.1", addr)); got != 200 {
		t.Fatalf("after the first closed: got %d, want 200", got)
	}
}
