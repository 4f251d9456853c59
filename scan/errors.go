package scan

import "errors"

// Errors of naming what to scan.
var (
	// ErrNoPath is returned for a path to scan that does not exist.
	ErrNoPath = errors.New("no such file or directory")
	// ErrNotRepo is returned when a scan of history or of staged changes,
	// or a hook install, is asked for a directory that is not in a git
	// repository.
	ErrNotRepo = errors.New("not a git repository")
	// ErrNotRegular is returned for a path to scan that is neither a
	// directory nor a regular file (a FIFO, a device, a socket), or a
	// link to one: it is never opened, as reading a FIFO would block.
	ErrNotRegular = errors.New("not a regular file or directory")
	// ErrNoGit is returned when the git command is not installed.
	ErrNoGit = errors.New("git is not installed (install git, e.g. apt-get install git)")
)

// Errors of reading what is scanned. A walk reports these per file and
// goes on; the file's content is not scanned, so the scan is incomplete.
var (
	// ErrUnreadable is returned for a file or directory that could not be
	// read (permissions, I/O).
	ErrUnreadable = errors.New("cannot read")
	// ErrTooLarge is returned for a file larger than Options.MaxFileSize.
	ErrTooLarge = errors.New("file too large to scan")
	// ErrGit is returned when git fails while listing history or staged
	// changes.
	ErrGit = errors.New("git failed")
	// ErrDetector is returned when the rule engine fails on a file's
	// content; that content is treated as unscanned rather than clean.
	ErrDetector = errors.New("the secret detector failed")
)

// Errors of installing the pre-commit hook.
var (
	// ErrHookExists is returned when the repository already has a
	// pre-commit hook other than hardcap's; it is never overwritten.
	ErrHookExists = errors.New("a different pre-commit hook exists")
)
