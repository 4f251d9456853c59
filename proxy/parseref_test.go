package proxy

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// This file keeps the request parsing that decoded bodies into maps with
// encoding/json, before the byte scanner walked them: the reference that
// FuzzParseMatchesDecoder holds the scanner's bounds and refusals to.

// checkFieldsDecoder is checkFields on json.Unmarshal into a map.
func checkFieldsDecoder(body []byte, known map[string]bool, prov *Provider) (map[string]json.RawMessage, error) {
	if err := checkDepth(body); err != nil {
		return nil, err
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil || fields == nil {
		return nil, refuse(ErrBadRequest, "The body must be a JSON object.")
	}
	if err := checkKeys(body); err != nil {
		return nil, err
	}
	for name := range fields {
		if !known[name] && !prov.ExtraParams[name] {
			return nil, refuse(ErrUnbounded, "hardcap does not know the parameter %q, so it cannot prove what it costs. An operator can allow it with the provider's extra_params setting.", name)
		}
	}
	return fields, nil
}

// positiveFieldDecoder is positiveField as it was.
func positiveFieldDecoder(fields map[string]json.RawMessage, name string) (int64, error) {
	var v *int64
	if err := unmarshalField(fields, name, &v); err != nil || (v != nil && *v <= 0) {
		return 0, refuse(ErrBadRequest, "%q must be a positive integer.", name)
	}
	if v == nil {
		return 0, nil
	}
	return *v, nil
}

// countArrayDecoder is countArray as it was.
func countArrayDecoder(raw json.RawMessage) int {
	var a []json.RawMessage
	if json.Unmarshal(raw, &a) != nil {
		return 0
	}
	return len(a)
}

// chatParseDecoder is chatAPI.parse as it was.
func chatParseDecoder(body []byte, prov *Provider) (*chatRequest, error) {
	fields, err := checkFieldsDecoder(body, chatParams, prov)
	if err != nil {
		return nil, err
	}
	req := &chatRequest{body: body, fields: fields, b: bounds{choices: 1}}
	if req.name, err = modelField(fields); err != nil {
		return nil, err
	}
	if err := req.readStream(); err != nil {
		return nil, err
	}
	for _, name := range []string{"max_completion_tokens", "max_tokens"} {
		v, err := positiveFieldDecoder(fields, name)
		if err != nil {
			return nil, err
		}
		if v > 0 && (req.b.clientCap == 0 || v < req.b.clientCap) {
			req.b.clientCap = v
		}
	}
	if req.b.choices, err = choicesField(fields, "n"); err != nil {
		return nil, err
	}
	if err := req.checkSearch(); err != nil {
		return nil, err
	}
	if err := checkChatUnbounded(fields, req.b.searchEveryCall); err != nil {
		return nil, err
	}
	if err := checkServiceTier(fields, prov); err != nil {
		return nil, err
	}
	if err := checkCacheRetention(fields); err != nil {
		return nil, err
	}
	var msgs []map[string]json.RawMessage
	if err := unmarshalField(fields, "messages", &msgs); err != nil || len(msgs) == 0 {
		return nil, refuse(ErrBadRequest, "The body needs a non-empty \"messages\" array of objects.")
	}
	var images int64
	for i, m := range msgs {
		if _, ok := m["audio"]; ok {
			return nil, refuse(ErrUnbounded, "messages[%d]: audio references are not metered by this version of hardcap.", i)
		}
		n, err := checkChatContentDecoder(m["content"])
		if err != nil {
			return nil, refuse(ErrUnbounded, "messages[%d]: %s", i, err.Error())
		}
		images += n
	}
	tools, err := checkChatToolsDecoder(fields["tools"])
	if err != nil {
		return nil, err
	}
	tools += countArrayDecoder(fields["functions"])
	req.b.input = int64(len(body)) + chatBaseAllowance
	if tools > 0 {
		req.b.input += chatToolAllowance * int64(tools+1)
	}
	if _, ok := fields["response_format"]; ok {
		req.b.input += chatToolAllowance
	}
	req.b.images = images
	req.b.input += images * openAIImageTokens(req.name)
	return req, nil
}

// checkChatToolsDecoder is checkChatTools as it was.
func checkChatToolsDecoder(raw json.RawMessage) (int, error) {
	if !isSet(raw) {
		return 0, nil
	}
	var tools []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &tools); err != nil {
		return 0, refuse(ErrBadRequest, "\"tools\" must be an array of objects.")
	}
	for i, t := range tools {
		var typ string
		if err := unmarshalField(t, "type", &typ); err != nil || !chatTools[typ] {
			return 0, refuse(ErrUnbounded, "tools[%d]: the tool type %q is not one the client runs (function, custom); a provider-run tool bills per call, which hardcap cannot bound.", i, typ)
		}
	}
	return len(tools), nil
}

// checkChatContentDecoder is checkChatContent as it was.
func checkChatContentDecoder(raw json.RawMessage) (images int64, err error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return 0, nil
	}
	var parts []map[string]json.RawMessage
	if err := json.Unmarshal(raw, &parts); err != nil {
		return 0, errString("content parts must be objects with a \"type\"")
	}
	for _, p := range parts {
		var typ string
		_ = json.Unmarshal(p["type"], &typ)
		switch typ {
		case "text", "refusal":
		case "image_url":
			images++
		default:
			return 0, errString("content parts of type " + strconv.Quote(typ) + " are not metered by this version of hardcap; text and images are")
		}
	}
	return images, nil
}

