package main

import (
	"context"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/proxy/admin"
	"github.com/hardcap/hardcap/storage"
	"github.com/rs/zerolog"
)

// ReconcileConfig is reconcile: in hardcap.yaml, the server's scheduled
// comparison of each provider's cost report (read with its admin_key) with
// hardcap's books.
type ReconcileConfig struct {
	// Every is how often, as a duration ("6h", the default, or "1d"), or
	// "off".
	Every string `yaml:"every"`
	// Tolerance is how far the provider's cost for a day may exceed the
	// books before it is an anomaly.
	Tolerance ToleranceConfig `yaml:"tolerance"`
}

// ToleranceConfig is the excess of a provider's cost over hardcap's books
// that is still no drift: the larger of Percent of the books and USD.
type ToleranceConfig struct {
	// Percent is a decimal percentage of the books ("2", the default).
	Percent string `yaml:"percent"`
	// USD is a decimal amount ("0.10", the default).
	USD string `yaml:"usd"`
}

// Defaults of the scheduled reconcile.
const (
	defaultReconcileEvery = 6 * time.Hour
	// reconcileFirst is the wait before the first round: the server is
	// serving by then, and a crash loop does not hammer the provider.
	reconcileFirst = time.Minute
	// minReconcileEvery keeps the provider's cost API from being polled
	// hard.
	minReconcileEvery = 10 * time.Minute
)

// Default tolerance: 2 % and USD 0.10. The percentage is held in
// nano-units, as money is, so "2" is 2e9.
const (
	defaultTolerancePercent = 2 * budget.NanoPerUSD
	defaultToleranceUSD     = budget.NanoPerUSD / 10
)

// reconcileSettings are the checked reconcile: settings.
type reconcileSettings struct {
	// every is 0 when the schedule is off.
	every time.Duration
	// percent is the tolerance's percentage in nano-units.
	percent budget.Money
	usd     budget.Money
}

// check validates reconcile: and converts it.
func (rc ReconcileConfig) check() (reconcileSettings, error) {
	s := reconcileSettings{every: defaultReconcileEvery, percent: defaultTolerancePercent, usd: defaultToleranceUSD}
	switch rc.Every {
	case "":
	case "off":
		s.every = 0
	default:
		d, err := admin.ParseDuration(rc.Every)
		if err != nil || d < minReconcileEvery {
			return s, fmt.Errorf(`config: reconcile.every must be a duration of at least %s such as 6h or 1d, or "off"`, minReconcileEvery)
		}
		s.every = d
	}
	if rc.Tolerance.Percent != "" {
		p, err := budget.ParseUSD(rc.Tolerance.Percent)
		if err != nil || p > 100*budget.NanoPerUSD {
			return s, errors.New(`config: reconcile.tolerance.percent must be a decimal percentage from 0 to 100, such as "2"`)
		}
		s.percent = p
	}
	if rc.Tolerance.USD != "" {
		m, err := budget.ParseUSD(rc.Tolerance.USD)
		if err != nil {
			return s, errors.New(`config: reconcile.tolerance.usd must be a decimal USD amount such as "0.10"`)
		}
		s.usd = m
	}
	return s, nil
}

// tolerance is the excess over books that is still no drift: the larger
// of the percentage of books and the amount.
func (s reconcileSettings) tolerance(books budget.Money) budget.Money {
	share := new(big.Int).Mul(big.NewInt(int64(max(books, 0))), big.NewInt(int64(s.percent)))
	share.Quo(share, big.NewInt(100*budget.NanoPerUSD))
	if !share.IsInt64() {
		return budget.Money(1<<63 - 1)
	}
	return max(budget.Money(share.Int64()), s.usd)
}

// reconcileBooks is what the scheduled reconcile needs of the database.
type reconcileBooks interface {
	Daily(storage.DailyFilter) ([]storage.DailyUsage, error)
	RaiseAlert(context.Context, alert.Alert, storage.RaiseOptions) (alert.Entry, bool, error)
}

// reconcileLoop compares, every round, each provider's cost report for
// yesterday and today (UTC) with hardcap's books, and raises
// anomaly.reconcile_drift, once per provider and day, for a day the
// provider billed more than the books and the tolerance.
type reconcileLoop struct {
	// providers are the providers with an admin_key, by name.
	providers map[string]ProviderConfig
	books     reconcileBooks
	http      *http.Client
	set       reconcileSettings
	now       func() time.Time
	log       zerolog.Logger
	// first is the wait before the first round.
	first time.Duration
}

