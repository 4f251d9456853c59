package tokens

import "errors"

// Errors of parsing a presented token.
var (
	// ErrMalformed is returned for a string that is not a hardcap token or
	// whose checksum does not match (a typo or a truncated copy).
	ErrMalformed = errors.New("malformed hardcap token")
)

// Errors of authorizing a request with a token.
var (
	// ErrUnknown is returned for a well-formed token no record matches.
	ErrUnknown = errors.New("unknown token")
	// ErrRevoked is returned for a token that has been revoked.
	ErrRevoked = errors.New("token revoked")
	// ErrRotated is returned for a secret replaced by a rotation whose
	// grace has ended.
	ErrRotated = errors.New("token rotated")
	// ErrExpired is returned for a token past its expiry.
	ErrExpired = errors.New("token expired")
	// ErrKilled is returned when the kill switch is on for everything, the
	// token's project or the token.
	ErrKilled = errors.New("kill switch on")
	// ErrModelNotAllowed is returned when a token's model list does not
	// include the requested model.
	ErrModelNotAllowed = errors.New("model not allowed for this token")
)

// Errors of managing projects and tokens.
var (
	// ErrInvalidName is returned for an empty or ill-formed project name or
	// token label.
	ErrInvalidName = errors.New("invalid name")
	// ErrInvalidText is returned for a token's owner or purpose that is too
	// long or not printable text (CheckText): free text, not a name, so it
	// has an error of its own.
	ErrInvalidText = errors.New("invalid text")
	// ErrProjectExists is returned when creating a project whose name is
	// taken.
	ErrProjectExists = errors.New("project already exists")
	// ErrProjectNotFound is returned for an unknown project name.
	ErrProjectNotFound = errors.New("project not found")
	// ErrTokenNotFound is returned for an unknown token id.
	ErrTokenNotFound = errors.New("token not found")
	// ErrProjectHasTokens is returned when deleting a project that still
	// has live (neither revoked nor expired) tokens, unless the deletion
	// revokes them.
	ErrProjectHasTokens = errors.New("project has live tokens")
	// ErrInvalidScope is returned for a token scope that cannot be used,
	// such as a negative requests-per-minute limit.
	ErrInvalidScope = errors.New("invalid token scope")
	// ErrInvalidExpiry is returned for a token lifetime that is not a
	// positive duration of at most MaxLifetime.
	ErrInvalidExpiry = errors.New("invalid token expiry")
	// ErrTokenFinal is returned for a change or a rotation of a token that
	// no longer allows it: a revoked token cannot be changed or rotated (a
	// revocation is final), an expired one cannot be rotated. It is a
	// mistake in what an operator asked for, not a refused credential, so it
	// is answered 409, never 401 like ErrRevoked.
	ErrTokenFinal = errors.New("token cannot be changed")
)

// Errors of rotating a token's secret.
var (
	// ErrInvalidGrace is returned for a rotation grace that is negative or
	// ends after the token expires.
	ErrInvalidGrace = errors.New("invalid rotation grace")
	// ErrInvalidRotation is returned for a rotation period that is not a
	// positive duration (or "never").
	ErrInvalidRotation = errors.New("invalid rotation period")
)
