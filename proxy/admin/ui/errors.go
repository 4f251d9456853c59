package ui

import "errors"

// Errors of the dashboard's calls to the admin API. An *APIError carries
// the admin API's own refusal.
var (
	// ErrAdminAnswer is an answer of the admin API the dashboard could not
	// read (not the JSON of its route, or larger than maxAdminBody).
	ErrAdminAnswer = errors.New("ui: unreadable admin API answer")
	// ErrAdminCut is an admin answer the admin API cut short after its
	// status was sent (a database failure in the middle of a usage
	// export).
	ErrAdminCut = errors.New("ui: admin API answer cut short")
)

// APIError is a refusal of the admin API: its status, code and public
// message, which the dashboard shows as they are.
type APIError struct {
	Status  int
	Code    string
	Message string
}

// Error is the admin API's message.
func (e *APIError) Error() string { return e.Message }
