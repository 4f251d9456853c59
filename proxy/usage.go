package proxy

import (
	"bytes"
	"encoding/json"

	"github.com/hardcap/hardcap/budget"
)

// openAIUsage is the usage object of OpenAI chat and completions responses.
// Pointers tell a missing count from a zero one: a usage object without
// prompt and completion counts is not usage.
type openAIUsage struct {
	PromptTokens        *int64 `json:"prompt_tokens"`
	CompletionTokens    *int64 `json:"completion_tokens"`
	PromptTokensDetails *struct {
		CachedTokens     int64  `json:"cached_tokens"`
		CacheWriteTokens *int64 `json:"cache_write_tokens"`
	} `json:"prompt_tokens_details"`
	CompletionTokensDetails *struct {
		ReasoningTokens int64 `json:"reasoning_tokens"`
	} `json:"completion_tokens_details"`
}

// normalize converts the usage, or reports false when required counts are
// missing.
func (u *openAIUsage) normalize() (budget.Usage, bool) {
	if u == nil || u.PromptTokens == nil || u.CompletionTokens == nil {
		return budget.Usage{}, false
	}
	out := budget.Usage{InputTokens: *u.PromptTokens, OutputTokens: *u.CompletionTokens}
	if d := u.PromptTokensDetails; d != nil {
		out.CacheReadTokens = d.CachedTokens
		if d.CacheWriteTokens != nil {
			out.CacheWriteTokens = *d.CacheWriteTokens
		}
	}
	if d := u.CompletionTokensDetails; d != nil {
		out.ReasoningTokens = d.ReasoningTokens
	}
	return out, true
}

// writesPlaced reports whether the usage says how many input tokens were
// written to the cache; without it, writes cannot be told from other input.
func (u *openAIUsage) writesPlaced() bool {
	return u != nil && u.PromptTokensDetails != nil && u.PromptTokensDetails.CacheWriteTokens != nil
}

// openAIUsageFromJSON extracts the usage of a whole chat or completions
// body, and whether it places cache writes.
//
// Only the top-level "usage" member is decoded, not the choices around it.
// A body where that member is not plain to find (a key with escapes or
// non-ASCII, which the decoder may fold to "usage", or "usage" twice) is
// decoded whole, as before, so the result is always the decoder's.
func openAIUsageFromJSON(body []byte) (u budget.Usage, placed, ok bool) {
	if !json.Valid(body) {
		return budget.Usage{}, false, false
	}
	body = bytes.TrimSpace(body)
	var value []byte
	found, plain := 0, true
	if !objectMembers(body, func(m member) bool {
		if !m.key.plain {
			plain = false
			return false
		}
		if equalFoldASCII(body[m.key.start:m.key.end], []byte("usage")) {
			found++
			value = body[m.start:m.end]
		}
		return true
	}) {
		// Not an object: null has no usage; anything else never decoded.
		return budget.Usage{}, false, false
	}
	if !plain || found > 1 {
		return openAIUsageFromWhole(body)
	}
	if found == 0 {
		return budget.Usage{}, false, false
	}
	if u, placed, ok, done := openAIUsagePlain(value); done {
		return u, placed, ok
	}
	var usage *openAIUsage
	if json.Unmarshal(value, &usage) != nil {
		return budget.Usage{}, false, false
	}
	u, ok = usage.normalize()
	return u, usage.writesPlaced(), ok
}

