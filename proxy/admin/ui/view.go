package ui

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/proxy/admin"
)

func defaultThresholds() []budget.Fraction {
	return append([]budget.Fraction(nil), alert.DefaultThresholds...)
}

// Bar levels, the CSS classes of a budget's bar: under the first alert
// threshold, past it, past the last threshold below the limit, at or over
// the limit.
const (
	levelOK   = "ok"
	levelWarn = "warn"
	levelHigh = "high"
	levelOver = "over"
)

// barView is a budget as the overview draws it.
type barView struct {
	Scope, Label, Href string
	Killed             bool
	// Committed, Reserved and Limit are the API's decimal strings.
	Committed, Reserved, Limit string
	// CommittedPct and ReservedPct are the bar's two parts in percent of
	// the limit (clipped to 100 together), as SVG widths.
	CommittedPct, ReservedPct string
	// CommittedText, ReservedText and LimitText are the amounts shown.
	CommittedText, ReservedText, LimitText string
	// UsedPct is committed and reserved in percent of the limit, for the
	// text; Level the bar's colour.
	UsedPct, Level string
	Period, Window string
	// Marks are the alert thresholds' places on the bar, in percent.
	Marks    []string
	LastHour string
	RunOut   string
}

// thresholdsOf are a budget's own thresholds, else the config's.
func (h *Handler) thresholdsOf(alertAt []string) []budget.Fraction {
	if len(alertAt) == 0 {
		return h.opts.Thresholds
	}
	out := make([]budget.Fraction, 0, len(alertAt))
	for _, s := range alertAt {
		if f, err := budget.ParseFraction(s); err == nil {
			out = append(out, f)
		}
	}
	return budget.SortFractions(out)
}

// level is the colour of used spend against limit with thresholds ths
// (ascending).
func level(used, limit budget.Money, ths []budget.Fraction) string {
	if used >= limit {
		return levelOver
	}
	var below []budget.Fraction
	for _, f := range ths {
		if f < budget.FractionOne {
			below = append(below, f)
		}
	}
	switch {
	case len(below) == 0 || used < below[0].Of(limit):
		return levelOK
	case len(below) > 1 && used >= below[len(below)-1].Of(limit):
		return levelHigh
	}
	return levelWarn
}

// percent is a of b in percent with one decimal, "0" when b is 0 and a is
// too, "100" past it when clip is set. big.Int because a times 1000
// overflows int64 for large amounts.
func percent(a, b budget.Money, clip bool) string {
	if b <= 0 {
		if a > 0 || clip {
			return "100"
		}
		return "0"
	}
	q := new(big.Int).Mul(big.NewInt(int64(max(a, 0))), big.NewInt(1000))
	q.Quo(q, big.NewInt(int64(b)))
	if clip && q.Cmp(big.NewInt(1000)) > 0 {
		q.SetInt64(1000)
	}
	s := q.String()
	if len(s) < 2 {
		s = "0" + s
	}
	whole, frac := s[:len(s)-1], s[len(s)-1:]
	if frac == "0" {
		return whole
	}
	return whole + "." + frac
}

// newBar draws one budget of the overview.
func (h *Handler) newBar(b admin.OverviewBudget) barView {
	limit := *b.Budget.Limit
	used := b.Budget.Spent + b.Budget.Reserved
	v := barView{
		Scope: b.Scope, Killed: b.Killed,
		Committed: b.Budget.Spent.String(), Reserved: b.Budget.Reserved.String(), Limit: limit.String(),
		CommittedText: usd(b.Budget.Spent), ReservedText: usd(b.Budget.Reserved), LimitText: usd(limit),
		UsedPct: percent(used, limit, false), Level: level(used, limit, h.thresholdsOf(b.AlertAt)),
		Period: string(b.Budget.Period), Window: b.Budget.Window, LastHour: usd(b.LastHour),
	}
	c := min(b.Budget.Spent, limit)
	v.CommittedPct = percent(c, limit, true)
	v.ReservedPct = percent(min(b.Budget.Reserved, limit-c), limit, true)
	if limit == 0 {
		v.CommittedPct, v.ReservedPct = "100", "0"
	}
	for _, f := range h.thresholdsOf(b.AlertAt) {
		if f < budget.FractionOne {
			v.Marks = append(v.Marks, strings.TrimSuffix(f.Percent(), " %"))
		}
	}
	switch b.Kind {
	case "global":
		v.Label = "Everything (global budget)"
	case "project":
		v.Label, v.Href = "Project "+b.Project, "/ui/projects/"+b.Project
	default:
		v.Label, v.Href = "Token "+b.TokenID, "/ui/tokens/"+b.TokenID
		if b.Name != "" {
			v.Label += " (" + b.Name + ", " + b.Project + ")"
		} else {
			v.Label += " (" + b.Project + ")"
		}
	}
	if b.RunOut != nil {
		if !b.RunOut.After(h.opts.Now()) {
			v.RunOut = "reached"
		} else {
			v.RunOut = b.RunOut.UTC().Format("2006-01-02 15:04 UTC")
		}
	}
	return v
}

