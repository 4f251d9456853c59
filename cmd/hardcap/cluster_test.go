package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/pgtest"
)

// Two replicas in this process share one project budget through a real
// PostgreSQL: each answers until the shared budget is spent, together
// they never pass it, and hardcap cluster status and forget see them.
func TestCluster_TwoReplicasShareABudget(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	clusterCfg := func(id string) string {
		return fmt.Sprintf("cluster:\n  postgres: {dsn: %q}\n  replica_id: %s\n  lease: 3s\n", dsn, id)
	}
	a, b := startServer(t, clusterCfg("a")), startServer(t, clusterCfg("b"))
	const limit = "0.002"
	var toks []string
	a.mustCLI("project", "create", "web", "--budget", limit)
	// The project reaches b through the cluster store.
	waitFor(t, "the project on b", func() bool {
		out, err := b.cli("project", "list")
		return err == nil && strings.Contains(out, "web")
	})
	for _, s := range []*server{a, b} {
		var created struct {
			Token string `json:"token"`
		}
		decodeJSON(t, s.mustCLI("token", "create", "--project", "web", "--json"), &created)
		toks = append(toks, created.Token)
	}
	served := map[string]int{}
	refused := 0
	for i := 0; refused < 6 && i < 2000; i++ {
		s, tok := a, toks[0]
		if i%2 == 1 {
			s, tok = b, toks[1]
		}
		code, body := chat(t, s.url, tok, hello)
		switch code {
		case 200:
			served[s.main.Config.Cluster.ReplicaID]++
		case 402:
			refused++
		default:
			t.Fatalf("chat got %d: %s", code, body)
		}
	}
	if served["a"] == 0 || served["b"] == 0 {
		t.Fatalf("served %v: both replicas should have spent the budget", served)
	}
	var spent budget.Money
	for _, s := range []*server{a, b} {
		var usage struct {
			Spent budget.Money `json:"spent_usd"`
		}
		decodeJSON(t, s.mustCLI("usage", "--project", "web", "--json"), &usage)
		spent += usage.Spent
	}
	ceiling, _ := budget.ParseUSD(limit)
	t.Logf("served %v; spent %s of %s", served, spent, ceiling)
	if spent > ceiling {
		t.Fatalf("two replicas spent %s of a %s budget", spent, ceiling)
	}
	if spent < ceiling*95/100 {
		t.Errorf("two replicas spent only %s of %s: the rest was stranded in a slice", spent, ceiling)
	}

	// Every record reaches the store: the cluster's usage is both
	// replicas' own.
	opsCfg := filepath.Join(t.TempDir(), "ops.yaml")
	if err := os.WriteFile(opsCfg, []byte(clusterCfg("ops")), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "every record in the store", func() bool {
		out, err := offline("cluster", "usage", "--config", opsCfg, "--json")
		if err != nil {
			t.Fatal(err)
		}
		var u struct {
			Requests int          `json:"requests"`
			Spent    budget.Money `json:"spent_usd"`
		}
		decodeJSON(t, out, &u)
		return u.Requests == served["a"]+served["b"] && u.Spent == spent
	})
	// A budget change on a reaches b; a kill on b stops a's requests.
	a.mustCLI("project", "set", "web", "--budget", "1")
	waitFor(t, "the budget on b", func() bool {
		out, err := b.cli("project", "list")
		return err == nil && strings.Contains(out, "1.000000")
	})
	b.mustCLI("kill", "--project", "web")
	waitFor(t, "the kill on a", func() bool {
		code, _ := chat(t, a.url, toks[0], hello)
		return code == 403
	})
	b.mustCLI("resume", "--project", "web")
	last := ""
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := chat(t, a.url, toks[0], hello)
		if code == 200 {
			break
		}
		if body != last {
			t.Logf("after the resume: %d %s", code, body)
			last = body
		}
		if time.Now().After(deadline) {
			t.Fatal("the resume did not reach a")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st := a.mustCLI("status"); !strings.Contains(st, "cluster: replica a; store reachable; lease ") {
		t.Fatalf("status of a replica:\n%s", st)
	}
	cfgPath := filepath.Join(t.TempDir(), "ops.yaml")
	if err := os.WriteFile(cfgPath, []byte(clusterCfg("ops")), 0o600); err != nil {
		t.Fatal(err)
	}
	status, err := offline("cluster", "status", "--config", cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(status, "a ") || !strings.Contains(status, "serving") {
		t.Fatalf("cluster status:\n%s", status)
	}
	if out, err := offline("cluster", "forget", "b", "--config", cfgPath); err == nil || !strings.Contains(err.Error(), "lease") {
		t.Fatalf("forget of a serving replica: %v %s", err, out)
	}
	b.stop()
	out, err := offline("cluster", "forget", "b", "--config", cfgPath)
	if err != nil || !strings.Contains(out, "forgot replica b") {
		t.Fatalf("forget: %v %s", err, out)
	}
	if strings.Contains(status+out, "password") {
		t.Fatal("the DSN's password was printed")
	}
}

// offline runs a hardcap command that needs no server.
func offline(args ...string) (string, error) {
	code, out, errOut := runCLI(args...)
	if code != 0 {
		return out, fmt.Errorf("exit %d: %s", code, errOut)
	}
	return out, nil
}
