package pricing

import (
	"fmt"

	"github.com/hardcap/hardcap/budget"
)

// Tiered is one price, in nano-USD per million tokens, that may switch once
// the request's total input tokens pass a threshold. genai-prices calls this
// the "cliff" model: crossing a tier bills every token of the request at the
// tier's rate, not only the tokens above the threshold.
type Tiered struct {
	// Base is the rate that applies until the first tier.
	Base budget.Rate
	// Tiers are the thresholds, in ascending Start order when parsed from
	// data.
	Tiers []Tier
	// Set is false when the data has no such price.
	Set bool
}

// Tier is one step of a Tiered price.
type Tier struct {
	// Start is the threshold in total input tokens; the tier applies to a
	// request with strictly more input tokens than Start.
	Start int64
	// Rate is the tier's price in nano-USD per million tokens.
	Rate budget.Rate
}

// Flat returns a Tiered price of r nano-USD per million tokens with no tiers.
func Flat(r budget.Rate) Tiered { return Tiered{Base: r, Set: true} }

// At returns the rate, in nano-USD per million tokens, that applies to a
// request with inputTokens total input tokens (cached and cache-written
// tokens included). It is the rate of the tier with the highest Start that
// inputTokens exceeds (inputTokens > Start, as in genai-prices), or Base when
// no tier applies; with 200 000 as Start, 200 000 input tokens pay Base and
// 200 001 pay the tier rate. An unset price returns 0.
func (t Tiered) At(inputTokens int64) budget.Rate {
	r := t.Base
	found := false
	var best int64
	for _, tr := range t.Tiers {
		if inputTokens > tr.Start && (!found || tr.Start >= best) {
			r, best, found = tr.Rate, tr.Start, true
		}
	}
	return r
}

// max returns the highest rate, in nano-USD per million tokens, that a
// request with at most inputBound total input tokens could pay: Base and
// every tier whose Start is below inputBound (the boundary rule of At).
func (t Tiered) max(inputBound int64) budget.Rate {
	r := t.Base
	for _, tr := range t.Tiers {
		if inputBound > tr.Start && tr.Rate > r {
			r = tr.Rate
		}
	}
	return r
}

// Prices are one model's token prices at one moment, each in nano-USD per
// million tokens. Input is the price of uncached input tokens; an unset cache
// or reasoning price falls back as described on Cost.
type Prices struct {
	// Input is the price of uncached input tokens.
	Input Tiered
	// CacheRead is the price of input tokens read from the prompt cache.
	CacheRead Tiered
	// CacheWrite is the price of input tokens written to the cache with the
	// default (5-minute) lifetime.
	CacheWrite Tiered
	// CacheWrite1h is the price of input tokens written to the cache with a
	// one-hour lifetime.
	CacheWrite1h Tiered
	// Output is the price of output tokens.
	Output Tiered
	// OutputReasoning is the price of reasoning output tokens, where the
	// provider bills them differently from other output.
	OutputReasoning Tiered
	// InputMedia is the price of image and video input tokens where the
	// provider bills them apart from text. It applies to requests that
	// carry images (see WithMedia).
	InputMedia Tiered
	// OutputMedia is the price of generated image or video tokens. The usage
	// does not tell them from text, so all output is bounded and charged at
	// the larger of Output and OutputMedia.
	OutputMedia Tiered
	// Fees are the charges the token usage does not report.
	Fees Fees
}

// Priced reports whether p has an input price, the least any request needs.
// Embedding models have no output price; routes that produce output also
// need HasOutput.
func (p Prices) Priced() bool { return p.Input.Set }

// HasOutput reports whether p has an output price.
func (p Prices) HasOutput() bool { return p.Output.Set }

// Worst1hRate is the highest rate a one-hour cache write could be billed at
// by a request with at most inputBound input tokens. Without a one-hour price
// in the data it is the larger of the cache-write price and twice the input
// price, which is what Anthropic charges for one-hour writes: a missing price
// must never make a write cheaper than the provider bills it.
func (p Prices) Worst1hRate(inputBound int64) budget.Rate {
	if p.CacheWrite1h.Set {
		return p.CacheWrite1h.max(inputBound)
	}
	r := 2 * p.Input.max(inputBound)
	if p.CacheWrite.Set {
		r = max(r, p.CacheWrite.max(inputBound))
	}
	return r
}

