package storage

import (
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/budget"
)

// TestSetAlerts_TakesEffect: a policy set while the ledger runs judges the
// next settlement: a ledger that raised nothing raises a new threshold's
// alert once the policy has it, and none once the policy is empty again.
// Settlements running while the policy changes are judged by one policy
// each (the race detector watches the swap).
func TestSetAlerts_TakesEffect(t *testing.T) {
	db, _ := alertDB(t, func(p *alert.Policy) { *p = alert.Policy{} })
	month := budget.Limit{Amount: usd(t, "10"), Period: budget.Month}
	tok := newToken(t, db, "billing", month, budget.Limit{})
	spend(t, db, tok, "10.0.0.1", "m", usd(t, "5"))
	if got := thresholdsOf(alertsOf(t, db, alert.TypeThreshold), "project"); len(got) != 0 {
		t.Fatalf("an empty policy fired %v", got)
	}

	p := alert.DefaultPolicy()
	var err error
	if p.Thresholds, err = budget.ParseFractions("0.6"); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Go(func() {
		for range 20 {
			res, err := db.Reserve(ctx, budget.Request{TokenID: tok.ID, Model: "m", Route: "chat"}, flat(1))
			if err == nil {
				_, err = db.Settle(ctx, res.ID, budget.Settlement{Charged: 1, Outcome: budget.Complete})
			}
			if err != nil {
				t.Error(err)
				return
			}
		}
	})
	if err := db.SetAlerts(ctx, p); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if !db.pruning.Load() {
		t.Error("the first policy that raises something did not start the pruning of old alerts")
	}
	spend(t, db, tok, "10.0.0.1", "m", usd(t, "1")) // 6.00...: reached
	if got := thresholdsOf(alertsOf(t, db, alert.TypeThreshold), "project"); strings.Join(got, ",") != "0.6" {
		t.Fatalf("after the new policy: thresholds fired %v, want 0.6", got)
	}

	if err := db.SetAlerts(ctx, alert.Policy{}); err != nil {
		t.Fatal(err)
	}
	spend(t, db, tok, "10.0.0.1", "m", usd(t, "4")) // 10.00...: over every share
	if got := thresholdsOf(alertsOf(t, db, alert.TypeThreshold), "project"); strings.Join(got, ",") != "0.6" {
		t.Fatalf("after the policy was emptied: thresholds fired %v, want still only 0.6", got)
	}
}

// TestSetRetention: the roll-up follows the retention set last; zero
// stops it.
func TestSetRetention(t *testing.T) {
	db := openTest(t, Options{NoSync: true, Retention: 48 * time.Hour})
	if got := time.Duration(db.retention.Load()); got != 48*time.Hour {
		t.Fatalf("retention at open %s", got)
	}
	db.SetRetention(0)
	if got := db.retention.Load(); got != 0 {
		t.Fatalf("after SetRetention(0): %d", got)
	}
	db.SetRetention(-time.Hour)
	if got := db.retention.Load(); got != 0 {
		t.Fatalf("a negative retention is kept as %d, want 0 (keep every record)", got)
	}
}
