package alert

import "errors"

// Errors of configuration.
var (
	// ErrInvalidAction is returned for an anomaly action that is not off,
	// alert or freeze, or freeze for a kind that has nothing to freeze.
	ErrInvalidAction = errors.New("invalid anomaly action")
)
