package main

import (
	"io"
	"sync"
	"time"
)

// Defaults of the log buffer.
const (
	// logFlushEvery is how long a log line may wait in the buffer.
	logFlushEvery = 100 * time.Millisecond
	// logBufferMax is how many bytes the buffer holds before a write
	// flushes it itself.
	logBufferMax = 64 << 10
)

// logBuffer batches log lines into one write per flush instead of a write
// syscall per line: the request path logs a line per request. It flushes
// every logFlushEvery, when it holds logBufferMax bytes, and on Close. It
// never drops a line: when the output is slower than the lines come (a
// full pipe), the writer that fills the buffer waits for the write, as
// every writer did before the buffer. (zerolog's diode writer was the
// other choice; it never blocks, but drops lines under overload.) Lines
// still in the buffer at a kill -9 or a crash of the process are lost, as
// lines in a pipe's buffer would be.
type logBuffer struct {
	mu     sync.Mutex
	out    io.Writer
	buf    []byte
	closed bool
	stop   chan struct{}
	done   chan struct{}
}

// newLogBuffer returns a buffer in front of out, with its flusher running
// until Close.
func newLogBuffer(out io.Writer, every time.Duration) *logBuffer {
	b := &logBuffer{out: out, buf: make([]byte, 0, logBufferMax), stop: make(chan struct{}), done: make(chan struct{})}
	go b.flusher(every)
	return b
}

func (b *logBuffer) flusher(every time.Duration) {
	defer close(b.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.mu.Lock()
			b.flushLocked()
			b.mu.Unlock()
		}
	}
}

// Write buffers one log line (zerolog writes each line whole). After
// Close it writes through.
func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return b.out.Write(p)
	}
	b.buf = append(b.buf, p...)
	if len(b.buf) >= logBufferMax {
		b.flushLocked()
	}
	return len(p), nil
}

// flushLocked writes the buffer out. A failed write (a closed stderr) is
// not retried: there is nowhere left to report it.
func (b *logBuffer) flushLocked() {
	if len(b.buf) == 0 {
		return
	}
	_, _ = b.out.Write(b.buf)
	if cap(b.buf) > 4*logBufferMax {
		b.buf = make([]byte, 0, logBufferMax) // one huge line passed
	} else {
		b.buf = b.buf[:0]
	}
}

// Flush writes out what the buffer holds.
func (b *logBuffer) Flush() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.flushLocked()
}

// Close flushes the buffer and stops the flusher; later lines are written
// through. It is safe to call more than once.
func (b *logBuffer) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.flushLocked()
	b.mu.Unlock()
	close(b.stop)
	<-b.done
	return nil
}
