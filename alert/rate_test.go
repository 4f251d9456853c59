package alert

import (
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func TestRate_LastAndLastHour(t *testing.T) {
	r := NewRate(t0.Add(-48 * time.Hour))
	r.Add(t0, 100)
	r.Add(t0.Add(5*time.Minute), 50)
	r.Add(t0.Add(30*time.Minute), 25)
	now := t0.Add(31 * time.Minute)
	if got, covered := r.Last(now, 10*time.Minute); got != 25 || !covered {
		t.Errorf("Last 10m = %d %v, want 25 true", got, covered)
	}
	if got, covered := r.Last(now, time.Hour); got != 175 || covered {
		t.Errorf("Last 1h = %d %v, want 175 and not covered (counting began at %s)", got, covered, t0)
	}
	// The minutes do not cover an hour, but nothing was read from the
	// disk: all that is known of the hour is in them.
	if got := r.LastHour(now); got != 175 {
		t.Errorf("LastHour before the minutes cover an hour = %d, want 175", got)
	}
	later := t0.Add(89 * time.Minute)
	if got := r.LastHour(later); got != 25 {
		t.Errorf("LastHour = %d, want 25 (the minute buckets of the last hour)", got)
	}
	// Stale buckets read as empty.
	if got, _ := r.Last(t0.Add(5*time.Hour), time.Hour); got != 0 {
		t.Errorf("five hours later: %d", got)
	}
	// A negative add takes one back.
	r.Add(t0.Add(30*time.Minute), -25)
	if got, _ := r.Last(now, 10*time.Minute); got != 0 {
		t.Errorf("after taking back: %d", got)
	}
}

func TestRate_LastHourFromHoursAfterRestart(t *testing.T) {
	r := NewRate(time.Time{})
	r.AddHour(t0.Add(-time.Hour), 300) // the hour before
	r.AddHour(t0, 100)                 // the current hour, 30 min in
	got := r.LastHour(t0.Add(30 * time.Minute))
	// Half of the hour before (150) and all of the current one so far.
	if got != 250 {
		t.Errorf("LastHour from hour totals = %d, want 250", got)
	}
	// Live spend after the fill adds to it; the filled part shrinks as
	// the hour moves on.
	r.Add(t0.Add(30*time.Minute), 40)
	if got := r.LastHour(t0.Add(45 * time.Minute)); got != 40+75+100 {
		t.Errorf("LastHour with live minutes = %d, want %d", got, 40+75+100)
	}
}

func TestCheckSpike(t *testing.T) {
	s := Spike{Window: 10 * time.Minute, Baseline: 24 * time.Hour, Factor: 10, Floor: 1000}
	tests := []struct {
		name  string
		fill  func(r *Rate, now time.Time)
		since time.Duration // age of the rate at now
		spike bool
	}{
		{"under the floor", func(r *Rate, now time.Time) { r.Add(now, 999) }, 48 * time.Hour, false},
		{"young history", func(r *Rate, now time.Time) { r.Add(now, 1_000_000) }, 15 * time.Minute, false},
		{"no baseline", func(r *Rate, now time.Time) { r.Add(now, 5000) }, 48 * time.Hour, true},
		{"usual rate", func(r *Rate, now time.Time) {
			for h := 1; h <= 24; h++ {
				r.AddHour(now.Add(-time.Duration(h)*time.Hour).Truncate(time.Hour), 6*5000)
			}
			r.Add(now, 5000)
		}, 48 * time.Hour, false},
		{"ten times the usual", func(r *Rate, now time.Time) {
			for h := 1; h <= 24; h++ {
				r.AddHour(now.Add(-time.Duration(h)*time.Hour).Truncate(time.Hour), 6*500)
			}
			r.Add(now, 5100)
		}, 48 * time.Hour, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			now := t0.Add(7 * time.Minute)
			r := NewRate(now.Add(-tt.since))
			tt.fill(r, now)
			if c := r.CheckSpike(now, s); c.Spike != tt.spike {
				t.Errorf("spike = %v (recent %d, average %d), want %v", c.Spike, c.Recent, c.Average, tt.spike)
			}
		})
	}
}

func TestProjection(t *testing.T) {
	now := time.Date(2026, 12, 1, 11, 20, 0, 0, time.UTC)
	text, at := Projection(now, 7*budget.NanoPerUSD, 10*budget.NanoPerUSD, budget.NanoPerUSD)
	if !strings.Contains(text, "about 3 h, at 2026-12-01 14:20 UTC") || !at.Equal(now.Add(3*time.Hour)) {
		t.Errorf("projection %q at %s", text, at)
	}
	if text, _ := Projection(now, 10, 10, 5); text != "" {
		t.Errorf("no headroom: %q", text)
	}
	if text, _ := Projection(now, 0, 10, 0); text != "" {
		t.Errorf("no rate: %q", text)
	}
	if text, _ := Projection(now, 0, budget.MaxMoney, 1); !strings.Contains(text, "more than a year") {
		t.Errorf("slow rate: %q", text)
	}
}

func TestPolicy_RuleOverrides(t *testing.T) {
	p := DefaultPolicy()
	p.Projects = map[string]map[Kind]Rule{"ci": {NewIP: {Action: ActionFreeze}}}
	if r := p.Rule(NewIP, "ci"); r.Action != ActionFreeze {
		t.Errorf("override: %+v", r)
	}
	if r := p.Rule(NewIP, "web"); r.Action != ActionAlert {
		t.Errorf("default: %+v", r)
	}
	if (Policy{}).On(NewIP, "web") {
		t.Error("the zero policy is on")
	}
	if _, err := ParseAction("explode"); err == nil {
		t.Error("a bad action parsed")
	}
}

func TestRate_Idle(t *testing.T) {
	r := NewRate(t0)
	if !r.Idle(t0) {
		t.Error("a new rate is not idle")
	}
	r.Add(t0, 5)
	if r.Idle(t0.Add(time.Hour)) {
		t.Error("a rate that spent an hour ago is idle")
	}
	if !r.Idle(t0.Add(27 * time.Hour)) {
		t.Error("a rate that spent 27 hours ago is not idle")
	}
}
