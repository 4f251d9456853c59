package proxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
	"github.com/hardcap/hardcap/tokens"
)

// Error is a refusal as the client sees it. Message is public: it says what
// happened and what to do, and never carries a key or a raw internal error.
type Error struct {
	// Status is the HTTP status.
	Status int
	// Code is the OpenAI error code, e.g. "budget_exhausted".
	Code string
	// Message is the public explanation.
	Message string
	// RetryAfter, when positive, is sent as a Retry-After header in seconds.
	RetryAfter int
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errors of the data plane, before the request reaches the provider.
var (
	// ErrUnknownRoute is returned for any path hardcap does not meter.
	ErrUnknownRoute = errors.New("route not metered")
	// ErrUnbounded is returned for a request whose cost hardcap cannot
	// bound (server-side tools, stored state, unsupported inputs).
	ErrUnbounded = errors.New("cost cannot be bounded")
	// ErrBadRequest is returned for a body that is not the JSON the route
	// expects.
	ErrBadRequest = errors.New("invalid request")
	// ErrTooLarge is returned for a body over Options.MaxBodyBytes.
	ErrTooLarge = errors.New("request body too large")
	// ErrRateLimited is returned when a token exceeds its requests per
	// minute.
	ErrRateLimited = errors.New("rate limited")
	// ErrRouteNotAllowed is returned for a route outside the token's route
	// scope (tokens.Token.Routes).
	ErrRouteNotAllowed = errors.New("route not allowed for the token")
	// ErrIPNotAllowed is returned for a client address outside the token's
	// address scope (tokens.Token.IPs).
	ErrIPNotAllowed = errors.New("client address not allowed for the token")
	// ErrRequestTooCostly is returned for a request whose worst case is
	// above the token's per-request limit (tokens.Token.MaxRequest).
	ErrRequestTooCostly = errors.New("request over the token's per-request limit")
	// ErrTooManyInFlight is returned when a token already has its
	// max_concurrent requests in flight; it is a rate limit, answered 429
	// with Retry-After.
	ErrTooManyInFlight = errors.New("too many requests in flight")
	// ErrNoKey is returned when the provider's real key cannot be read.
	ErrNoKey = errors.New("provider key unavailable")
	// ErrShuttingDown is returned for requests that arrive while hardcap
	// stops.
	ErrShuttingDown = errors.New("shutting down")
	// ErrStorage is returned when the ledger cannot record a reservation;
	// the request is refused, never forwarded unmetered.
	ErrStorage = errors.New("ledger unavailable")
)

// Errors of the provider key ledger (keys.go).
var (
	// ErrNoProviders is returned by Keys.Reload when no provider is
	// configured.
	ErrNoProviders = errors.New("no provider is configured; add one under providers: in the config")
	// ErrProviderNotFound is returned by Keys.Reload for a provider the
	// config does not have.
	ErrProviderNotFound = errors.New("no such provider")
)

// ErrReconfigure is returned by Proxy.Reconfigure for a set of providers
// and prices it cannot serve; nothing is changed.
var ErrReconfigure = errors.New("proxy: reconfiguration refused")

// ErrorCode is how one domain error is answered, on the data plane and in
// the admin API alike.
type ErrorCode struct {
	// Err is the error value matched with errors.Is.
	Err error
	// Status is the HTTP status.
	Status int
	// Code is the OpenAI error code (and the admin API's error code), e.g.
	// "budget_exhausted".
	Code string
}

// ErrorCodes is the one table that maps domain errors to what a client
// sees, used by the data plane (publicError) and the admin API
// (admin.writeDomainError) so that a refusal added in one place cannot fall
// through to a 5xx in the other. The first match wins. Only failures of the
// server itself are 5xx: the ledger (ledger_unavailable), a provider key it
// cannot read, and shutting down.
var ErrorCodes = []ErrorCode{
	{tokens.ErrMalformed, http.StatusUnauthorized, "invalid_api_key"},
	{tokens.ErrUnknown, http.StatusUnauthorized, "invalid_api_key"},
	{tokens.ErrRevoked, http.StatusUnauthorized, "invalid_api_key"},
	{tokens.ErrRotated, http.StatusUnauthorized, "invalid_api_key"},
	{tokens.ErrExpired, http.StatusUnauthorized, "invalid_api_key"},
	{tokens.ErrKilled, http.StatusForbidden, "kill_switch"},
	{ErrCut, http.StatusForbidden, "kill_switch"},
	{tokens.ErrModelNotAllowed, http.StatusForbidden, "not_allowed"},
	{ErrUnknownRoute, http.StatusForbidden, "not_allowed"},
	{ErrRouteNotAllowed, http.StatusForbidden, "not_allowed"},
	{ErrIPNotAllowed, http.StatusForbidden, "not_allowed"},
	{ErrRequestTooCostly, http.StatusForbidden, "not_allowed"},
	{budget.ErrExhausted, http.StatusPaymentRequired, "budget_exhausted"},
	{pricing.ErrModelNotPriced, http.StatusForbidden, "model_not_priced"},
	{pricing.ErrUnknownProvider, http.StatusForbidden, "model_not_priced"},
	{ErrUnbounded, http.StatusBadRequest, "unbounded_cost"},
	{budget.ErrOverflow, http.StatusBadRequest, "unbounded_cost"},
	{ErrTooLarge, http.StatusRequestEntityTooLarge, "invalid_request"},
	{ErrBadRequest, http.StatusBadRequest, "invalid_request"},
	{ErrRateLimited, http.StatusTooManyRequests, "rate_limited"},
	{ErrTooManyInFlight, http.StatusTooManyRequests, "rate_limited"},
	// Mistakes in what an operator asked for (admin API, config).
	{tokens.ErrInvalidName, http.StatusBadRequest, "invalid_request"},
	{tokens.ErrInvalidText, http.StatusBadRequest, "invalid_request"},
	{tokens.ErrInvalidScope, http.StatusBadRequest, "invalid_request"},
	{tokens.ErrInvalidExpiry, http.StatusBadRequest, "invalid_request"},
	{tokens.ErrInvalidGrace, http.StatusBadRequest, "invalid_request"},
	{tokens.ErrInvalidRotation, http.StatusBadRequest, "invalid_request"},
	{budget.ErrInvalidAmount, http.StatusBadRequest, "invalid_request"},
	{budget.ErrInvalidFraction, http.StatusBadRequest, "invalid_request"},
	{budget.ErrInvalidPeriod, http.StatusBadRequest, "invalid_request"},
	{budget.ErrInvalidConfig, http.StatusBadRequest, "invalid_request"},
	{pricing.ErrInvalidUsage, http.StatusBadRequest, "invalid_request"},
	{pricing.ErrInvalidRate, http.StatusBadRequest, "invalid_request"},
	{pricing.ErrInvalidData, http.StatusBadRequest, "invalid_request"},
	{pricing.ErrInvalidOverride, http.StatusBadRequest, "invalid_request"},
	{ErrKeySource, http.StatusBadRequest, "invalid_request"},
	{tokens.ErrTokenFinal, http.StatusConflict, "invalid_request"},
	{tokens.ErrProjectExists, http.StatusConflict, "exists"},
	{tokens.ErrProjectHasTokens, http.StatusConflict, "has_tokens"},
	{tokens.ErrProjectNotFound, http.StatusNotFound, "not_found"},
	{tokens.ErrTokenNotFound, http.StatusNotFound, "not_found"},
	{ErrProviderNotFound, http.StatusNotFound, "not_found"},
	{ErrNoProviders, http.StatusNotFound, "not_found"},
	// Failures of the server, which a retry may get past.
	{ErrNoKey, http.StatusServiceUnavailable, "provider_key_unavailable"},
	// Before ErrStorage, which wraps every failure to reserve.
	{budget.ErrClusterUnavailable, http.StatusServiceUnavailable, "cluster_unavailable"},
	{ErrStorage, http.StatusServiceUnavailable, "ledger_unavailable"},
	{budget.ErrLedgerClosed, http.StatusServiceUnavailable, "ledger_unavailable"},
	{budget.ErrLedgerDamaged, http.StatusServiceUnavailable, "ledger_unavailable"},
	{budget.ErrNotReserved, http.StatusServiceUnavailable, "ledger_unavailable"},
	{ErrShuttingDown, http.StatusServiceUnavailable, "shutting_down"},
}

// Classify finds err in ErrorCodes. ok is false for an error the table does
// not know: a failure nobody planned for, which each caller answers as a
// server fault (the data plane 500 internal_error, the admin API 503
// ledger_unavailable).
func Classify(err error) (c ErrorCode, ok bool) {
	for _, c := range ErrorCodes {
		if errors.Is(err, c.Err) {
			return c, true
		}
	}
	return ErrorCode{}, false
}

// isDomainRefusal reports whether a Reserve error is a decision (budget,
// kill, revoke...) rather than a storage failure: whatever the table
// answers below 500.
func isDomainRefusal(err error) bool {
	c, ok := Classify(err)
	return ok && c.Status < 500
}

// publicMessages explains each code and what to do about it.
var publicMessages = map[string]string{
	"invalid_api_key":          "hardcap rejected the API key: it is missing, mistyped, unknown, revoked or expired. Use a live hardcap token (hc_...) from `hardcap token create`.",
	"kill_switch":              "The hardcap kill switch is on for this token, its project or everything. An operator can lift it with `hardcap resume`.",
	"not_allowed":              "This token may not make this request.",
	"budget_exhausted":         "The hardcap budget cannot cover the worst-case cost of this request. Raise the budget, wait for the next period, or ask for fewer output tokens.",
	"model_not_priced":         "hardcap has no price for this model, so it cannot bound the cost. Add a price override in the hardcap config or use a priced model.",
	"unbounded_cost":           "hardcap cannot prove an upper bound for the cost of this request, so it was not forwarded.",
	"invalid_request":          "The request is not valid for this route; fix it before retrying.",
	"rate_limited":             "This token has reached one of its rate limits (requests per minute, or requests in flight); retry after the time Retry-After gives.",
	"provider_key_unavailable": "hardcap could not read the provider key from its configured source. Check the server's configuration and logs.",
	"ledger_unavailable":       "hardcap could not record the reservation for this request, so it was not forwarded. Retry later.",
	"upstream_error":           "hardcap could not reach the provider.",
	"shutting_down":            "Retry in a moment.",
	"internal_error":           "hardcap failed to handle the request.",
}

// publicError turns any error into the Error the client sees. Detail from
// the error chain is added only for errors whose text is written for the
// client (refusals built with refuse).
func publicError(err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	c, ok := Classify(err)
	if !ok {
		return &Error{Status: http.StatusInternalServerError, Code: "internal_error", Message: publicMessages["internal_error"]}
	}
	msg := publicMessages[c.Code]
	var d detailed
	var ex *budget.ExhaustedError
	var rot *tokens.RotatedError
	switch {
	case errors.As(err, &rot):
		// Not "unknown": the client is told its secret was replaced, and
		// when, so its operator knows to deploy the new one.
		msg = rot.Detail()
	case errors.As(err, &d):
		msg = d.detail + " " + msg
	case errors.As(err, &ex):
		msg = exhaustedMessage(ex.Scope)
	}
	e := &Error{Status: c.Status, Code: c.Code, Message: msg}
	var rl rateLimited
	if errors.As(err, &rl) {
		e.RetryAfter = rl.seconds
	} else if errors.Is(err, ErrTooManyInFlight) {
		// A slot frees when any of the token's requests ends: a second
		// is a fair first wait.
		e.RetryAfter = 1
	}
	return e
}

// exhaustedMessage names the budget that refused a request and the command
// that raises it.
func exhaustedMessage(scope budget.Scope) string {
	const tail = " It cannot cover the worst-case cost of this request; wait for its next period or ask for fewer output tokens."
	if name, ok := strings.CutPrefix(string(scope), "project:"); ok {
		return fmt.Sprintf("project %s's budget is spent; raise it with `hardcap project set %s --budget USD`.", name, name) + tail
	}
	if id, ok := strings.CutPrefix(string(scope), "token:"); ok {
		return fmt.Sprintf("token %s's budget is spent; raise it with `hardcap token set %s --budget USD`.", id, id) + tail
	}
	return "The global budget is spent; raise budget.global.limit_usd in the hardcap config and restart the server." + tail
}

// refuseArgLen bounds each string a refusal's detail quotes.
const refuseArgLen = 200

// detailed is an error whose detail text is safe to show the client.
type detailed struct {
	kind   error
	detail string
}

func (d detailed) Error() string { return d.kind.Error() + ": " + d.detail }
func (d detailed) Unwrap() error { return d.kind }

// refuse builds an error of a kind with a public detail sentence.
// String arguments are clipped to refuseArgLen runes: they may be user
// input, or an explanation that quotes some.
func refuse(kind error, format string, args ...any) error {
	for i, a := range args {
		if s, ok := a.(string); ok {
			args[i] = budget.ClipTo(s, refuseArgLen)
		}
	}
	return detailed{kind: kind, detail: fmt.Sprintf(format, args...)}
}

type rateLimited struct{ seconds int }

func (r rateLimited) Error() string { return "rate limited" }
func (r rateLimited) Unwrap() error { return ErrRateLimited }

// errorType is the OpenAI error "type" for a status.
func errorType(status int) string {
	switch status {
	case http.StatusUnauthorized:
		return "authentication_error"
	case http.StatusPaymentRequired:
		return "insufficient_quota"
	case http.StatusForbidden:
		return "permission_error"
	case http.StatusTooManyRequests:
		return "rate_limit_error"
	}
	if status >= 500 {
		return "api_error"
	}
	return "invalid_request_error"
}

// anthropicTypes maps hardcap's codes to the Anthropic error types that
// mean the same; the other codes are used as they are (SPEC §3).
var anthropicTypes = map[string]string{
	"invalid_api_key": "authentication_error",
	"invalid_request": "invalid_request_error",
	"rate_limited":    "rate_limit_error",
	"upstream_error":  "api_error",
	"not_found":       "not_found_error",
	"internal_error":  "api_error",
}

// writeError writes e in the caller's error shape: OpenAI's
// {"error":{...}} or Anthropic's {"type":"error","error":{...}}. Hard stops
// carry x-should-retry: false, which the official SDKs honour.
func writeError(w http.ResponseWriter, shape Kind, e *Error) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	if e.RetryAfter > 0 {
		h.Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	if e.Status != http.StatusTooManyRequests && e.Status < 500 {
		h.Set("X-Should-Retry", "false")
	}
	w.WriteHeader(e.Status)
	var v any
	if shape == KindAnthropic {
		typ := e.Code
		if t, ok := anthropicTypes[typ]; ok {
			typ = t
		}
		v = map[string]any{"type": "error", "error": map[string]any{"type": typ, "message": e.Message}}
	} else {
		v = map[string]any{"error": map[string]any{
			"message": e.Message,
			"type":    errorType(e.Status),
			"param":   nil,
			"code":    e.Code,
		}}
	}
	body, _ := json.Marshal(v)
	_, _ = w.Write(append(body, '\n'))
}

// retriable reports whether a ledger error may go away on its own. Closed
// databases and missing reservations do not.
func retriable(err error) bool {
	return !errors.Is(err, budget.ErrLedgerClosed) && !errors.Is(err, budget.ErrNotReserved)
}

// tokenLike matches what could be a hardcap token inside a path: a client
// that puts its token in the URL must not find it in a log line or an
// error.
var tokenLike = regexp.MustCompile(`hc_[A-Za-z0-9]{6,}`)

// safePath is a request path fit for a log line or an error: any
// token-like text is replaced and the rest is clipped.
func safePath(p string) string {
	return budget.ClipTo(tokenLike.ReplaceAllString(p, "hc_[redacted]"), 200)
}
