package storage

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
)

var alertEpoch = time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)

// alertDB opens a ledger with the default alert policy and a settable
// clock.
func alertDB(t *testing.T, mut func(*alert.Policy)) (*DB, *clock) {
	t.Helper()
	c := &clock{t: alertEpoch}
	p := alert.DefaultPolicy()
	if mut != nil {
		mut(&p)
	}
	return openTest(t, Options{Now: c.Now, Alerts: p, NoSync: true}), c
}

// spend reserves and settles one request of tok charged charged.
func spend(t *testing.T, db *DB, tok tokens.Token, ip, model string, charged budget.Money) {
	t.Helper()
	res, err := db.Reserve(ctx, budget.Request{TokenID: tok.ID, Model: model, Route: "chat", ClientIP: ip}, flat(int64(charged)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: charged, Outcome: budget.Complete}); err != nil {
		t.Fatal(err)
	}
}

// alertsOf returns the outbox's alerts of type typ, oldest first.
func alertsOf(t *testing.T, db *DB, typ alert.Type) []alert.Alert {
	t.Helper()
	es, err := db.Alerts(AlertFilter{Type: typ, Limit: MaxAlertsListed})
	if err != nil {
		t.Fatal(err)
	}
	out := make([]alert.Alert, len(es))
	for i, e := range es {
		out[len(es)-1-i] = e.Alert
	}
	return out
}

func thresholdsOf(as []alert.Alert, kind string) []string {
	var out []string
	for _, a := range as {
		if a.Scope.Kind == kind && a.Threshold != nil {
			out = append(out, a.Threshold.String())
		}
	}
	return out
}

func TestThresholds_FireOncePerWindow(t *testing.T) {
	db, c := alertDB(t, nil)
	month := budget.Limit{Amount: usd(t, "10"), Period: budget.Month}
	tok := newToken(t, db, "billing", month, budget.Limit{})
	steps := []struct {
		charge string
		want   []string
	}{
		{"4.99", nil},
		{"0.01", []string{"0.5"}}, // exactly 5.00: reached
		{"1", nil},                // 6.00
		{"3.5", []string{"0.8"}},  // 9.50
		{"0.2", nil},              // 9.70
		{"0.3", []string{"1"}},    // 10.00
	}
	var fired []string
	for i, s := range steps {
		spend(t, db, tok, "10.0.0.1", "m", usd(t, s.charge))
		got := thresholdsOf(alertsOf(t, db, alert.TypeThreshold), "project")
		fired = append(fired, s.want...)
		if strings.Join(got, ",") != strings.Join(fired, ",") {
			t.Fatalf("step %d: project thresholds fired %v, want %v", i, got, fired)
		}
	}
	as := alertsOf(t, db, alert.TypeThreshold)
	a := as[0]
	if a.Window != "month:2026-12" || a.Spent != usd(t, "5") || a.Limit == nil || *a.Limit != usd(t, "10") {
		t.Errorf("first alert: window %q spent %s limit %v", a.Window, a.Spent, a.Limit)
	}
	if !strings.Contains(a.Message, "project billing") || !strings.Contains(a.Message, "50 %") || !strings.Contains(a.Message, "runs out in about") {
		t.Errorf("message %q: want the budget, the share and a projection", a.Message)
	}
	// The next month is a new window: its thresholds fire again.
	c.Set(time.Date(2027, 1, 2, 0, 0, 0, 0, time.UTC))
	spend(t, db, tok, "10.0.0.1", "m", usd(t, "6"))
	got := thresholdsOf(alertsOf(t, db, alert.TypeThreshold), "project")
	if strings.Join(got, ",") != "0.5,0.8,1,0.5" {
		t.Fatalf("after the month turned: %v", got)
	}
}

func TestThresholds_ReleasedReservationDoesNotFire(t *testing.T) {
	db, _ := alertDB(t, nil)
	tok := newToken(t, db, "p", budget.Limit{Amount: 1000}, budget.Limit{})
	// A worst case of 900 is held (90 % of the budget), then settled at 10.
	res, err := db.Reserve(ctx, budget.Request{TokenID: tok.ID, Model: "m"}, flat(900))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 10, Outcome: budget.Complete}); err != nil {
		t.Fatal(err)
	}
	if as := alertsOf(t, db, alert.TypeThreshold); len(as) != 0 {
		t.Fatalf("a reservation released unspent fired %d thresholds: %+v", len(as), as)
	}
}

