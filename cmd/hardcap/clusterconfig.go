package main

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// ClusterConfig makes this hardcap a replica of a cluster: replicas share
// every budget, token, kill switch and usage record through PostgreSQL,
// each reserving requests locally against budget slices it is granted.
// Without it hardcap is one node with its own ledger.
type ClusterConfig struct {
	Postgres ClusterPostgresConfig `yaml:"postgres"`
	// ReplicaID names this replica, unique in the cluster and kept across
	// restarts (its slices and its ledger go together): letters, digits,
	// '-', '_' and '.', up to 64.
	ReplicaID string `yaml:"replica_id"`
	// Lease is how long a replica that lost the store may go on spending
	// the slices it holds (less a fifth for clock skew); it bounds how
	// late a kill or revoke reaches a cut-off replica. Default 10s.
	Lease time.Duration `yaml:"lease"`
}

// ClusterPostgresConfig is where the cluster store is: dsn, or dsn_source
// (env:NAME or file:PATH) to keep the password out of the config file.
type ClusterPostgresConfig struct {
	DSN       string `yaml:"dsn"`
	DSNSource string `yaml:"dsn_source"`
}

// clusterSettings is cluster:, checked; on false without it.
type clusterSettings struct {
	on      bool
	dsn     string
	replica string
	lease   time.Duration
}

var clusterReplicaName = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

func (c ClusterConfig) configured() bool {
	return c.Postgres.DSN != "" || c.Postgres.DSNSource != "" || c.ReplicaID != "" || c.Lease != 0
}

// check validates cluster: and reads the DSN. Errors never quote the DSN.
func (c ClusterConfig) check() (clusterSettings, error) {
	if !c.configured() {
		return clusterSettings{}, nil
	}
	s := clusterSettings{on: true, replica: c.ReplicaID, lease: c.Lease}
	switch {
	case c.Postgres.DSN != "" && c.Postgres.DSNSource != "":
		return s, errors.New("config: cluster.postgres: set dsn or dsn_source, not both")
	case c.Postgres.DSN == "" && c.Postgres.DSNSource == "":
		return s, errors.New("config: cluster.postgres.dsn (or dsn_source: env:NAME) is required")
	case c.Postgres.DSN != "":
		s.dsn = c.Postgres.DSN
	default:
		if !strings.HasPrefix(c.Postgres.DSNSource, "env:") && !strings.HasPrefix(c.Postgres.DSNSource, "file:") {
			return s, errors.New("config: cluster.postgres.dsn_source: want env:NAME or file:PATH")
		}
		var err error
		if s.dsn, err = readCredential(c.Postgres.DSNSource); err != nil {
			return s, fmt.Errorf("config: cluster.postgres.dsn_source: %w", err)
		}
		s.dsn = strings.TrimSpace(s.dsn)
	}
	if u, err := url.Parse(s.dsn); err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return s, errors.New("config: cluster.postgres: the DSN must be a URL postgres://user:password@host:port/database")
	}
	if !clusterReplicaName.MatchString(c.ReplicaID) {
		return s, errors.New("config: cluster.replica_id is required: 1 to 64 letters, digits, '-', '_' or '.', unique in the cluster")
	}
	if c.Lease == 0 {
		s.lease = 10 * time.Second
	}
	if s.lease < 2*time.Second || s.lease > 10*time.Minute {
		return s, errors.New("config: cluster.lease must be between 2s and 10m")
	}
	return s, nil
}
