package cluster

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/internal/pgtest"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/storage/postgres"
	"github.com/hardcap/hardcap/tokens"
	"github.com/rs/zerolog"
)

// Environment of the crash child (TestOutboxCrashChild).
const (
	crashChild = "HARDCAP_OUTBOX_CRASH_CHILD"
	crashDSN   = "HARDCAP_OUTBOX_CRASH_DSN"
)

// A replica killed with SIGKILL while it settles requests and ships them:
// after the restart and a Drain, the cluster store has each record of the
// ledger once. Every request reserves and is charged 1 nano-USD (a
// recovered one too), so the ledger's global committed spend is its
// number of records.
func TestOutboxSurvivesKill9(t *testing.T) {
	srv := pgtest.Start(t)
	dsn := srv.NewDatabase(t)
	path := filepath.Join(t.TempDir(), "hardcap.db")
	for round := range 3 {
		cmd := exec.Command(os.Args[0], "-test.run=^TestOutboxCrashChild$")
		cmd.Env = append(os.Environ(), crashChild+"="+path, crashDSN+"="+dsn)
		out, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		cmd.Stderr = os.Stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		// Kill it after a few hundred settlements, with shipping going on.
		sc := bufio.NewScanner(out)
		lines := 0
		for lines < 300+100*round && sc.Scan() {
			lines++
		}
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		if lines < 300+100*round {
			t.Fatalf("round %d: the child stopped after %d settlements", round, lines)
		}
	}

	db, err := storage.Open(path, storage.Options{Outbox: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	pg, err := postgres.Open(bg, postgres.Options{DSN: dsn, Replica: "a"})
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	shipped, err := pg.ClusterUsage(bg, postgres.UsageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if err := NewOutbox(pg, db, zerolog.Nop()).Drain(bg); err != nil {
		t.Fatal(err)
	}
	st, err := db.Status()
	if err != nil {
		t.Fatal(err)
	}
	u, err := pg.ClusterUsage(bg, postgres.UsageFilter{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d records in the ledger, %d shipped before the last Drain", st.Global.Committed, shipped.Records)
	if shipped.Records == 0 {
		t.Error("the child shipped nothing before it was killed: the test did not test shipping under a kill")
	}
	if u.Records != int64(st.Global.Committed) || u.Charged != st.Global.Committed {
		t.Fatalf("the cluster store has %d records charged %d; the ledger has %d", u.Records, u.Charged, st.Global.Committed)
	}
	wantShipped(t, pg, "a", int(u.Records), u.Charged)
}

// TestOutboxCrashChild is the replica TestOutboxSurvivesKill9 kills: it
// settles requests, printing a line after each, while an Outbox ships
// them every millisecond, until it is killed.
func TestOutboxCrashChild(t *testing.T) {
	path := os.Getenv(crashChild)
	if path == "" {
		t.Skip("run by TestOutboxSurvivesKill9")
	}
	db, err := storage.Open(path, storage.Options{Outbox: true})
	if err != nil {
		t.Fatal(err)
	}
	// A later round finds the project there.
	if _, err := db.CreateProject(bg, "web", budget.Limit{}); err != nil && !errors.Is(err, tokens.ErrProjectExists) {
		t.Fatal(err)
	}
	tok, _, err := db.CreateToken(bg, storage.TokenSpec{Project: "web"})
	if err != nil {
		t.Fatal(err)
	}
	pg, err := postgres.Open(bg, postgres.Options{DSN: os.Getenv(crashDSN), Replica: "a"})
	if err != nil {
		t.Fatal(err)
	}
	o := NewOutbox(pg, db, zerolog.Nop())
	o.interval = time.Millisecond
	go o.Run(context.Background())
	w := bufio.NewWriter(os.Stdout)
	for i := 0; ; i++ {
		res, err := db.Reserve(bg, budget.Request{TokenID: tok.ID, Model: "m"}, budget.Quote{MaxOutput: 1, OutputRate: 1_000_000})
		if err != nil {
			t.Fatal(err)
		}
		if i%10 == 9 {
			// Left open: the restart charges it in full (1).
			continue
		}
		if _, err := db.Settle(bg, res.ID, budget.Settlement{Charged: 1, Status: 200, Outcome: budget.Complete, Ended: time.Now()}); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintln(w, i)
		w.Flush()
	}
}