func TestThresholds_OnceAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	p := alert.DefaultPolicy()
	path := dir + "/hardcap.db"
	db, err := Open(path, Options{Alerts: p, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	tok := newToken(t, db, "p", budget.Limit{Amount: 1000}, budget.Limit{})
	spend(t, db, tok, "", "m", 600)
	db.Close()
	db, err = Open(path, Options{Alerts: p, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	spend(t, db, tok, "", "m", 10) // still above 50 %, below 80 %
	spend(t, db, tok, "", "m", 200)
	got := thresholdsOf(alertsOf(t, db, alert.TypeThreshold), "project")
	if strings.Join(got, ",") != "0.5,0.8" {
		t.Fatalf("thresholds across a restart: %v, want 0.5,0.8", got)
	}
}

func TestThresholds_OwnSharesOfTokenAndProject(t *testing.T) {
	db, _ := alertDB(t, nil)
	tok := newToken(t, db, "p", budget.Limit{Amount: 1000}, budget.Limit{Amount: 100})
	fs, _ := budget.ParseFractions("0.25,0.9")
	if _, err := db.UpdateToken(ctx, tok.ID, TokenChange{Limit: LimitChange{AlertAt: &fs}}); err != nil {
		t.Fatal(err)
	}
	spend(t, db, tok, "", "m", 30)
	if got := thresholdsOf(alertsOf(t, db, alert.TypeThreshold), "token"); strings.Join(got, ",") != "0.25" {
		t.Fatalf("token thresholds %v, want its own 0.25", got)
	}
	spend(t, db, tok, "", "m", 30) // 60: the default 0.5 is not the token's
	if got := thresholdsOf(alertsOf(t, db, alert.TypeThreshold), "token"); strings.Join(got, ",") != "0.25" {
		t.Fatalf("token thresholds %v, want only 0.25", got)
	}
}

func TestThresholds_ConcurrentCrossingFiresOnce(t *testing.T) {
	db, _ := alertDB(t, nil)
	tok := newToken(t, db, "p", budget.Limit{Amount: 100_000}, budget.Limit{})
	var wg sync.WaitGroup
	var failed atomic.Int64
	for range 1000 {
		wg.Go(func() {
			res, err := db.Reserve(ctx, budget.Request{TokenID: tok.ID, Model: "m"}, flat(100))
			if err != nil {
				failed.Add(1)
				return
			}
			if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 100, Outcome: budget.Complete}); err != nil {
				failed.Add(1)
			}
		})
	}
	wg.Wait()
	if failed.Load() != 0 {
		t.Fatalf("%d requests failed", failed.Load())
	}
	got := thresholdsOf(alertsOf(t, db, alert.TypeThreshold), "project")
	if strings.Join(got, ",") != "0.5,0.8,1" {
		t.Fatalf("1000 concurrent requests crossing the thresholds fired %v, want each once", got)
	}
}

func TestExhausted_OncePerWindow(t *testing.T) {
	db, _ := alertDB(t, nil)
	tok := newToken(t, db, "p", budget.Limit{Amount: 100}, budget.Limit{})
	spend(t, db, tok, "", "m", 100)
	for range 3 {
		if _, err := reserve(db, tok, flat(10)); !errors.Is(err, budget.ErrExhausted) {
			t.Fatalf("got %v, want exhausted", err)
		}
	}
	as := alertsOf(t, db, alert.TypeExhausted)
	if len(as) != 1 || as[0].Scope.Kind != "project" || as[0].Scope.Project != "p" {
		t.Fatalf("exhausted alerts: %+v, want one for project p", as)
	}
}

func TestNewIP(t *testing.T) {
	var froze []KillTarget
	var mu sync.Mutex
	c := &clock{t: alertEpoch}
	p := alert.DefaultPolicy()
	p.Projects = map[string]map[alert.Kind]alert.Rule{"strict": {alert.NewIP: {Action: alert.ActionFreeze}}}
	db := openTest(t, Options{Now: c.Now, Alerts: p, NoSync: true, OnFreeze: func(k KillTarget) {
		mu.Lock()
		froze = append(froze, k)
		mu.Unlock()
	}})
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	spend(t, db, tok, "10.0.0.1", "m", 1) // the baseline
	spend(t, db, tok, "10.0.0.1", "m", 1)
	if as := alertsOf(t, db, alert.TypeNewIP); len(as) != 0 {
		t.Fatalf("a token's first address fired: %+v", as)
	}
	spend(t, db, tok, "192.0.2.7", "m", 1)
	spend(t, db, tok, "192.0.2.7", "m", 1)
	as := alertsOf(t, db, alert.TypeNewIP)
	if len(as) != 1 || as[0].Details["ip"] != "192.0.2.7" || as[0].Action != alert.ActionAlert || as[0].Scope.TokenID != tok.ID {
		t.Fatalf("new address alerts: %+v", as)
	}
	// An address unseen for longer than NewIPAfter is new again.
	c.Set(alertEpoch.Add(31 * 24 * time.Hour))
	spend(t, db, tok, "10.0.0.1", "m", 1)
	if as := alertsOf(t, db, alert.TypeNewIP); len(as) != 2 || !strings.Contains(as[1].Message, "not seen") {
		t.Fatalf("after 31 days: %+v", as)
	}

	// Freeze: the request is refused, the token killed, both alerts say so.
	strict := newToken(t, db, "strict", budget.Limit{}, budget.Limit{})
	spend(t, db, strict, "10.0.0.1", "m", 1)
	_, err := db.Reserve(ctx, budget.Request{TokenID: strict.ID, Model: "m", ClientIP: "203.0.113.9"}, flat(5))
	if !errors.Is(err, tokens.ErrKilled) {
		t.Fatalf("a frozen request: got %v, want the kill switch", err)
	}
	got, _ := db.Token(strict.ID)
	if !got.Killed {
		t.Fatal("the token is not killed after a freeze")
	}
	var frozen []alert.Alert
	for _, a := range alertsOf(t, db, "") {
		if a.Scope.TokenID == strict.ID {
			frozen = append(frozen, a)
		}
	}
	if len(frozen) != 2 || frozen[0].Type != alert.TypeNewIP || frozen[0].Action != alert.ActionFreeze || frozen[1].Type != alert.TypeFrozen ||
		!strings.Contains(frozen[1].Message, "hardcap resume --token "+strict.ID) {
		t.Fatalf("freeze alerts: %+v", frozen)
	}
	if err := db.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mu.Lock()
		n := len(froze)
		mu.Unlock()
		if n == 1 || time.Now().After(deadline) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	mu.Lock()
	if len(froze) != 1 || froze[0].Token != strict.ID {
		t.Errorf("OnFreeze got %+v", froze)
	}
	mu.Unlock()
	log, _ := db.AuditLog(AuditFilter{Target: strict.ID})
	if len(log) == 0 || log[len(log)-1].Action != "freeze" || log[len(log)-1].Actor != "system" {
		t.Errorf("audit log: %+v", log)
	}
	// Resumed, the address is known: the next request from it goes on.
	if err := db.SetKill(ctx, KillTarget{Token: strict.ID}, false); err != nil {
		t.Fatal(err)
	}
	spend(t, db, strict, "203.0.113.9", "m", 1)
}

func TestNewModelAndRoute(t *testing.T) {
	db, _ := alertDB(t, nil)
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	spend(t, db, tok, "", "gpt-a", 1) // baseline model and route
	spend(t, db, tok, "", "gpt-a", 1)
	spend(t, db, tok, "", "gpt-b", 1)
	res, err := db.Reserve(ctx, budget.Request{TokenID: tok.ID, Model: "gpt-a", Route: "embeddings"}, flat(1))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 1}); err != nil {
		t.Fatal(err)
	}
	as := alertsOf(t, db, alert.TypeNewModel)
	if len(as) != 2 || as[0].Details["model"] != "gpt-b" || as[1].Details["route"] != "embeddings" {
		t.Fatalf("new model alerts: %+v", as)
	}
}

