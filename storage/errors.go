package storage

import (
	"errors"

	"github.com/hardcap/hardcap/budget"
)

// Errors of opening and closing.
var (
	// ErrClosed is returned by every method once Close has begun. It is
	// budget.ErrLedgerClosed.
	ErrClosed = budget.ErrLedgerClosed

	// ErrDamaged is returned when the database file fails a check or a read
	// or write inside it panics or faults: Open refuses such a file (it is
	// never re-initialised or served), and a running DB answers the call
	// that hit the damage with it, logs the cause at error level and keeps
	// the process alive. The wrapped text says what is wrong and where. It
	// is budget.ErrLedgerDamaged.
	ErrDamaged = budget.ErrLedgerDamaged

	// ErrNewerFormat is returned by Open for a file written by a newer
	// hardcap, whose layout this one cannot be sure to read.
	ErrNewerFormat = errors.New("database written by a newer hardcap")

	// ErrLocked is returned by Open when another process holds the
	// database: a second hardcap on the same data directory, or a db
	// command run while the server is up.
	ErrLocked = errors.New("database in use by another process")

	// ErrExists is returned by Salvage when the output file exists: it never
	// writes over a file.
	ErrExists = errors.New("output file exists")
)

// Errors of usage queries.
var (
	// ErrBadCursor is returned by Usage and StreamUsage for a Cursor that no
	// answer gave out.
	ErrBadCursor = errors.New("invalid usage cursor")
)

// Errors of settlement.
var (
	// ErrNotReserved is returned when settling a reservation that does not
	// exist: it was settled already, or never taken. Settlement happens
	// exactly once; a second attempt changes nothing. It is
	// budget.ErrNotReserved.
	ErrNotReserved = budget.ErrNotReserved

	// ErrAlertNotFound is returned for an alert id the outbox does not
	// hold.
	ErrAlertNotFound = errors.New("storage: no such alert")
)

// errCrashed answers the operations of a transaction that the dropCommits
// test hook kept from committing, as a crash would have.
var errCrashed = errors.New("storage: the transaction was dropped before its commit (test crash)")

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

// Errors of acknowledgements (acks.go).
var (
	// ErrInvalidAck is returned by Acknowledge for a key that is empty,
	// longer than MaxAckKey bytes or not printable UTF-8 text.
	ErrInvalidAck = errors.New("invalid acknowledgement key")
)

// Errors of the provider key ledger.
var (
	// ErrInvalidProviderKey is returned by SeeProviderKey and
	// AddUnauthorized for a read without a provider name or a key: nothing
	// is recorded.
	ErrInvalidProviderKey = errors.New("invalid provider key record")
)
