package budget

import (
	"context"
	"time"
)

// Request describes one metered request: who made it and what it asked for.
// It travels with its reservation so that a crash leaves enough to write the
// usage record.
type Request struct {
	TokenID  string `json:"token_id"`
	Project  string `json:"project"`
	Provider string `json:"provider"`
	Model    string `json:"model"`
	Route    string `json:"route"`
	ClientIP string `json:"client_ip"`
	// UserAgent is the client's User-Agent header, clipped.
	UserAgent string `json:"user_agent,omitempty"`
	// OldSecret marks a request made with a token's previous secret during
	// a rotation's grace.
	OldSecret bool `json:"old_secret,omitempty"`
	// SecretHash is the SHA-256 of the secret the request was
	// authenticated with; the ledger refuses the reservation when a
	// rotation ended that secret after authentication. Zero skips the
	// check. Never stored.
	SecretHash [32]byte `json:"-"`
}

// Reservation is money held against one or more budget windows for a request
// in flight. It is taken before the request goes upstream and replaced by the
// actual charge exactly once.
type Reservation struct {
	// ID is unique among all reservations ever taken by one database.
	ID string `json:"id"`
	// Amount is the worst-case cost held, in nano-USD.
	Amount Money `json:"reserved_usd"`
	// OutputCap is the output cap per choice the request runs with.
	OutputCap int64 `json:"output_cap"`
	// Keys are the spend counters (Budget.Key) the amount is held in.
	Keys []string `json:"keys"`
	// Created is when the reservation was taken.
	Created time.Time `json:"created"`
	// Request is what the reservation is for.
	Request Request `json:"request"`
}

// Outcome says how a request ended, and so why it was charged what it was.
type Outcome string

// The outcomes a usage record can carry.
const (
	// Complete: the provider reported usage and it was charged exactly.
	Complete Outcome = "complete"
	// UpstreamRefused: the provider answered an error before any output;
	// nothing was charged.
	UpstreamRefused Outcome = "upstream_refused"
	// NotSent: the request never reached the provider; nothing was charged.
	NotSent Outcome = "not_sent"
	// UsageMissing: the response ended without usable usage (stream cut,
	// malformed body, transport error after sending); the full reservation
	// was charged.
	UsageMissing Outcome = "usage_missing"
	// Recovered: hardcap stopped before settling; the full reservation was
	// charged when it started again.
	Recovered Outcome = "recovered"
	// Killed: the kill switch (or a revocation) cut the request after it
	// was sent; its usage was charged if the provider had reported it, the
	// full reservation otherwise.
	Killed Outcome = "killed"
)

// Settlement is the actual result of a request.
type Settlement struct {
	// Charged is the amount to commit, in nano-USD.
	Charged Money
	// Usage is what the provider reported; zero when it reported nothing.
	Usage Usage
	// Status is the HTTP status the client was sent.
	Status int
	// Outcome says why Charged is what it is.
	Outcome Outcome
	// Latency is the time from receiving the request to its end.
	Latency time.Duration
	// Ended is when the request ended.
	Ended time.Time
	// RequestID is the provider's id for the request, when it gave one.
	RequestID string
}

// Record is the usage record of one request, written when it settles.
type Record struct {
	Time          time.Time `json:"time"`
	ReservationID string    `json:"id"`
	Request
	Status    int     `json:"status"`
	Outcome   Outcome `json:"outcome"`
	Usage     Usage   `json:"usage"`
	Reserved  Money   `json:"reserved_usd"`
	Charged   Money   `json:"charged_usd"`
	LatencyMS int64   `json:"latency_ms"`
	// RequestID is the provider's id for the request (its x-request-id or
	// request-id header), when it gave one.
	RequestID string `json:"request_id,omitempty"`
}

// NewRecord combines a reservation and its settlement into a usage record.
func NewRecord(r Reservation, s Settlement) Record {
	return Record{
		Time:          s.Ended,
		ReservationID: r.ID,
		Request:       r.Request,
		Status:        s.Status,
		Outcome:       s.Outcome,
		Usage:         s.Usage,
		Reserved:      r.Amount,
		Charged:       s.Charged,
		LatencyMS:     s.Latency.Milliseconds(),
		RequestID:     s.RequestID,
	}
}

// Ledger takes reservations and settles them. storage.DB is the
// implementation; the proxy depends only on this interface.
type Ledger interface {
	// Reserve atomically and durably takes q's worst case (clamped when the
	// ledger is set to) from every budget the request counts against.
	Reserve(ctx context.Context, r Request, q Quote) (Reservation, error)
	// Settle replaces reservation id with the actual charge, exactly once.
	Settle(ctx context.Context, id string, s Settlement) (Record, error)
}
