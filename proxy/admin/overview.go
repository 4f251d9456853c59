package admin

import (
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"strconv"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
)

// OverviewView is the answer of GET /admin/v1/overview: what the
// dashboard's overview shows. Budgets lists every budget with a limit (the
// global one, then projects, then tokens that are not revoked), each with
// its spend in the last hour and the time it runs out at that rate; Hours
// is the spend of each of the last hours, oldest first, the last one the
// hour now running.
type OverviewView struct {
	Time             time.Time        `json:"time"`
	KillAll          bool             `json:"kill_all"`
	OpenReservations int              `json:"open_reservations"`
	InFlight         int              `json:"in_flight"`
	Global           BudgetView       `json:"global"`
	Budgets          []OverviewBudget `json:"budgets"`
	Hours            []SpendHour      `json:"hours"`
}

// OverviewBudget is one budget of the overview.
type OverviewBudget struct {
	// Scope names the budget: "global:PERIOD", "project:NAME" or
	// "token:ID".
	Scope   string `json:"scope"`
	Kind    string `json:"kind"`
	Project string `json:"project,omitempty"`
	TokenID string `json:"token_id,omitempty"`
	// Name is the token's label.
	Name   string `json:"name,omitempty"`
	Killed bool   `json:"killed"`
	// AlertAt are the budget's own alert thresholds; [] means the
	// config's alerts.thresholds.
	AlertAt []string   `json:"alert_at"`
	Budget  BudgetView `json:"budget"`
	// LastHour is what the budget's requests were charged in the last 60
	// minutes.
	LastHour budget.Money `json:"last_hour_usd"`
	// RunOut is when committed and reserved spend reach the limit if
	// spending goes on at LastHour's rate: now when it is reached already,
	// absent when nothing was spent in the last hour or the time is more
	// than MaxRunOut away.
	RunOut *time.Time `json:"run_out,omitempty"`
}

// SpendHour is the spend charged in one hour, [Start, Start+1h).
type SpendHour struct {
	Start time.Time    `json:"start"`
	Spent budget.Money `json:"spent_usd"`
}

// MaxRunOut is the furthest projected run-out the overview gives; beyond
// it the projection says nothing useful.
const MaxRunOut = 366 * 24 * time.Hour

// MaxOverviewHours is the most hours GET /admin/v1/overview?hours= gives.
const MaxOverviewHours = 24 * 14

// errTotalsRead stops a usage stream once its totals are read: the
// overview needs sums, never the records.
var errTotalsRead = errors.New("admin: usage totals read")

// overview serves GET /admin/v1/overview[?hours=N] (default 24, at most
// MaxOverviewHours). The chart's, the global and the projects' sums come
// from the ledger's hour totals, a token's last hour from its index
// entries of that hour: the cost grows with the budgets, the hours and the
// last hour's requests, never with the length of the history.
func (h *Handler) overview(w http.ResponseWriter, r *http.Request) {
	hours := 24
	if s := r.URL.Query().Get("hours"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxOverviewHours {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("hours %q is not a whole number from 1 to %d", budget.Clip(s), MaxOverviewHours))
			return
		}
		hours = n
	}
	if !h.flushed(w, r) {
		return
	}
	out, err := h.overviewView(hours)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, out)
}

