package proxy

import (
	"bytes"
	"encoding/json"
	"net/http"
)

// nextEvent splits the first complete server-sent event off buf. An event
// ends with a blank line; lines end with "\n", "\r\n" or "\r" (the SSE
// specification allows all three). It returns the event including its
// terminating blank line, and false when buf holds no complete event yet.
func nextEvent(buf []byte) (event, rest []byte, ok bool) {
	var s eventScanner
	n, ok := s.next(buf)
	if !ok {
		return nil, buf, false
	}
	return buf[:n], buf[n:], true
}

// eventScanner finds where the first server-sent event of a growing buffer
// ends. It remembers how far it has looked, so a buffer that grows by
// appends is scanned once in all, not once per append: a large event
// arriving in many reads costs time linear in its size.
type eventScanner struct {
	// line is where the line being scanned starts; -1 when it started in
	// bytes already dropped (it is then known not to be empty).
	line int
	// seen is how much of the buffer is scanned.
	seen int
}

// next reports the length of the first complete event in buf, or false
// when buf holds none yet. buf must start where the scanner's last event
// ended (or at its last drop) and hold every byte the last call saw.
func (s *eventScanner) next(buf []byte) (n int, ok bool) {
	for {
		i := bytes.IndexAny(buf[s.seen:], "\r\n")
		if i < 0 {
			s.seen = len(buf)
			return 0, false
		}
		at := s.seen + i
		end := at + 1
		if buf[at] == '\r' {
			if end == len(buf) {
				s.seen = at // "\r" may be the first half of "\r\n": look again
				return 0, false
			}
			if buf[end] == '\n' {
				end++
			}
		}
		if at == s.line { // an empty line ends the event
			*s = eventScanner{}
			return end, true
		}
		s.line, s.seen = end, end
	}
}

// drop tells the scanner that the first k bytes of its buffer are gone
// (passed on unframed); k must not exceed what it has scanned.
func (s *eventScanner) drop(k int) {
	s.seen -= k
	if s.line -= k; s.line < 0 {
		s.line = -1
	}
}

// scanned is how many bytes of the buffer the scanner has looked at.
func (s *eventScanner) scanned() int { return s.seen }

// eventFields returns an event's type (its "event:" field, empty when
// absent) and its joined data lines ("data:" fields, one optional leading
// space removed, joined with "\n"); ok is false when the event has no data.
// Both alias event unless the data has more than one line: the usual event
// costs no allocation.
func eventFields(event []byte) (typ, data []byte, ok bool) {
	lines := 0
	for len(event) > 0 {
		var line []byte
		i := bytes.IndexAny(event, "\r\n")
		if i < 0 {
			line, event = event, nil
		} else {
			line = event[:i]
			if event[i] == '\r' && i+1 < len(event) && event[i+1] == '\n' {
				i++
			}
			event = event[i+1:]
		}
		if v, found := bytes.CutPrefix(line, []byte("event:")); found {
			typ = bytes.TrimPrefix(v, []byte(" "))
			continue
		}
		v, found := bytes.CutPrefix(line, []byte("data:"))
		if !found {
			continue
		}
		v = bytes.TrimPrefix(v, []byte(" "))
		switch lines++; lines {
		case 1:
			data = v[:len(v):len(v)] // an append must not write into event
		case 2:
			data = append(append(append([]byte(nil), data...), '\n'), v...)
		default:
			data = append(append(data, '\n'), v...)
		}
		ok = true
	}
	return typ, data, ok
}

// killMessage is what a client whose request the kill switch cut is told.
const killMessage = "hardcap cut this request: the kill switch was turned on for this token, its project or everything, or the token was revoked. An operator can lift a kill switch with `hardcap resume`."

// killEvent is the final event of a stream the kill switch cut, in the
// shape its API reports an error in mid-stream, so that the official SDKs
// raise it as an error: Anthropic's "error" event; the Responses API's
// "error" event (type, code, message, param, sequence_number); and for chat
// and legacy completions a data chunk holding an "error" object. last is
// the data of the stream's last event, whose Responses sequence number the
// error event follows.
func killEvent(req meteredRequest, last []byte) []byte {
	var typ string
	var v any
	switch req.(type) {
	case *messagesRequest:
		typ = "error"
		v = map[string]any{"type": "error", "error": map[string]any{"type": "kill_switch", "message": killMessage}}
	case *responsesRequest:
		var prev struct {
			Seq *int64 `json:"sequence_number"`
		}
		seq := int64(0)
		if json.Unmarshal(last, &prev) == nil && prev.Seq != nil {
			seq = *prev.Seq + 1
		}
		typ = "error"
		v = map[string]any{"type": "error", "code": "kill_switch", "message": killMessage, "param": nil, "sequence_number": seq}
	default:
		v = map[string]any{"error": map[string]any{"message": killMessage, "type": errorType(http.StatusForbidden), "param": nil, "code": "kill_switch"}}
	}
	data, _ := json.Marshal(v)
	var out []byte
	if typ != "" {
		out = append(out, "event: "+typ+"\n"...)
	}
	out = append(out, "data: "...)
	out = append(out, data...)
	return append(out, "\n\n"...)
}
