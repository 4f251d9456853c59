package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"text/tabwriter"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/proxy/admin"
	"github.com/hardcap/hardcap/storage/postgres"
)

// clusterCommand is hardcap cluster status|forget: it reads the cluster
// store named by the config's cluster: section directly, so it works with
// every replica down.
func clusterCommand(ctx context.Context, args []string, stdout io.Writer) error {
	if len(args) == 0 {
		return usageError("cluster: want a subcommand: status, usage or forget REPLICA (see hardcap help cluster)")
	}
	sub, args := args[0], args[1:]
	fs := newFlagSet("cluster " + sub)
	config := fs.String("config", "", "config file with the cluster: section (default $HARDCAP_CONFIG)")
	jsonOut := fs.Bool("json", false, "print JSON")
	var force *bool
	var project, token, since *string
	want := 0
	switch sub {
	case "status":
	case "usage":
		project = fs.String("project", "", "only this project")
		token = fs.String("token", "", "only this token")
		since = fs.String("since", "", "only the last DURATION (24h, 7d); default everything shipped")
	case "forget":
		force = fs.Bool("force", false, "forget a replica whose lease has not ended (it may still be spending)")
		want = 1
	default:
		return usageError(fmt.Sprintf("cluster: unknown subcommand %q: want status, usage or forget", sub))
	}
	pos, err := parseFlags(fs, args, want)
	if err != nil {
		return err
	}
	cfg, err := loadConfig(*config)
	if err != nil {
		return err
	}
	set, err := cfg.Cluster.check()
	if err != nil {
		return err
	}
	if !set.on {
		return errors.New("cluster: the config has no cluster: section (pass --config FILE or set $HARDCAP_CONFIG)")
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	store, err := postgres.Open(ctx, postgres.Options{DSN: set.dsn, Operator: true})
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	defer store.Close()
	switch sub {
	case "forget":
		return clusterForget(ctx, store, pos[0], *force, *jsonOut, stdout)
	case "usage":
		f := postgres.UsageFilter{Project: *project, Token: *token}
		if *since != "" {
			d, err := admin.ParseDuration(*since)
			if err != nil {
				return usageError("cluster usage: --since: " + err.Error())
			}
			f.Since = time.Now().Add(-d)
		}
		return clusterUsage(ctx, store, f, *jsonOut, stdout)
	}
	reps, err := store.Replicas(ctx)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if *jsonOut {
		b, _ := json.MarshalIndent(map[string]any{"replicas": reps}, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	if len(reps) == 0 {
		fmt.Fprintln(stdout, "no replica has joined this cluster yet")
		return nil
	}
	now := time.Now()
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "REPLICA\tSTATE\tLAST CONTACT\tSLICES\tHELD USD\tCOMMITTED USD")
	for _, r := range reps {
		fmt.Fprintf(tw, "%s\t%s\t%s ago\t%d\t%s\t%s\n", r.ID, replicaState(r), now.Sub(r.Seen).Round(time.Second), r.Slices, r.Held, r.Committed)
	}
	tw.Flush()
	fmt.Fprintln(stdout, "\nHeld is granted to a replica beyond what it folded in: counted as spent until it folds it in or gives it back.")
	return nil
}

// clusterUsage prints the usage records every replica shipped, summed
// per project, token and model.
func clusterUsage(ctx context.Context, store *postgres.Store, f postgres.UsageFilter, jsonOut bool, stdout io.Writer) error {
	u, err := store.ClusterUsage(ctx, f)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if jsonOut {
		type row struct {
			Project  string       `json:"project"`
			Token    string       `json:"token_id"`
			Model    string       `json:"model"`
			Requests int64        `json:"requests"`
			Spent    budget.Money `json:"spent_usd"`
		}
		out := struct {
			Requests  int64        `json:"requests"`
			Spent     budget.Money `json:"spent_usd"`
			Truncated bool         `json:"truncated,omitempty"`
			Rows      []row        `json:"rows"`
		}{Requests: u.Records, Spent: u.Charged, Truncated: u.Truncated, Rows: []row{}}
		for _, r := range u.Rows {
			out.Rows = append(out.Rows, row{r.Project, r.Token, r.Model, r.Records, r.Charged})
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PROJECT\tTOKEN\tMODEL\tREQUESTS\tSPENT USD")
	for _, r := range u.Rows {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\n", r.Project, r.Token, r.Model, r.Records, r.Charged)
	}
	tw.Flush()
	fmt.Fprintf(stdout, "\n%d requests, %s USD, across the cluster (records reach the store within about a second of settling)\n", u.Records, u.Charged)
	if u.Truncated {
		fmt.Fprintf(stdout, "only the first %d rows are shown; narrow with --project, --token or --since\n", postgres.MaxUsageRows)
	}
	return nil
}

// replicaState says what a replica is doing, by its lease.
func replicaState(r postgres.ReplicaStatus) string {
	switch {
	case r.Forgotten != nil:
		return "forgotten"
	case r.Live:
		return "serving"
	case r.Held > 0:
		return "away, holding slices (restart it, or hardcap cluster forget)"
	default:
		return "stopped"
	}
}

// clusterForget charges a replica that will not come back: its slices
// count as spent in full and its id can never spend again.
func clusterForget(ctx context.Context, store *postgres.Store, id string, force, jsonOut bool, stdout io.Writer) error {
	reps, err := store.Replicas(ctx)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	var found *postgres.ReplicaStatus
	for i := range reps {
		if reps[i].ID == id {
			found = &reps[i]
		}
	}
	if found == nil {
		return fmt.Errorf("cluster: no replica %q in this cluster (see hardcap cluster status)", id)
	}
	if found.Live && !force {
		return fmt.Errorf("cluster: replica %s holds a lease until %s: it may still be spending; stop it first, or pass --force", id, found.LeaseUntil.UTC().Format(time.RFC3339))
	}
	charged, err := store.Forget(ctx, id)
	if err != nil {
		return fmt.Errorf("cluster: %w", err)
	}
	if jsonOut {
		b, _ := json.MarshalIndent(map[string]any{"replica": id, "charged_usd": charged}, "", "  ")
		fmt.Fprintf(stdout, "%s\n", b)
		return nil
	}
	fmt.Fprintf(stdout, "forgot replica %s: %s USD its slices held are charged as spent; it can never spend again (a new replica needs a new replica_id and an empty data dir)\n", id, charged)
	return nil
}