// usd shows an amount in USD with at least two decimals and no more than
// needed: "5.00", "0.00045".
func usd(m budget.Money) string {
	s := m.String()
	dot := strings.IndexByte(s, '.')
	if dot < 0 {
		return "$" + s + ".00"
	}
	s = strings.TrimRight(s, "0")
	for len(s)-dot-1 < 2 {
		s += "0"
	}
	if strings.HasPrefix(s, "-") {
		return "-$" + s[1:]
	}
	return "$" + s
}

// amount is a limit as a budget field takes it: the decimal without
// trailing zeros ("2", "0.0003"), or "unlimited".
func amount(m *budget.Money) string {
	if m == nil {
		return budget.UnlimitedWord
	}
	s := m.String()
	s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	return s
}

// usdPtr shows an optional limit: "no limit" when nil.
func usdPtr(m *budget.Money) string {
	if m == nil {
		return "no limit"
	}
	return usd(*m)
}

// chartView is the spend-over-time chart: one bar per hour, in an SVG
// view box of chartWidth by chartHeight.
type chartView struct {
	Bars  []chartBar
	Max   string
	Total string
	From  string
	To    string
	// Ticks label every sixth hour.
	Ticks []chartTick
}

type chartBar struct {
	X, Y, W, H string
	Title      string
}

type chartTick struct {
	X, Label string
}

const (
	chartWidth  = 480
	chartHeight = 120
)

// newChart draws the hours' spend, each bar's height in proportion to the
// largest hour's.
func newChart(hours []admin.SpendHour) chartView {
	var top, total budget.Money
	for _, hr := range hours {
		top = max(top, hr.Spent)
		total += hr.Spent
	}
	v := chartView{Max: usd(top), Total: usd(total)}
	if len(hours) == 0 {
		return v
	}
	v.From = hours[0].Start.Format("2006-01-02 15:04")
	v.To = hours[len(hours)-1].Start.Add(time.Hour).Format("2006-01-02 15:04 UTC")
	w := chartWidth / len(hours)
	for i, hr := range hours {
		hgt := 0
		if top > 0 {
			q := new(big.Int).Mul(big.NewInt(int64(hr.Spent)), big.NewInt(chartHeight))
			hgt = int(q.Quo(q, big.NewInt(int64(top))).Int64())
			if hr.Spent > 0 && hgt == 0 {
				hgt = 1 // a spend is never drawn as none
			}
		}
		x := i * w
		v.Bars = append(v.Bars, chartBar{
			X: strconv.Itoa(x + 1), Y: strconv.Itoa(chartHeight - hgt), W: strconv.Itoa(max(w-2, 1)), H: strconv.Itoa(hgt),
			Title: fmt.Sprintf("%s UTC: %s", hr.Start.Format("Jan 2 15:04"), usd(hr.Spent)),
		})
		if i%6 == 0 {
			v.Ticks = append(v.Ticks, chartTick{X: strconv.Itoa(x + 1), Label: hr.Start.Format("15:04")})
		}
	}
	return v
}

// when shows a time for people, "" for the zero time.
func when(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format("2006-01-02 15:04:05 UTC")
}
