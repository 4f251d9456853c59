package postgres

import "errors"

// Errors of Open.
var (
	// ErrNoReplica is an Options.Replica that is empty or too long.
	ErrNoReplica = errors.New("postgres: replica_id must be 1 to 64 letters, digits, '-', '_' or '.'")
	// ErrForgotten is a replica id that hardcap cluster forget charged in
	// full: it may never spend again.
	ErrForgotten = errors.New("postgres: this replica_id was forgotten (hardcap cluster forget charged its slices in full); start the replica with a new replica_id and an empty data dir")
	// ErrNewerSchema is a database migrated by a newer hardcap.
	ErrNewerSchema = errors.New("postgres: the database's schema is newer than this hardcap knows; upgrade hardcap")
)

// Errors of the escrow.
var (
	// ErrNoRoom is a grant refused: the window's limit leaves less than
	// the minimum asked for.
	ErrNoRoom = errors.New("postgres: the budget has no room for the slice")
	// ErrNoLimit is a grant for a scope with no limit row: SetLimit first.
	ErrNoLimit = errors.New("postgres: the scope has no limit in the cluster store")
	// ErrBadAmount is a negative amount, or a give-back larger than what
	// the slice holds above its committed spend.
	ErrBadAmount = errors.New("postgres: bad amount")
)
