package proxy

import "bytes"

// nextEvent splits the first complete server-sent event off buf. An event
// ends with a blank line; lines end with "\n", "\r\n" or "\r" (the SSE
// specification allows all three). It returns the event including its
// terminating blank line, and false when buf holds no complete event yet.
func nextEvent(buf []byte) (event, rest []byte, ok bool) {
	pos := 0
	for pos < len(buf) {
		i := bytes.IndexAny(buf[pos:], "\r\n")
		if i < 0 {
			return nil, buf, false
		}
		end := pos + i + 1
		if buf[pos+i] == '\r' {
			if end == len(buf) {
				return nil, buf, false // "\r" may be the first half of "\r\n"
			}
			if buf[end] == '\n' {
				end++
			}
		}
		if i == 0 { // an empty line ends the event
			return buf[:end], buf[end:], true
		}
		pos = end
	}
	return nil, buf, false
}

// eventFields returns an event's type (its "event:" field, "" when absent)
// and its joined data lines ("data:" fields, one optional leading space
// removed, joined with "\n"); ok is false when the event has no data.
func eventFields(event []byte) (typ string, data []byte, ok bool) {
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
			typ = string(bytes.TrimPrefix(v, []byte(" ")))
			continue
		}
		v, found := bytes.CutPrefix(line, []byte("data:"))
		if !found {
			continue
		}
		v = bytes.TrimPrefix(v, []byte(" "))
		if ok {
			data = append(data, '\n')
		}
		data = append(data, v...)
		ok = true
	}
	return typ, data, ok
}
