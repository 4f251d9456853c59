package metrics_test

import (
	"testing"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/metrics"
)

// BenchmarkSettled is what the Observer adds to each settled request once
// its series exists: a label lookup and an atomic add.
func BenchmarkSettled(b *testing.B) {
	m := metrics.New(metrics.Options{})
	rec := budget.Record{Request: budget.Request{Route: "chat", Provider: "openai", Model: "gpt-4o-mini"}, Outcome: budget.Complete}
	m.Settled(rec)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Settled(rec)
		}
	})
}

// BenchmarkRefused is what the Observer adds to each refusal.
func BenchmarkRefused(b *testing.B) {
	m := metrics.New(metrics.Options{})
	m.Refused("budget_exceeded")
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			m.Refused("budget_exceeded")
		}
	})
}
