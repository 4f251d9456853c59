// Package storagetest is the conformance suite of hardcap's ledgers: one
// set of tests, written once, that every store passes — the single-node
// store (storage.DB) and the cluster store (cluster.Escrow over a
// storage.DB in escrow mode) alike. A store's own test package calls Run
// with a function that builds a fresh Subject.
package storagetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
)

// Setup is what one test needs of a new ledger.
type Setup struct {
	// Global is the global budget's limit; the zero value is no limit.
	Global budget.Limit
	// OnLow says whether a request whose worst case does not fit is
	// clamped or refused; empty is the store's default (budget.Clamp).
	OnLow budget.OnLow
	// Now is the ledger's clock (storage.Options.Now); nil is time.Now.
	Now func() time.Time
}

// Subject is one ledger under test and what the tests reach under it.
type Subject struct {
	// Ledger is the ledger under test.
	Ledger budget.Ledger
	// DB is the storage.DB underneath Ledger: projects, tokens, limits,
	// kill switches and spend are set and read through it.
	DB *storage.DB
	// Crash simulates a crash: it stops the subject without settling its
	// open reservations and without anything a clean stop does (no slice
	// given back to a cluster store), reopens the same file (rejoining as
	// the same replica) and returns the reopened subject. The subject it
	// is called on is not used again.
	Crash func(t *testing.T) Subject
	// Peer, when not nil, starts another replica that shares this
	// subject's budgets (the same cluster store, its own ledger file);
	// nil for a single-node store, whose tests of replicas are skipped.
	// The peer is stopped when the test ends.
	Peer func(t *testing.T) Subject
	// Gaps names the checks this store is known to fail (see the Gap
	// constants), each with the reason: the suite skips them, saying so,
	// until the store is fixed.
	Gaps map[string]string
}

// The checks a store may list in Subject.Gaps.
const (
	// GapClampFills: a clamped request reserves all that is left.
	GapClampFills = "clamp fills what is left"
	// GapLimitChange: a limit changed on a replica binds the cluster's
	// shared budget (raised, more may be spent; lowered, the replicas
	// together stay under it).
	GapLimitChange = "a changed limit binds the shared budget"
)

// gap skips the rest of t when s is known to fail the check name.
func (s Subject) gap(t *testing.T, name string) {
	t.Helper()
	if why, ok := s.Gaps[name]; ok {
		t.Skipf("known gap of this store, %q: %s", name, why)
	}
}

// ctx is the context of the suite's calls; each test ends its own calls
// before it returns.
var ctx = context.Background()

// Project creates project name with limit in the subject's ledger (a
// project that exists already is kept as it is).
func (s Subject) Project(t *testing.T, name string, limit budget.Limit) {
	t.Helper()
	if _, err := s.DB.CreateProject(ctx, name, limit); err != nil && !errors.Is(err, tokens.ErrProjectExists) {
		t.Fatalf("create project %s: %v", name, err)
	}
}

// Token creates a token of project with limit.
func (s Subject) Token(t *testing.T, project string, limit budget.Limit) tokens.Token {
	t.Helper()
	tok, _, err := s.DB.CreateToken(ctx, storage.TokenSpec{Project: project, Limit: limit})
	if err != nil {
		t.Fatalf("create token of %s: %v", project, err)
	}
	return tok
}

// Spend is the committed and reserved spend of scope's current window in
// the subject's ledger.
func (s Subject) Spend(t *testing.T, scope budget.Scope) budget.Spend {
	t.Helper()
	st, err := s.DB.BudgetStatus(scope)
	if err != nil {
		t.Fatalf("budget status of %s: %v", scope, err)
	}
	return st.Spend
}

// Recorded is what this subject's own ledger recorded for project (in a
// cluster, BudgetStatus also counts what the other replicas folded in).
func (s Subject) Recorded(t *testing.T, project string) budget.Money {
	t.Helper()
	u, err := s.DB.Usage(storage.RecordFilter{Project: project})
	if err != nil {
		t.Fatalf("usage of %s: %v", project, err)
	}
	return u.Spent
}

// Reserve reserves a request of tok whose worst case is n nano-USD.
func (s Subject) Reserve(tok tokens.Token, n int64) (budget.Reservation, error) {
	return s.Ledger.Reserve(ctx, Request(tok), Flat(n))
}

// Request is a request of tok.
func Request(tok tokens.Token) budget.Request {
	return budget.Request{TokenID: tok.ID, Project: tok.Project, Provider: "openai", Model: "m", Route: "/v1/chat/completions"}
}

// Flat is a quote of n output tokens at 1 nano-USD each and nothing
// else: its worst case is n nano-USD, and clamping it to a cap of c
// tokens reserves c nano-USD.
func Flat(n int64) budget.Quote { return budget.Quote{MaxOutput: n, OutputRate: 1_000_000} }

// Run runs the suite, each test with a fresh ledger from newLedger.
func Run(t *testing.T, newLedger func(t *testing.T, opts Setup) Subject) {
	for _, tt := range []struct {
		name string
		run  func(t *testing.T, newLedger func(*testing.T, Setup) Subject)
	}{
		{"settle moves reserved to committed, once", testSettle},
		{"a request that does not fit", testDoesNotFit},
		{"the tightest budget binds", testTightest},
		{"zero and unlimited budgets", testZeroAndUnlimited},
		{"a changed limit binds", testLimitChange},
		{"a new period window starts empty", testPeriod},
		{"concurrent reservations never pass the limit", testConcurrent},
		{"an overshoot counts against the budget", testOvershoot},
		{"a crash charges open reservations in full", testCrash},
		{"kill switches and revoked tokens refuse", testKillRevoke},
		{"replicas share a budget", testPeers},
	} {
		t.Run(tt.name, func(t *testing.T) { tt.run(t, newLedger) })
	}
}

// wantExhausted fails t unless err is a refusal for want of budget that
// names scope.
func wantExhausted(t *testing.T, err error, scope budget.Scope) {
	t.Helper()
	if !errors.Is(err, budget.ErrExhausted) {
		t.Fatalf("got %v, want budget.ErrExhausted", err)
	}
	var ex *budget.ExhaustedError
	if !errors.As(err, &ex) {
		t.Fatalf("got %T (%v), want a *budget.ExhaustedError", err, err)
	}
	if ex.Scope != scope {
		t.Fatalf("refusal names %s, want %s (%v)", ex.Scope, scope, err)
	}
}

// wantSpend fails t unless scope's window holds want.
func wantSpend(t *testing.T, s Subject, scope budget.Scope, want budget.Spend) {
	t.Helper()
	if got := s.Spend(t, scope); got != want {
		t.Fatalf("%s: got committed %d reserved %d, want committed %d reserved %d", scope, got.Committed, got.Reserved, want.Committed, want.Reserved)
	}
}

// spendAll reserves n and settles it in full.
func spendAll(t *testing.T, s Subject, tok tokens.Token, n int64) {
	t.Helper()
	res, err := s.Reserve(tok, n)
	if err != nil {
		t.Fatalf("reserve %d: %v", n, err)
	}
	if _, err := s.Ledger.Settle(ctx, res.ID, budget.Settlement{Charged: res.Amount, Outcome: budget.Complete}); err != nil {
		t.Fatalf("settle %d: %v", n, err)
	}
}
