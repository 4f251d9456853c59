package proxy_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	anthropic "github.com/anthropics/anthropic-sdk-go/v2"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/fakeanthropic"
	"github.com/hardcap/hardcap/internal/fakeopenai"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
	"github.com/openai/openai-go/v3"
)

// sseEvent is one server-sent event as an SDK's decoder sees it.
type sseEvent struct {
	typ  string
	data string
}

// readSSE decodes a stream the way the official SDKs do (event: and data:
// fields, events ended by a blank line) until the body ends, and returns
// the events and the read error that ended it (nil for a clean end).
func readSSE(t *testing.T, body io.Reader) ([]sseEvent, error) {
	t.Helper()
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 32<<20)
	var events []sseEvent
	var cur sseEvent
	var has bool
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		switch {
		case line == "":
			if has {
				events = append(events, cur)
			}
			cur, has = sseEvent{}, false
		case strings.HasPrefix(line, "event:"):
			cur.typ = strings.TrimSpace(strings.TrimPrefix(line, "event:"))
		case strings.HasPrefix(line, "data:"):
			if has {
				cur.data += "\n"
			}
			cur.data += strings.TrimPrefix(strings.TrimPrefix(line, "data:"), " ")
			has = true
		}
	}
	return events, sc.Err()
}

// killMidStream starts a stream that stalls upstream after a few events,
// kills the project once the first bytes arrived, and returns what the
// client read and the usage record.
func killMidStream(t *testing.T, h *harness, path, body string, header http.Header) ([]sseEvent, error, budget.Record) {
	t.Helper()
	return killMidStreamAfter(t, h, path, body, header, "")
}

// killMidStreamAfter is killMidStream that cuts only once the client has
// read a line containing until (any first line when until is empty), so a
// test can be sure the proxy has passed on what comes before it.
func killMidStreamAfter(t *testing.T, h *harness, path, body string, header http.Header, until string) ([]sseEvent, error, budget.Record) {
	t.Helper()
	req := mustRequestPath(t, h, path, body)
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("got status %d, want 200", resp.StatusCode)
	}
	rd := bufio.NewReader(resp.Body)
	var first string
	for {
		line, err := rd.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		first += line
		if strings.Contains(line, until) {
			break
		}
	}
	if err := h.db.SetKill(context.Background(), storage.KillTarget{Project: h.project}, true); err != nil {
		t.Fatal(err)
	}
	if n := h.p.Cut(proxy.CutTarget{Project: h.project}); n != 1 {
		t.Fatalf("cut %d requests, want 1", n)
	}
	type result struct {
		events []sseEvent
		err    error
	}
	done := make(chan result, 1)
	go func() {
		ev, err := readSSE(t, io.MultiReader(strings.NewReader(first), rd))
		done <- result{ev, err}
	}()
	select {
	case r := <-done:
		return r.events, r.err, h.records(1)[0]
	case <-time.After(10 * time.Second):
		t.Fatal("the stream was not cut")
	}
	return nil, nil, budget.Record{}
}

