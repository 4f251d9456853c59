package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// checkKeysDecoder is the duplicate-key check before the byte scanner, on
// encoding/json's Decoder.Token: the reference the scanner must agree with.
func checkKeysDecoder(body []byte) error {
	dec := json.NewDecoder(bytes.NewReader(body))
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool // the next string token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				stack = append(stack, &frame{object: true, keys: map[string]bool{}, key: true})
				continue
			case '[':
				stack = append(stack, &frame{})
				continue
			default:
				stack = stack[:len(stack)-1]
			}
		case string:
			if top != nil && top.object && top.key {
				k := strings.ToLower(v)
				if top.keys[k] {
					return refuse(ErrBadRequest, "The key %q appears twice in one object.", v)
				}
				top.keys[k] = true
				top.key = false
				continue
			}
		}
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true
		}
	}
}

func manyKeys(n int, extra string) string {
	var sb strings.Builder
	sb.WriteString(`{`)
	for i := range n {
		if i > 0 {
			sb.WriteString(",")
		}
		sb.WriteString(`"k` + strings.Repeat("x", i) + `":1`)
	}
	return sb.String() + extra + `}`
}

func TestCheckKeys(t *testing.T) {
	for _, tc := range []struct {
		name, body string
		dup        string // the key the refusal names; "" when accepted
	}{
		{"distinct", `{"a":1,"b":{"a":2},"c":[{"a":1},{"a":2}]}`, ""},
		{"exact", `{"a":1,"b":2,"a":3}`, "a"},
		{"case", `{"Model":"x","model":"y"}`, "model"},
		{"nested", `{"a":{"x":1,"y":[1,{"z":1}],"X":2}}`, "X"},
		{"after a nested object", `{"a":{"b":1},"c":2,"A":3}`, "A"},
		{"after an array", `{"a":[{"a":1}],"a":2}`, "a"},
		{"escaped", `{"model":1,"\u006dodel":2}`, "model"},
		{"escaped, other case", `{"\u004dODEL":1,"model":2}`, "model"},
		{"non-ASCII", `{"é":1,"É":2}`, "É"},
		{"invalid UTF-8 alike", "{\"\xff\":1,\"\xfe\":2}", "\ufffd"},
		{"braces in strings", `{"a":"{\"a\":1}","b":"}]","a2":1}`, ""},
		{"values are not keys", `{"a":"a","b":"a"}`, ""},
		{"many keys", manyKeys(100, ""), ""},
		{"many keys, one twice", manyKeys(100, `,"KXX":2`), "KXX"},
		{"many keys, escaped twice", manyKeys(40, `,"\u006b":2`), "k"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkKeys([]byte(tc.body))
			if ref := checkKeysDecoder([]byte(tc.body)); (ref == nil) != (err == nil) {
				t.Fatalf("got %v, the Decoder check got %v", err, ref)
			}
			if tc.dup == "" {
				if err != nil {
					t.Fatalf("got %v, want no error", err)
				}
				return
			}
			if !errors.Is(err, ErrBadRequest) {
				t.Fatalf("got %v, want ErrBadRequest", err)
			}
			if want := "The key " + fmt.Sprintf("%q", tc.dup) + " appears twice in one object."; !strings.HasSuffix(err.Error(), want) {
				t.Errorf("got %q, want it to end %q", err, want)
			}
		})
	}
}

// TestCheckKeys_NoAllocs: the scan of an ordinary body allocates nothing
// (the Decoder.Token check took an allocation or more per token).
func TestCheckKeys_NoAllocs(t *testing.T) {
	skipAllocsUnderRace(t)
	body := []byte(`{"model":"gpt-4o-mini","stream":true,"stream_options":{"include_usage":true},"max_tokens":16,
		"messages":[{"role":"system","content":"Be brief."},{"role":"user","content":[{"type":"text","text":"Hello there"}]}],
		"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object","properties":{"a":{"type":"string"}}}}}]}`)
	if n := testing.AllocsPerRun(100, func() { _ = checkKeys(body) }); n != 0 {
		t.Errorf("got %v allocations per scan, want 0", n)
	}
}