func TestSpendSpike_Freezes(t *testing.T) {
	db, c := alertDB(t, func(p *alert.Policy) {
		p.Rules[alert.SpendSpike] = alert.Rule{Action: alert.ActionFreeze}
	})
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	// A day of 0.10 USD an hour.
	for h := range 24 {
		c.Set(alertEpoch.Add(time.Duration(h) * time.Hour))
		spend(t, db, tok, "", "m", usd(t, "0.1"))
	}
	// 0.9 USD in ten minutes is a spike in rate but under the 1 USD floor.
	at := alertEpoch.Add(24 * time.Hour)
	c.Set(at)
	spend(t, db, tok, "", "m", usd(t, "0.9"))
	if as := alertsOf(t, db, alert.TypeSpendSpike); len(as) != 0 {
		t.Fatalf("under the floor: %+v", as)
	}
	c.Set(at.Add(5 * time.Minute))
	spend(t, db, tok, "", "m", usd(t, "0.5"))
	as := alertsOf(t, db, alert.TypeSpendSpike)
	if len(as) != 1 || as[0].Action != alert.ActionFreeze || as[0].Spent != usd(t, "1.4") {
		t.Fatalf("spike alerts: %+v", as)
	}
	if got, _ := db.Token(tok.ID); !got.Killed {
		t.Fatal("a spike with action freeze left the token alive")
	}
	if _, err := reserve(db, tok, flat(1)); !errors.Is(err, tokens.ErrKilled) {
		t.Fatalf("after the freeze: %v", err)
	}
}