func (h *Handler) overviewView(hours int) (OverviewView, error) {
	now := h.opts.Now()
	st, err := h.opts.DB.Status()
	if err != nil {
		return OverviewView{}, err
	}
	out := OverviewView{Time: now.UTC(), KillAll: st.KillAll, OpenReservations: st.OpenReservations,
		Global: budgetView(st.Global), Budgets: []OverviewBudget{}}
	if h.opts.Proxy != nil {
		out.InFlight = h.opts.Proxy.InFlight()
	}
	hourAgo := now.Add(-time.Hour)
	add := func(b OverviewBudget, f storage.RecordFilter) error {
		if b.Budget.Limit == nil {
			return nil
		}
		f.Since = hourAgo
		var err error
		if b.LastHour, err = h.spentSince(f); err != nil {
			return err
		}
		b.RunOut = runOut(b.Budget, b.LastHour, now)
		out.Budgets = append(out.Budgets, b)
		return nil
	}
	if err := add(OverviewBudget{Scope: "global:" + string(out.Global.Period), Kind: "global", Killed: st.KillAll, AlertAt: []string{}, Budget: out.Global}, storage.RecordFilter{}); err != nil {
		return out, err
	}
	ps, err := h.opts.DB.Projects()
	if err != nil {
		return out, err
	}
	for _, p := range ps {
		bs, err := h.opts.DB.BudgetStatus(budget.ProjectScope(p.Name))
		if err != nil {
			return out, err
		}
		v := projectView(p, bs)
		if err := add(OverviewBudget{Scope: "project:" + p.Name, Kind: "project", Project: p.Name, Killed: p.Killed, AlertAt: v.AlertAt, Budget: v.Budget},
			storage.RecordFilter{Project: p.Name}); err != nil {
			return out, err
		}
	}
	ts, err := h.opts.DB.Tokens("")
	if err != nil {
		return out, err
	}
	for _, t := range ts {
		if !t.Revoked.IsZero() {
			continue
		}
		bs, err := h.opts.DB.BudgetStatus(budget.TokenScope(t.ID))
		if err != nil {
			return out, err
		}
		if err := add(OverviewBudget{Scope: "token:" + t.ID, Kind: "token", Project: t.Project, TokenID: t.ID, Name: t.Name, Killed: t.Killed,
			AlertAt: alertAtView(t.AlertAt), Budget: budgetView(bs)}, storage.RecordFilter{TokenID: t.ID}); err != nil {
			return out, err
		}
	}
	// Each hour's spend is the difference of two sums from the hour's start
	// on; a record settled between the two reads can only make a later sum
	// larger, so a negative difference is clamped.
	first := now.Truncate(time.Hour).Add(-time.Duration(hours-1) * time.Hour)
	sums := make([]budget.Money, hours+1)
	for i := range hours {
		if sums[i], err = h.spentSince(storage.RecordFilter{Since: first.Add(time.Duration(i) * time.Hour)}); err != nil {
			return out, err
		}
	}
	out.Hours = make([]SpendHour, hours)
	for i := range hours {
		out.Hours[i] = SpendHour{Start: first.Add(time.Duration(i) * time.Hour).UTC(), Spent: max(sums[i]-sums[i+1], 0)}
	}
	return out, nil
}

// spentSince is the charge of the records f selects, read from the totals
// alone.
func (h *Handler) spentSince(f storage.RecordFilter) (budget.Money, error) {
	f.Limit = 1
	var spent budget.Money
	err := h.opts.DB.StreamUsage(f, func(u storage.Usage) error {
		spent = u.Spent
		return errTotalsRead
	}, func(budget.Record) error { return nil })
	if errors.Is(err, errTotalsRead) {
		err = nil
	}
	return spent, err
}

// runOut projects when b's committed and reserved spend reach its limit at
// rate per hour.
func runOut(b BudgetView, rate budget.Money, now time.Time) *time.Time {
	if b.Limit == nil {
		return nil
	}
	left := *b.Limit - b.Spent - b.Reserved
	if left <= 0 {
		t := now.UTC()
		return &t
	}
	if rate <= 0 {
		return nil
	}
	// left/rate hours in nanoseconds; big.Int because left times an hour
	// in nanoseconds overflows int64 for budgets above about 2,500 USD.
	d := new(big.Int).Mul(big.NewInt(int64(left)), big.NewInt(int64(time.Hour)))
	d.Quo(d, big.NewInt(int64(rate)))
	if !d.IsInt64() || time.Duration(d.Int64()) > MaxRunOut {
		return nil
	}
	t := now.Add(time.Duration(d.Int64())).UTC()
	return &t
}
