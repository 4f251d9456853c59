// Package fakeserver is test support: the protocol-independent half of the
// fake provider upstreams in packages fakeopenai and fakeanthropic. It runs
// the HTTP test server, holds the current behavior and the record of calls,
// checks that a request carries the real provider key and no hardcap key,
// and implements the misbehaviors both fakes offer: connections cut
// abruptly, responses that stall until the client leaves or the test ends,
// and malformed JSON bodies. The wire formats stay in the fakes.
package fakeserver

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// Server is a running HTTP test server with the state a fake upstream
// shares between its handlers: the behavior of type B that the next
// requests follow and the calls of type C received so far. Its methods are
// safe for concurrent use.
type Server[B, C any] struct {
	t       testing.TB
	name    string
	srv     *httptest.Server
	closing chan struct{}

	mu       sync.Mutex
	behavior B
	calls    []C
}

// Start starts a server answering with h for t, closed by t.Cleanup, which
// first releases the handlers blocked in Stall. The name, such as
// "fakeopenai", prefixes every message Start and the server report. Start
// calls t.Fatal when apiKey, the real provider key the fake expects, is
// empty or contains "hc_" (a hardcap key).
func Start[B, C any](t testing.TB, name, apiKey string, h http.Handler) *Server[B, C] {
	t.Helper()
	if apiKey == "" {
		t.Fatal(name + ": Options.APIKey is required")
	}
	if strings.Contains(apiKey, "hc_") {
		t.Fatal(name + `: Options.APIKey must not contain "hc_"`)
	}
	s := &Server[B, C]{t: t, name: name, closing: make(chan struct{})}
	s.srv = httptest.NewServer(h)
	t.Cleanup(func() {
		close(s.closing) // release stalled handlers so Close does not wait on them
		s.srv.Close()
	})
	return s
}

// URL returns the server's base URL, of the form http://127.0.0.1:port,
// without a trailing slash.
func (s *Server[B, C]) URL() string { return s.srv.URL }

// Errorf reports a test failure through the test's Errorf, prefixed with
// the server's name and ": ".
func (s *Server[B, C]) Errorf(format string, args ...any) {
	s.t.Errorf(s.name+": "+format, args...)
}

// SetBehavior sets the behavior of subsequent requests.
func (s *Server[B, C]) SetBehavior(b B) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.behavior = b
}

// Behavior returns the current behavior, which a handler reads once when a
// request arrives.
func (s *Server[B, C]) Behavior() B {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.behavior
}

// Record appends a call and returns its index for Update.
func (s *Server[B, C]) Record(c C) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls = append(s.calls, c)
	return len(s.calls) - 1
}

// Update changes the recorded call at index i by applying f to it, under
// the lock that every method of s takes, so f must not call them.
func (s *Server[B, C]) Update(i int, f func(*C)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(&s.calls[i])
}

// Calls returns a copy of the calls recorded so far, in arrival order.
func (s *Server[B, C]) Calls() []C {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.calls)
}

// Faults are the misbehaviors both fakes offer, copied from the fields of
// the same names in their Behavior types. The zero value misbehaves in no
// way.
type Faults struct {
	// CutAfterEvents, when positive, makes Stream write this many events
	// and then drop the connection, and makes Complete drop it after half
	// the body.
	CutAfterEvents int
	// StallAfterEvents, when positive, makes Stream write this many events
	// and then stall, and makes Complete stall after the headers.
	StallAfterEvents int
	// MalformedJSON makes Complete send a body that is not valid JSON.
	MalformedJSON bool
}