func TestSpendSpike_SteadySpendDoesNotFire(t *testing.T) {
	db, c := alertDB(t, func(p *alert.Policy) { p.Spike.Floor = usd(t, "0.2") })
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	for m := range 48 * 6 { // two days, every ten minutes, the same spend
		c.Set(alertEpoch.Add(time.Duration(m) * 10 * time.Minute))
		spend(t, db, tok, "", "m", usd(t, "0.3"))
	}
	if as := alertsOf(t, db, alert.TypeSpendSpike); len(as) != 0 {
		t.Fatalf("a steady spend fired: %+v", as)
	}
}

func TestOvershootAlert(t *testing.T) {
	db, _ := alertDB(t, nil)
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	res, err := reserve(db, tok, flat(100))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 150}); err != nil {
		t.Fatal(err)
	}
	as := alertsOf(t, db, alert.TypeOvershoot)
	if len(as) != 1 || as[0].Spent != 150 || as[0].Details["reservation"] != res.ID {
		t.Fatalf("overshoot alerts: %+v", as)
	}
}

func TestKeyRejectedAlert(t *testing.T) {
	db, c := alertDB(t, nil)
	mustSee(t, db, seen("openai", "sk-test-key-1", alertEpoch))
	for range 3 {
		if err := db.AddUnauthorized(ctx, "openai", 2, c.Now()); err != nil {
			t.Fatal(err)
		}
	}
	as := alertsOf(t, db, alert.TypeKeyRejected)
	if len(as) != 1 || as[0].Scope.Provider != "openai" || strings.Contains(fmt.Sprint(as), "sk-test-key-1") {
		t.Fatalf("key_rejected alerts: %+v", as)
	}
}

func TestPolicyOff_RaisesNothing(t *testing.T) {
	db := openTest(t, Options{NoSync: true})
	tok := newToken(t, db, "p", budget.Limit{Amount: 100}, budget.Limit{})
	spend(t, db, tok, "10.0.0.1", "m", 100)
	spend(t, db, tok, "10.0.0.2", "n", 0)
	if es, _ := db.Alerts(AlertFilter{}); len(es) != 0 {
		t.Fatalf("the zero policy raised %d alerts", len(es))
	}
}

