package budget

// Usage is one request's token counts as the provider reported them,
// normalized across APIs.
type Usage struct {
	// InputTokens counts every input token, including the cached and
	// cache-written ones below (OpenAI's prompt_tokens; for Anthropic the sum
	// of input_tokens and both cache fields).
	InputTokens int64 `json:"input_tokens"`
	// CacheReadTokens is the part of InputTokens read from the prompt cache.
	CacheReadTokens int64 `json:"cache_read_tokens,omitempty"`
	// CacheWriteTokens is the part of InputTokens written to the cache with
	// the default (5-minute) lifetime.
	CacheWriteTokens int64 `json:"cache_write_tokens,omitempty"`
	// CacheWrite1hTokens is the part of InputTokens written to the cache with
	// a one-hour lifetime.
	CacheWrite1hTokens int64 `json:"cache_write_1h_tokens,omitempty"`
	// OutputTokens counts every output token, including reasoning tokens.
	OutputTokens int64 `json:"output_tokens"`
	// ReasoningTokens is the part of OutputTokens spent on reasoning.
	ReasoningTokens int64 `json:"reasoning_tokens,omitempty"`
}
