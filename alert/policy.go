package alert

import (
	"fmt"
	"time"

	"github.com/hardcap/hardcap/budget"
)

// Rule is what one anomaly kind does.
type Rule struct {
	// Action is off, alert (the default) or freeze.
	Action Action
	// FreezeProject says a freeze turns on the project's kill switch
	// instead of the token's.
	FreezeProject bool
}

// Policy says which alerts fire and what they do. The zero Policy fires
// nothing; DefaultPolicy is what hardcap runs with when the config says
// nothing.
type Policy struct {
	// Thresholds are the shares of every budget that fire
	// budget.threshold, ascending; a project or token with its own
	// (tokens.Project.AlertAt, tokens.Token.AlertAt) uses those for its
	// budget. Empty fires none.
	Thresholds []budget.Fraction
	// Exhausted fires budget.exhausted for the first refusal of a window
	// for want of budget.
	Exhausted bool
	// Rules are the anomaly kinds' rules; a kind with no entry is off.
	Rules map[Kind]Rule
	// Projects override Rules for a project's tokens, kind by kind.
	Projects map[string]map[Kind]Rule
	// NewIPAfter is how long an address may go unseen for a token before
	// its return counts as new; 0 counts only addresses never seen.
	NewIPAfter time.Duration
	// Spike is the spend spike detector's setting.
	Spike Spike
	// KeyRejectedEvery is the least time between two key_rejected alerts
	// of one provider.
	KeyRejectedEvery time.Duration
}

// Spike is the spend spike detector's setting: a token spends more in the
// last Window than Factor times its average over the same length of time
// in the Baseline before it, and more than Floor.
type Spike struct {
	// Window is the recent span, 10 minutes by default.
	Window time.Duration
	// Baseline is the span before Window the average is taken over, 24
	// hours by default. A younger token's average counts the time since
	// its creation; one with less history than Window is never a spike.
	// Window is counted in whole minutes: at least one.
	Baseline time.Duration
	// Factor is how many times the average rate counts as a spike; 10 by
	// default.
	Factor int64
	// Floor is the least spend in Window, in nano-USD, that can be a
	// spike: 1 USD by default.
	Floor budget.Money
	// Cooldown is the least time between two spikes of one token: 1 hour.
	Cooldown time.Duration
}

// DefaultThresholds are the shares of a budget that fire by default.
var DefaultThresholds = []budget.Fraction{500_000, 800_000, 1_000_000}

// DefaultPolicy is the policy of a config that says nothing about alerts:
// thresholds at 50, 80 and 100 %, every anomaly kind on with action alert.
func DefaultPolicy() Policy {
	rules := map[Kind]Rule{}
	for _, k := range Kinds {
		rules[k] = Rule{Action: ActionAlert}
	}
	return Policy{
		Thresholds:       append([]budget.Fraction(nil), DefaultThresholds...),
		Exhausted:        true,
		Rules:            rules,
		NewIPAfter:       30 * 24 * time.Hour,
		Spike:            DefaultSpike(),
		KeyRejectedEvery: time.Hour,
	}
}

// DefaultSpike is the spike detector's default setting.
func DefaultSpike() Spike {
	return Spike{Window: 10 * time.Minute, Baseline: 24 * time.Hour, Factor: 10,
		Floor: budget.NanoPerUSD, Cooldown: time.Hour}
}

// Rule returns the rule of kind for a token of project.
func (p Policy) Rule(kind Kind, project string) Rule {
	if over, ok := p.Projects[project][kind]; ok {
		return over
	}
	r, ok := p.Rules[kind]
	if !ok {
		return Rule{Action: ActionOff}
	}
	return r
}

// On reports whether kind fires at all for a token of project.
func (p Policy) On(kind Kind, project string) bool {
	a := p.Rule(kind, project).Action
	return a == ActionAlert || a == ActionFreeze
}

// ParseAction parses off, alert or freeze.
func ParseAction(s string) (Action, error) {
	switch a := Action(s); a {
	case ActionOff, ActionAlert, ActionFreeze:
		return a, nil
	}
	return "", fmt.Errorf("%w: %q (off, alert or freeze)", ErrInvalidAction, s)
}

// CanFreeze reports whether kind has a token or project to freeze: a
// provider key's anomaly has neither.
func (k Kind) CanFreeze() bool {
	return k != KeyRejected && k != ReconcileDrift
}
