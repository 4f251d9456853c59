package metrics

import (
	"fmt"
	"testing"

	"github.com/hardcap/hardcap/budget"
)

func TestSettled_ModelLabelsBounded(t *testing.T) {
	m := New(Options{})
	rec := func(model string) budget.Record {
		return budget.Record{Request: budget.Request{Route: "chat", Provider: "openai", Model: model}, Outcome: budget.Complete}
	}
	for i := range MaxModelLabels + 50 {
		m.Settled(rec(fmt.Sprintf("gpt-4o-mini-%d", i)))
	}
	m.Settled(rec("gpt-4o-mini-0"))
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series, other := 0, 0.0
	for _, f := range fams {
		if f.GetName() != "hardcap_requests_total" {
			continue
		}
		for _, s := range f.GetMetric() {
			series++
			for _, l := range s.GetLabel() {
				if l.GetName() == "model" && l.GetValue() == OtherModel {
					other = s.GetCounter().GetValue()
				}
			}
		}
	}
	if series != MaxModelLabels+1 || other != 50 {
		t.Fatalf("%d series with %v under %q, want %d series and 50", series, other, OtherModel, MaxModelLabels+1)
	}
}
