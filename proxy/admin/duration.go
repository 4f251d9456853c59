package admin

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/hardcap/hardcap/budget"
)

// MaxDuration is the longest duration ParseDuration accepts: 100 years of
// 365.25 days, well inside time.Duration's 292 years.
const MaxDuration = 100 * 8766 * time.Hour

// durationUnits are the units ParseDuration adds to Go's: days, weeks and
// years of 365 days, the units people use for token expiry and usage
// windows.
var durationUnits = map[string]time.Duration{"d": 24 * time.Hour, "w": 7 * 24 * time.Hour, "y": 365 * 24 * time.Hour}

// ParseDuration parses a Go duration ("90m", "720h") or a whole number of
// days, weeks or years ("30d", "2w", "1y"), up to MaxDuration. A negative
// duration is refused.
func ParseDuration(s string) (time.Duration, error) {
	for suffix, unit := range durationUnits {
		n, ok := strings.CutSuffix(s, suffix)
		if !ok {
			continue
		}
		v, err := strconv.ParseUint(n, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("%q is not a whole number of %s", budget.Clip(s), unitName(suffix))
		}
		if time.Duration(v) > MaxDuration/unit {
			return 0, fmt.Errorf("%q is longer than 100 years", budget.Clip(s))
		}
		return time.Duration(v) * unit, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		if strings.Contains(err.Error(), "invalid duration") || strings.Contains(err.Error(), "unknown unit") || strings.Contains(err.Error(), "missing unit") {
			return 0, fmt.Errorf("%q is not a duration such as 90m, 720h, 30d, 2w or 1y", budget.Clip(s))
		}
		// time.ParseDuration fails with "overflow" past 292 years.
		return 0, fmt.Errorf("%q is longer than 100 years", budget.Clip(s))
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", budget.Clip(s))
	}
	if d > MaxDuration {
		return 0, fmt.Errorf("%q is longer than 100 years", budget.Clip(s))
	}
	return d, nil
}

func unitName(suffix string) string {
	switch suffix {
	case "w":
		return "weeks"
	case "y":
		return "years"
	}
	return "days"
}
