package proxy

import (
	"github.com/hardcap/hardcap/budget/pricing"
)

// outputBound is the most output tokens per choice a request may produce.
// hardcap writes the cap it reserves for into the request (see
// chatRequest.rewrite), so the provider enforces the bound whatever the
// price data says.
//
//   - The client's own cap, lowered to the model's context window when that
//     is smaller (input and output together never exceed it).
//   - Without a client cap, the model's output limit from the price data,
//     else the context window minus the input bound.
//   - With none of these known the request cannot be bounded.
//
// The input bound itself is never lowered to the context window: a stale
// window in the data must not shrink a proof.
func outputBound(clientCap int64, m pricing.Model, inputBound int64) (int64, error) {
	if clientCap > 0 {
		if m.ContextWindow > 0 && clientCap > m.ContextWindow {
			return m.ContextWindow, nil
		}
		return clientCap, nil
	}
	if m.MaxOutputTokens > 0 {
		return m.MaxOutputTokens, nil
	}
	if m.ContextWindow > 0 {
		left := m.ContextWindow - inputBound
		if left <= 0 {
			return 0, refuse(ErrUnbounded, "The input may need up to %d tokens, more than the model's %d-token context window leaves room for; set an output cap.", inputBound, m.ContextWindow)
		}
		return left, nil
	}
	return 0, refuse(ErrUnbounded, "hardcap knows neither an output limit nor a context window for %s; set max_completion_tokens (or max_tokens), or add max_output_tokens for it in the config.", m.ID)
}
