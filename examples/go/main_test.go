package main

import (
	"bytes"
	"context"
	"errors"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/demo"
	"github.com/openai/openai-go/v3"
)

// newDemo serves hardcap's simulated OpenAI provider on a loopback port.
func newDemo(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(demo.NewOpenAI(demo.Options{TokenDelay: -1}))
	t.Cleanup(srv.Close)
	return srv
}

func testContext(t *testing.T) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestRun runs the example end to end against the simulator: both calls go
// through the SDK, and the streamed reply matches the plain one (the
// simulator's replies are deterministic).
func TestRun(t *testing.T) {
	srv := newDemo(t)
	var out bytes.Buffer
	if err := run(testContext(t), &out, srv.URL+"/v1", "hc_example"); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}

	plainPart, streamPart, ok := strings.Cut(out.String(), "== streamed chat completion ==\n")
	if !ok {
		t.Fatalf("no streamed section in output:\n%s", out.String())
	}
	plainText, plainUsage, ok := strings.Cut(strings.TrimPrefix(plainPart, "== chat completion ==\n"), "\n(usage: ")
	if !ok {
		t.Fatalf("plain section malformed:\n%s", plainPart)
	}
	streamText, streamUsage, ok := strings.Cut(streamPart, "\n(usage: ")
	if !ok {
		t.Fatalf("streamed section malformed:\n%s", streamPart)
	}
	if strings.TrimSpace(plainText) == "" {
		t.Fatalf("plain reply is empty:\n%s", out.String())
	}
	if !strings.Contains(plainText, "Say hello from behind hardcap.") {
		t.Errorf("plain reply %q does not quote the prompt", plainText)
	}
	if streamText != plainText {
		t.Errorf("streamed reply differs from plain reply:\nstream: %q\nplain:  %q", streamText, plainText)
	}
	if plainUsage != streamUsage {
		t.Errorf("usage differs: plain %q, streamed %q", plainUsage, streamUsage)
	}
	if strings.HasPrefix(plainUsage, "0 prompt") || strings.Contains(plainUsage, "+ 0 completion") {
		t.Errorf("usage not reported: %q", plainUsage)
	}
}

// TestRunReportsAPIErrors checks that an API error reaches the caller as the
// SDK's *openai.Error: here a base URL missing its /v1 suffix gets a 404.
func TestRunReportsAPIErrors(t *testing.T) {
	srv := newDemo(t)
	var out bytes.Buffer
	err := run(testContext(t), &out, srv.URL, "hc_example")
	var apiErr *openai.Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("run returned %v, want an *openai.Error", err)
	}
	if apiErr.StatusCode != 404 {
		t.Errorf("status %d, want 404", apiErr.StatusCode)
	}
}
