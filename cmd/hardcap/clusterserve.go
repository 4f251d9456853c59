package main

import (
	"context"
	"fmt"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/cluster"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
)

// joinCluster connects to the cluster store, replays this replica's
// ledger into it and takes the lease on its slices.
func (m *Main) joinCluster(set settings) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	node, err := cluster.Open(ctx, m.db, cluster.Options{
		DSN: set.cluster.dsn, Replica: set.cluster.replica, Global: set.global,
		Escrow: cluster.EscrowOptions{Lease: set.cluster.lease},
		Log:    m.log,
		Feed:   &m.clusterFeed,
		// A kill or revoke made on another replica cuts what runs here.
		OnRemote: func(r storage.MirrorRecord) {
			p := m.cutter.Load()
			if p == nil {
				return
			}
			switch {
			case r.Token != nil && (r.Token.Killed || !r.Token.Revoked.IsZero()):
				p.Cut(proxy.CutTarget{TokenID: r.Token.ID})
			case r.Project != nil && r.Project.Killed:
				p.Cut(proxy.CutTarget{Project: r.Project.Name})
			case r.Deleted && r.Kind == storage.MirrorProject:
				p.Cut(proxy.CutTarget{Project: r.ID})
			case r.Kind == storage.MirrorAll && r.KillAll:
				p.Cut(proxy.CutTarget{})
			}
		},
		OnReplicas: func(live int) {
			if p := m.cutter.Load(); p != nil {
				p.SetRateShare(live)
			}
		},
	})
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	m.cluster = node
	m.log.Info().Str("replica", set.cluster.replica).Dur("lease", set.cluster.lease).Msg("joined the cluster")
	return nil
}

// leaveCluster gives the slices back and ends the lease; the requests in
// flight must have settled.
func (m *Main) leaveCluster() {
	if m.cluster == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.cluster.Close(ctx); err != nil {
		m.log.Warn().Err(err).Msg("cluster: slices not all given back; the next start of this replica folds them in")
	} else {
		m.log.Info().Msg("left the cluster: slices given back")
	}
	m.cluster = nil
}

// alertOutbox is the alert outbox the delivery reads: in a cluster, one
// where an alert every replica raises for the same event is sent once.
func (m *Main) alertOutbox() alert.Outbox {
	if m.cluster == nil {
		return m.db
	}
	return &cluster.OnceOutbox{Outbox: m.db, Store: m.cluster.Store, Log: m.log}
}
