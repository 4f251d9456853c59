// Package holdup is a test front for a fake provider: it passes every
// request on, and holds each streamed (SSE) answer after its first event
// until Release, so a test can change the server (reload its config, say)
// while a stream is in flight, and then let the stream finish.
package holdup

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
)

// Front is the front; its URL stands for the provider's.
type Front struct {
	srv     *httptest.Server
	release chan struct{}
	once    sync.Once
	held    atomic.Int64
}

// New starts a front for the provider at upstream (its root URL) and
// closes it at the test's end.
func New(t testing.TB, upstream string) *Front {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatal(err)
	}
	f := &Front{release: make(chan struct{})}
	rp := httputil.NewSingleHostReverseProxy(u)
	rp.FlushInterval = -1
	rp.ModifyResponse = func(resp *http.Response) error {
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
			return nil
		}
		// The fake writes its whole stream at once: read it, and hand on
		// the first event now and the rest after Release.
		all, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
		_ = resp.Body.Close()
		if err != nil {
			return err
		}
		cut := bytes.Index(all, []byte("\n\n"))
		if cut < 0 {
			cut = len(all)
		} else {
			cut += 2
		}
		f.held.Add(1)
		resp.Body = &heldBody{first: all[:cut], rest: all[cut:], release: f.release}
		return nil
	}
	f.srv = httptest.NewServer(rp)
	t.Cleanup(func() {
		f.Release()
		f.srv.Close()
	})
	return f
}

// URL is the front's root URL.
func (f *Front) URL() string { return f.srv.URL }

// Held counts the streams held so far (released or not).
func (f *Front) Held() int64 { return f.held.Load() }

// Release lets every stream held, and every later one, run to its end.
func (f *Front) Release() { f.once.Do(func() { close(f.release) }) }

// heldBody reads first, then waits for release, then reads rest.
type heldBody struct {
	first, rest []byte
	release     chan struct{}
}

func (b *heldBody) Read(p []byte) (int, error) {
	if len(b.first) > 0 {
		n := copy(p, b.first)
		b.first = b.first[n:]
		return n, nil
	}
	<-b.release
	if len(b.rest) == 0 {
		return 0, io.EOF
	}
	n := copy(p, b.rest)
	b.rest = b.rest[n:]
	return n, nil
}

func (b *heldBody) Close() error { return nil }
