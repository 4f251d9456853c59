// Package pricing turns public LLM price data into exact budget.Rate values
// and answers "what does this model cost at this moment" for hardcap.
//
// It reads two formats: the genai-prices v2 feed (pydantic/genai-prices,
// USD per million tokens, with match rules, tiers and date-bound prices) and
// LiteLLM's model_prices_and_context_window.json (USD per token, with output
// and input token limits). Copies of both are embedded; see Embedded.
//
// Prices never pass through float64. JSON numbers are kept as decimal text
// and converted with integer arithmetic; a price that is not a whole number of
// nano-USD per million tokens is rounded up, so hardcap never undercharges.
//
// The package imports only the standard library and the budget package.
package pricing
