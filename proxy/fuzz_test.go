package proxy

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"testing/iotest"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
)

// The fuzz targets run their seeds in every `go test`; run one long with,
// for example:
//
//	go test ./proxy -run '^$' -fuzz FuzzParseRequests -fuzztime 10m

func FuzzNextEvent(f *testing.F) {
	for _, s := range []string{"data: a\n\n", "data: a\r\n\r\nrest", "event: x\rdata: y\r\r", "data: {\"usage\":1}\n", "\n\n\n", ":comment\n\ndata: [DONE]\n\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, buf []byte) {
		var joined []byte
		rest := buf
		for {
			ev, r, ok := nextEvent(rest)
			if !ok {
				break
			}
			if len(ev) == 0 {
				t.Fatal("an empty event was split off")
			}
			joined = append(joined, ev...)
			rest = r
			eventFields(ev)
		}
		// Splitting loses and adds nothing.
		if !bytes.Equal(append(joined, rest...), buf) {
			t.Fatalf("events and rest do not add up to the input")
		}
	})
}

// FuzzUsageTrackers feeds arbitrary bodies, streamed and whole, through the
// metering body of every API: it must pass JSON through unchanged, settle
// exactly once, and charge either a valid usage's cost or the full
// reservation.
func FuzzUsageTrackers(f *testing.F) {
	seeds, _ := readSeeds("testdata/usage")
	for _, s := range seeds {
		for api := range goldenRequests {
			f.Add(api, s, true)
			f.Add(api, s, false)
		}
	}
	prices := pricing.Prices{Input: pricing.Flat(1_000_000), Output: pricing.Flat(2_000_000)}
	f.Fuzz(func(t *testing.T, api string, body []byte, sse bool) {
		if _, ok := goldenRequests[api]; !ok {
			return
		}
		l := &recordingLedger{}
		p := New(Options{Ledger: l})
		m := &meter{p: p, res: budget.Reservation{ID: "r", Amount: 1_000_000}, prices: prices}
		p.inflight.add(m)
		resp := &http.Response{StatusCode: 200, Body: io.NopCloser(iotest.HalfReader(bytes.NewReader(body)))}
		mb := newMeteredBody(m, resp, sse, goldenTracker(t, api, sse))
		out, _ := io.ReadAll(mb)
		mb.Close()
		if !sse && !bytes.Equal(out, body) {
			t.Fatal("a JSON body was changed")
		}
		if len(l.settled) != 1 {
			t.Fatalf("settled %d times", len(l.settled))
		}
		s := l.settled[0]
		switch s.Outcome {
		case budget.Complete:
			want, err := prices.Cost(s.Usage)
			if err != nil || s.Charged != want {
				t.Fatalf("complete with charge %s, cost %s (%v)", s.Charged, want, err)
			}
		case budget.UsageMissing:
			if s.Charged != m.res.Amount {
				t.Fatalf("usage missing but charged %s of %s", s.Charged, m.res.Amount)
			}
		default:
			t.Fatalf("outcome %s", s.Outcome)
		}
	})
}

// FuzzParseRequests parses arbitrary bodies as every metered API. A body
// that parses must be bounded by at least its own length, and after
// rewriting to a cap every cap field it carries must hold that cap.
func FuzzParseRequests(f *testing.F) {
	seeds := []string{
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"max_tokens":5,"n":2,"stream":true}`,
		`{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"u"}}]}],"tools":[{"type":"function","function":{"name":"f"}}]}`,
		`{"model":"gpt-3.5-turbo-instruct","prompt":["a","b"],"best_of":3,"suffix":"s"}`,
		`{"model":"text-embedding-3-small","input":[[1,2],[3]]}`,
		`{"model":"gpt-4.1","input":[{"role":"user","content":[{"type":"input_text","text":"x"}]}],"max_output_tokens":20}`,
		`{"model":"claude-haiku-4-5","max_tokens":2000,"thinking":{"type":"enabled","budget_tokens":1500},"system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":[{"type":"image","source":{"type":"base64","data":"AA"}}]}]}`,
		`{"a":1,"A":2}`, `[]`, `{"model":1}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s), int64(7))
	}
	apis := map[string]api{"chat": chatAPI{}, "completions": completionsAPI{}, "embeddings": embeddingsAPI{}, "responses": responsesAPI{}, "messages": messagesAPI{}}
	prov := &Provider{Name: "p", CapField: "max_completion_tokens", Prices: "openai", Allowances: map[string]Allowance{}}
	f.Fuzz(func(t *testing.T, body []byte, outputCap int64) {
		if outputCap <= 0 {
			outputCap = 1
		}
		for name, a := range apis {
			req, err := a.parse(body, prov)
			if err != nil {
				continue
			}
			b := req.bounds()
			if b.input < int64(len(body)) || b.choices < 1 {
				t.Fatalf("%s: input bound %d below the body's %d bytes, or %d choices", name, b.input, len(body), b.choices)
			}
			out, err := req.rewrite(outputCap, prov)
			if err != nil {
				continue
			}
			var fields map[string]json.RawMessage
			if err := json.Unmarshal(out, &fields); err != nil {
				t.Fatalf("%s: rewrite produced invalid JSON: %v", name, err)
			}
			for _, cap := range []string{"max_tokens", "max_completion_tokens", "max_output_tokens"} {
				raw, ok := fields[cap]
				if !ok {
					continue
				}
				var got int64
				if json.Unmarshal(raw, &got) != nil || (got != outputCap && name != "embeddings") {
					t.Fatalf("%s: %s = %s after rewriting to %d", name, cap, raw, outputCap)
				}
			}
		}
	})
}

func readSeeds(dir string) ([][]byte, error) {
	entries, err := filepath.Glob(dir + "/*")
	if err != nil {
		return nil, err
	}
	var out [][]byte
	for _, e := range entries {
		if b, err := os.ReadFile(e); err == nil {
			out = append(out, b)
		}
	}
	return out, nil
}
