package proxy

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"unicode/utf8"
)

// This file reads and edits request bodies as bytes: the duplicate-key
// check and the in-place rewrite of the fields hardcap shapes. Both run on
// bodies encoding/json has already accepted as one valid JSON value, so
// they need not validate, only find where things are; and neither
// allocates per key, which the request path would otherwise pay for every
// key of every body.

// jsonKey is an object key in a body: its bytes between the quotes.
type jsonKey struct {
	start, end int
	// plain is set for keys of ASCII without escapes: their decoded form
	// is their bytes.
	plain bool
	// canon is the lower-cased decoded key, computed only for keys that
	// are not plain (or once an object holds many keys).
	canon string
}

// scanFrame is one open object or array of the duplicate-key scan.
type scanFrame struct {
	object bool
	// expectKey is set when the next string of the object is a key.
	expectKey bool
	// keys is where the object's keys start in the scan's key list.
	keys int
	// set holds the canonical keys of an object with more than
	// maxLinearKeys, where comparing each new key with every earlier one
	// would cost quadratic time.
	set map[string]bool
}

// maxLinearKeys is how many keys an object may hold before its duplicate
// check switches from comparing with each earlier key to a set.
const maxLinearKeys = 32

// checkKeys refuses a body with an object that repeats a key, exactly or in
// another case (strings.ToLower of the decoded key, as a provider that
// matches keys regardless of case would see them). body must be valid JSON.
func checkKeys(body []byte) error {
	var frameBuf [16]scanFrame
	var keyBuf [64]jsonKey
	stack, keys := frameBuf[:0], keyBuf[:0]
	for i := 0; i < len(body); {
		switch c := body[i]; c {
		case '{':
			stack = append(stack, scanFrame{object: true, expectKey: true, keys: len(keys)})
			i++
		case '[':
			stack = append(stack, scanFrame{keys: len(keys)})
			i++
		case '}', ']':
			if len(stack) == 0 {
				return nil
			}
			keys = keys[:stack[len(stack)-1].keys]
			stack = stack[:len(stack)-1]
			i++
			if len(stack) == 0 {
				return nil // the first value ends the scan, as Decoder.Token's did
			}
		case ',':
			if len(stack) > 0 && stack[len(stack)-1].object {
				stack[len(stack)-1].expectKey = true
			}
			i++
		case '"':
			end, plain := scanString(body, i)
			if len(stack) > 0 {
				if top := &stack[len(stack)-1]; top.object && top.expectKey {
					top.expectKey = false
					k := jsonKey{start: i + 1, end: end - 1, plain: plain}
					if !plain && strings.ContainsAny(decodeKey(body, k), "\u017f\u212a") {
						// Go's decoder reads the long s as s and the Kelvin
						// sign as k, other decoders do not: such a key could
						// be one parameter to hardcap and another upstream.
						return refuse(ErrBadRequest, "The key %q holds a character (U+017F or U+212A) that some JSON decoders read as an ASCII letter; spell it in ASCII.", decodeKey(body, k))
					}
					if dup := top.add(body, keys[top.keys:], &k); dup {
						return refuse(ErrBadRequest, "The key %q appears twice in one object.", decodeKey(body, k))
					}
					keys = append(keys, k)
				}
			}
			i = end
		default:
			i++
		}
	}
	return nil
}

// add checks k against the keys the object already holds and reports a
// duplicate; it fills k.canon when the comparison needs it.
func (f *scanFrame) add(body []byte, earlier []jsonKey, k *jsonKey) (dup bool) {
	if f.set == nil && len(earlier) < maxLinearKeys {
		for i := range earlier {
			if sameKey(body, &earlier[i], k) {
				return true
			}
		}
		return false
	}
	if f.set == nil {
		f.set = make(map[string]bool, 2*maxLinearKeys)
		for i := range earlier {
			f.set[canonKey(body, &earlier[i])] = true
		}
	}
	c := canonKey(body, k)
	if f.set[c] {
		return true
	}
	f.set[c] = true
	return false
}

// sameKey reports whether two keys are equal after decoding and
// strings.ToLower.
func sameKey(body []byte, a, b *jsonKey) bool {
	if a.plain && b.plain {
		return equalFoldASCII(body[a.start:a.end], body[b.start:b.end])
	}
	if a.plain {
		a, b = b, a
	}
	// a is not plain: its canonical form is computed once.
	ca := canonKey(body, a)
	if b.plain {
		return equalLowerASCII(body[b.start:b.end], ca)
	}
	return ca == canonKey(body, b)
}

