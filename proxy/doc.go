// Package proxy is hardcap's data plane: it routes the API calls apps make,
// authenticates hardcap tokens, bounds each request's worst-case cost,
// reserves it in the ledger, injects the real provider key, forwards the
// request with net/http/httputil.ReverseProxy, and settles the actual cost
// from the usage in the response, streamed or not.
//
// One file per concern: routes.go (which paths exist), auth.go (tokens in,
// credentials out), keys.go (real key sources), chat.go (request shaping and
// bounds for chat completions), sse.go (event framing), usage.go (usage
// extraction), meter.go (metering response bodies and settlement),
// proxy.go (the flow and the ReverseProxy hooks), errors.go (what clients
// see).
package proxy
