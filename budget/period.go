package budget

import (
	"fmt"
	"time"
)

// Period is the window a budget limit applies to. Calendar periods start at
// midnight in the budget's time zone; weeks start on Monday (ISO 8601).
type Period string

// The periods a budget can have.
const (
	// Total never resets.
	Total Period = "total"
	// Day resets at midnight.
	Day Period = "day"
	// Week resets at midnight between Sunday and Monday.
	Week Period = "week"
	// Month resets at midnight on the first day of the month.
	Month Period = "month"
)

// ParsePeriod parses "total", "day", "week" or "month". The empty string is
// Total, so a budget without a period never resets.
func ParsePeriod(s string) (Period, error) {
	switch p := Period(s); p {
	case "":
		return Total, nil
	case Total, Day, Week, Month:
		return p, nil
	}
	return "", fmt.Errorf("%w: %q (want total, day, week or month)", ErrInvalidPeriod, Clip(s))
}

// Start returns the start of the window of p that contains t, in loc. For
// Total it returns the zero time.
func (p Period) Start(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	t = t.In(loc)
	y, m, d := t.Date()
	switch p {
	case Day:
		return time.Date(y, m, d, 0, 0, 0, 0, loc)
	case Week:
		back := (int(t.Weekday()) + 6) % 7 // days since Monday
		return time.Date(y, m, d-back, 0, 0, 0, 0, loc)
	case Month:
		return time.Date(y, m, 1, 0, 0, 0, 0, loc)
	}
	return time.Time{}
}

// End returns the start of the window after the one that contains t. For
// Total it returns the zero time.
//
// It is the next window's Start, computed from its calendar date: adding a
// day to a Start that a skipped midnight moved to 01:00 (Africa/Cairo on
// the day summer time begins) would end the window at 01:00 of the next
// day, an hour into a window that starts at its midnight.
func (p Period) End(t time.Time, loc *time.Location) time.Time {
	if loc == nil {
		loc = time.UTC
	}
	s := p.Start(t, loc)
	y, m, d := s.In(loc).Date()
	switch p {
	case Day:
		return time.Date(y, m, d+1, 0, 0, 0, 0, loc)
	case Week:
		return time.Date(y, m, d+7, 0, 0, 0, 0, loc)
	case Month:
		return time.Date(y, m+1, 1, 0, 0, 0, 0, loc)
	}
	return time.Time{}
}

// Window names the window of p that contains t, e.g. "total",
// "day:2026-11-26", "week:2026-11-23" (its Monday) or "month:2026-11".
func (p Period) Window(t time.Time, loc *time.Location) string {
	s := p.Start(t, loc)
	switch p {
	case Day, Week:
		return string(p) + ":" + s.Format("2006-01-02")
	case Month:
		return string(p) + ":" + s.Format("2006-01")
	}
	return string(Total)
}