// TestKill_StreamGetsErrorEvent: a stream cut by the kill switch ends with
// an error event in its API's shape (one an SDK raises), then a clean end
// of the body; the record says killed, with the status the client saw and
// the full reservation charged, as the usage never came.
func TestKill_StreamGetsErrorEvent(t *testing.T) {
	anthropicHeaders := http.Header{"Anthropic-Version": {"2023-06-01"}}
	tests := []struct {
		name   string
		path   string
		body   string
		header http.Header
		// check inspects the last event.
		check func(t *testing.T, prev, last sseEvent)
	}{
		{"chat", "/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"max_tokens":50,"messages":[{"role":"user","content":"Hi"}]}`, nil,
			func(t *testing.T, _, last sseEvent) {
				// openai-go and openai-python raise on a chunk with "error".
				var v struct {
					Error *struct{ Code, Type, Message string } `json:"error"`
				}
				if err := json.Unmarshal([]byte(last.data), &v); err != nil || v.Error == nil || last.typ != "" {
					t.Fatalf("last event %q %q is not an error chunk", last.typ, last.data)
				}
				if v.Error.Code != "kill_switch" || v.Error.Type != "permission_error" || !strings.Contains(v.Error.Message, "hardcap resume") {
					t.Fatalf("got error %+v, want kill_switch", *v.Error)
				}
			}},
		{"completions", "/v1/completions", `{"model":"gpt-3.5-turbo-instruct","stream":true,"max_tokens":50,"prompt":"Hi"}`, nil,
			func(t *testing.T, _, last sseEvent) {
				var v struct {
					Error *struct{ Code string } `json:"error"`
				}
				if err := json.Unmarshal([]byte(last.data), &v); err != nil || v.Error == nil || v.Error.Code != "kill_switch" {
					t.Fatalf("last event %q is not a kill_switch error chunk", last.data)
				}
			}},
		{"responses", "/v1/responses", `{"model":"gpt-4o-mini","stream":true,"max_output_tokens":50,"input":"Hi"}`, nil,
			func(t *testing.T, prev, last sseEvent) {
				// The Responses API's mid-stream error event.
				var v struct {
					Type    string  `json:"type"`
					Code    string  `json:"code"`
					Message string  `json:"message"`
					Param   *string `json:"param"`
					Seq     *int64  `json:"sequence_number"`
				}
				if err := json.Unmarshal([]byte(last.data), &v); err != nil || last.typ != "error" || v.Type != "error" {
					t.Fatalf("last event %q %q is not a Responses error event", last.typ, last.data)
				}
				var p struct {
					Seq int64 `json:"sequence_number"`
				}
				_ = json.Unmarshal([]byte(prev.data), &p)
				if v.Code != "kill_switch" || v.Message == "" || v.Seq == nil || *v.Seq != p.Seq+1 {
					t.Fatalf("got %s, want code kill_switch and sequence number %d", last.data, p.Seq+1)
				}
			}},
		{"messages", "/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"Hi"}]}`, anthropicHeaders,
			func(t *testing.T, _, last sseEvent) {
				var v struct {
					Type  string `json:"type"`
					Error *struct {
						Type    string `json:"type"`
						Message string `json:"message"`
					} `json:"error"`
				}
				if err := json.Unmarshal([]byte(last.data), &v); err != nil || last.typ != "error" || v.Type != "error" || v.Error == nil {
					t.Fatalf("last event %q %q is not an Anthropic error event", last.typ, last.data)
				}
				if v.Error.Type != "kill_switch" || v.Error.Message == "" {
					t.Fatalf("got %+v, want type kill_switch", *v.Error)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{noSync: true})
			h.up.SetBehavior(fakeopenai.Behavior{StallAfterEvents: 3})
			h.ant.SetBehavior(fakeanthropic.Behavior{StallAfterEvents: 3})
			events, err, rec := killMidStream(t, h, tt.path, tt.body, tt.header)
			if err != nil {
				t.Fatalf("the stream ended with %v, want a clean end after the error event", err)
			}
			if len(events) < 2 {
				t.Fatalf("got %d events, want the upstream's and the error event", len(events))
			}
			tt.check(t, events[len(events)-2], events[len(events)-1])
			if rec.Outcome != budget.Killed || rec.Status != http.StatusOK || rec.Charged != rec.Reserved {
				t.Fatalf("got %s, status %d, charged %s of %s; want killed, 200, the full reservation", rec.Outcome, rec.Status, rec.Charged, rec.Reserved)
			}
		})
	}
}

// stallingUpstream is an OpenAI upstream that, for every request, sends
// prefix as the start of a 200 JSON answer (nothing, not even headers, when
// prefix is empty), signals arrived and blocks until the request ends.
func stallingUpstream(t *testing.T, prefix string) (providers func([]*proxy.Provider) []*proxy.Provider, arrived chan struct{}) {
	t.Helper()
	arrived = make(chan struct{}, 1)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.ReadAll(r.Body)
		if prefix != "" {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, prefix)
			http.NewResponseController(w).Flush()
		}
		arrived <- struct{}{}
		<-r.Context().Done()
	}))
	t.Cleanup(up.Close)
	return func(ps []*proxy.Provider) []*proxy.Provider {
		base, _ := url.Parse(up.URL + "/v1")
		ps[0].BaseURL = base
		return ps
	}, arrived
}