// openAIUsagePlain reads a usage object of the common shape without
// reflection: plain lower-case keys, each once, counts written as digits,
// detail objects of the same kind. done is false for anything else (a key
// the decoder would fold onto a field, a null, a fraction), which
// json.Unmarshal then decodes as before.
func openAIUsagePlain(value []byte) (u budget.Usage, placed, ok, done bool) {
	var prompt, completion, details, reasoning bool
	done = true
	isObject := objectMembers(value, func(m member) bool {
		v := value[m.start:m.end]
		switch k := value[m.key.start:m.key.end]; {
		case !m.key.plain:
			done = false
		case string(k) == "prompt_tokens" && !prompt:
			u.InputTokens, done = digits(v)
			prompt = true
		case string(k) == "completion_tokens" && !completion:
			u.OutputTokens, done = digits(v)
			completion = true
		case string(k) == "prompt_tokens_details" && !details:
			details = true
			var cached, write bool
			done = objectMembers(v, func(d member) bool {
				switch dk := v[d.key.start:d.key.end]; {
				case !d.key.plain:
					done = false
				case string(dk) == "cached_tokens" && !cached:
					u.CacheReadTokens, done = digits(v[d.start:d.end])
					cached = true
				case string(dk) == "cache_write_tokens" && !write:
					u.CacheWriteTokens, done = digits(v[d.start:d.end])
					write, placed = true, true
				default:
					done = !foldsTo(dk, "cached_tokens", "cache_write_tokens")
				}
				return done
			}) && done
		case string(k) == "completion_tokens_details" && !reasoning:
			reasoning = true
			var seen bool
			done = objectMembers(v, func(d member) bool {
				switch dk := v[d.key.start:d.key.end]; {
				case !d.key.plain:
					done = false
				case string(dk) == "reasoning_tokens" && !seen:
					u.ReasoningTokens, done = digits(v[d.start:d.end])
					seen = true
				default:
					done = !foldsTo(dk, "reasoning_tokens")
				}
				return done
			}) && done
		default:
			done = !foldsTo(k, "prompt_tokens", "completion_tokens", "prompt_tokens_details", "completion_tokens_details")
		}
		return done
	})
	if !isObject || !done {
		return budget.Usage{}, false, false, false
	}
	if !prompt || !completion {
		// As normalize and writesPlaced read a partial usage.
		return budget.Usage{}, placed, false, true
	}
	return u, placed, true, true
}

// foldsTo reports whether the ASCII key k matches one of names regardless
// of case, as encoding/json matches a struct field.
func foldsTo(k []byte, names ...string) bool {
	for _, name := range names {
		if equalFoldASCII(k, []byte(name)) {
			return true
		}
	}
	return false
}

// openAIUsageFromWhole is openAIUsageFromJSON by decoding the whole body.
func openAIUsageFromWhole(body []byte) (u budget.Usage, placed, ok bool) {
	var v struct {
		Usage *openAIUsage `json:"usage"`
	}
	if json.Unmarshal(body, &v) != nil {
		return budget.Usage{}, false, false
	}
	u, ok = v.Usage.normalize()
	return u, v.Usage.writesPlaced(), ok
}

// mayHoldUsage reports whether a stream event's data may carry a usage
// object, so that events which cannot are not decoded. encoding/json
// matches keys regardless of case and resolves escapes, so an event is
// passed over only when no "usage" appears in any case, no \u escape
// could spell one, and no long s (U+017F, which the decoder folds to s:
// "uſage" is usage) is there.
func mayHoldUsage(data []byte) bool {
	return containsFoldASCII(data, "usage") || bytes.Contains(data, []byte(`\u`)) || bytes.Contains(data, []byte("\u017f"))
}

// containsFoldASCII reports whether data contains the lower-case ASCII
// word in any case (the long s and the Kelvin sign, which Go's decoder
// also folds, are the callers' to look for).
func containsFoldASCII(data []byte, word string) bool {
	for i := 0; i+len(word) <= len(data); i++ {
		j := 0
		for j < len(word) && lowerASCII(data[i+j]) == word[j] {
			j++
		}
		if j == len(word) {
			return true
		}
	}
	return false
}

// openAIUsageFromChunk extracts the usage of one stream chunk, whether it
// places cache writes, and whether the chunk is the usage-only chunk
// include_usage adds (no choices), which is hidden from clients that did
// not ask for it.
func openAIUsageFromChunk(data []byte) (u budget.Usage, placed, found, usageOnly bool) {
	if !mayHoldUsage(data) {
		return budget.Usage{}, false, false, false
	}
	var v struct {
		Choices []json.RawMessage `json:"choices"`
		Usage   *openAIUsage      `json:"usage"`
	}
	if json.Unmarshal(data, &v) != nil {
		return budget.Usage{}, false, false, false
	}
	u, found = v.Usage.normalize()
	return u, v.Usage.writesPlaced(), found, found && len(v.Choices) == 0
}
