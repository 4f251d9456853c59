// Package cluster runs a replica of hardcap in a cluster: replicas share
// every budget, token, kill switch and usage record through the cluster
// store (storage/postgres). Each replica reserves requests in its own
// ledger against budget slices the store grants it (Escrow), so the
// invariant committed + reserved <= limit holds across replicas with no
// round trip per request.
package cluster

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/storage/postgres"
	"github.com/rs/zerolog"
)

// Options configures Open.
type Options struct {
	// DSN is the cluster store's connection string; Replica this
	// replica's id, unique in the cluster.
	DSN     string
	Replica string
	// Global is the global budget's limit (budget.global).
	Global budget.Limit
	// Escrow tunes the budget slices; the zero value is the default.
	Escrow EscrowOptions
	// Timeout bounds each statement; default 5s.
	Timeout time.Duration
	Log     zerolog.Logger
	// Feed is where the ledger's change feed goes (its Changed was given
	// to storage.Options.Changed); nil: changes made on this replica are
	// published only at its next start.
	Feed *Feed
	// OnRemote is told each tenancy record applied from another replica
	// (to cut the requests in flight a remote kill or revoke stopped).
	OnRemote func(storage.MirrorRecord)
	// OnReplicas is told how many replicas hold a live lease, after each
	// renewal of this one's (to share per-token rate limits); nil: none.
	OnReplicas func(live int)
}

// Node is a running replica's part in the cluster.
type Node struct {
	Store   *postgres.Store
	Escrow  *Escrow
	Tenancy *Tenancy
	// Outbox ships the ledger's usage records (opened with
	// storage.Options.Outbox) to the store.
	Outbox     *Outbox
	stopOutbox context.CancelFunc
	outboxDone chan struct{}
}

// Feed carries the ledger's change feed to the cluster's tenancy, which
// exists only once the ledger is open: give Changed to
// storage.Options.Changed and the Feed to Options.Feed.
type Feed struct{ t atomic.Pointer[Tenancy] }

// Changed is storage.Options.Changed.
func (f *Feed) Changed(kind, target string) { f.t.Load().Changed(kind, target) }

// Open connects to the cluster store (applying its migrations), registers
// the replica, replays what its ledger db (opened in escrow mode) spent
// into the store, and takes the lease on its slices.
func Open(ctx context.Context, db *storage.DB, opts Options) (*Node, error) {
	var pg *postgres.Store
	for {
		var err error
		pg, err = postgres.Open(ctx, postgres.Options{DSN: opts.DSN, Replica: opts.Replica, Timeout: opts.Timeout, GrantShare: 4})
		var held *postgres.LeaseHeldError
		if !errors.As(err, &held) {
			if err != nil {
				return nil, err
			}
			break
		}
		// Restarted within the lease of its last run (a crash): that run
		// may be taken to have stopped only once its lease has ended.
		opts.Log.Warn().Dur("wait", held.Left).Msg("cluster: this replica_id's lease from its last run has not ended; waiting for it (if another process runs with this replica_id, stop one)")
		select {
		case <-ctx.Done():
			return nil, err
		case <-time.After(held.Left + 50*time.Millisecond):
		}
	}
	n := &Node{Store: pg, Escrow: NewEscrow(pg, db, opts.Global, opts.Log, opts.Escrow), Tenancy: NewTenancy(pg, db, opts.Replica, opts.Log)}
	n.Tenancy.OnApply = opts.OnRemote
	if opts.Feed != nil {
		opts.Feed.t.Store(n.Tenancy)
	}
	// Projects, tokens and kill switches first: the replica must not
	// serve with an old view of them.
	if err := n.Tenancy.Start(ctx); err != nil {
		pg.Close()
		return nil, err
	}
	go n.Tenancy.Run(context.Background())
	n.Escrow.onReplicas = opts.OnReplicas
	n.Escrow.catchUp = n.Tenancy.CatchUp
	n.Escrow.published = n.Tenancy.Published
	if err := n.Escrow.Start(ctx); err != nil {
		n.Tenancy.Close()
		pg.Close()
		return nil, err
	}
	n.Outbox = NewOutbox(pg, db, opts.Log)
	octx, cancel := context.WithCancel(context.Background())
	n.stopOutbox, n.outboxDone = cancel, make(chan struct{})
	go func() {
		defer close(n.outboxDone)
		n.Outbox.Run(octx)
	}()
	return n, nil
}

// Close gives the slices back (call it once the requests in flight have
// settled), ends the lease and disconnects.
func (n *Node) Close(ctx context.Context) error {
	err := n.Escrow.Close(ctx)
	n.stopOutbox()
	<-n.outboxDone
	// What is left in the outbox stays in the ledger for the next start.
	derr := n.Outbox.Drain(ctx)
	n.Tenancy.Close()
	n.Store.Close()
	return errors.Join(err, derr)
}

// State is the escrow's State with the outbox's backlog.
func (n *Node) State() State {
	st := n.Escrow.State()
	st.RecordsToShip = n.Outbox.Waiting()
	return st
}
