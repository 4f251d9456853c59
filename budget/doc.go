// Package budget holds hardcap's money domain: amounts in nano-USD, token
// prices, usage counts, budget periods, spend, quotes and reservations.
//
// It imports only the standard library. Storage and HTTP adapters depend on
// it, never the other way round.
package budget
