package demo

import (
	"encoding/json"
	"strings"
	"testing"
)

func TestPromptTokens(t *testing.T) {
	tests := []struct {
		name string
		body string
		want int64
	}{
		{"one empty string", `{"model":"m","messages":[{"role":"user","content":""}]}`, 0 + 4 + 3},
		{"null content", `{"model":"m","messages":[{"role":"assistant","content":null}]}`, 0 + 4 + 3},
		{"absent content", `{"model":"m","messages":[{"role":"assistant"}]}`, 0 + 4 + 3},
		{"four bytes", `{"model":"m","messages":[{"role":"user","content":"abcd"}]}`, 1 + 4 + 3},
		{"five bytes rounds up", `{"model":"m","messages":[{"role":"user","content":"abcde"}]}`, 2 + 4 + 3},
		{"utf-8 counts bytes", `{"model":"m","messages":[{"role":"user","content":"été"}]}`, 2 + 4 + 3},
		{"escape decoded", `{"model":"m","messages":[{"role":"user","content":"\u00e9\u00e9\u00e9"}]}`, 2 + 4 + 3},
		{"two messages", `{"model":"m","messages":[{"role":"system","content":"12345678"},{"role":"user","content":"123456789"}]}`, (2 + 4) + (3 + 4) + 3},
		{"parts concatenated", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"abc"},{"type":"image_url","image_url":{"url":"x"}},{"type":"text","text":"de"}]}]}`, 2 + 4 + 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, apiErr := ParseChatRequest([]byte(tt.body))
			if apiErr != nil {
				t.Fatalf("ParseChatRequest: %v", apiErr)
			}
			if got := req.PromptTokens(); got != tt.want {
				t.Errorf("PromptTokens = %d, want %d", got, tt.want)
			}
			if got := int64(len(tt.body)); req.PromptTokens() > got {
				t.Errorf("PromptTokens = %d exceeds body length %d", req.PromptTokens(), got)
			}
		})
	}
}

// FuzzPromptTokensBound checks the proxy's input bound: for every body the
// simulators accept, PromptTokens is at most the body length in bytes.
func FuzzPromptTokensBound(f *testing.F) {
	seeds := []string{
		`{"model":"m","messages":[{"role":"u"}]}`,
		`{"model":"m","messages":[{"role":"u"},{"role":"u"},{"role":"u"},{"role":"u"},{"role":"u"},{"role":"u"}]}`,
		`{"model":"m","messages":[{"role":"u","content":"a"}]}`,
		`{"model":"m","messages":[{"role":"u","content":[{"text":"a"},{"text":"b"},{"text":""}]}]}`,
		`{"messages":[{"role":"u","content":"\u00e9"}],"model":"x"}`,
		`{"model":"m","messages":[{"role":"u","content":[{},{},{},{}]}]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Add([]byte(`{"model":"m","messages":[` + strings.Repeat(`{"role":"u"},`, 200) + `{"role":"u"}]}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, apiErr := ParseChatRequest(body)
		if apiErr != nil {
			return
		}
		if got, limit := req.PromptTokens(), int64(len(body)); got > limit {
			t.Errorf("PromptTokens = %d, want <= body length %d for %q", got, limit, body)
		}
	})
}

func TestParseChatRequestErrors(t *testing.T) {
	tests := []struct {
		name      string
		body      string
		wantParam string // "" means null
		wantCode  string // "" means null
	}{
		{"not json", `{"model":`, "", ""},
		{"not an object", `[1]`, "", ""},
		{"missing model", `{"messages":[{"role":"user","content":"hi"}]}`, "", ""},
		{"missing messages", `{"model":"m"}`, "messages", "missing_required_parameter"},
		{"empty messages", `{"model":"m","messages":[]}`, "messages", "empty_array"},
		{"missing role", `{"model":"m","messages":[{"content":"hi"}]}`, "messages[0].role", "missing_required_parameter"},
		{"content number", `{"model":"m","messages":[{"role":"user","content":1}]}`, "messages[0].content", "invalid_type"},
		{"content object", `{"model":"m","messages":[{"role":"user","content":{}}]}`, "messages[0].content", "invalid_type"},
		{"part text number", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":1}]}]}`, "messages[0].content", "invalid_type"},
		{"model number", `{"model":1,"messages":[{"role":"user","content":"hi"}]}`, "model", "invalid_type"},
		{"n zero", `{"model":"m","n":0,"messages":[{"role":"user","content":"hi"}]}`, "n", "invalid_value"},
		{"n too big", `{"model":"m","n":129,"messages":[{"role":"user","content":"hi"}]}`, "n", "invalid_value"},
		{"max_tokens zero", `{"model":"m","max_tokens":0,"messages":[{"role":"user","content":"hi"}]}`, "max_tokens", "integer_below_min_value"},
		{"max_completion_tokens negative", `{"model":"m","max_completion_tokens":-1,"messages":[{"role":"user","content":"hi"}]}`, "max_completion_tokens", "integer_below_min_value"},
		{"stream_options without stream", `{"model":"m","stream_options":{"include_usage":true},"messages":[{"role":"user","content":"hi"}]}`, "stream_options", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, apiErr := ParseChatRequest([]byte(tt.body))
			if apiErr == nil {
				t.Fatalf("ParseChatRequest = %+v, want an error", req)
			}
			if apiErr.Status != 400 || apiErr.Type != "invalid_request_error" || apiErr.Message == "" {
				t.Errorf("got status %d type %q message %q, want 400 invalid_request_error with a message", apiErr.Status, apiErr.Type, apiErr.Message)
			}
			if got := deref(apiErr.Param); got != tt.wantParam {
				t.Errorf("got param %q, want %q", got, tt.wantParam)
			}
			if got := deref(apiErr.Code); got != tt.wantCode {
				t.Errorf("got code %q, want %q", got, tt.wantCode)
			}
		})
	}
}