// Cost returns the exact cost of u in nano-USD, summed exactly and rounded up
// once to the next nano-USD. Every price's tier is chosen by u.InputTokens,
// the request's total input including cached tokens.
//
// Uncached input (InputTokens minus the three cache counts) is billed at
// Input; cache reads at CacheRead, or Input when unset; 5-minute cache writes
// at CacheWrite, or Input when unset; one-hour cache writes at CacheWrite1h,
// or the larger of CacheWrite and twice Input when unset (Anthropic's
// one-hour price is twice the input price); reasoning tokens at
// OutputReasoning, or the output rate when unset; the remaining output at
// the larger of Output and OutputMedia. Fees are not included: they are per
// request or per call, not per token.
//
// Negative counts, cache counts that add up to more than InputTokens and
// ReasoningTokens above OutputTokens return ErrInvalidUsage. Prices without
// an input price, or without an output price for usage with output tokens,
// return ErrModelNotPriced, and a cost beyond
// budget.Money's range returns budget.ErrOverflow.
func (p Prices) Cost(u budget.Usage) (budget.Money, error) {
	if !p.Priced() {
		return 0, ErrModelNotPriced
	}
	if err := checkUsage(u); err != nil {
		return 0, err
	}
	if u.OutputTokens > 0 && !p.HasOutput() {
		return 0, ErrModelNotPriced
	}
	in := u.InputTokens
	inRate := p.Input.At(in)
	cw := orRate(p.CacheWrite, in, inRate)
	cw1h := max(cw, 2*inRate)
	if p.CacheWrite1h.Set {
		cw1h = p.CacheWrite1h.At(in)
	}
	outRate := p.Output.At(in)
	if p.OutputMedia.Set {
		outRate = max(outRate, p.OutputMedia.At(in))
	}
	uncached := in - u.CacheReadTokens - u.CacheWriteTokens - u.CacheWrite1hTokens
	return budget.Cost(
		budget.TokenCharge{Tokens: uncached, Rate: inRate},
		budget.TokenCharge{Tokens: u.CacheReadTokens, Rate: orRate(p.CacheRead, in, inRate)},
		budget.TokenCharge{Tokens: u.CacheWriteTokens, Rate: cw},
		budget.TokenCharge{Tokens: u.CacheWrite1hTokens, Rate: cw1h},
		budget.TokenCharge{Tokens: u.OutputTokens - u.ReasoningTokens, Rate: outRate},
		budget.TokenCharge{Tokens: u.ReasoningTokens, Rate: orRate(p.OutputReasoning, in, outRate)},
	)
}

// orRate returns t's rate at inputTokens, or fallback when t is unset.
func orRate(t Tiered, inputTokens int64, fallback budget.Rate) budget.Rate {
	if !t.Set {
		return fallback
	}
	return t.At(inputTokens)
}

// checkUsage rejects token counts that cannot describe a real request. The
// subtractions never overflow because every count is checked non-negative
// first.
func checkUsage(u budget.Usage) error {
	if u.InputTokens < 0 || u.CacheReadTokens < 0 || u.CacheWriteTokens < 0 ||
		u.CacheWrite1hTokens < 0 || u.OutputTokens < 0 || u.ReasoningTokens < 0 {
		return fmt.Errorf("%w: negative token count in %+v", ErrInvalidUsage, u)
	}
	rest := u.InputTokens - u.CacheReadTokens
	if rest < 0 {
		return fmt.Errorf("%w: %d cache-read tokens exceed %d input tokens", ErrInvalidUsage, u.CacheReadTokens, u.InputTokens)
	}
	if rest -= u.CacheWriteTokens; rest < 0 {
		return fmt.Errorf("%w: cache tokens exceed %d input tokens", ErrInvalidUsage, u.InputTokens)
	}
	if rest -= u.CacheWrite1hTokens; rest < 0 {
		return fmt.Errorf("%w: cache tokens exceed %d input tokens", ErrInvalidUsage, u.InputTokens)
	}
	if u.ReasoningTokens > u.OutputTokens {
		return fmt.Errorf("%w: %d reasoning tokens exceed %d output tokens", ErrInvalidUsage, u.ReasoningTokens, u.OutputTokens)
	}
	return nil
}

// WorstRates returns the highest rates, in nano-USD per million tokens, at
// which any one input token and any one output token could be billed by a
// request whose total input is at most inputBound tokens. input is the
// maximum over Input, CacheRead, CacheWrite and CacheWrite1h; output over
// Output, OutputReasoning and OutputMedia; each over the base rate and every tier that
// such a request could reach (Start < inputBound, the boundary rule of At).
// Multiplying the bound's token counts by these rates gives a cost that no
// mix of cached, uncached, reasoning and plain tokens can exceed.
func (p Prices) WorstRates(inputBound int64) (input, output budget.Rate) {
	for _, t := range []Tiered{p.Input, p.CacheRead, p.CacheWrite, p.CacheWrite1h} {
		if t.Set {
			input = max(input, t.max(inputBound))
		}
	}
	for _, t := range []Tiered{p.Output, p.OutputReasoning, p.OutputMedia} {
		if t.Set {
			output = max(output, t.max(inputBound))
		}
	}
	return input, output
}