func TestPatchObject(t *testing.T) {
	for _, tc := range []struct {
		name, obj string
		set       map[string]string
		want      string // "" when the patch must decline
	}{
		{"unchanged", `{ "a" : 1 , "b":[1, 2] }`, nil, `{ "a" : 1 , "b":[1, 2] }`},
		{"splice", `{"a": 1, "max_tokens": 4000, "z": "<&>"}`, map[string]string{"max_tokens": "16"}, `{"a": 1, "max_tokens": 16, "z": "<&>"}`},
		{"splice an object", `{"stream_options":{"x":1},"b":2}`, map[string]string{"stream_options": `{"include_usage":true,"x":1}`}, `{"stream_options":{"include_usage":true,"x":1},"b":2}`},
		{"insert", "{\n  \"a\": 1\n}", map[string]string{"max_tokens": "16", "b": "true"}, "{\"b\":true,\"max_tokens\":16,\n  \"a\": 1\n}"},
		{"insert into empty", `{ }`, map[string]string{"include_usage": "true"}, `{"include_usage":true }`},
		{"escaped key", `{"\u006dax_tokens":9,"a":1}`, map[string]string{"max_tokens": "16"}, `{"\u006dax_tokens":16,"a":1}`},
		{"splice and insert", `{"max_tokens":9,"stream":true}`, map[string]string{"max_tokens": "3", "service_tier": `"default"`}, `{"service_tier":"default","max_tokens":3,"stream":true}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var fields map[string]json.RawMessage
			if err := json.Unmarshal([]byte(tc.obj), &fields); err != nil {
				t.Fatal(err)
			}
			for k, v := range tc.set {
				fields[k] = json.RawMessage(v)
			}
			got, ok := patchObject([]byte(tc.obj), fields)
			if !ok || string(got) != tc.want {
				t.Fatalf("got %q, %v, want %q", got, ok, tc.want)
			}
		})
	}
	t.Run("removed member", func(t *testing.T) {
		fields := map[string]json.RawMessage{"a": json.RawMessage("1")}
		if got, ok := patchObject([]byte(`{"a":1,"b":2}`), fields); ok {
			t.Fatalf("got %q, want the patch to decline", got)
		}
	})
}

// FuzzCheckKeys: the byte scanner refuses exactly the valid JSON bodies the
// Decoder.Token check refused, and also every body with a key holding the
// long s or the Kelvin sign (see checkKeys).
func FuzzCheckKeys(f *testing.F) {
	for _, s := range []string{`{"a":1,"A":2}`, `{"a":{"b":1,"b":2}}`, `[{"x":1},{"x":1}]`, `{"\u0041":1,"a":1}`, "{\"\u212a\":1,\"k\":1}", `{"a":"\"","b":["{"]}`, manyKeys(40, `,"KX":1`)} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		if !json.Valid(body) || checkDepth(body) != nil {
			return
		}
		got, want := checkKeys(body), checkKeysDecoder(body)
		if got != nil && strings.Contains(got.Error(), "U+017F or U+212A") {
			return // refused before the duplicate check: stricter than the Decoder's
		}
		if (got == nil) != (want == nil) || (got != nil && got.Error() != want.Error()) {
			t.Fatalf("scanner: %v; Decoder: %v", got, want)
		}
	})
}

// fieldsOf is the top-level fields a parsed request holds.
func fieldsOf(req meteredRequest) map[string]json.RawMessage {
	switch r := req.(type) {
	case *chatRequest:
		return r.fields
	case *completionsRequest:
		return r.fields
	case *responsesRequest:
		return r.fields
	case *messagesRequest:
		return r.fields
	}
	return nil
}

// FuzzRewriteInPlace: the in-place rewrite sends the same JSON value the
// marshal-based rewrite did, and what it sends is bounded exactly as that
// was: parsed again, the same bounds, and an input bound that does not drop
// (beyond the bytes the two bodies differ by in layout).
func FuzzRewriteInPlace(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi <b>"}],"max_tokens":500,"stream":true}`,
		`{ "model" : "gpt-4o-mini", "stream": true, "stream_options": { "x": 1 }, "messages": [ {"role":"user","content":"hi"} ] }`,
		`{"model":"gpt-4o-mini","max_completion_tokens":9,"service_tier":"auto","messages":[{"role":"user","content":"hi"}]}`,
		`{"\u006dodel":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}`,
		`{"model":"gpt-3.5-turbo-instruct","prompt":["a","b"],"stream":true}`,
		`{"model":"gpt-4.1","input":"x","max_output_tokens":20}`,
		`{"model":"claude-haiku-4-5","max_tokens":4000,"thinking":{"type":"enabled","budget_tokens":3000},"messages":[{"role":"user","content":"x"}]}`,
	} {
		f.Add([]byte(s), int64(7))
		f.Add([]byte(s), int64(1024))
	}
	apis := map[string]api{"chat": chatAPI{}, "completions": completionsAPI{}, "responses": responsesAPI{}, "messages": messagesAPI{}}
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
			ref, _ := a.parse(body, prov)
			got, err := req.rewrite(outputCap, prov)
			if err != nil {
				continue
			}
			if _, err := ref.rewrite(outputCap, prov); err != nil {
				t.Fatalf("%s: the reference rewrite failed: %v", name, err)
			}
			want, err := json.Marshal(fieldsOf(ref))
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if g, w := decodeAny(t, got), decodeAny(t, want); !reflect.DeepEqual(g, w) {
				t.Fatalf("%s: in place %s\nmarshalled %s", name, got, want)
			}
			rg, errG := a.parse(got, prov)
			rw, errW := a.parse(want, prov)
			if (errG == nil) != (errW == nil) {
				t.Fatalf("%s: parsed again, in place: %v; marshalled: %v", name, errG, errW)
			}
			if errG != nil {
				continue
			}
			bg, bw := rg.bounds(), rw.bounds()
			if bg.input-int64(len(got)) != bw.input-int64(len(want)) {
				t.Fatalf("%s: input bound %d of %d bytes, marshalled %d of %d bytes", name, bg.input, len(got), bw.input, len(want))
			}
			bg.input, bw.input = 0, 0
			if !reflect.DeepEqual(bg, bw) {
				t.Fatalf("%s: bounds %+v, marshalled %+v", name, bg, bw)
			}
		}
	})
}

func decodeAny(t *testing.T, b []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("not JSON: %v: %s", err, b)
	}
	return v
}

// FuzzDecodeScalar: the fast paths of unmarshalField decode exactly what
// json.Unmarshal decodes.
func FuzzDecodeScalar(f *testing.F) {
	for _, s := range []string{`"gpt-4o"`, `"a\"b"`, `true`, `false`, `16`, `-3`, `0`, `1e3`, `99999999999999999999`, `"é"`, `1.0`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		if !json.Valid(raw) {
			return
		}
		raw = bytes.TrimSpace(raw)
		var s, s2 string
		var b, b2 bool
		var n, n2 int64
		var p, p2 *int64
		for _, c := range []struct{ fast, slow any }{{&s, &s2}, {&b, &b2}, {&n, &n2}, {&p, &p2}} {
			if !decodeScalar(raw, c.fast) {
				continue
			}
			if err := json.Unmarshal(raw, c.slow); err != nil {
				t.Fatalf("%s: decoded fast, but json.Unmarshal: %v", raw, err)
			}
			if !reflect.DeepEqual(c.fast, c.slow) {
				t.Fatalf("%s: fast %v, json %v", raw, c.fast, c.slow)
			}
		}
	})
}
