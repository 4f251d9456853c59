package pricing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
)

// ruleOp is the kind of one genai-prices match clause.
type ruleOp uint8

const (
	opEquals ruleOp = iota
	opStartsWith
	opEndsWith
	opContains
	opRegex
	opOr
	opAnd
)

// rule is a compiled genai-prices match clause: equals, starts_with,
// ends_with, contains, regex (Go RE2, searched anywhere in the name like
// Python's re.search), or and/or over nested clauses. Regexes are compiled
// once, at load.
type rule struct {
	op    ruleOp
	s     string // the clause's text, as written
	lower string // s in lower case, for case-folded matching
	re    *regexp.Regexp
	subs  []*rule
}

// equalsRule returns a rule that matches exactly the given names.
func equalsRule(names ...string) *rule {
	if len(names) == 1 {
		return &rule{op: opEquals, s: names[0], lower: strings.ToLower(names[0])}
	}
	r := &rule{op: opOr}
	for _, n := range names {
		r.subs = append(r.subs, equalsRule(n))
	}
	return r
}

// match reports whether name satisfies r. With fold set, name must already be
// in lower case and text clauses compare against their lower-case form; a
// regex is then searched in the lower-cased name, as genai-prices does.
func (r *rule) match(name string, fold bool) bool {
	s := r.s
	if fold {
		s = r.lower
	}
	switch r.op {
	case opEquals:
		return name == s
	case opStartsWith:
		return strings.HasPrefix(name, s) && variantSuffix(s, name[len(s):])
	case opEndsWith:
		return strings.HasSuffix(name, s)
	case opContains:
		return strings.Contains(name, s)
	case opRegex:
		return r.re.MatchString(name)
	case opOr:
		for _, c := range r.subs {
			if c.match(name, fold) {
				return true
			}
		}
		return false
	case opAnd:
		for _, c := range r.subs {
			if !c.match(name, fold) {
				return false
			}
		}
		return len(r.subs) > 0
	}
	return false
}

// snapshotTail is what may follow a starts_with prefix in a name the rule
// prices: snapshot dates, -latest, -preview and the like, versions (v1, @,
// a colon and what follows, as in fine-tune ids and provider variants).
var snapshotTail = regexp.MustCompile(`^(?:[-_.](?:latest|preview|exp|experimental|beta|v\d+(?:\.\d+)*|\d{8}|\d{4}-\d{2}-\d{2}|\d{2}-\d{2}|\d{2}-\d{4}|\d{4}|\d{6}))*(?:[@:].*)?$`)

// datedVariant is a variant word ahead of a snapshot date, as in
// "command-a" + "-vision-07-2025": a dated edition of the family, which the
// family's rule prices. A word alone ("-pro", "-5") is another model.
var datedVariant = regexp.MustCompile(`^(?:-[a-z]+)+(?:-(?:\d{8}|\d{4}-\d{2}-\d{2}|\d{2}-\d{4}|\d{2}-\d{2}))(?:[@:].*)?$`)

// variantSuffix reports whether rest, what a name has after a starts_with
// prefix, names a snapshot or variant of the prefix's model rather than
// another model: "claude-opus-5" covers "claude-opus-5-20260101" and
// "claude-opus-5@20260101" but not "claude-opus-5-5", "claude-opus-4-1"
// does not cover "claude-opus-4-10", and "gpt-5-nano-" does not cover
// "gpt-5-nano-pro". A prefix that ends in ":", ".", "/" or "@", and a
// fine-tune prefix ("ft:..."), name a family of ids and take any rest; a
// prefix that ends inside a date takes the date's other digits.
func variantSuffix(prefix, rest string) bool {
	if rest == "" || prefix == "" || strings.ContainsAny(prefix[len(prefix)-1:], ":./@") ||
		strings.HasPrefix(prefix, "ft:") || strings.Contains(prefix, ".ft-") {
		return true
	}
	if last := prefix[len(prefix)-1]; last == '-' || last == '_' {
		rest = string(last) + rest
	}
	if isDigits(rest) {
		tail := len(prefix) - len(strings.TrimRightFunc(prefix, func(r rune) bool { return r >= '0' && r <= '9' }))
		return tail+len(rest) == 8
	}
	return snapshotTail.MatchString(rest) || datedVariant.MatchString(rest)
}

// equalsLeaves appends the text of every equals clause in r.
func (r *rule) equalsLeaves(dst []string) []string {
	switch r.op {
	case opEquals:
		dst = append(dst, r.s)
	case opOr, opAnd:
		for _, c := range r.subs {
			dst = c.equalsLeaves(dst)
		}
	}
	return dst
}

// parseRule compiles one match clause: a JSON object with exactly one of the
// keys equals, starts_with, ends_with, contains, regex, or, and.
func parseRule(raw json.RawMessage) (*rule, error) {
	if len(bytes.TrimSpace(raw)) == 0 || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil, fmt.Errorf("%w: missing match clause", ErrInvalidData)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%w: match clause: %v", ErrInvalidData, err)
	}
	if len(obj) != 1 {
		return nil, fmt.Errorf("%w: match clause %s must have exactly one key", ErrInvalidData, raw)
	}
	for key, val := range obj {
		var op ruleOp
		switch key {
		case "equals":
			op = opEquals
		case "starts_with":
			op = opStartsWith
		case "ends_with":
			op = opEndsWith
		case "contains":
			op = opContains
		case "regex":
			op = opRegex
		case "or", "and":
			var items []json.RawMessage
			if err := json.Unmarshal(val, &items); err != nil {
				return nil, fmt.Errorf("%w: %q clause: %v", ErrInvalidData, key, err)
			}
			r := &rule{op: opOr}
			if key == "and" {
				r.op = opAnd
			}
			for _, it := range items {
				c, err := parseRule(it)
				if err != nil {
					return nil, err
				}
				r.subs = append(r.subs, c)
			}
			return r, nil
		default:
			return nil, fmt.Errorf("%w: unknown match clause %q", ErrInvalidData, key)
		}
		var s string
		if err := json.Unmarshal(val, &s); err != nil {
			return nil, fmt.Errorf("%w: %q clause: %v", ErrInvalidData, key, err)
		}
		r := &rule{op: op, s: s, lower: strings.ToLower(s)}
		if op == opRegex {
			re, err := regexp.Compile(s)
			if err != nil {
				return nil, fmt.Errorf("%w: regex %q: %v", ErrInvalidData, s, err)
			}
			r.re = re
		}
		return r, nil
	}
	panic("unreachable")
}