// TestKill_NonStreaming: a non-streaming request the kill switch cuts is
// recorded killed with the status the client saw: 200 when the answer had
// begun (its body then breaks off), 403 kill_switch while the provider had
// not yet answered.
func TestKill_NonStreaming(t *testing.T) {
	t.Run("answer begun", func(t *testing.T) {
		provs, arrived := stallingUpstream(t, `{"id":"chatcmpl-1",`)
		h := newHarness(t, harnessOptions{noSync: true, providers: provs})
		resp, err := http.DefaultClient.Do(mustRequest(t, h, helloBody))
		if err != nil {
			t.Fatal(err)
		}
		<-arrived
		if resp.StatusCode != 200 {
			t.Fatalf("got %d, want the provider's 200", resp.StatusCode)
		}
		if n := h.p.Cut(proxy.CutTarget{TokenID: h.tokenID}); n != 1 {
			t.Fatalf("cut %d, want 1", n)
		}
		if _, err := readAllErr(resp); err == nil || errors.Is(err, io.EOF) {
			t.Fatalf("a cut JSON answer ended with %v; the client must see it is incomplete", err)
		}
		rec := h.records(1)[0]
		if rec.Outcome != budget.Killed || rec.Status != 200 || rec.Charged != rec.Reserved {
			t.Fatalf("got %s, status %d, charged %s of %s; want killed, 200, in full", rec.Outcome, rec.Status, rec.Charged, rec.Reserved)
		}
	})
	t.Run("no answer yet", func(t *testing.T) {
		provs, arrived := stallingUpstream(t, "")
		h := newHarness(t, harnessOptions{noSync: true, providers: provs})
		type result struct {
			status int
			body   string
		}
		done := make(chan result, 1)
		go func() {
			resp, err := http.DefaultClient.Do(mustRequest(t, h, helloBody))
			if err != nil {
				done <- result{}
				return
			}
			done <- result{resp.StatusCode, readAll(t, resp)}
		}()
		select {
		case <-arrived:
		case <-time.After(10 * time.Second):
			t.Fatal("the request never reached the provider")
		}
		if n := h.p.Cut(proxy.CutTarget{}); n != 1 {
			t.Fatalf("cut %d, want 1", n)
		}
		r := <-done
		if code, _, _ := apiError(t, r.body); r.status != 403 || code != "kill_switch" {
			t.Fatalf("got %d %s, want 403 kill_switch", r.status, code)
		}
		rec := h.records(1)[0]
		if rec.Outcome != budget.Killed || rec.Status != 403 || rec.Charged != rec.Reserved {
			t.Fatalf("got %s, status %d, charged %s of %s; want killed, 403, in full", rec.Outcome, rec.Status, rec.Charged, rec.Reserved)
		}
	})
}

// TestKill_StreamWithUsageChargesUsage: a stream whose usage had arrived
// when the kill cut it is recorded killed and charged that usage.
func TestKill_StreamWithUsageChargesUsage(t *testing.T) {
	h := newHarness(t, harnessOptions{noSync: true})
	// The fake's Anthropic stream reports usage in message_start and
	// message_delta; stalling after message_delta leaves only message_stop.
	h.ant.SetBehavior(fakeanthropic.Behavior{StallAfterEvents: 1000})
	events, err, rec := killMidStreamAfter(t, h, "/v1/messages", `{"model":"claude-haiku-4-5","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"Hi"}]}`,
		http.Header{"Anthropic-Version": {"2023-06-01"}}, `"type":"message_delta"`)
	if err != nil || len(events) == 0 || events[len(events)-1].typ != "error" {
		t.Fatalf("got %d events ending %v (err %v), want a final error event", len(events), events[len(events)-1:], err)
	}
	u := h.ant.Calls()[0].Usage
	if rec.Outcome != budget.Killed || rec.Usage.OutputTokens != u.OutputTokens || rec.Charged >= rec.Reserved || rec.Charged == 0 {
		t.Fatalf("got %s, %d output tokens, charged %s of %s; want killed with the reported %d output tokens charged", rec.Outcome, rec.Usage.OutputTokens, rec.Charged, rec.Reserved, u.OutputTokens)
	}
}

