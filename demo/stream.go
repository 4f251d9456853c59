package demo

import (
	"encoding/json"
	"net/http"
	"time"
)

// event is one server-sent event of a stream the simulator writes. name is
// the SSE event name ("" writes a bare data line, as chat streams do);
// token marks an event that carries one generated token, before which the
// simulator pauses (after the first) to look like a model generating.
type event struct {
	name  string
	data  any
	token bool
}

// writeNamedEvent writes one "event: name\ndata: {json}\n\n" event (no
// event line when name is empty) and flushes it.
func writeNamedEvent(w http.ResponseWriter, name string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	if name != "" {
		if _, err := w.Write([]byte("event: " + name + "\n")); err != nil {
			return err
		}
	}
	return writeData(w, b)
}

// streamEvents sends events as server-sent events, pausing delay before
// every token event after the first, and stops early when the client goes
// away. done appends OpenAI's "data: [DONE]" terminator.
func streamEvents(w http.ResponseWriter, r *http.Request, delay time.Duration, events []event, done bool) {
	if StartStream(w) != nil {
		return
	}
	ctx := r.Context()
	var timer *time.Timer
	first := true
	for _, ev := range events {
		if ev.token {
			if !first && delay > 0 {
				if timer == nil {
					timer = time.NewTimer(delay)
					defer timer.Stop()
				} else {
					timer.Reset(delay)
				}
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			}
			first = false
		}
		if ctx.Err() != nil || writeNamedEvent(w, ev.name, ev.data) != nil {
			return
		}
	}
	if done {
		WriteDone(w)
	}
}

// textTokens counts a text with the simulator's rule, ceil(len/4) tokens
// for len bytes: never more than the text's bytes, which bound hardcap's
// reservation.
func textTokens(s string) int64 { return (int64(len(s)) + 3) / 4 }

// userMessage is a one-message conversation holding text, for ReplyTokens.
func userMessage(text string) []Message {
	b, _ := json.Marshal(text)
	return []Message{{Role: "user", Content: b}}
}

// capTokens cuts tokens at limit (no cap when limit <= 0) and reports
// whether it cut.
func capTokens(tokens []string, limit int64) ([]string, bool) {
	if limit > 0 && int64(len(tokens)) > limit {
		return tokens[:limit], true
	}
	return tokens, false
}

// readBody reads a request body up to MaxBodyBytes, answering the error
// itself (in the API's shape through fail) when it cannot.
func readBody(w http.ResponseWriter, r *http.Request, fail func(status int, typ, msg string)) ([]byte, bool) {
	body, err := readAllLimited(w, r)
	if err != nil {
		if err == errTooLarge {
			fail(http.StatusRequestEntityTooLarge, "invalid_request_error", "Request body too large for the demo provider.")
		} else {
			fail(http.StatusBadRequest, "invalid_request_error", "Could not read the request body.")
		}
		return nil, false
	}
	return body, true
}