// canonKey is k decoded and lower-cased, computed once per key.
func canonKey(body []byte, k *jsonKey) string {
	if k.canon == "" {
		if k.plain {
			k.canon = strings.ToLower(string(body[k.start:k.end]))
		} else {
			k.canon = strings.ToLower(decodeKey(body, *k))
		}
	}
	return k.canon
}

// decodeKey is k as encoding/json decodes it (escapes resolved, invalid
// UTF-8 replaced).
func decodeKey(body []byte, k jsonKey) string {
	if k.plain {
		return string(body[k.start:k.end])
	}
	var s string
	_ = json.Unmarshal(body[k.start-1:k.end+1], &s)
	return s
}

// equalFoldASCII compares two ASCII strings regardless of case.
func equalFoldASCII(a, b []byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

// equalLowerASCII reports whether the ASCII a, lower-cased, is s.
func equalLowerASCII(a []byte, s string) bool {
	if len(a) != len(s) {
		return false
	}
	for i := range a {
		if lowerASCII(a[i]) != s[i] {
			return false
		}
	}
	return true
}

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}

// scanString returns the index just past the string literal starting at
// body[i] (a quote), and whether it is plain: ASCII without escapes.
func scanString(body []byte, i int) (end int, plain bool) {
	plain = true
	for j := i + 1; j < len(body); j++ {
		switch c := body[j]; {
		case c == '\\':
			plain = false
			j++
		case c == '"':
			return j + 1, plain
		case c >= utf8.RuneSelf:
			plain = false
		}
	}
	return len(body), plain
}

// skipSpace returns the index of the first byte at or after i that is not
// JSON whitespace.
func skipSpace(body []byte, i int) int {
	for i < len(body) {
		switch body[i] {
		case ' ', '\t', '\n', '\r':
			i++
		default:
			return i
		}
	}
	return i
}