// TestStream_EventOverBound: a stream event larger than the metering bound
// (16 MiB) reaches the client unchanged, and the request is charged its
// full reservation although a usage chunk follows.
func TestStream_EventOverBound(t *testing.T) {
	big := `data: {"choices":[{"index":0,"delta":{"content":"` + strings.Repeat("a", 17<<20) + `"}}]}` + "\n\n"
	stream := `data: {"choices":[{"index":0,"delta":{"role":"assistant"}}]}` + "\n\n" + big +
		`data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}` + "\n\n" + "data: [DONE]\n\n"
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, stream)
	}))
	defer up.Close()
	h := newHarness(t, harnessOptions{noSync: true, providers: func(ps []*proxy.Provider) []*proxy.Provider {
		base, _ := url.Parse(up.URL + "/v1")
		ps[0].BaseURL = base
		return ps
	}})
	resp := h.post("/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"max_tokens":30,"messages":[{"role":"user","content":"x"}]}`)
	body := readAll(t, resp)
	if body != stream {
		t.Fatalf("the client got %d bytes that differ from the %d the provider sent", len(body), len(stream))
	}
	rec := h.records(1)[0]
	if rec.Charged != rec.Reserved || rec.Outcome != budget.UsageMissing {
		t.Fatalf("charged %s of %s (%s), want the full reservation", rec.Charged, rec.Reserved, rec.Outcome)
	}
	if !strings.Contains(h.logs.String(), "too large to meter") {
		t.Fatal("the log does not say the event was too large to meter")
	}
}

// TestKill_OfficialSDKsRaise: the official OpenAI and Anthropic Go SDKs
// report a stream the kill switch cut as an error that names kill_switch.
func TestKill_OfficialSDKsRaise(t *testing.T) {
	t.Run("openai chat", func(t *testing.T) {
		h := newHarness(t, harnessOptions{noSync: true})
		h.up.SetBehavior(fakeopenai.Behavior{StallAfterEvents: 2})
		client := sdkClient(h)
		stream := client.Chat.Completions.NewStreaming(t.Context(), openai.ChatCompletionNewParams{
			Model:     "gpt-4o-mini",
			Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Hi")},
			MaxTokens: openai.Int(30),
		})
		if !stream.Next() {
			t.Fatalf("no first chunk: %v", stream.Err())
		}
		h.p.Cut(proxy.CutTarget{TokenID: h.tokenID})
		for stream.Next() {
		}
		if err := stream.Err(); err == nil || !strings.Contains(err.Error(), "kill_switch") {
			t.Fatalf("the SDK ended the stream with %v, want an error naming kill_switch", err)
		}
	})
	t.Run("anthropic messages", func(t *testing.T) {
		h := newHarness(t, harnessOptions{noSync: true})
		h.ant.SetBehavior(fakeanthropic.Behavior{StallAfterEvents: 2})
		client := anthropic.NewClient(anthropicoption.WithBaseURL(h.srv.URL), anthropicoption.WithAPIKey(h.token), anthropicoption.WithMaxRetries(0))
		stream := client.Messages.NewStreaming(t.Context(), anthropic.MessageNewParams{
			Model:     "claude-haiku-4-5",
			MaxTokens: 50,
			Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("Hi"))},
		})
		if !stream.Next() {
			t.Fatalf("no first event: %v", stream.Err())
		}
		h.p.Cut(proxy.CutTarget{TokenID: h.tokenID})
		for stream.Next() {
		}
		if err := stream.Err(); err == nil || !strings.Contains(err.Error(), "kill_switch") {
			t.Fatalf("the SDK ended the stream with %v, want an error naming kill_switch", err)
		}
	})
}
