package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/internal/connguard"
	"github.com/hardcap/hardcap/internal/testlog"
	"github.com/rs/zerolog"
)

// TestSlowClientIsDropped: a client that sends its headers a byte at a
// time is disconnected at read_header_timeout, and other clients are
// served meanwhile.
func TestSlowClientIsDropped(t *testing.T) {
	s := startServer(t, "read_header_timeout: 300ms\n")
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\n")); err != nil {
		t.Fatal(err)
	}
	resp, err := httpGet(s.url + "/healthz")
	if err != nil || resp != 200 {
		t.Fatalf("healthz while a slow client waits: %d, %v", resp, err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	start := time.Now()
	buf := make([]byte, 1)
	for {
		if _, err := conn.Read(buf); err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				t.Fatal("the slow client was not dropped")
			}
			break
		}
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("dropped after %s", took)
	}
}

// newToken creates a project with a budget and a token in it, and returns
// the token.
func (s *server) newToken(project string) string {
	s.t.Helper()
	s.mustCLI("project", "create", project, "--budget", "1")
	var tok struct{ Token string }
	decodeJSON(s.t, s.mustCLI("token", "create", "--project", project, "--json"), &tok)
	return tok.Token
}

// readAllFrom reads conn until it closes, failing if that takes over 5 s.
func readAllFrom(t *testing.T, conn net.Conn) string {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	b, err := io.ReadAll(conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("connection still open after 5 s; got %q", b)
	}
	return string(b)
}

// TestStalledBodyIsDropped: a client that sends its headers and 9 of 1,000
// body bytes, then nothing, is answered and disconnected at read_timeout,
// with or without a valid token, and nothing is reserved or forwarded.
func TestStalledBodyIsDropped(t *testing.T) {
	s := startServer(t, "read_timeout: 300ms\n")
	tok := s.newToken("stall")
	for _, auth := range []string{tok, "hc_not_a_token"} {
		conn, err := net.Dial("tcp", strings.TrimPrefix(s.url, "http://"))
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(conn, "POST /v1/chat/completions HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"model\":", auth)
		if code, err := httpGet(s.url + "/healthz"); err != nil || code != 200 {
			t.Fatalf("healthz while a client stalls: %d, %v", code, err)
		}
		got := readAllFrom(t, conn)
		conn.Close()
		if auth == tok && !strings.Contains(got, "read_timeout") {
			t.Fatalf("the stalled request was answered %q; want a message naming read_timeout", got)
		}
	}
	if n := len(s.up.Calls()); n != 0 {
		t.Fatalf("%d upstream calls from stalled bodies", n)
	}
	var u struct{ Records []any }
	decodeJSON(t, s.mustCLI("usage", "--json"), &u)
	if len(u.Records) != 0 {
		t.Fatalf("stalled bodies left %d usage records", len(u.Records))
	}
}

// TestStreamOutlivesReadTimeout: read_timeout bounds the request, never the
// response: a stream that runs for several read_timeouts reaches the client
// whole and is settled from its usage.
func TestStreamOutlivesReadTimeout(t *testing.T) {
	const gap = 150 * time.Millisecond
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "text/event-stream")
		rc := http.NewResponseController(w)
		for i := 0; i < 5; i++ {
			fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"tick \"},\"finish_reason\":null}]}\n\n")
			_ = rc.Flush()
			time.Sleep(gap)
		}
		fmt.Fprintf(w, "data: {\"id\":\"c\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":5,\"total_tokens\":14}}\n\ndata: [DONE]\n\n")
	}))
	defer up.Close()
	t.Setenv("HARDCAP_TEST_FAKE_KEY", fakeKey)
	t.Setenv("HARDCAP_ADMIN_TOKEN", "")
	s := &server{t: t, dataDir: t.TempDir(), logs: &testlog.Buffer{}}
	cfg, err := loadConfig(writeConfig(t, t.TempDir(), up.URL, "read_timeout: 200ms\n"))
	if err != nil {
		t.Fatal(err)
	}
	s.main = &Main{Config: cfg, DataDir: s.dataDir, LogOutput: s.logs}
	if err := s.main.Open(); err != nil {
		t.Fatal(err)
	}
	s.url = "http://" + s.main.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() { s.done <- s.main.Run(ctx) }()
	t.Cleanup(s.stop)

	tok := s.newToken("slow")
	code, body := chat(t, s.url, tok, `{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}`)
	if code != 200 || strings.Count(body, "tick") != 5 || !strings.Contains(body, "[DONE]") {
		t.Fatalf("stream through a 200ms read_timeout: %d %q", code, body)
	}
	var u struct {
		Records []struct{ Outcome string }
	}
	decodeJSON(t, s.mustCLI("usage", "--json"), &u)
	if len(u.Records) != 1 || u.Records[0].Outcome != "complete" {
		t.Fatalf("records %+v, want one complete", u.Records)
	}
}

// TestConnectionCapPerIP: connections over max_connections_per_ip are
// answered 503 with Retry-After; another IP is still served.
func TestConnectionCapPerIP(t *testing.T) {
	s := startServer(t, "max_connections_per_ip: 2\n")
	addr := strings.TrimPrefix(s.url, "http://")
	held := make([]net.Conn, 0, 2)
	for i := 0; i < 2; i++ {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		held = append(held, c)
	}
	waitFor(t, "two open connections", func() bool { return s.main.listener.(*connguard.Listener).Open() == 2 })
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	got := readAllFrom(t, c)
	c.Close()
	if !strings.HasPrefix(got, "HTTP/1.1 503") || !strings.Contains(got, "Retry-After: 1") || !strings.Contains(got, "max_connections_per_ip") {
		t.Fatalf("third connection from one IP got %q", got)
	}
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}
	other, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot dial from 127.0.0.2: %v", err)
	}
	defer other.Close()
	fmt.Fprintf(other, "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
	if got := readAllFrom(t, other); !strings.HasPrefix(got, "HTTP/1.1 200") {
		t.Fatalf("a connection from another IP got %q", got)
	}
	_ = held
}

// TestLogWriter_HandlerPanicsAreErrors: a panic net/http recovered in a
// handler is logged at error with its stack; other server noise at debug.
func TestLogWriter_HandlerPanicsAreErrors(t *testing.T) {
	var buf testlog.Buffer
	w := logWriter{zerolog.New(&buf)}
	fmt.Fprint(w, "http: panic serving 127.0.0.1:5555: boom\ngoroutine 7 [running]:\nmain.handler()\n")
	fmt.Fprint(w, "http: TLS handshake error from 127.0.0.1:5556: EOF\n")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], `"level":"error"`) || !strings.Contains(lines[0], "goroutine 7") || !strings.Contains(lines[1], `"level":"debug"`) {
		t.Fatalf("got %q", lines)
	}
}