// skipValue returns the index just past the JSON value starting at body[i]
// (no leading whitespace).
func skipValue(body []byte, i int) int {
	if i >= len(body) {
		return i
	}
	switch body[i] {
	case '"':
		end, _ := scanString(body, i)
		return end
	case '{', '[':
		depth := 0
		for i < len(body) {
			switch body[i] {
			case '"':
				i, _ = scanString(body, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default:
		for i < len(body) {
			switch body[i] {
			case ',', '}', ']', ' ', '\t', '\n', '\r':
				return i
			}
			i++
		}
		return i
	}
}

// member is one key and value of a JSON object, as offsets into its bytes.
type member struct {
	key        jsonKey
	start, end int // the value
}

// objectMembers calls fn for each member of the JSON object obj (valid
// JSON, no leading whitespace) until fn returns false; it reports false
// when obj is not an object.
func objectMembers(obj []byte, fn func(m member) bool) bool {
	if len(obj) == 0 || obj[0] != '{' {
		return false
	}
	i := skipSpace(obj, 1)
	for i < len(obj) && obj[i] == '"' {
		end, plain := scanString(obj, i)
		m := member{key: jsonKey{start: i + 1, end: end - 1, plain: plain}}
		i = skipSpace(obj, end)
		if i >= len(obj) || obj[i] != ':' {
			return false
		}
		m.start = skipSpace(obj, i+1)
		m.end = skipValue(obj, m.start)
		if !fn(m) {
			return true
		}
		i = skipSpace(obj, m.end)
		if i < len(obj) && obj[i] == ',' {
			i = skipSpace(obj, i+1)
		}
	}
	return true
}

// patchObject returns obj (a JSON object as a client sent it) with its
// members set to fields, the decoded and since edited form of the same
// object: a value that changed is spliced in at its offset, and a member
// fields adds is inserted after the opening brace; everything else stays
// byte for byte. It reports false when fields is not such an edit of obj
// (a member removed, obj not an object), and the caller marshals fields
// instead.
func patchObject(obj []byte, fields map[string]json.RawMessage) ([]byte, bool) {
	obj = bytes.TrimSpace(obj)
	type splice struct {
		start, end int
		value      json.RawMessage
	}
	var spliceBuf [8]splice
	splices := spliceBuf[:0]
	seen, ok := 0, true
	isObject := objectMembers(obj, func(m member) bool {
		var v json.RawMessage
		var found bool
		if m.key.plain {
			v, found = fields[string(obj[m.key.start:m.key.end])]
		} else {
			v, found = fields[decodeKey(obj, m.key)]
		}
		if !found {
			ok = false
			return false
		}
		seen++
		if !bytes.Equal(v, obj[m.start:m.end]) {
			splices = append(splices, splice{m.start, m.end, v})
		}
		return true
	})
	if !isObject || !ok || seen > len(fields) {
		return nil, false
	}
	var added []string
	if seen < len(fields) {
		for name := range fields {
			if !hasMember(obj, name) {
				added = append(added, name)
			}
		}
		if len(added) != len(fields)-seen {
			return nil, false
		}
		slices.Sort(added)
	}
	if len(splices) == 0 && len(added) == 0 {
		return obj, true
	}
	size := len(obj)
	for _, s := range splices {
		size += len(s.value) - (s.end - s.start)
	}
	for _, name := range added {
		size += len(name) + len(fields[name]) + 4
	}
	out := make([]byte, 0, size+8)
	out = append(out, '{')
	empty := len(skipSpaceBytes(obj[1:])) > 0 && skipSpaceBytes(obj[1:])[0] == '}'
	for i, name := range added {
		if i > 0 {
			out = append(out, ',')
		}
		key, err := json.Marshal(name)
		if err != nil {
			return nil, false
		}
		out = append(out, key...)
		out = append(out, ':')
		out = append(out, fields[name]...)
	}
	if len(added) > 0 && !empty {
		out = append(out, ',')
	}
	at := 1
	for _, s := range splices {
		out = append(out, obj[at:s.start]...)
		out = append(out, s.value...)
		at = s.end
	}
	return append(out, obj[at:]...), true
}

// skipSpaceBytes is b from its first non-whitespace byte.
func skipSpaceBytes(b []byte) []byte { return b[skipSpace(b, 0):] }

// hasMember reports whether the object obj has a member named name.
func hasMember(obj []byte, name string) bool {
	found := false
	objectMembers(obj, func(m member) bool {
		if m.key.plain {
			found = string(obj[m.key.start:m.key.end]) == name
		} else {
			found = decodeKey(obj, m.key) == name
		}
		return !found
	})
	return found
}

// marshalPatched is the body to send for an object edited from orig: orig
// patched in place (patchObject), or, when fields is not an edit of it,
// fields marshalled.
func marshalPatched(orig []byte, fields map[string]json.RawMessage) ([]byte, error) {
	if out, ok := patchObject(orig, fields); ok {
		return out, nil
	}
	return json.Marshal(fields)
}

// arrayElements calls fn with the offsets of each element of the JSON
// array arr (valid JSON, no leading whitespace) until fn returns false; it
// reports false when arr is not an array.
func arrayElements(arr []byte, fn func(start, end int) bool) bool {
	if len(arr) == 0 || arr[0] != '[' {
		return false
	}
	i := skipSpace(arr, 1)
	for i < len(arr) && arr[i] != ']' {
		end := skipValue(arr, i)
		if end <= i || !fn(i, end) {
			return true
		}
		i = skipSpace(arr, end)
		if i < len(arr) && arr[i] == ',' {
			i = skipSpace(arr, i+1)
		}
	}
	return true
}

// keyIs reports whether the key k of obj decodes to name, without
// allocating for a plain key.
func keyIs(obj []byte, k jsonKey, name string) bool {
	if k.plain {
		return string(obj[k.start:k.end]) == name
	}
	return decodeKey(obj, k) == name
}

// jsonString is the decoded text of the JSON string raw (valid JSON, no
// surrounding whitespace): raw's own bytes for a plain string, a decoded
// copy otherwise. It reports false when raw is not a string.
func jsonString(raw []byte) ([]byte, bool) {
	if len(raw) < 2 || raw[0] != '"' {
		return nil, false
	}
	if end, plain := scanString(raw, 0); end == len(raw) && plain {
		return raw[1 : len(raw)-1], true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return nil, false
	}
	return []byte(s), true
}

// isNull reports whether the JSON value raw (no surrounding whitespace) is
// null.
func isNull(raw []byte) bool { return string(raw) == "null" }

// paramNames holds each parameter name of every metered API once, so a
// body's top-level keys become map keys without a string allocated per key.
var paramNames = func() map[string]string {
	names := map[string]string{}
	for _, known := range []map[string]bool{chatParams, completionsParams, embeddingsParams, messagesParams, responsesParams} {
		for name := range known {
			names[name] = name
		}
	}
	return names
}()

// fieldName is the decoded key k of obj, as encoding/json decodes a map
// key; a known parameter name is shared rather than copied.
func fieldName(obj []byte, k jsonKey) string {
	if !k.plain {
		return decodeKey(obj, k)
	}
	if name, ok := paramNames[string(obj[k.start:k.end])]; ok {
		return name
	}
	return string(obj[k.start:k.end])
}

// CheckDuplicateKeys reports an object in body that names a key twice (or
// two keys that JSON decoders may fold into one), as the data plane refuses
// it: decoders disagree on which value wins, so a body that says two things
// is refused rather than read one way. body must be valid JSON
// (json.Valid). The admin API uses it too.
func CheckDuplicateKeys(body []byte) error { return checkKeys(body) }
