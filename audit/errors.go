package audit

import "errors"

// Errors of parsing.
var (
	// ErrSeverity is returned by ParseSeverity for a name that is not low,
	// medium, high or critical.
	ErrSeverity = errors.New("severity must be low, medium, high or critical")
)

// Errors of acknowledgements.
var (
	// ErrInvalidAck is returned by ParseAck for text that is not
	// KIND:TARGET with a known kind and a short, printable target.
	ErrInvalidAck = errors.New("an acknowledgement is KIND:TARGET, e.g. auto-topup:openai")

	// ErrNotAckable is returned by Report.Ackable for a finding whose kind
	// cannot be dismissed: only findings about what hardcap cannot check or
	// change itself (see Ackable) can; the others are fixed.
	ErrNotAckable = errors.New("this kind of finding cannot be acknowledged, only fixed")

	// ErrNoFinding is returned by Report.Ackable when no current finding
	// has the kind and target given (a typo, or nothing to dismiss).
	ErrNoFinding = errors.New("no such finding")
)
