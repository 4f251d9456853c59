package budget

import "fmt"

// OnLow says what to do with a request whose worst case does not fit the
// remaining budget.
type OnLow string

const (
	// Clamp lowers (or injects) the request's output cap to the largest that
	// fits. A cap the client set is never raised. This is the default.
	Clamp OnLow = "clamp"
	// Reject refuses the request.
	Reject OnLow = "reject"
)

// ParseOnLow parses "clamp" or "reject"; the empty string is Clamp.
func ParseOnLow(s string) (OnLow, error) {
	switch o := OnLow(s); o {
	case "":
		return Clamp, nil
	case Clamp, Reject:
		return o, nil
	}
	return "", fmt.Errorf("%w: on_low %q (want clamp or reject)", ErrInvalidConfig, s)
}

// Quote is the worst-case cost of one request as a function of its output
// cap: every input token at the highest input rate that could apply, every
// output token at the highest output rate, plus fixed allowances.
type Quote struct {
	// InputTokens is the proven upper bound of the request's input tokens.
	InputTokens int64
	// InputRate is the highest rate any input token could be billed at.
	InputRate Rate
	// MaxOutput is the output cap per choice the request would run with
	// unchanged: the client's own cap, else the model's limit.
	MaxOutput int64
	// Choices is how many completions the request asks for (OpenAI's n);
	// each may produce MaxOutput tokens. Zero counts as one.
	Choices int64
	// OutputRate is the highest rate any output token could be billed at.
	OutputRate Rate
	// Allowance is a fixed amount added to the worst case, in nano-USD, for
	// inputs priced per request rather than per token.
	Allowance Money
	// MinOutput is the smallest output cap the API accepts (Anthropic's
	// extended thinking needs more than 1,024 tokens); clamping never goes
	// below it. Zero counts as one.
	MinOutput int64
}

// Cost is the worst-case cost of the request when every choice may produce
// outputCap tokens, rounded up to the nano-USD.
func (q Quote) Cost(outputCap int64) (Money, error) {
	n := q.Choices
	if n <= 0 {
		n = 1
	}
	if outputCap < 0 || q.InputTokens < 0 {
		return 0, ErrOverflow
	}
	if outputCap > 0 && n > (1<<62)/outputCap {
		return 0, ErrOverflow
	}
	c, err := Cost(
		TokenCharge{Tokens: q.InputTokens, Rate: q.InputRate},
		TokenCharge{Tokens: outputCap * n, Rate: q.OutputRate},
	)
	if err != nil {
		return 0, err
	}
	return c.Add(q.Allowance)
}

// Fit decides what to reserve given the headroom left in the tightest budget.
// It returns the output cap per choice the request must run with and the
// amount to reserve. When the unchanged request fits, the cap is MaxOutput.
// Otherwise Reject fails with ErrExhausted, and Clamp picks the largest cap
// of at least MinOutput tokens whose cost fits, failing with ErrExhausted
// when even MinOutput does not.
func (q Quote) Fit(headroom Money, mode OnLow) (outputCap int64, amount Money, err error) {
	full, err := q.Cost(q.MaxOutput)
	if err != nil {
		return 0, 0, err
	}
	if full <= headroom {
		return q.MaxOutput, full, nil
	}
	floor := max(q.MinOutput, 1)
	if mode == Reject || q.MaxOutput <= floor {
		return 0, 0, fmt.Errorf("%w: worst case %s USD, %s USD left", ErrExhausted, full, headroom)
	}
	least, err := q.Cost(floor)
	if err != nil {
		return 0, 0, err
	}
	if least > headroom {
		return 0, 0, fmt.Errorf("%w: even a %d-token answer costs up to %s USD, %s USD left", ErrExhausted, floor, least, headroom)
	}
	// Cost is monotone in the cap: find the largest cap in
	// [floor, MaxOutput) whose cost fits.
	lo, hi := floor, q.MaxOutput-1
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		c, err := q.Cost(mid)
		if err != nil {
			return 0, 0, err
		}
		if c <= headroom {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	amount, err = q.Cost(lo)
	if err != nil {
		return 0, 0, err
	}
	return lo, amount, nil
}
