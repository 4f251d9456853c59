package budget

import (
	"time"
)

// Scope names what a budget belongs to: GlobalScope, or the result of
// ProjectScope or TokenScope.
type Scope string

// GlobalScope is the scope of the one budget every request counts against.
const GlobalScope Scope = "global"

// ProjectScope is the scope of a project's budget.
func ProjectScope(name string) Scope { return Scope("project:" + name) }

// TokenScope is the scope of a token's budget.
func TokenScope(id string) Scope { return Scope("token:" + id) }

// Limit is a spending limit over a period.
type Limit struct {
	// Amount is in nano-USD; 0 means no limit.
	Amount Money `json:"limit_usd"`
	// Period is the window Amount applies to; empty means Total.
	Period Period `json:"period"`
}

// Unlimited reports whether l puts no ceiling on spend.
func (l Limit) Unlimited() bool { return l.Amount <= 0 }

// Budget is a limit that belongs to a scope.
type Budget struct {
	Scope Scope
	Limit Limit
}

// Key names the spend counter that b charges for a request made at t:
// the scope plus the period window, e.g. "project:web|month:2026-11". A
// request reserved in one window settles in the same window, even if it ends
// in the next one.
func (b Budget) Key(t time.Time, loc *time.Location) string {
	p := b.Limit.Period
	if p == "" {
		p = Total
	}
	return string(b.Scope) + "|" + p.Window(t, loc)
}

// Spend is what one budget window has committed (settled charges) and holds
// in reservations (requests in flight).
type Spend struct {
	// Committed is the sum of settled charges, in nano-USD.
	Committed Money `json:"spent_usd"`
	// Reserved is the sum of open reservations, in nano-USD.
	Reserved Money `json:"reserved_usd"`
}

// Headroom is what a new reservation may take from a window with this spend
// under limit l: limit - committed - reserved, never negative, and MaxMoney
// when l is unlimited.
func (s Spend) Headroom(l Limit) Money {
	if l.Unlimited() {
		return MaxMoney
	}
	h := l.Amount - s.Committed - s.Reserved
	if h < 0 {
		return 0
	}
	return h
}
