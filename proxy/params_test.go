package proxy

import (
	"errors"
	"testing"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
)

// usdPerMTok is a rate of n thousandths of a USD per million tokens.
func usdPerMTok(thousandths int64) pricing.Tiered {
	return pricing.Flat(budget.Rate(thousandths * 1_000_000))
}

// TestCacheParams_AcceptedAndBounded sends the cost-neutral cache
// parameters (prompt_cache_retention on chat and Responses, Anthropic's
// top-level cache_control) through each route's parse and quote, with
// prices that bill cache writes above input. The reservation must cover the
// most the provider could bill: every input token of the bound written to
// the cache at the dearest lifetime, and the whole output cap.
func TestCacheParams_AcceptedAndBounded(t *testing.T) {
	openai := &Provider{Name: "openai", Kind: KindOpenAI, Prices: "openai", Allowances: map[string]Allowance{}}
	anthropic := &Provider{Name: "anthropic", Kind: KindAnthropic, Prices: "anthropic", Allowances: map[string]Allowance{}}
	// A model that bills cache writes (OpenAI's newer models do) and, for
	// Anthropic, one-hour writes at twice the input price.
	prices := pricing.Prices{
		Input: usdPerMTok(1000), CacheRead: usdPerMTok(100), CacheWrite: usdPerMTok(1250),
		CacheWrite1h: usdPerMTok(2000), Output: usdPerMTok(5000),
	}
	const outCap = 50
	cases := []struct {
		name string
		api  api
		prov *Provider
		body string
		// oneHour marks a lifetime billed at the one-hour write rate.
		oneHour bool
	}{
		{"chat 24h", chatAPI{}, openai, `{"model":"m","max_completion_tokens":50,"prompt_cache_retention":"24h","messages":[{"role":"user","content":"a long shared prefix"}]}`, false},
		{"chat in_memory", chatAPI{}, openai, `{"model":"m","max_completion_tokens":50,"prompt_cache_retention":"in_memory","messages":[{"role":"user","content":"hi"}]}`, false},
		{"chat in-memory (older SDKs' spelling)", chatAPI{}, openai, `{"model":"m","max_completion_tokens":50,"prompt_cache_retention":"in-memory","messages":[{"role":"user","content":"hi"}]}`, false},
		{"responses 24h", responsesAPI{}, openai, `{"model":"m","max_output_tokens":50,"prompt_cache_retention":"24h","input":"a long shared prefix"}`, false},
		{"messages automatic", messagesAPI{}, anthropic, `{"model":"claude-x","max_tokens":50,"cache_control":{"type":"ephemeral"},"messages":[{"role":"user","content":"a long shared prefix"}]}`, false},
		{"messages automatic 1h", messagesAPI{}, anthropic, `{"model":"claude-x","max_tokens":50,"cache_control":{"type":"ephemeral","ttl":"1h"},"system":"a long system prompt","messages":[{"role":"user","content":"hi"}]}`, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req, err := c.api.parse([]byte(c.body), c.prov)
			if err != nil {
				t.Fatalf("refused: %v", err)
			}
			b := req.bounds()
			q, err := quote(b, pricing.Model{ID: "m", Prices: prices})
			if err != nil {
				t.Fatal(err)
			}
			reserved, err := q.Cost(outCap)
			if err != nil {
				t.Fatal(err)
			}
			// Every input token of the bound written at the dearest lifetime
			// (the provider counts at most the body's bytes, below b.input).
			worst := budget.Usage{InputTokens: b.input, OutputTokens: outCap}
			if c.oneHour || c.prov.Kind == KindAnthropic {
				worst.CacheWrite1hTokens = b.input // any block may ask for one hour
			} else {
				worst.CacheWriteTokens = b.input
			}
			billed, err := prices.Cost(worst)
			if err != nil {
				t.Fatal(err)
			}
			if reserved < billed {
				t.Fatalf("reserved %s, but the provider could bill %s", reserved, billed)
			}
		})
	}
}

// TestCacheParams_UnknownValuesRefused: a retention or lifetime the price
// data does not know could be priced apart, so it is refused as unbounded;
// a malformed value is a bad request.
func TestCacheParams_UnknownValuesRefused(t *testing.T) {
	openai := &Provider{Name: "openai", Kind: KindOpenAI, Prices: "openai", Allowances: map[string]Allowance{}}
	anthropic := &Provider{Name: "anthropic", Kind: KindAnthropic, Prices: "anthropic", Allowances: map[string]Allowance{}}
	cases := []struct {
		name string
		api  api
		prov *Provider
		body string
		want error
	}{
		{"chat 7d", chatAPI{}, openai, `{"model":"m","prompt_cache_retention":"7d","messages":[{"role":"user","content":"hi"}]}`, ErrUnbounded},
		{"chat number", chatAPI{}, openai, `{"model":"m","prompt_cache_retention":24,"messages":[{"role":"user","content":"hi"}]}`, ErrBadRequest},
		{"responses 7d", responsesAPI{}, openai, `{"model":"m","prompt_cache_retention":"7d","input":"hi"}`, ErrUnbounded},
		{"messages 24h", messagesAPI{}, anthropic, `{"model":"claude-x","max_tokens":5,"cache_control":{"type":"ephemeral","ttl":"24h"},"messages":[{"role":"user","content":"hi"}]}`, ErrUnbounded},
		{"messages other type", messagesAPI{}, anthropic, `{"model":"claude-x","max_tokens":5,"cache_control":{"type":"persistent"},"messages":[{"role":"user","content":"hi"}]}`, ErrUnbounded},
		{"messages string", messagesAPI{}, anthropic, `{"model":"claude-x","max_tokens":5,"cache_control":"ephemeral","messages":[{"role":"user","content":"hi"}]}`, ErrBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := c.api.parse([]byte(c.body), c.prov)
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
}
