package fakeserver

import (
	"fmt"
	"sync"
	"testing"
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
