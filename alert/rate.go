package alert

import (
	"fmt"
	"math/bits"
	"time"

	"github.com/hardcap/hardcap/budget"
)

// Rate is one budget's or token's recent spend in memory: per minute for
// the last hour and per hour for the last day, enough for a spike check
// and a run-out projection without reading the disk. Adding to it is a
// few integer operations; it is not safe for concurrent use (storage's
// writer owns it).
type Rate struct {
	minutes [rateMinutes]bucket
	hours   [rateHours]bucket
	// filled are the hour totals read from the disk (AddHour), also in
	// hours: what was spent before the minute buckets began to count.
	filled [rateHours]bucket
	// since is when the rate began to count: the token's creation, or the
	// first hour filled from the disk. A younger history has a shorter
	// baseline.
	since time.Time
	// minutesSince is when the per-minute buckets began to count (the
	// process's first add): before it, only hours are known.
	minutesSince time.Time
}

const (
	rateMinutes = 60
	rateHours   = 26
)

// bucket is the spend of one minute or hour, stamped with its index since
// the epoch so that a stale bucket reads as empty.
type bucket struct {
	at  int64
	sum budget.Money
}

func (b *bucket) add(at int64, m budget.Money) {
	if b.at != at {
		b.at, b.sum = at, 0
	}
	b.sum = satAdd(b.sum, m)
}

func satAdd(a, b budget.Money) budget.Money {
	if s, err := a.Add(b); err == nil {
		return s
	}
	if b < 0 {
		return a + b
	}
	return budget.MaxMoney
}

// NewRate starts a rate that has counted since since.
func NewRate(since time.Time) *Rate { return &Rate{since: since} }

// Add counts m spent at t; a negative m takes back an earlier Add (a
// rolled-back transaction).
func (r *Rate) Add(t time.Time, m budget.Money) {
	if r.minutesSince.IsZero() {
		r.minutesSince = t.Truncate(time.Minute)
	}
	mi := t.Unix() / 60
	r.minutes[mi%rateMinutes].add(mi, m)
	hi := t.Unix() / 3600
	r.hours[hi%rateHours].add(hi, m)
}

// AddHour counts m spent in the hour that starts at hour, without the
// minute buckets: a history filled from the disk's hour totals.
func (r *Rate) AddHour(hour time.Time, m budget.Money) {
	hi := hour.Unix() / 3600
	r.hours[hi%rateHours].add(hi, m)
	r.filled[hi%rateHours].add(hi, m)
	if r.since.IsZero() || hour.Before(r.since) {
		r.since = hour
	}
}

// Last is the spend in the d (at most an hour) before now, from the minute
// buckets; false when they do not cover d yet.
func (r *Rate) Last(now time.Time, d time.Duration) (budget.Money, bool) {
	d = min(d, time.Hour)
	n := int64((d + time.Minute - 1) / time.Minute)
	cur := now.Unix() / 60
	var sum budget.Money
	for i := cur - n + 1; i <= cur; i++ {
		if b := r.minutes[i%rateMinutes]; b.at == i {
			sum = satAdd(sum, b.sum)
		}
	}
	covered := !r.minutesSince.IsZero() && !r.minutesSince.After(now.Add(-d))
	return sum, covered
}

// hoursSum is the spend in the hours that start at or after from, up to
// the current one.
func (r *Rate) hoursSum(now, from time.Time) budget.Money {
	cur := now.Unix() / 3600
	first := from.Unix() / 3600
	if first < cur-rateHours+1 {
		first = cur - rateHours + 1
	}
	var sum budget.Money
	for i := first; i <= cur; i++ {
		if b := r.hours[i%rateHours]; b.at == i {
			sum = satAdd(sum, b.sum)
		}
	}
	return sum
}

// LastHour is the spend of the hour before now: the minute buckets, and
// for the part of the hour before they began to count, the hour totals
// read from the disk, prorated by how much of each hour falls in it.
func (r *Rate) LastHour(now time.Time) budget.Money {
	live, covered := r.Last(now, time.Hour)
	if covered {
		return live
	}
	from, until := now.Add(-time.Hour), now
	if !r.minutesSince.IsZero() {
		until = r.minutesSince
	}
	sum := live
	for h := from.Truncate(time.Hour); h.Before(until); h = h.Add(time.Hour) {
		hi := h.Unix() / 3600
		b := r.filled[hi%rateHours]
		if b.at != hi || b.sum <= 0 {
			continue
		}
		// The hour's total covers [h, end): the whole hour, or up to
		// until for the hour the disk was read in.
		end := h.Add(time.Hour)
		if end.After(until) {
			end = until
		}
		lo := h
		if lo.Before(from) {
			lo = from
		}
		if end.After(lo) {
			sum = satAdd(sum, mulDiv(b.sum, int64(end.Sub(lo)), int64(end.Sub(h))))
		}
	}
	return sum
}