func TestOutbox_DeliveryStateAndIDs(t *testing.T) {
	db, _ := alertDB(t, nil)
	a, ok, err := db.RaiseAlert(ctx, alert.Alert{Type: alert.TypeTest, Scope: alert.Scope{Kind: "global"}, Message: "hi"}, RaiseOptions{Once: "x", Channels: []string{"ops"}})
	if err != nil || !ok {
		t.Fatal(ok, err)
	}
	if _, again, _ := db.RaiseAlert(ctx, alert.Alert{Type: alert.TypeTest}, RaiseOptions{Once: "x"}); again {
		t.Fatal("a once-mark fired twice")
	}
	b, _, _ := db.RaiseAlert(ctx, alert.Alert{Type: alert.TypeTest, Message: "two"}, RaiseOptions{})
	if a.Alert.ID == b.Alert.ID || !strings.HasPrefix(a.Alert.ID, "al_") {
		t.Fatalf("ids %q and %q", a.Alert.ID, b.Alert.ID)
	}
	open, _ := db.Undelivered(ctx, "", 10)
	if len(open) != 2 || open[0].Alert.ID != a.Alert.ID || open[0].Channels[0] != "ops" {
		t.Fatalf("undelivered: %+v", open)
	}
	d := alert.Delivery{Channel: "ops", State: alert.Pending, Attempts: 1, Error: "status 500"}
	if err := db.SetDelivery(ctx, a.Alert.ID, d, false); err != nil {
		t.Fatal(err)
	}
	d.State, d.Attempts, d.Error = alert.Delivered, 2, ""
	if err := db.SetDelivery(ctx, a.Alert.ID, d, true); err != nil {
		t.Fatal(err)
	}
	open, _ = db.Undelivered(ctx, "", 10)
	if len(open) != 1 || open[0].Alert.ID != b.Alert.ID {
		t.Fatalf("undelivered after done: %+v", open)
	}
	list, _ := db.Alerts(AlertFilter{})
	if got, _ := list[1].Delivery("ops"); got.State != alert.Delivered || got.Attempts != 2 || len(list[1].Deliveries) != 1 {
		t.Fatalf("delivery state: %+v", list[1])
	}
	if err := db.SetDelivery(ctx, "al_nope_99", d, true); !errors.Is(err, ErrAlertNotFound) {
		t.Fatalf("unknown id: %v", err)
	}
	waiting, failed, _ := db.AlertCounts()
	if waiting != 1 || failed != 0 {
		t.Fatalf("counts %d %d", waiting, failed)
	}
}

