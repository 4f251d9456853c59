package budget

import (
	"testing"
	"time"
)

func TestPeriod_Window(t *testing.T) {
	// 2026-11-26 is a Thursday.
	at := time.Date(2026, 11, 26, 23, 30, 0, 0, time.UTC)
	tokyo := time.FixedZone("UTC+9", 9*3600)
	tests := []struct {
		p    Period
		loc  *time.Location
		want string
	}{
		{Total, time.UTC, "total"},
		{Day, time.UTC, "day:2026-11-26"},
		{Day, tokyo, "day:2026-11-27"},
		{Week, time.UTC, "week:2026-11-23"},
		{Month, time.UTC, "month:2026-11"},
		{Month, tokyo, "month:2026-11"},
	}
	for _, tt := range tests {
		t.Run(string(tt.p)+"/"+tt.loc.String(), func(t *testing.T) {
			if got := tt.p.Window(at, tt.loc); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestPeriod_Rollover(t *testing.T) {
	before := time.Date(2026, 11, 30, 23, 59, 59, 0, time.UTC)
	after := before.Add(time.Second)
	for _, p := range []Period{Day, Month} {
		if p.Window(before, nil) == p.Window(after, nil) {
			t.Errorf("%s: got the same window across midnight of a month end", p)
		}
		if got := p.End(before, nil); !got.Equal(after) {
			t.Errorf("%s: End = %v, want %v", p, got, after)
		}
	}
	sun := time.Date(2026, 11, 29, 23, 0, 0, 0, time.UTC)
	mon := time.Date(2026, 11, 30, 1, 0, 0, 0, time.UTC)
	if Week.Window(sun, nil) == Week.Window(mon, nil) {
		t.Error("week: Sunday and Monday in the same window")
	}
	if Total.Window(sun, nil) != Total.Window(mon.AddDate(5, 0, 0), nil) {
		t.Error("total: window changed")
	}
}

func TestParsePeriod(t *testing.T) {
	for _, s := range []string{"", "total", "day", "week", "month"} {
		if _, err := ParsePeriod(s); err != nil {
			t.Errorf("ParsePeriod(%q) = %v", s, err)
		}
	}
	if _, err := ParsePeriod("year"); err == nil {
		t.Error("ParsePeriod(year) = nil, want an error")
	}
}

// TestPeriod_EndIsNextStart: a window ends where the next one starts, also
// where a day's midnight does not exist (Africa/Cairo skips from 00:00 to
// 01:00 on 2024-04-26, when summer time begins).
func TestPeriod_EndIsNextStart(t *testing.T) {
	cairo, err := time.LoadLocation("Africa/Cairo")
	if err != nil {
		t.Skipf("no time zone data for Africa/Cairo: %v", err)
	}
	for _, tc := range []struct {
		name string
		p    Period
		at   time.Time
	}{
		{"day without midnight", Day, time.Date(2024, 4, 26, 12, 0, 0, 0, cairo)},
		{"day before it", Day, time.Date(2024, 4, 25, 12, 0, 0, 0, cairo)},
		{"week", Week, time.Date(2024, 4, 24, 12, 0, 0, 0, cairo)},
		{"month", Month, time.Date(2024, 4, 10, 12, 0, 0, 0, cairo)},
		{"utc day", Day, time.Date(2026, 12, 31, 23, 0, 0, 0, time.UTC)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			end := tc.p.End(tc.at, tc.at.Location())
			if next := tc.p.Start(end, tc.at.Location()); !next.Equal(end) {
				t.Errorf("End = %v, but the window there starts at %v", end, next)
			}
			if before := end.Add(-time.Nanosecond); tc.p.Window(before, tc.at.Location()) != tc.p.Window(tc.at, tc.at.Location()) {
				t.Errorf("the instant before End (%v) is in window %s, want %s", before, tc.p.Window(before, tc.at.Location()), tc.p.Window(tc.at, tc.at.Location()))
			}
		})
	}
}