// newReconcileLoop returns the loop for cfg, or nil when the schedule is
// off, no provider has an admin_key, or the policy turns reconcile_drift
// off.
func newReconcileLoop(cfg Config, set settings, books reconcileBooks, now func() time.Time, log zerolog.Logger) *reconcileLoop {
	if set.reconcile.every <= 0 || !set.alerts.policy.On(alert.ReconcileDrift, "") {
		return nil
	}
	provs := map[string]ProviderConfig{}
	for name, pc := range cfg.Providers {
		if pc.AdminKey != "" {
			provs[name] = pc
		}
	}
	if len(provs) == 0 {
		return nil
	}
	return &reconcileLoop{providers: provs, books: books, http: costHTTPClient(), set: set.reconcile, now: now, log: log, first: reconcileFirst}
}

// run runs a round after first and then every set.every, until ctx ends.
func (l *reconcileLoop) run(ctx context.Context) {
	t := time.NewTimer(l.first)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		l.round(ctx)
		t.Reset(l.set.every)
	}
}

// round compares every provider once. A provider that fails is logged and
// tried again next round.
func (l *reconcileLoop) round(ctx context.Context) {
	names := sortedKeys(l.providers)
	for _, name := range names {
		if ctx.Err() != nil {
			return
		}
		raised, err := l.provider(ctx, name)
		if err != nil {
			// The error names the source and never the key (costAPI
			// scrubs what the provider echoes).
			l.log.Warn().Str("provider", name).Err(err).Msg("scheduled reconcile: the provider's cost report could not be compared; trying again next round")
			continue
		}
		l.log.Debug().Str("provider", name).Int("drift_alerts", raised).Msg("scheduled reconcile: compared the cost report with the books")
	}
}

// provider compares one provider's yesterday and today and returns how
// many alerts it raised.
func (l *reconcileLoop) provider(ctx context.Context, name string) (int, error) {
	today := l.now().UTC().Truncate(24 * time.Hour)
	start, end := today.Add(-24*time.Hour), today.Add(24*time.Hour)
	costs, err := fetchCosts(ctx, l.http, name, l.providers[name], start, end)
	if err != nil {
		return 0, err
	}
	rows, err := l.books.Daily(storage.DailyFilter{Provider: name, Since: start})
	if err != nil {
		return 0, fmt.Errorf("hardcap's books: %w", err)
	}
	billed, booked := map[string]budget.Money{}, map[string]budget.Money{}
	for _, c := range costs {
		if billed[c.day], err = billed[c.day].Add(c.amount); err != nil {
			return 0, fmt.Errorf("the cost report's sum for %s: %w", c.day, err)
		}
	}
	for _, d := range rows {
		if booked[d.Day], err = booked[d.Day].Add(d.Charged); err != nil {
			return 0, fmt.Errorf("hardcap's sum for %s: %w", d.Day, err)
		}
	}
	raised := 0
	for _, day := range []string{start.Format(storage.DayLayout), today.Format(storage.DayLayout)} {
		ok, err := l.drift(ctx, name, day, billed[day], booked[day])
		if err != nil {
			return raised, err
		}
		if ok {
			raised++
		}
	}
	return raised, nil
}

// drift raises the alert for one provider and day when the provider
// billed more than the books and the tolerance; false when it did not, or
// the alert was raised before.
func (l *reconcileLoop) drift(ctx context.Context, provider, day string, billed, books budget.Money) (bool, error) {
	excess, err := billed.Add(-books)
	if err != nil || excess <= l.set.tolerance(books) {
		return false, nil
	}
	limit := books
	a := alert.Alert{
		Type:  alert.TypeReconcileDrift,
		Scope: alert.Scope{Kind: "provider", Provider: provider},
		Spent: billed,
		Limit: &limit,
		Message: fmt.Sprintf("%s billed %s USD on %s, %s USD more than hardcap's books (%s USD). "+
			"hardcap should be the only holder of the real key, so it is probably used somewhere else: "+
			"rotate the provider key now, then run `hardcap scan` on your repositories and CI.",
			provider, billed, day, excess, books),
		Action: alert.ActionAlert,
		Details: map[string]string{
			"provider": provider, "day": day,
			"provider_usd": billed.String(), "books_usd": books.String(), "excess_usd": excess.String(),
		},
	}
	// The mark outlives the two days a round looks at, and no more.
	until := time.Now().Add(72 * time.Hour)
	if t, err := time.Parse(storage.DayLayout, day); err == nil {
		until = t.Add(72 * time.Hour)
	}
	_, raised, err := l.books.RaiseAlert(ctx, a, storage.RaiseOptions{Once: "r/" + provider + "/" + day, OnceUntil: until})
	if err != nil {
		return false, fmt.Errorf("recording the drift alert: %w", err)
	}
	if raised {
		l.log.Warn().Str("provider", provider).Str("day", day).Stringer("provider_usd", billed).Stringer("books_usd", books).
			Stringer("excess_usd", excess).Msg("scheduled reconcile: the provider billed more than hardcap's books; the real key is probably used elsewhere")
	}
	return raised, nil
}