// FuzzParseMatchesDecoder: the byte-scanning parse of a chat body bounds
// and refuses exactly as the map-decoding parse did (the same fields, the
// same bounds, the same refusal and message), and checkFields returns the
// same fields for every API's parameters. Where two unknown parameters
// are present the old code named either (map order); the new one names
// the first, so only the refusal's kind is compared there.
func FuzzParseMatchesDecoder(f *testing.F) {
	for _, s := range []string{
		`{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"Hello there"}]}`,
		`{"model":"gpt-4o","messages":[{"role":"user","content":[{"type":"text","text":"x"},{"type":"image_url","image_url":{"url":"u"}},null]}],"tools":[{"type":"function","function":{"name":"f"}}],"functions":[1,2]}`,
		`{"model":"gpt-4o","messages":[null,{"audio":{"id":"a"}}]}`,
		`{"model":"gpt-4o","messages":[{"content":[{"type":"input_audio"}]},7]}`,
		`{"model":"gpt-4o","messages":[{"content":[{"type":1}]}]}`,
		`{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"tools":[{"type":"fun\u0063tion"},{"type":"web_search"}]}`,
		`{"model":"gpt-4o","messages":[{"role":"user","content":"x"}],"tools":[null]}`,
		`{"model":"gpt-4o","messages":[],"max_tokens":0}`,
		`{"model":"gpt-4o","messages":{},"max_completion_tokens":1e3}`,
		`{"\u006dodel":"gpt-4o","messages":[{"c\u006fntent":[{"type":"refusal"}]}],"service_tier":"auto","stream":true}`,
		` {"model":"gpt-4o","messages":[{"content":null}],"n":3} `,
		`{"model":"gpt-4o","messages":[{}],"bogus":1}`, `[]`, `null`, `{}`, `{"model":1}`,
	} {
		f.Add([]byte(s))
	}
	prov := &Provider{Name: "p", CapField: "max_completion_tokens", Prices: "openai", Allowances: map[string]Allowance{}}
	extra := &Provider{Name: "q", CapField: "max_tokens", ExtraParams: map[string]bool{"top_k": true, "b\u00e9": true}}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, known := range []map[string]bool{chatParams, completionsParams, embeddingsParams, messagesParams, responsesParams} {
			got, errG := checkFields(body, known, extra)
			want, errW := checkFieldsDecoder(body, known, extra)
			sameRefusal(t, "checkFields", errG, errW)
			if errG == nil && !reflect.DeepEqual(got, want) {
				t.Fatalf("checkFields: %q, decoded %q", got, want)
			}
		}
		for _, p := range []*Provider{prov, extra} {
			got, errG := chatAPI{}.parse(body, p)
			want, errW := chatParseDecoder(body, p)
			sameRefusal(t, "parse", errG, errW)
			if errG != nil {
				continue
			}
			g := got.(*chatRequest)
			if !reflect.DeepEqual(g.b, want.b) || g.name != want.name || g.stream != want.stream || g.wantsUsage != want.wantsUsage || !reflect.DeepEqual(g.fields, want.fields) {
				t.Fatalf("parse: %+v %q, decoded %+v %q", g.b, g.fields, want.b, want.fields)
			}
		}
	})
}

// sameRefusal fails unless got and want are both nil or the same refusal.
func sameRefusal(t *testing.T, what string, got, want error) {
	t.Helper()
	if (got == nil) != (want == nil) {
		t.Fatalf("%s: %v, decoded: %v", what, got, want)
	}
	if got == nil {
		return
	}
	const unknown = "hardcap does not know the parameter"
	if strings.Contains(got.Error(), unknown) && strings.Contains(want.Error(), unknown) {
		if !errors.Is(got, ErrUnbounded) || !errors.Is(want, ErrUnbounded) {
			t.Fatalf("%s: %v, decoded: %v", what, got, want)
		}
		return
	}
	if got.Error() != want.Error() || errors.Is(got, ErrBadRequest) != errors.Is(want, ErrBadRequest) || errors.Is(got, ErrUnbounded) != errors.Is(want, ErrUnbounded) {
		t.Fatalf("%s: %v, decoded: %v", what, got, want)
	}
}

// TestChatParse_Allocs: parsing a plain chat body costs a handful of
// allocations (the request, its fields map, the model name), not one per
// key and value as decoding into maps did (41 for this body). A count of
// allocations, not a timing: it is the same on every run.
func TestChatParse_Allocs(t *testing.T) {
	skipAllocsUnderRace(t)
	body := []byte(`{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"Hello there"},{"role":"user","content":[{"type":"text","text":"x"}]}]}`)
	prov := &Provider{Name: "p", CapField: "max_completion_tokens", Prices: "openai"}
	const most = 8
	got := testing.AllocsPerRun(100, func() {
		if _, err := (chatAPI{}).parse(body, prov); err != nil {
			t.Fatal(err)
		}
	})
	t.Logf("%v allocations per parse", got)
	if got > most {
		t.Errorf("got %v allocations per parse, want at most %d", got, most)
	}
	if _, err := chatParseDecoder(body, prov); err != nil {
		t.Fatal(err)
	}
	if ref := testing.AllocsPerRun(100, func() { _, _ = chatParseDecoder(body, prov) }); ref <= most {
		t.Errorf("the map-decoding reference takes %v allocations, want it above %d (else this test shows nothing)", ref, most)
	}
}
