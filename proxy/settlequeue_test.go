package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
)

// errDiskFull is what a full disk looks like to the ledger.
var errDiskFull = errors.New("write hardcap.db: no space left on device")

// flakySettleLedger fails every Settle with the error in fail while it is
// set, as a ledger on a full disk does; Reserve works throughout.
type flakySettleLedger struct {
	budget.Ledger
	fail  atomic.Pointer[error]
	tries atomic.Int64
}

func (l *flakySettleLedger) failWith(err error) {
	if err == nil {
		l.fail.Store(nil)
		return
	}
	l.fail.Store(&err)
}

func (l *flakySettleLedger) Settle(ctx context.Context, id string, s budget.Settlement) (budget.Record, error) {
	l.tries.Add(1)
	if err := l.fail.Load(); err != nil {
		return budget.Record{}, *err
	}
	return l.Ledger.Settle(ctx, id, s)
}

// waitFor polls cond until it holds, failing the test after 10 seconds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// flakyHarness is a harness whose ledger fails settlements on demand.
func flakyHarness(t *testing.T, retry, retryMax time.Duration) (*harness, *flakySettleLedger) {
	t.Helper()
	fl := &flakySettleLedger{}
	h := newHarness(t, harnessOptions{noSync: true, settleRetry: retry, settleRetryMax: retryMax,
		ledger: func(l budget.Ledger) budget.Ledger { fl.Ledger = l; return fl }})
	return h, fl
}

// TestSettleQueue_RetriesUntilLanded: a settlement that cannot be written
// (a full disk) keeps its reservation held and is retried for as long as
// it takes, far past the five tries of old; once storage works it lands
// with its real usage, not the full reservation. status counts it while it
// waits, and the log says so once at error and once at info.
func TestSettleQueue_RetriesUntilLanded(t *testing.T) {
	h, fl := flakyHarness(t, time.Millisecond, 4*time.Millisecond)
	fl.failWith(errDiskFull)
	readAll(t, h.post("/v1/chat/completions", `{"model":"gpt-4o-mini","stream":true,"max_tokens":30,"messages":[{"role":"user","content":"Hi"}]}`))
	waitFor(t, "twenty settlement tries", func() bool { return fl.tries.Load() >= 20 })

	n, held := h.p.SettlementsWaiting()
	bs, err := h.db.BudgetStatus(budget.ProjectScope(h.project))
	if err != nil {
		t.Fatal(err)
	}
	if n != 1 || held == 0 || held != bs.Reserved || bs.Committed != 0 {
		t.Fatalf("waiting %d holding %s, ledger reserved %s committed %s; want 1 holding its reservation", n, held, bs.Reserved, bs.Committed)
	}
	if got := strings.Count(h.logs.String(), "settlement not recorded"); got != 1 {
		t.Fatalf("the first failure was logged %d times, want once", got)
	}
	if !strings.Contains(h.logs.String(), `"level":"error"`) {
		t.Fatal("the failure was not logged at error")
	}

	fl.failWith(nil)
	rec := h.records(1)[0]
	u := h.up.Calls()[0].Usage
	if want := price(t, u.PromptTokens, u.CompletionTokens, miniIn, miniOut); rec.Charged != want || rec.Outcome != budget.Complete {
		t.Fatalf("landed charged %s (%s), want the real usage's %s", rec.Charged, rec.Outcome, want)
	}
	waitFor(t, "the queue to empty", func() bool { n, _ := h.p.SettlementsWaiting(); return n == 0 })
	if bs, _ := h.db.BudgetStatus(budget.ProjectScope(h.project)); bs.Reserved != 0 || bs.Committed != rec.Charged {
		t.Fatalf("after landing reserved %s committed %s, want 0 and %s", bs.Reserved, bs.Committed, rec.Charged)
	}
	if !strings.Contains(h.logs.String(), "settlement recorded after retrying") {
		t.Fatal("the landing was not logged")
	}
}

// TestSettleQueue_EndsWhenItCannotLand: a closed ledger or a reservation
// that is no longer open ends the tries for that settlement.
func TestSettleQueue_EndsWhenItCannotLand(t *testing.T) {
	for _, final := range []error{budget.ErrLedgerClosed, budget.ErrNotReserved} {
		t.Run(final.Error(), func(t *testing.T) {
			h, fl := flakyHarness(t, time.Millisecond, 4*time.Millisecond)
			fl.failWith(errDiskFull)
			readAll(t, h.post("/v1/chat/completions", helloBody))
			waitFor(t, "the settlement to wait", func() bool { n, _ := h.p.SettlementsWaiting(); return n == 1 })
			fl.failWith(fmt.Errorf("settle: %w", final))
			waitFor(t, "the queue to give up", func() bool { n, _ := h.p.SettlementsWaiting(); return n == 0 })
			tries := fl.tries.Load()
			fl.failWith(nil)
			// Nothing is left to retry: a flush tries nothing.
			if n, _ := h.p.FlushSettlements(context.Background()); n != 0 || fl.tries.Load() != tries {
				t.Fatalf("after giving up: %d waiting, %d more tries; want none", n, fl.tries.Load()-tries)
			}
			if !strings.Contains(h.logs.String(), "settlement given up") {
				t.Fatal("giving up was not logged")
			}
		})
	}
}

// TestSettleQueue_FlushAtShutdown: shutdown tries the queue once more
// before the database closes; what lands is charged its usage, and what
// still cannot land is left open for the next start to charge in full.
func TestSettleQueue_FlushAtShutdown(t *testing.T) {
	t.Run("lands", func(t *testing.T) {
		h, fl := flakyHarness(t, time.Hour, time.Hour)
		fl.failWith(errDiskFull)
		readAll(t, h.post("/v1/chat/completions", helloBody))
		waitFor(t, "the settlement to wait", func() bool { n, _ := h.p.SettlementsWaiting(); return n == 1 })
		fl.failWith(nil)
		if n, held := h.p.FlushSettlements(context.Background()); n != 0 || held != 0 {
			t.Fatalf("flush left %d holding %s, want none", n, held)
		}
		if rec := h.records(1)[0]; rec.Outcome != budget.Complete || rec.Charged >= rec.Reserved {
			t.Fatalf("flushed settlement: %s charged %s of %s, want its usage", rec.Outcome, rec.Charged, rec.Reserved)
		}
	})
	t.Run("still failing", func(t *testing.T) {
		h, fl := flakyHarness(t, time.Hour, time.Hour)
		fl.failWith(errDiskFull)
		readAll(t, h.post("/v1/chat/completions", helloBody))
		waitFor(t, "the settlement to wait", func() bool { n, _ := h.p.SettlementsWaiting(); return n == 1 })
		n, held := h.p.FlushSettlements(context.Background())
		if n != 1 || held == 0 {
			t.Fatalf("flush left %d holding %s, want 1 with its reservation", n, held)
		}
		if err := h.db.Close(); err != nil {
			t.Fatal(err)
		}
		db, err := storage.Open(filepath.Join(filepath.Dir(h.dbPath), "hardcap.db"), storage.Options{NoSync: true})
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		rec := db.Recovered()
		if len(rec) != 1 || rec[0].Charged != held || rec[0].Outcome != budget.Recovered {
			t.Fatalf("the next start recovered %+v, want one reservation of %s charged in full", rec, held)
		}
	})
}
