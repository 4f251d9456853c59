package proxy

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
)

func TestMayHoldUsage(t *testing.T) {
	for _, tc := range []struct {
		data string
		want bool
	}{
		{`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi\n"}}`, false},
		{`{"type":"ping"}`, false},
		{`{"type":"message_delta","usage":{"output_tokens":6}}`, true},
		{`{"type":"message_delta","USAGE":{"output_tokens":6}}`, true},
		{`{"type":"message_delta","Usage":{"output_tokens":6}}`, true},
		{`{"type":"message_delta","us\u0061ge":{"output_tokens":6}}`, true},
		{`{"type":"message_delta","\u0075sage":{"output_tokens":6}}`, true},
		{`usag`, false},
	} {
		if got := mayHoldUsage([]byte(tc.data)); got != tc.want {
			t.Errorf("mayHoldUsage(%s) = %v, want %v", tc.data, got, tc.want)
		}
	}
}

// TestAnthropicTracker_SpelledUsage: a usage key the decoder matches in
// another case or spelled with escapes is still read, so skipping events
// without usage never skips one with it.
func TestAnthropicTracker_SpelledUsage(t *testing.T) {
	for _, key := range []string{`usage`, `Usage`, `USAGE`, `\u0075sage`} {
		tr := &anthropicTracker{}
		tr.event(nil, []byte(`{"type":"message_start","message":{"`+key+`":{"input_tokens":9,"output_tokens":1}}}`))
		tr.event(nil, []byte(`{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}`))
		tr.event(nil, []byte(`{"type":"message_delta","`+key+`":{"output_tokens":6}}`))
		u, ok := tr.result(true)
		if !ok || u.InputTokens != 9 || u.OutputTokens != 6 {
			t.Errorf("%s: got %+v, %v; want 9 input and 6 output tokens", key, u, ok)
		}
	}
}

// TestEventFields_NoAllocs: framing the usual one-line event allocates
// nothing (the type was a new string and the data a copy).
func TestEventFields_NoAllocs(t *testing.T) {
	skipAllocsUnderRace(t)
	ev := []byte("event: content_block_delta\ndata: {\"type\":\"content_block_delta\"}\n\n")
	if n := testing.AllocsPerRun(100, func() { eventFields(ev) }); n != 0 {
		t.Errorf("got %v allocations, want 0", n)
	}
	// Two data lines are joined in a new slice; the event is not written.
	ev = []byte("data: a\ndata: b\n\n")
	_, data, _ := eventFields(ev)
	if string(data) != "a\nb" || string(ev) != "data: a\ndata: b\n\n" {
		t.Errorf("got data %q, event %q", data, ev)
	}
}

// pieceReader returns its chunks one per Read.
type pieceReader struct{ chunks []string }

func (r *pieceReader) Read(p []byte) (int, error) {
	if len(r.chunks) == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.chunks[0])
	if r.chunks[0] = r.chunks[0][n:]; r.chunks[0] == "" {
		r.chunks = r.chunks[1:]
	}
	return n, nil
}

