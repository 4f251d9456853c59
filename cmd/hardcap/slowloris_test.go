package main

import (
	"net"
	"strings"
	"testing"
	"time"
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
