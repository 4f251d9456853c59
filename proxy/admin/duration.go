package admin

import (
	"strconv"
	"strings"
	"time"
)

// ParseDuration parses a Go duration ("90m", "720h") or a whole number of
// days ("30d"), the unit people use for token expiry and usage windows.
func ParseDuration(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.Atoi(d)
		if err != nil || n < 0 || n > 36500 {
			return 0, &time.ParseError{Layout: "Nd", Value: s, Message: ": want a whole number of days"}
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	return time.ParseDuration(s)
}