// TestMeteredBody_HoldsNoReadBuffer: between reads a stream keeps only its
// unframed tail, not a read buffer of its own (it held 32 KB for its whole
// life), and what reaches the client and the charge are unchanged.
func TestMeteredBody_HoldsNoReadBuffer(t *testing.T) {
	events := []string{
		"data: {\"choices\":[{\"delta\":{\"content\":\"Hi\"}}]}\n\n",
		"data: {\"choices\":[{\"delta\":{\"content\":\" there\"}}]}\n",
		"\ndata: {\"choices\":[],\"usage\":{\"prompt_tokens\":9,\"completion_tokens\":6}}\n\ndata: [DONE]\n\n",
	}
	l := &recordingLedger{}
	p := New(Options{Ledger: l})
	prices := pricing.Prices{Input: pricing.Flat(1_000_000), Output: pricing.Flat(2_000_000)}
	m := &meter{p: p, res: budget.Reservation{ID: "r", Amount: 1_000_000}, prices: prices}
	p.inflight.add(m)
	resp := &http.Response{StatusCode: 200, Body: io.NopCloser(&pieceReader{chunks: append([]string(nil), events...)})}
	mb := newMeteredBody(m, resp, true, &openAITracker{})
	var out bytes.Buffer
	buf := make([]byte, copyBufSize)
	for {
		n, err := mb.Read(buf)
		out.Write(buf[:n])
		if held := cap(mb.raw) + cap(mb.out); held > keepBuf {
			t.Fatalf("got %d bytes held between reads, want at most %d", held, keepBuf)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	mb.Close()
	if want := strings.Join(events, ""); out.String() != want {
		t.Errorf("got %q, want %q", out.String(), want)
	}
	if len(l.settled) != 1 || l.settled[0].Outcome != budget.Complete || l.settled[0].Usage.OutputTokens != 6 {
		t.Fatalf("got settlements %+v, want one complete with 6 output tokens", l.settled)
	}
}

// TestCopyBuffers: a buffer put back is handed out again, and one of
// another size is not kept.
func TestCopyBuffers(t *testing.T) {
	skipAllocsUnderRace(t) // and sync.Pool drops some of what it is given under it
	var c copyBuffers
	b := c.Get()
	if len(b) != copyBufSize {
		t.Fatalf("got a buffer of %d bytes, want %d", len(b), copyBufSize)
	}
	c.Put(make([]byte, 10)) // ignored
	if n := testing.AllocsPerRun(100, func() { c.Put(c.Get()) }); n != 0 {
		t.Errorf("got %v allocations per Get and Put, want 0", n)
	}
}

// TestServe_ReleasesContextOnSettle: the upstream context ends when the
// request settles, with no goroutine left waiting for it.
func TestServe_ReleasesContextOnSettle(t *testing.T) {
	p := New(Options{Ledger: &recordingLedger{}})
	released := 0
	m := &meter{p: p, release: func() { released++ }}
	p.inflight.add(m)
	m.settle(nil, http.StatusOK, budget.NotSent)
	if released != 1 {
		t.Errorf("got %d releases at settlement, want 1", released)
	}
}

// TestResponsesTracker_EscapedItemType: an output_item.done event whose
// type is spelled with an escape still counts its tool call; the cheap
// search for the type must not pass it over.
func TestResponsesTracker_EscapedItemType(t *testing.T) {
	tr := &responsesTracker{}
	tr.event(nil, []byte(`{"type":"response.output_item.done","item":{"type":"web_search_call"}}`))
	tr.event(nil, []byte(`{"type":"response.output\u005fitem.done","item":{"type":"web_search_call"}}`))
	tr.event(nil, []byte(`{"type":"response.output_text.delta","delta":"no usage here"}`))
	calls, seen := tr.toolCalls()
	if !seen || calls["web_search_call"] != 2 {
		t.Errorf("got %v, %v; want 2 web_search_call", calls, seen)
	}
}

// FuzzOpenAIUsageFromJSON: reading only the usage member of a whole body
// gives what decoding the whole body gives.
func FuzzOpenAIUsageFromJSON(f *testing.F) {
	for _, s := range []string{
		`{"id":"x","choices":[{"message":{"content":"usage"}}],"usage":{"prompt_tokens":9,"completion_tokens":6}}`,
		`{"USAGE":{"prompt_tokens":9,"completion_tokens":6,"prompt_tokens_details":{"cached_tokens":1,"cache_write_tokens":2}}}`,
		`{"usage":{"prompt_tokens":1,"completion_tokens":1},"Usage":{"prompt_tokens":5}}`,
		`{"\u0075sage":{"prompt_tokens":9,"completion_tokens":6}}`,
		`{"usage":null}`, `null`, `[1]`, `{"usage":{"prompt_tokens":"9"}}`, `{"usage":1}`,
		`{"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":0},"completion_tokens_details":{"reasoning_tokens":3}}}`,
		`{"usage":{"prompt_tokens":9,"prompt_tokens_details":{"cache_write_tokens":2}}}`,
		`{"usage":{"prompt_tokens":9,"completion_tokens":6,"Prompt_Tokens":1}}`,
		`{"usage":{"prompt_tokens":9,"completion_tokens":6,"prompt_tokens":1}}`,
		`{"usage":{"prompt_tokens":-9,"completion_tokens":6e0,"completion_tokens_details":null}}`,
		`{"usage":{"prompt_tokens":9,"completion_tokens":6,"completion_tokens_details":{"REASONING_tokens":2,"x":[1]}}}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		u, placed, ok := openAIUsageFromJSON(body)
		wu, wplaced, wok := openAIUsageFromWhole(body)
		if u != wu || placed != wplaced || ok != wok {
			t.Fatalf("%s: member %+v %v %v; whole %+v %v %v", body, u, placed, ok, wu, wplaced, wok)
		}
	})
}

// TestOpenAIUsageFromJSON_NoAllocs: a chat answer's usage of the common
// shape is read without an allocation (decoding it with json.Unmarshal
// took 9).
func TestOpenAIUsageFromJSON_NoAllocs(t *testing.T) {
	skipAllocsUnderRace(t)
	body := []byte(`{"id":"chatcmpl-1","choices":[{"index":0,"message":{"role":"assistant","content":"Hi"}}],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":2,"cache_write_tokens":1},"completion_tokens_details":{"reasoning_tokens":3}}}`)
	want := budget.Usage{InputTokens: 9, OutputTokens: 6, CacheReadTokens: 2, CacheWriteTokens: 1, ReasoningTokens: 3}
	if u, placed, ok := openAIUsageFromJSON(body); u != want || !placed || !ok {
		t.Fatalf("got %+v %v %v, want %+v true true", u, placed, ok, want)
	}
	if got := testing.AllocsPerRun(100, func() { openAIUsageFromJSON(body) }); got != 0 {
		t.Errorf("got %v allocations, want 0", got)
	}
}

// TestFoldingCharacters: Go's decoder folds the long s into s and the
// Kelvin sign into k; a usage spelled with one is still read from a
// stream, and a request key holding one is refused.
func TestFoldingCharacters(t *testing.T) {
	if !mayHoldUsage([]byte(`{"type":"message_delta","u` + "\u017f" + `age":{"output_tokens":4000}}`)) {
		t.Error(`mayHoldUsage passed over "uſage", which encoding/json reads as usage`)
	}
	for _, body := range []string{
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_token` + "\u017f" + `":5}`,
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"web_search_options":{"search_context_size":"low","` + "\u017f" + `earch_context_size":"high"}}`,
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"metadata":{"` + "\u212a" + `ey":"v"}}`,
	} {
		if err := checkKeys([]byte(body)); err == nil {
			t.Errorf("checkKeys(%s) = nil, want a refusal", body)
		}
	}
	if err := checkKeys([]byte(`{"model":"gpt-4o-mini","metadata":{"caf\u00e9":"ok"}}`)); err != nil {
		t.Errorf("checkKeys refused an ordinary non-ASCII key: %v", err)
	}
}

// skipAllocsUnderRace skips a test of allocation counts when the race
// detector, which allocates itself, is on.
func skipAllocsUnderRace(t *testing.T) {
	t.Helper()
	if raceEnabled {
		t.Skip("allocation counts are not the program's own under the race detector")
	}
}
