package budget

import (
	"encoding/json"
	"fmt"
	"strings"
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

// Limit is a spending limit over a period. The zero value is no limit.
//
// A ceiling of exactly zero is a real limit (it refuses every priced
// request), and is told apart from "no limit" by Zero: build limits with
// Ceiling, NoLimit or ParseLimit rather than by hand.
//
// Its JSON is {"limit_usd": "5.000000" | null, "period": "month"}: no
// limit is null, a zero ceiling "0.000000".
type Limit struct {
	// Amount is the ceiling in nano-USD; 0 means no limit unless Zero is set.
	Amount Money
	// Period is the window Amount applies to; empty means Total.
	Period Period
	// Zero marks a ceiling of exactly zero. It exists because 0 meant "no
	// limit" before zero ceilings did, and stored limits keep that meaning.
	Zero bool
}

// limitJSON is the JSON form of a Limit.
type limitJSON struct {
	Amount *Money `json:"limit_usd"`
	Period Period `json:"period"`
}

// MarshalJSON writes no limit as a null limit_usd.
func (l Limit) MarshalJSON() ([]byte, error) {
	v := limitJSON{Period: l.Period}
	if c, ok := l.Ceiling(); ok {
		v.Amount = &c
	}
	return json.Marshal(v)
}

// UnmarshalJSON reads what MarshalJSON writes: a null or absent limit_usd
// is no limit, any amount (zero included) a ceiling.
func (l *Limit) UnmarshalJSON(b []byte) error {
	var v limitJSON
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	if v.Amount == nil {
		*l = NoLimit(v.Period)
		return nil
	}
	if *v.Amount < 0 {
		return fmt.Errorf("%w: a limit must not be negative", ErrInvalidAmount)
	}
	*l = Ceiling(*v.Amount, v.Period)
	return nil
}

// NoLimit is a limit that puts no ceiling on spend over period p.
func NoLimit(p Period) Limit { return Limit{Period: p} }

// Ceiling is a limit of amount nano-USD over period p; an amount of 0 is a
// ceiling of zero, not the absence of one.
func Ceiling(amount Money, p Period) Limit {
	return Limit{Amount: amount, Period: p, Zero: amount == 0}
}

// Unlimited reports whether l puts no ceiling on spend.
func (l Limit) Unlimited() bool { return l.Amount <= 0 && !l.Zero }

// Ceiling returns the limit's amount and true, or false when it has none.
// It is how views show a limit: a ceiling as a decimal, none as null.
func (l Limit) Ceiling() (Money, bool) {
	if l.Unlimited() {
		return 0, false
	}
	return max(l.Amount, 0), true
}

// UnlimitedWord is the budget value that means no limit, on the command
// line, in the admin API and in the config.
const UnlimitedWord = "unlimited"

// ParseLimit parses a budget in USD and a period. The amount "" (not
// given) or "unlimited" is no limit; "0" is a ceiling of zero; anything
// else must be a decimal ParseUSD accepts. The period is as ParsePeriod.
func ParseLimit(usd, period string) (Limit, error) {
	p, err := ParsePeriod(period)
	if err != nil {
		return Limit{}, err
	}
	switch s := strings.TrimSpace(usd); {
	case s == "" || strings.EqualFold(s, UnlimitedWord):
		return NoLimit(p), nil
	default:
		m, err := ParseUSD(s)
		if err != nil {
			return Limit{}, err
		}
		return Ceiling(m, p), nil
	}
}

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
