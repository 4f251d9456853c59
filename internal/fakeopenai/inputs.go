package fakeopenai

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/hardcap/hardcap/demo"
)

// input is one completions prompt or one embeddings input: text, or token
// ids.
type input struct {
	text  string
	ids   []int64
	isIDs bool
}

// tokens counts the input with the fake's rule: the number of ids for a
// token-id input, else ceil(len(text)/4)+1 with len in bytes.
func (in input) tokens() int64 {
	if in.isIDs {
		return int64(len(in.ids))
	}
	return (int64(len(in.text))+3)/4 + 1
}

// String is the input as text: the text itself, or the ids rendered as
// "<id>" each (there is no real detokenizer here).
func (in input) String() string {
	if !in.isIDs {
		return in.text
	}
	var b strings.Builder
	for _, id := range in.ids {
		b.WriteString("<" + strconv.FormatInt(id, 10) + ">")
	}
	return b.String()
}

// promptTokens sums tokens over ins.
func promptTokens(ins []input) int64 {
	var n int64
	for _, in := range ins {
		n += in.tokens()
	}
	return n
}

// parseInputs reads a prompt or input field: a string, an array of strings,
// an array of token ids (one input) or an array of token-id arrays. Arrays
// must not be empty and token ids must not be negative.
func parseInputs(param string, raw json.RawMessage) ([]input, *demo.APIError) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, demo.BadRequest(param, "missing_required_parameter", "Missing required parameter: '"+param+"'.")
	}
	invalid := demo.BadRequest(param, "invalid_type", fmt.Sprintf("Invalid type for '%s': expected one of a string, "+
		"an array of strings, an array of integers, or an array of arrays of integers.", param))
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return []input{{text: s}}, nil
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) != nil {
		return nil, invalid
	}
	if len(list) == 0 {
		return nil, demo.BadRequest(param, "empty_array", fmt.Sprintf("Invalid '%s': empty array. "+
			"Expected an array with minimum length 1, but got an empty array instead.", param))
	}
	var texts []string
	if json.Unmarshal(raw, &texts) == nil {
		out := make([]input, len(texts))
		for i, t := range texts {
			out[i] = input{text: t}
		}
		return out, nil
	}
	var ids []int64
	if json.Unmarshal(raw, &ids) == nil {
		if !validIDs(ids) {
			return nil, invalid
		}
		return []input{{ids: ids, isIDs: true}}, nil
	}
	var idLists [][]int64
	if json.Unmarshal(raw, &idLists) == nil {
		out := make([]input, len(idLists))
		for i, ids := range idLists {
			if len(ids) == 0 || !validIDs(ids) {
				return nil, invalid
			}
			out[i] = input{ids: ids, isIDs: true}
		}
		return out, nil
	}
	return nil, invalid
}

func validIDs(ids []int64) bool {
	for _, id := range ids {
		if id < 0 {
			return false
		}
	}
	return true
}

// decodeRequest decodes a request body into v, answering bad JSON and
// mistyped fields with a 400 worded as OpenAI's.
func decodeRequest(body []byte, v any) *demo.APIError {
	err := json.Unmarshal(body, v)
	if err == nil {
		return nil
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && te.Field != "" {
		return demo.BadRequest(te.Field, "invalid_type",
			fmt.Sprintf("Invalid type for '%s': expected %s, but got %s instead.", te.Field, te.Type, te.Value))
	}
	return demo.BadRequest("", "", "We could not parse the JSON body of your request. "+
		"(HINT: This likely means you aren't using your HTTP library correctly. "+
		"The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)")
}

// intRange checks an optional integer parameter against [lo, hi].
func intRange(param string, v *int64, lo, hi int64) *demo.APIError {
	switch {
	case v == nil:
		return nil
	case *v < lo:
		return demo.BadRequest(param, "integer_below_min_value", fmt.Sprintf("Invalid '%s': integer below minimum value. "+
			"Expected a value >= %d, but got %d instead.", param, lo, *v))
	case *v > hi:
		return demo.BadRequest(param, "integer_above_max_value", fmt.Sprintf("Invalid '%s': integer above maximum value. "+
			"Expected a value <= %d, but got %d instead.", param, hi, *v))
	}
	return nil
}

// orDefault returns *v, or def when v is nil.
func orDefault(v *int64, def int64) int64 {
	if v == nil {
		return def
	}
	return *v
}

// noModel is OpenAI's answer to a body without a model.
func noModel() *demo.APIError { return demo.BadRequest("", "", "you must provide a model parameter") }
