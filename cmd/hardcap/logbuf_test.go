package main

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rs/zerolog"
)

// lockedBuffer is a bytes.Buffer safe for the flusher and the test.
type lockedBuffer struct {
	mu     sync.Mutex
	b      bytes.Buffer
	writes int
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.writes++
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLogBuffer_CloseLosesNothing: every line of many concurrent writers is
// in the output after Close, whole, in fewer writes than lines.
func TestLogBuffer_CloseLosesNothing(t *testing.T) {
	out := &lockedBuffer{}
	b := newLogBuffer(out, time.Hour) // only Close and a full buffer flush
	log := zerolog.New(b)
	var wg sync.WaitGroup
	const writers, lines = 8, 500
	for w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range lines {
				log.Info().Int("writer", w).Int("line", i).Msg("request")
			}
		}()
	}
	wg.Wait()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != writers*lines {
		t.Fatalf("got %d lines, want %d", len(got), writers*lines)
	}
	seen := map[string]bool{}
	for _, l := range got {
		if !strings.HasPrefix(l, `{"level":"info","writer":`) || !strings.HasSuffix(l, `"message":"request"}`) {
			t.Fatalf("got a torn line %q", l)
		}
		seen[l] = true
	}
	if len(seen) != writers*lines {
		t.Errorf("got %d distinct lines, want %d", len(seen), writers*lines)
	}
	if out.writes >= writers*lines {
		t.Errorf("got %d writes for %d lines, want them batched", out.writes, writers*lines)
	}
	// After Close a line is written through at once.
	log.Info().Msg("after")
	if !strings.HasSuffix(out.String(), `"message":"after"}`+"\n") {
		t.Error("a line after Close was not written through")
	}
}

// TestLogBuffer_FullFlushes: a buffer that reaches logBufferMax is written
// out by the write that filled it, without waiting for the flusher.
func TestLogBuffer_FullFlushes(t *testing.T) {
	out := &lockedBuffer{}
	b := newLogBuffer(out, time.Hour)
	defer b.Close()
	line := strings.Repeat("x", 1023) + "\n"
	for range logBufferMax / len(line) {
		_, _ = io.WriteString(b, line)
	}
	if got := len(out.String()); got != logBufferMax {
		t.Errorf("got %d bytes out before Close, want %d", got, logBufferMax)
	}
}

// TestNewLogger_BuffersFiles: logs to a file are buffered and reach the
// file by closeLog; logs to another writer are not buffered.
func TestNewLogger_BuffersFiles(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	m := &Main{}
	if m.log, m.logBuf, _, err = newLogger(LogConfig{}, f); err != nil {
		t.Fatal(err)
	}
	if m.logBuf == nil {
		t.Fatal("got no buffer for a file")
	}
	for i := range 10 {
		m.log.Info().Str("n", strconv.Itoa(i)).Msg("line")
	}
	m.closeLog()
	data, err := os.ReadFile(f.Name())
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n"); n != 10 {
		t.Errorf("got %d lines in the file, want 10", n)
	}
	if _, buf, _, err := newLogger(LogConfig{}, &bytes.Buffer{}); err != nil || buf != nil {
		t.Errorf("got buffer %v, error %v for a bytes.Buffer, want none", buf, err)
	}
}

// BenchmarkLogLine is the per-request log line, written to a file as
// stderr redirected to a file or a pipe is: through the buffer, and
// straight (a write syscall per line).
//
//	go test -run '^$' -bench LogLine ./cmd/hardcap/
func BenchmarkLogLine(b *testing.B) {
	for _, buffered := range []bool{true, false} {
		b.Run("buffered="+strconv.FormatBool(buffered), func(b *testing.B) {
			f, err := os.Create(filepath.Join(b.TempDir(), "log"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			var log zerolog.Logger
			var buf *logBuffer
			if buffered {
				if log, buf, _, err = newLogger(LogConfig{}, f); err != nil {
					b.Fatal(err)
				}
				defer buf.Close()
			} else {
				log = zerolog.New(f).With().Timestamp().Logger()
			}
			b.ReportAllocs()
			for range b.N {
				log.Info().Str("token", "tok_0123456789abcdef").Str("project", "web").
					Str("provider", "openai").Str("model", "gpt-4o-mini").Str("route", "chat").
					Int("status", 200).Str("outcome", "complete").
					Int64("input_tokens", 9).Int64("output_tokens", 6).
					Str("reserved_usd", "0.000012").Str("charged_usd", "0.000005").
					Int64("latency_ms", 3).Msg("request")
			}
		})
	}
}