func TestSpendSpike_HistoryFromDiskAfterRestart(t *testing.T) {
	path := t.TempDir() + "/hardcap.db"
	c := &clock{t: alertEpoch}
	p := alert.DefaultPolicy()
	p.Spike.Floor = usd(t, "0.5")
	db, err := Open(path, Options{Now: c.Now, Alerts: p, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	// A day of 0.6 USD every ten minutes: a usual rate above the floor.
	for m := range 24 * 6 {
		c.Set(alertEpoch.Add(time.Duration(m) * 10 * time.Minute))
		spend(t, db, tok, "", "m", usd(t, "0.6"))
	}
	db.Close()
	db, err = Open(path, Options{Now: c.Now, Alerts: p, NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	// After the restart the same spend is still usual: the day before was
	// read back from the disk.
	at := alertEpoch.Add(24 * time.Hour)
	c.Set(at)
	spend(t, db, tok, "", "m", usd(t, "0.6"))
	if as := alertsOf(t, db, alert.TypeSpendSpike); len(as) != 0 {
		t.Fatalf("the usual spend after a restart fired: %+v", as)
	}
	c.Set(at.Add(time.Minute))
	spend(t, db, tok, "", "m", usd(t, "7"))
	if as := alertsOf(t, db, alert.TypeSpendSpike); len(as) != 1 {
		t.Fatalf("a spike after a restart: %d alerts, want 1", len(as))
	}
}

func TestExhausted_NotOnReservedMoney(t *testing.T) {
	db, _ := alertDB(t, nil)
	tok := newToken(t, db, "p", budget.Limit{Amount: 1000}, budget.Limit{})
	held, err := reserve(db, tok, flat(1000)) // all of it, reserved
	if err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(db, tok, flat(10)); !errors.Is(err, budget.ErrExhausted) {
		t.Fatalf("got %v, want a refusal", err)
	}
	if as := alertsOf(t, db, alert.TypeExhausted); len(as) != 0 {
		t.Fatalf("money only reserved fired exhausted: %+v", as)
	}
	if _, err := db.Settle(ctx, held.ID, budget.Settlement{Charged: 1000}); err != nil {
		t.Fatal(err)
	}
	if _, err := reserve(db, tok, flat(10)); !errors.Is(err, budget.ErrExhausted) {
		t.Fatalf("got %v, want a refusal", err)
	}
	if as := alertsOf(t, db, alert.TypeExhausted); len(as) != 1 {
		t.Fatalf("the budget spent: %d exhausted alerts, want 1", len(as))
	}
}

func TestThresholds_LimitChanges(t *testing.T) {
	db, _ := alertDB(t, nil)
	tok := newToken(t, db, "p", budget.Limit{Amount: 1000}, budget.Limit{})
	set := func(amount budget.Money) {
		t.Helper()
		l := budget.Limit{Amount: amount}
		if _, _, err := db.UpdateProject(ctx, "p", LimitChange{Amount: &l}); err != nil {
			t.Fatal(err)
		}
	}
	spend(t, db, tok, "", "m", 500) // 0.5 of 1000
	set(600)                        // 500 is now past 0.8 of 600 (480)
	spend(t, db, tok, "", "m", 1)
	set(2000)
	spend(t, db, tok, "", "m", 499) // 1000: 0.5 of the new limit
	got := thresholdsOf(alertsOf(t, db, alert.TypeThreshold), "project")
	if strings.Join(got, ",") != "0.5,0.5,0.8,0.5" {
		t.Fatalf("thresholds across limit changes: %v, want 0.5 (of 1000), 0.5 and 0.8 (of 600), 0.5 (of 2000)", got)
	}
}

func TestThresholds_NotForAnOldWindow(t *testing.T) {
	db, c := alertDB(t, nil)
	day := budget.Limit{Amount: 1000, Period: budget.Day}
	tok := newToken(t, db, "p", day, budget.Limit{})
	res, err := reserve(db, tok, flat(900))
	if err != nil {
		t.Fatal(err)
	}
	c.Set(alertEpoch.Add(24 * time.Hour)) // the day turns while it runs
	if _, err := db.Settle(ctx, res.ID, budget.Settlement{Charged: 900}); err != nil {
		t.Fatal(err)
	}
	if as := alertsOf(t, db, alert.TypeThreshold); len(as) != 0 {
		t.Fatalf("a charge to yesterday's window fired today's thresholds: %+v", as)
	}
}

func TestNewIP_BurstOfAlertsIsBounded(t *testing.T) {
	db, _ := alertDB(t, nil)
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	spend(t, db, tok, "10.0.0.1", "m", 1)
	for i := range 50 {
		spend(t, db, tok, fmt.Sprintf("192.0.2.%d", i+2), "m", 1)
	}
	as := alertsOf(t, db, alert.TypeNewIP)
	if len(as) != maxBurst || !strings.Contains(as[maxBurst-1].Message, "not alerted") {
		t.Fatalf("50 new addresses raised %d alerts, want %d, the last saying the rest are not alerted", len(as), maxBurst)
	}
}

func TestFreeze_NotClaimedTwice(t *testing.T) {
	db, _ := alertDB(t, func(p *alert.Policy) {
		p.Rules[alert.NewIP] = alert.Rule{Action: alert.ActionFreeze}
		p.Rules[alert.NewModel] = alert.Rule{Action: alert.ActionFreeze}
	})
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	spend(t, db, tok, "10.0.0.1", "m", 1)
	if _, err := db.Reserve(ctx, budget.Request{TokenID: tok.ID, Model: "other", ClientIP: "10.0.0.2"}, flat(1)); !errors.Is(err, tokens.ErrKilled) {
		t.Fatalf("got %v", err)
	}
	if as := alertsOf(t, db, alert.TypeFrozen); len(as) != 1 {
		t.Fatalf("%d token.frozen alerts for one freeze", len(as))
	}
}

func TestOutbox_UndeliveredPages(t *testing.T) {
	db, _ := alertDB(t, nil)
	var ids []string
	for i := range 5 {
		e, _, err := db.RaiseAlert(ctx, alert.Alert{Type: alert.TypeTest, Message: fmt.Sprint(i)}, RaiseOptions{})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, e.Alert.ID)
	}
	if err := db.SetDelivery(ctx, ids[1], alert.Delivery{}, true); err != nil { // closed, no delivery
		t.Fatal(err)
	}
	var got []string
	after := ""
	for {
		page, err := db.Undelivered(ctx, after, 2)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range page {
			got = append(got, e.Alert.ID)
			if len(e.Deliveries) != 0 {
				t.Errorf("%s has deliveries %+v", e.Alert.ID, e.Deliveries)
			}
		}
		if len(page) < 2 {
			break
		}
		after = page[len(page)-1].Alert.ID
	}
	if want := []string{ids[0], ids[2], ids[3], ids[4]}; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("pages gave %v, want %v", got, want)
	}
}

func TestPruneAlerts(t *testing.T) {
	db, c := alertDB(t, nil)
	day := budget.Limit{Amount: 1000, Period: budget.Day}
	tok := newToken(t, db, "p", day, budget.Limit{})
	spend(t, db, tok, "", "m", 600)
	c.Set(alertEpoch.Add(24 * time.Hour))
	if n, err := db.PruneAlerts(ctx); err != nil || n != 1 {
		t.Fatalf("pruned %d (%v), want the 0.5 mark of the day that ended", n, err)
	}
	if len(db.st.fired) != 0 {
		t.Fatalf("marks left: %v", db.st.fired)
	}
	// The alert itself stays until AlertKeep, and then only once done.
	c.Set(alertEpoch.Add(AlertKeep + time.Hour))
	if n, _ := db.PruneAlerts(ctx); n != 0 {
		t.Fatalf("pruned an alert still waiting for delivery")
	}
	a := alertsOf(t, db, alert.TypeThreshold)[0]
	if err := db.SetDelivery(ctx, a.ID, alert.Delivery{}, true); err != nil {
		t.Fatal(err)
	}
	if n, _ := db.PruneAlerts(ctx); n != 1 {
		t.Fatalf("pruned %d, want the old delivered alert", n)
	}
	if es, _ := db.Alerts(AlertFilter{}); len(es) != 0 {
		t.Fatalf("alerts left: %d", len(es))
	}
}

// TestDetectors_NoWritePerRequest: once a token's address and model are
// known, its requests add nothing to the detectors' buckets: the address
// and spike detectors read memory (the address list is the last-use fold
// every request already had).
func TestDetectors_NoWritePerRequest(t *testing.T) {
	db, c := alertDB(t, nil)
	tok := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	spend(t, db, tok, "10.0.0.1", "m", 1)
	count := func() (n [3]int) {
		t.Helper()
		err := db.view(func(tx *bolt.Tx) error {
			for i, b := range [][]byte{bucketTokenSeen, bucketAlerts, bucketAlertsFired} {
				n[i] = tx.Bucket(b).Stats().KeyN
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := count()
	for i := range 100 {
		c.Set(alertEpoch.Add(time.Duration(i) * time.Minute))
		spend(t, db, tok, "10.0.0.1", "m", 1000)
	}
	if after := count(); after != before {
		t.Fatalf("detector buckets went from %v to %v keys over 100 usual requests", before, after)
	}
}

func TestExhausted_TokenBudgetBehindATighterReservedOne(t *testing.T) {
	c := &clock{t: alertEpoch}
	db := openTest(t, Options{Now: c.Now, Alerts: alert.DefaultPolicy(), NoSync: true, Global: budget.Limit{Amount: 10_000}})
	other := newToken(t, db, "other", budget.Limit{}, budget.Limit{})
	tok := newToken(t, db, "p", budget.Limit{}, budget.Limit{Amount: 20})
	spend(t, db, tok, "", "m", 15)
	if _, err := reserve(db, other, flat(9_981)); err != nil { // the global budget held by another project
		t.Fatal(err)
	}
	if _, err := reserve(db, tok, budget.Quote{MaxOutput: 50, MinOutput: 50, OutputRate: 1_000_000}); !errors.Is(err, budget.ErrExhausted) {
		t.Fatalf("got %v, want a refusal", err)
	}
	as := alertsOf(t, db, alert.TypeExhausted)
	if len(as) != 1 || as[0].Scope.Kind != "token" {
		t.Fatalf("exhausted alerts %+v, want the token's", as)
	}
}

func TestPruneAlerts_ReadsPastADamagedEntry(t *testing.T) {
	db, c := alertDB(t, nil)
	if err := db.update(ctx, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketAlerts).Put(alertKey(0), []byte("{not json"))
	}); err != nil {
		t.Fatal(err)
	}
	e, _, err := db.RaiseAlert(ctx, alert.Alert{Type: alert.TypeTest, Message: "old"}, RaiseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if err := db.SetDelivery(ctx, e.Alert.ID, alert.Delivery{}, true); err != nil {
		t.Fatal(err)
	}
	c.Set(alertEpoch.Add(AlertKeep + time.Hour))
	if n, err := db.PruneAlerts(ctx); err != nil || n != 1 {
		t.Fatalf("pruned %d (%v), want the old alert behind the damaged entry", n, err)
	}
}
