// Package tokens holds hardcap's tenancy domain: projects, the tokens apps
// use instead of real provider keys, their format, hashing, lifecycle and
// scopes (allowed models, expiry, rate).
//
// It imports only the standard library.
package tokens
