package fakeserver

import (
	"bufio"
	"fmt"
	"io"
	"sync"
	"testing"
	"time"
)

// RecordingTB is a testing.TB that records Errorf and Fatal instead of
// failing the test, so that a fake's own failure reports can be asserted.
// Everything else (Cleanup, Logf, ...) goes to the embedded TB, the real
// test. Its methods are safe for concurrent use.
type RecordingTB struct {
	testing.TB
	mu   sync.Mutex
	errs []string
}

// fatalCalled is the panic value of RecordingTB.Fatal.
type fatalCalled struct{}

// Helper does nothing: the recorded messages carry no position.
func (r *RecordingTB) Helper() {}

// Errorf records the formatted message.
func (r *RecordingTB) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errs = append(r.errs, fmt.Sprintf(format, args...))
}

// Fatal records the message and then stops its caller by panicking with a
// value that CatchFatal recovers.
func (r *RecordingTB) Fatal(args ...any) {
	r.mu.Lock()
	r.errs = append(r.errs, fmt.Sprint(args...))
	r.mu.Unlock()
	panic(fatalCalled{})
}

// Fatalf records the formatted message and then stops its caller like
// Fatal.
func (r *RecordingTB) Fatalf(format string, args ...any) {
	r.Fatal(fmt.Sprintf(format, args...))
}

// Errors returns a copy of the messages recorded so far, in order.
func (r *RecordingTB) Errors() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errs...)
}

// CatchFatal runs f and recovers the panic of a RecordingTB's Fatal, which
// ends f early; any other panic goes on.
func CatchFatal(f func()) {
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(fatalCalled); !ok {
				panic(r)
			}
		}
	}()
	f()
}

// ExpectStall reads lines lines from body, the body of a response that
// should stall after them, and fails t unless the next read blocks for
// 50ms and then ends within 5s of calling cancel, which should cancel the
// request.
func ExpectStall(t testing.TB, body io.Reader, lines int, cancel func()) {
	t.Helper()
	br := bufio.NewReader(body)
	for range lines {
		if _, err := br.ReadString('\n'); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan error, 1)
	go func() {
		_, err := br.ReadByte()
		got <- err
	}()
	select {
	case err := <-got:
		t.Fatalf("got more data (err %v), want the response to stall", err)
	case <-time.After(50 * time.Millisecond):
	}
	cancel()
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("read still blocked 5s after cancel")
	}
}
