package proxy_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
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
	flushLedger(t, h.db) // the settlement commits after the response ends
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

// heldSettleLedger queues settlements as storage.DB does but holds each
// one until the test releases it: the commit that has not happened yet.
type heldSettleLedger struct {
	*storage.DB
	mu      sync.Mutex
	held    []func()
	failAll atomic.Bool // answer every queued settlement with errDiskFull
}

func (l *heldSettleLedger) SettleAsync(id string, s budget.Settlement, done func(budget.Record, error)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.held = append(l.held, func() {
		if l.failAll.Load() {
			done(budget.Record{}, errDiskFull)
			return
		}
		l.DB.SettleAsync(id, s, done)
	})
}

func (l *heldSettleLedger) release() {
	l.mu.Lock()
	held := l.held
	l.held = nil
	l.mu.Unlock()
	for _, f := range held {
		f()
	}
}

// TestRecord_ResponseEndsBeforeTheSettlementCommits: with a ledger that
// settles asynchronously, the response ends (and the request leaves the
// in-flight set) while its settlement is still queued; its reservation
// stays held until the settlement lands, which then logs the request's
// line. A queued settlement the ledger fails for a reason that may pass
// joins the retry queue and lands later.
func TestRecord_ResponseEndsBeforeTheSettlementCommits(t *testing.T) {
	for _, fail := range []bool{false, true} {
		t.Run(fmt.Sprintf("fails=%v", fail), func(t *testing.T) {
			hl := &heldSettleLedger{}
			hl.failAll.Store(fail)
			h := newHarness(t, harnessOptions{noSync: true, settleRetry: time.Millisecond, settleRetryMax: 4 * time.Millisecond,
				ledger: func(l budget.Ledger) budget.Ledger { hl.DB = l.(*storage.DB); return hl }})
			readAll(t, h.post("/v1/chat/completions", helloBody))
			// The response is complete and the request has left the
			// in-flight set, yet nothing has been settled.
			wctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := h.p.Wait(wctx); err != nil {
				t.Fatalf("the request stayed in flight: %v", err)
			}
			flushLedger(t, h.db)
			bs, err := h.db.BudgetStatus(budget.ProjectScope(h.project))
			if err != nil {
				t.Fatal(err)
			}
			if bs.Reserved == 0 || bs.Committed != 0 {
				t.Fatalf("while the settlement is queued: reserved %s committed %s; want the reservation held", bs.Reserved, bs.Committed)
			}
			if strings.Contains(h.logs.String(), `"message":"request"`) {
				t.Fatal("the request's line was logged before its settlement landed")
			}
			hl.release()
			if fail {
				waitFor(t, "the retry to land", func() bool {
					n, _ := h.p.SettlementsWaiting()
					return n == 0 && strings.Contains(h.logs.String(), "settlement recorded after retrying")
				})
			}
			rec := h.records(1)[0]
			flushLedger(t, h.db)
			bs, _ = h.db.BudgetStatus(budget.ProjectScope(h.project))
			if bs.Reserved != 0 || bs.Committed != rec.Charged || rec.Outcome != budget.Complete {
				t.Fatalf("after the settlement: reserved %s committed %s, record %+v; want the real charge", bs.Reserved, bs.Committed, rec)
			}
			if !strings.Contains(h.logs.String(), `"message":"request"`) {
				t.Fatal("the request's line was not logged")
			}
		})
	}
}
