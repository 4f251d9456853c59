package admin

import (
	"encoding/json"
	"strconv"
	"time"

	"github.com/hardcap/hardcap/budget"
)

// appendRecordJSON appends json.Marshal(r) to b, byte for byte, without
// reflection: an export writes a million of them, and every cycle it spends
// is taken from the requests served beside it. TestAppendRecordJSON holds
// it to json.Marshal.
func appendRecordJSON(b []byte, r budget.Record) []byte {
	if y := r.Time.Year(); y < 0 || y > 9999 {
		raw, _ := json.Marshal(r) // json's own error for such a time
		return append(b, raw...)
	}
	b = append(b, `{"time":"`...)
	b = r.Time.AppendFormat(b, time.RFC3339Nano)
	b = append(b, '"')
	for _, f := range []struct{ name, v string }{
		{`,"id":`, r.ReservationID}, {`,"token_id":`, r.TokenID}, {`,"project":`, r.Project},
		{`,"provider":`, r.Provider}, {`,"model":`, r.Model}, {`,"route":`, r.Route}, {`,"client_ip":`, r.ClientIP},
	} {
		b = appendJSONString(append(b, f.name...), f.v)
	}
	if r.UserAgent != "" {
		b = appendJSONString(append(b, `,"user_agent":`...), r.UserAgent)
	}
	if r.OldSecret {
		b = append(b, `,"old_secret":true`...)
	}
	b = strconv.AppendInt(append(b, `,"status":`...), int64(r.Status), 10)
	b = appendJSONString(append(b, `,"outcome":`...), string(r.Outcome))
	u := r.Usage
	b = strconv.AppendInt(append(b, `,"usage":{"input_tokens":`...), u.InputTokens, 10)
	for _, f := range []struct {
		name string
		v    int64
		omit bool
	}{
		{`,"cache_read_tokens":`, u.CacheReadTokens, true}, {`,"cache_write_tokens":`, u.CacheWriteTokens, true},
		{`,"cache_write_1h_tokens":`, u.CacheWrite1hTokens, true}, {`,"output_tokens":`, u.OutputTokens, false},
		{`,"reasoning_tokens":`, u.ReasoningTokens, true},
	} {
		if f.v != 0 || !f.omit {
			b = strconv.AppendInt(append(b, f.name...), f.v, 10)
		}
	}
	b = append(append(append(b, `},"reserved_usd":"`...), r.Reserved.String()...), '"')
	b = append(append(append(b, `,"charged_usd":"`...), r.Charged.String()...), '"')
	b = strconv.AppendInt(append(b, `,"latency_ms":`...), r.LatencyMS, 10)
	if r.RequestID != "" {
		b = appendJSONString(append(b, `,"request_id":`...), r.RequestID)
	}
	return append(b, '}')
}

// appendJSONString appends s quoted as encoding/json quotes it: plain
// printable ASCII as is, anything else (escapes, HTML characters, other
// runes, invalid UTF-8) through encoding/json itself.
func appendJSONString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			raw, _ := json.Marshal(s)
			return append(b, raw...)
		}
	}
	return append(append(append(b, '"'), s...), '"')
}
