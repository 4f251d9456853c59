package proxy_test

import (
	"net/http"
	"strconv"
	"testing"

	"github.com/hardcap/hardcap/budget"
)

// TestImages_ReservedAtTheirWorstCase checks the reservation of requests
// with images against a hand computation: (body bytes + allowances + images
// × per-image tokens) × input rate + output cap × output rate.
func TestImages_ReservedAtTheirWorstCase(t *testing.T) {
	const url = `{"type":"image_url","image_url":{"url":"https://example.com/a.png"}}`
	tests := []struct {
		name, path, body string
		perImage, images int64
		allowance        int64 // tokens besides the body
		inNano, outNano  int64 // worst rates, nano-USD per token
		outCap           int64
	}{
		// gpt-4o: 85 + 8 × 170 = 1,445 tokens an image; input 2.5 USD/Mtok.
		{"gpt-4o, two images", "/v1/chat/completions",
			`{"model":"gpt-4o","max_tokens":10,"messages":[{"role":"user","content":[` + url + `,` + url + `]}]}`,
			1445, 2, 32, 2_500, 10_000, 10},
		// gpt-4o-mini: 2,833 + 8 × 5,667 = 48,169 tokens an image.
		{"gpt-4o-mini", "/v1/chat/completions",
			`{"model":"gpt-4o-mini","max_tokens":10,"messages":[{"role":"user","content":[` + url + `]}]}`,
			48169, 1, 32, 150, 600, 10},
		// Responses input_image on gpt-4.1: 85 + 8 × 170 = 1,445; input 2 USD/Mtok.
		{"responses input_image", "/v1/responses",
			`{"model":"gpt-4.1","max_output_tokens":10,"input":[{"role":"user","content":[{"type":"input_text","text":"What is this?"},{"type":"input_image","image_url":"https://example.com/a.png"}]}]}`,
			1445, 1, 32, 2_000, 8_000, 10},
		// Claude: at most 4,784 tokens an image. haiku's dearest input rate is
		// its one-hour cache write, 2 USD/Mtok.
		{"claude image block", "/v1/messages",
			`{"model":"claude-haiku-4-5","max_tokens":10,"messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"https://example.com/a.png"}},{"type":"text","text":"What is this?"}]}]}`,
			4784, 1, 32, 2_000, 5_000, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, harnessOptions{noSync: true})
			var resp *http.Response
			if tt.path == "/v1/messages" {
				resp = h.postAnthropic(tt.path, tt.body)
			} else {
				resp = h.post(tt.path, tt.body)
			}
			if body := readAll(t, resp); resp.StatusCode != 200 {
				t.Fatalf("got %d: %s", resp.StatusCode, body)
			}
			input := int64(len(tt.body)) + tt.allowance + tt.images*tt.perImage
			want := budget.Money(input*tt.inNano + tt.outCap*tt.outNano)
			if rec := h.records(1)[0]; rec.Reserved != want {
				t.Fatalf("reserved %s, want %s for an input bound of %s tokens", rec.Reserved, want, strconv.FormatInt(input, 10))
			}
		})
	}
}
