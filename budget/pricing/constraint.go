package pricing

import (
	"encoding/json"
	"fmt"
	"time"
)

// constraint decides whether one of a model's date- or time-bound price
// variants is active at a request time. genai-prices v2 defines two kinds:
// start_date and a daily start_time/end_time window.
type constraint interface {
	active(at time.Time) bool
}

// startDate is active from 00:00 UTC of its date on: genai-prices compares
// the request's calendar date with start_date (request_date >= start_date),
// and hardcap takes the calendar date in UTC.
type startDate struct{ from time.Time }

func (c startDate) active(at time.Time) bool { return !at.Before(c.from) }

// timeOfDay is active on every day from start (inclusive) to end (exclusive),
// both as offsets from midnight UTC, as genai-prices' start_time <= t <
// end_time. A window whose end is not after its start wraps past midnight
// (22:00 to 06:00); genai-prices would never activate such a window, so none
// appears in its data.
type timeOfDay struct{ start, end time.Duration }

func (c timeOfDay) active(at time.Time) bool {
	u := at.UTC()
	h, m, s := u.Clock()
	t := time.Duration(h)*time.Hour + time.Duration(m)*time.Minute +
		time.Duration(s)*time.Second + time.Duration(u.Nanosecond())
	if c.start < c.end {
		return c.start <= t && t < c.end
	}
	return t >= c.start || t < c.end
}

// parseConstraint reads a ConditionalPrice's constraint. A missing or null
// constraint returns nil, which is always active.
func parseConstraint(raw json.RawMessage) (constraint, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	var c struct {
		StartDate *string `json:"start_date"`
		StartTime *string `json:"start_time"`
		EndTime   *string `json:"end_time"`
	}
	if err := strictUnmarshal(raw, &c); err != nil {
		return nil, fmt.Errorf("%w: constraint %s: %v", ErrInvalidData, raw, err)
	}
	switch {
	case c.StartDate != nil && c.StartTime == nil && c.EndTime == nil:
		d, err := time.Parse(time.DateOnly, *c.StartDate)
		if err != nil {
			return nil, fmt.Errorf("%w: start_date %q: %v", ErrInvalidData, *c.StartDate, err)
		}
		return startDate{from: d}, nil
	case c.StartDate == nil && c.StartTime != nil && c.EndTime != nil:
		start, err := parseTimeOfDay(*c.StartTime)
		if err != nil {
			return nil, err
		}
		end, err := parseTimeOfDay(*c.EndTime)
		if err != nil {
			return nil, err
		}
		return timeOfDay{start: start, end: end}, nil
	}
	return nil, fmt.Errorf("%w: unsupported constraint %s", ErrInvalidData, raw)
}

// parseTimeOfDay parses an ISO time such as "00:30:00Z", "16:30", or
// "08:00:00+08:00" into an offset from midnight UTC. A time without a zone is
// taken as UTC.
func parseTimeOfDay(s string) (time.Duration, error) {
	for _, layout := range []string{"15:04:05.999999999Z07:00", "15:04Z07:00", "15:04:05.999999999", "15:04"} {
		t, err := time.Parse(layout, s)
		if err != nil {
			continue
		}
		h, m, sec := t.UTC().Clock()
		return time.Duration(h)*time.Hour + time.Duration(m)*time.Minute +
			time.Duration(sec)*time.Second + time.Duration(t.Nanosecond()), nil
	}
	return 0, fmt.Errorf("%w: time of day %q", ErrInvalidData, s)
}
