package storage

import "github.com/hardcap/hardcap/budget"

// Errors of opening and closing.
var (
	// ErrClosed is returned by every method once Close has begun. It is
	// budget.ErrLedgerClosed.
	ErrClosed = budget.ErrLedgerClosed
)

// Errors of settlement.
var (
	// ErrNotReserved is returned when settling a reservation that does not
	// exist: it was settled already, or never taken. Settlement happens
	// exactly once; a second attempt changes nothing. It is
	// budget.ErrNotReserved.
	ErrNotReserved = budget.ErrNotReserved
)

// fatalError marks an error that happened after an operation began to write
// inside a group-commit transaction. The whole batch is rolled back and run
// again without the failing operation, because a half-applied operation must
// never be committed.
type fatalError struct{ err error }

func (e fatalError) Error() string { return e.err.Error() }
func (e fatalError) Unwrap() error { return e.err }

// fatal wraps a write error as a fatalError; nil stays nil.
func fatal(err error) error {
	if err == nil {
		return nil
	}
	return fatalError{err}
}