// Complete writes the JSON encoding of v as the body of a non-stream 200
// response, with its Content-Length, misbehaving as f says. With
// MalformedJSON the body is v's JSON after prefix, which should be an
// unclosed opening of the same kind of object. With CutAfterEvents only
// the first half of the body is sent, under the full Content-Length,
// before the connection drops; otherwise with StallAfterEvents the headers
// alone are sent before the handler stalls. Complete panics when v cannot
// be encoded.
func (s *Server[B, C]) Complete(w http.ResponseWriter, r *http.Request, f Faults, v any, prefix string) {
	body, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	if f.MalformedJSON {
		body = append([]byte(prefix), body...)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	switch {
	case f.CutAfterEvents > 0:
		w.Write(body[:len(body)/2])
		s.Drop(w)
	case f.StallAfterEvents > 0:
		http.NewResponseController(w).Flush()
		s.Stall(r)
	default:
		w.Write(body)
	}
}

// Stream writes the n events of a stream whose headers are already sent,
// calling write(i) for each index i in order, and misbehaves as f says:
// with CutAfterEvents it drops the connection after that many events (all
// n when there are fewer), otherwise with StallAfterEvents it stalls after
// that many. MalformedJSON does not apply. It stops at the first error of
// write. It reports whether all n events were written with neither fault,
// so that the caller may end the stream normally.
func (s *Server[B, C]) Stream(w http.ResponseWriter, r *http.Request, f Faults, n int, write func(i int) error) bool {
	for i := range n {
		switch {
		case f.CutAfterEvents > 0 && i == f.CutAfterEvents:
			s.Drop(w)
			return false
		case f.StallAfterEvents > 0 && i == f.StallAfterEvents:
			s.Stall(r)
			return false
		}
		if write(i) != nil {
			return false
		}
	}
	switch {
	case f.CutAfterEvents > 0:
		s.Drop(w)
		return false
	case f.StallAfterEvents > 0:
		s.Stall(r)
		return false
	}
	return true
}

// Drop flushes what was written and closes the connection without ending
// the response, so that the client sees it cut. It reports through Errorf
// when w cannot be hijacked.
func (s *Server[B, C]) Drop(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	rc.Flush()
	conn, buf, err := rc.Hijack()
	if err != nil {
		s.Errorf("cannot drop the connection: %v", err)
		return
	}
	buf.Flush()
	conn.Close()
}

// Stall blocks until the client goes away (r's context ends) or the
// server closes.
func (s *Server[B, C]) Stall(r *http.Request) {
	select {
	case <-r.Context().Done():
	case <-s.closing:
	}
}

// WriteEvent writes one server-sent event, "event: <name>\ndata: <json>\n\n"
// where json is the JSON encoding of v, and flushes it. It returns the
// encoding error, if any, before writing anything.
func WriteEvent(w http.ResponseWriter, name string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	buf := make([]byte, 0, len(name)+len(data)+16)
	buf = append(buf, "event: "...)
	buf = append(buf, name...)
	buf = append(buf, "\ndata: "...)
	buf = append(buf, data...)
	buf = append(buf, "\n\n"...)
	if _, err := w.Write(buf); err != nil {
		return err
	}
	return http.NewResponseController(w).Flush()
}

// Tokens returns n generated tokens named after prefix: "<prefix>1",
// " <prefix>2", ..., " <prefix>n", which join into n words.
func Tokens(prefix string, n int64) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf(" %s%d", prefix, i+1)
	}
	if n > 0 {
		out[0] = out[0][1:]
	}
	return out
}

// KeyRule says how a provider expects its real API key: exactly once, in
// one header, with one exact value.
type KeyRule struct {
	// Header is the canonical name of the header that must carry the key,
	// such as "Authorization".
	Header string
	// Value is the exact value Header must have, such as "Bearer <key>".
	Value string
	// Describe says what Value is without revealing it, such as
	// `"Bearer " followed by the real API key`.
	Describe string
	// Forbidden lists the canonical names of credential headers the
	// provider must never receive.
	Forbidden []string
	// Provider names the provider in messages, such as "OpenAI".
	Provider string
}

// Check checks the credentials of r and calls report once per problem, in
// a fixed order: Header missing, repeated or not equal to Value; each
// Forbidden header present; each header, in name order, with "hc_" (a
// hardcap key) in a value; "hc_" in the request URI, raw or unescaped.
// The messages name headers but never print a header value. Check reports
// whether there was no problem.
func (k KeyRule) Check(r *http.Request, report func(format string, args ...any)) bool {
	ok := true
	bad := func(format string, args ...any) {
		ok = false
		report(format, args...)
	}
	switch keys := r.Header.Values(k.Header); {
	case len(keys) == 0:
		bad("header %q is missing", k.Header)
	case len(keys) > 1:
		bad("header %q appears %d times, want once", k.Header, len(keys))
	case keys[0] != k.Value:
		bad("header %q is not %s", k.Header, k.Describe)
	}
	for _, name := range k.Forbidden {
		if _, found := r.Header[name]; found {
			bad("header %q must not be sent to %s", name, k.Provider)
		}
	}
	names := make([]string, 0, len(r.Header))
	for name := range r.Header {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, v := range r.Header[name] {
			if strings.Contains(v, "hc_") {
				bad("header %q contains a hardcap key (\"hc_\")", name)
				break
			}
		}
	}
	uri := r.RequestURI
	if unescaped, err := url.PathUnescape(uri); err == nil {
		uri += " " + unescaped
	}
	if strings.Contains(uri, "hc_") {
		bad("URL contains a hardcap key (\"hc_\")")
	}
	return ok
}
