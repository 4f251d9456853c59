package proxy

import (
	"github.com/hardcap/hardcap/budget/pricing"
)

// outputBound is the most output tokens per choice a request can produce,
// and whether hardcap must write that cap into the request to make it true.
//
//   - The client's own cap is a bound the provider enforces. It is lowered to
//     the context window when that is smaller: input and output together
//     never exceed it.
//   - Without a client cap, the model's output limit from the price data is
//     used, else the context window minus the input bound. Either way hardcap
//     injects it, so the bound holds even if the data is wrong.
//   - With none of these known the request cannot be bounded.
func outputBound(clientCap int64, m pricing.Model, inputBound int64) (bound int64, inject bool, err error) {
	if clientCap > 0 {
		if m.ContextWindow > 0 && clientCap > m.ContextWindow {
			return m.ContextWindow, false, nil
		}
		return clientCap, false, nil
	}
	if m.MaxOutputTokens > 0 {
		return m.MaxOutputTokens, true, nil
	}
	if m.ContextWindow > 0 {
		left := m.ContextWindow - inputBound
		if left <= 0 {
			return 0, false, refuse(ErrUnbounded, "The input may need up to %d tokens, more than the model's %d-token context window leaves room for; set an output cap.", inputBound, m.ContextWindow)
		}
		return left, true, nil
	}
	return 0, false, refuse(ErrUnbounded, "hardcap knows neither an output limit nor a context window for %s; set max_completion_tokens (or max_tokens), or add max_output_tokens for it in the config.", m.ID)
}

// capInput lowers an input bound to the model's context window: a request
// whose input is larger is refused by the provider and not billed.
func capInput(bound int64, m pricing.Model) int64 {
	if m.ContextWindow > 0 && bound > m.ContextWindow {
		return m.ContextWindow
	}
	return bound
}
