package cluster_test

import (
	"context"
	"testing"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/cluster"
	"github.com/hardcap/hardcap/internal/pgtest"
	"github.com/hardcap/hardcap/storage/postgres"
	"github.com/rs/zerolog"
)

// memOutbox is an alert outbox in memory.
type memOutbox struct {
	entries []alert.Entry
	done    map[string]bool
}

func (m *memOutbox) Undelivered(_ context.Context, _ string, _ int) ([]alert.Entry, error) {
	var out []alert.Entry
	for _, e := range m.entries {
		if !m.done[e.Alert.ID] {
			out = append(out, e)
		}
	}
	return out, nil
}

func (m *memOutbox) SetDelivery(_ context.Context, id string, _ alert.Delivery, done bool) error {
	if done {
		m.done[id] = true
	}
	return nil
}

// Two replicas raise the same threshold alert and their own anomaly: the
// threshold is delivered by one of them, each anomaly by its replica.
func TestOnceOutbox(t *testing.T) {
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	half, err := budget.ParseFraction("0.5")
	if err != nil {
		t.Fatal(err)
	}
	limit := budget.Money(1_000_000)
	threshold := func(id string) alert.Entry {
		return alert.Entry{Alert: alert.Alert{ID: id, Type: alert.TypeThreshold, Time: time.Now(), Scope: alert.Scope{Kind: "project", Project: "web"}, Window: "2026-12", Threshold: &half, Limit: &limit}}
	}
	anomaly := func(id string) alert.Entry {
		return alert.Entry{Alert: alert.Alert{ID: id, Type: alert.TypeNewIP, Time: time.Now(), Scope: alert.Scope{Kind: "token", TokenID: "tok_1"}}}
	}
	var outs []*cluster.OnceOutbox
	var mems []*memOutbox
	for _, id := range []string{"a", "b"} {
		s, err := postgres.Open(ctx, postgres.Options{DSN: dsn, Replica: id})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(s.Close)
		m := &memOutbox{entries: []alert.Entry{threshold(id + "_1"), anomaly(id + "_2")}, done: map[string]bool{}}
		mems = append(mems, m)
		outs = append(outs, &cluster.OnceOutbox{Outbox: m, Store: s, Log: zerolog.Nop()})
	}
	count := func(o *cluster.OnceOutbox) (thresholds, anomalies int) {
		t.Helper()
		es, err := o.Undelivered(ctx, "", 10)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			if e.Alert.Type == alert.TypeThreshold {
				thresholds++
			} else {
				anomalies++
			}
		}
		return
	}
	for pass := range 2 { // a second pass is a retry: the same answer
		ta, na := count(outs[0])
		tb, nb := count(outs[1])
		if ta+tb != 1 || na != 1 || nb != 1 {
			t.Fatalf("pass %d: thresholds %d+%d, anomalies %d+%d; want the threshold once and each anomaly", pass, ta, tb, na, nb)
		}
	}
	if !mems[1].done["b_1"] {
		t.Fatal("the threshold b lost to a was not marked done")
	}
}