// Idle reports whether r has counted nothing in the day and hours its
// buckets hold: it can be dropped and filled from the disk again.
func (r *Rate) Idle(now time.Time) bool {
	cur := now.Unix() / 3600
	for _, b := range r.hours {
		if b.at > cur-rateHours && b.sum != 0 {
			return false
		}
	}
	return true
}

// SpikeCheck is a spike detector's reading of a Rate.
type SpikeCheck struct {
	// Recent is the spend of the last Spike.Window; Average the
	// baseline's average spend per Window, taken over Span (Baseline, or
	// the history a younger token has).
	Recent, Average budget.Money
	Span            time.Duration
	// Spike says Recent is above Floor and above Factor times Average.
	Spike bool
}

// CheckSpike reads r against s at now.
func (r *Rate) CheckSpike(now time.Time, s Spike) SpikeCheck {
	recent, _ := r.Last(now, s.Window)
	c := SpikeCheck{Recent: recent}
	if recent < s.Floor || s.Factor <= 0 || s.Window <= 0 {
		return c
	}
	// The baseline: the hours of the Baseline before the window, less
	// the window's own spend (hour totals hold it too).
	start := now.Add(-s.Window - s.Baseline)
	base := r.hoursSum(now, start) - recent
	if base < 0 {
		base = 0
	}
	span := s.Baseline
	if !r.since.IsZero() {
		age := now.Add(-s.Window).Sub(r.since)
		if age < s.Window {
			// Less history before the window than the window itself:
			// there is no usual rate to be above yet.
			return c
		}
		span = min(span, age)
	}
	span = max(span, s.Window)
	c.Span = span
	c.Average = mulDiv(base, int64(s.Window), int64(span))
	hi, lo := bits.Mul64(uint64(c.Average), uint64(s.Factor))
	c.Spike = hi == 0 && uint64(recent) > lo
	return c
}

// mulDiv is m*a/b, saturating, for non-negative values.
func mulDiv(m budget.Money, a, b int64) budget.Money {
	if m <= 0 || a <= 0 || b <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(m), uint64(a))
	if hi >= uint64(b) {
		return budget.MaxMoney
	}
	q, _ := bits.Div64(hi, lo, uint64(b))
	if q > uint64(budget.MaxMoney) {
		return budget.MaxMoney
	}
	return budget.Money(q)
}

// Projection says when a budget of limit with spent committed runs out at
// perHour: the text of a threshold alert's projection ("at the last hour's
// rate this budget runs out in about 3 h, at 14:20 UTC") and the time;
// "" when there is no rate or no headroom left.
func Projection(now time.Time, spent, limit, perHour budget.Money) (string, time.Time) {
	if limit <= 0 || perHour <= 0 {
		return "", time.Time{}
	}
	if spent >= limit {
		return "", time.Time{}
	}
	left := limit - spent
	// left/perHour hours, in seconds, saturating at a year.
	secs := mulDiv(left, 3600, int64(perHour))
	const year = 366 * 24 * 3600
	if secs > year {
		return "at the last hour's rate this budget lasts more than a year", time.Time{}
	}
	d := time.Duration(secs) * time.Second
	at := now.Add(d).UTC()
	return fmt.Sprintf("at the last hour's rate this budget runs out in about %s, at %s", roughly(d), at.Format("2006-01-02 15:04 UTC")), at
}

// roughly formats d as people say it: "40 min", "3 h", "2 days".
func roughly(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "a minute"
	case d < time.Hour:
		return fmt.Sprintf("%d min", int(d.Round(time.Minute)/time.Minute))
	case d < 48*time.Hour:
		return fmt.Sprintf("%d h", int(d.Round(time.Hour)/time.Hour))
	}
	return fmt.Sprintf("%d days", int(d.Round(24*time.Hour)/(24*time.Hour)))
}
