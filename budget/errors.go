package budget

import "errors"

// Errors of parsing and arithmetic.
var (
	// ErrInvalidAmount is returned for a dollar amount that is not a plain
	// non-negative decimal with at most nine decimal places.
	ErrInvalidAmount = errors.New("invalid dollar amount")

	// ErrInvalidFraction is returned for a share of a budget (an alert
	// threshold) that is not a decimal above 0 and at most 10 with at most
	// six decimal places.
	ErrInvalidFraction = errors.New("invalid budget share")

	// ErrOverflow is returned when money or token arithmetic would not fit in
	// 64 bits. Callers treat it as "cannot be bounded" and refuse.
	ErrOverflow = errors.New("amount out of range")
)

// Errors of budget checks.
var (
	// ErrExhausted is returned when a budget cannot cover a request's worst
	// case (after clamping, where clamping is on).
	ErrExhausted = errors.New("budget exhausted")

	// ErrInvalidPeriod is returned for a period other than total, day, week
	// or month.
	ErrInvalidPeriod = errors.New("invalid budget period")

	// ErrInvalidConfig is returned for a budget setting that cannot be used.
	ErrInvalidConfig = errors.New("invalid budget setting")
)

// Errors a Ledger returns.
var (
	// ErrNotReserved is returned when settling a reservation that is not
	// open: it was settled already (settlement happens exactly once) or
	// never taken.
	ErrNotReserved = errors.New("no such open reservation")

	// ErrLedgerClosed is returned once the ledger has been closed.
	ErrLedgerClosed = errors.New("ledger closed")

	// ErrLedgerDamaged is returned when the ledger's storage is damaged: a
	// check failed, or a read or write inside it faulted.
	ErrLedgerDamaged = errors.New("database damaged")

	// ErrClusterUnavailable is returned by a replica that cannot reach
	// the cluster store when the budget slices it holds do not cover a
	// request, or when its lease on them has ended: it never grants
	// itself more.
	ErrClusterUnavailable = errors.New("cluster store unreachable")
)

// ExhaustedError names the budget that refused a request. It wraps the
// ErrExhausted error of Quote.Fit, so errors.Is(err, ErrExhausted) holds.
type ExhaustedError struct {
	// Scope is the budget with the least headroom.
	Scope Scope
	// Err is the refusal, with the worst case and what was left.
	Err error
}

func (e *ExhaustedError) Error() string { return string(e.Scope) + ": " + e.Err.Error() }

// Unwrap returns Err.
func (e *ExhaustedError) Unwrap() error { return e.Err }