func deref(p *string) string {
	if p == nil {
		return ""
	}
	return *p
}

func TestCompletionCap(t *testing.T) {
	tests := []struct {
		name      string
		extra     string
		wantLimit int64
		wantOK    bool
	}{
		{"none", ``, 0, false},
		{"max_tokens", `,"max_tokens":7`, 7, true},
		{"max_completion_tokens", `,"max_completion_tokens":9`, 9, true},
		{"max_completion_tokens wins", `,"max_tokens":7,"max_completion_tokens":9`, 9, true},
		{"null is unset", `,"max_tokens":null`, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, apiErr := ParseChatRequest([]byte(`{"model":"m","messages":[{"role":"user","content":"x"}]` + tt.extra + `}`))
			if apiErr != nil {
				t.Fatal(apiErr)
			}
			limit, ok := req.CompletionCap()
			if limit != tt.wantLimit || ok != tt.wantOK {
				t.Errorf("CompletionCap() = %d, %v, want %d, %v", limit, ok, tt.wantLimit, tt.wantOK)
			}
		})
	}
}

func TestCap(t *testing.T) {
	tokens := []string{"a", " b", " c"}
	tests := []struct {
		name       string
		extra      string
		wantTokens int
		wantFinish string
	}{
		{"no cap", ``, 3, FinishStop},
		{"cap above", `,"max_tokens":4`, 3, FinishStop},
		{"cap equal", `,"max_tokens":3`, 3, FinishStop},
		{"cap below", `,"max_completion_tokens":2`, 2, FinishLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, apiErr := ParseChatRequest([]byte(`{"model":"m","messages":[{"role":"user","content":"x"}]` + tt.extra + `}`))
			if apiErr != nil {
				t.Fatal(apiErr)
			}
			got := req.Cap(tokens)
			if len(got.Tokens) != tt.wantTokens || got.FinishReason != tt.wantFinish {
				t.Errorf("got %d tokens finish %q, want %d tokens finish %q", len(got.Tokens), got.FinishReason, tt.wantTokens, tt.wantFinish)
			}
		})
	}
}

func TestChunkUsageField(t *testing.T) {
	tests := []struct {
		name  string
		chunk ChatCompletionChunk
		want  string // raw "usage" value; "" means absent
	}{
		{"absent without include_usage", ChatCompletionChunk{}, ""},
		{"null with include_usage", ChatCompletionChunk{IncludeUsage: true}, "null"},
		{"object with include_usage", ChatCompletionChunk{IncludeUsage: true, Usage: &Usage{TotalTokens: 3}}, "object"},
		{"object even without include_usage", ChatCompletionChunk{Usage: &Usage{TotalTokens: 3}}, "object"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := json.Marshal(tt.chunk)
			if err != nil {
				t.Fatal(err)
			}
			var m map[string]json.RawMessage
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			raw, ok := m["usage"]
			got := ""
			switch {
			case !ok:
			case string(raw) == "null":
				got = "null"
			case strings.HasPrefix(string(raw), "{"):
				got = "object"
			default:
				got = string(raw)
			}
			if got != tt.want {
				t.Errorf("got usage %q, want %q in %s", got, tt.want, b)
			}
		})
	}
}
