package metrics

import (
	"sort"
	"sync/atomic"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
	"github.com/prometheus/client_golang/prometheus"
)

// books reads the ledger at scrape time: a prometheus.Collector whose
// figures are the ones storage and the proxy already keep, so requests pay
// nothing for them.
type books struct {
	db     Books
	settle Settlements
	// errs counts the reads that failed, across scrapes.
	errs atomic.Uint64

	commits, ops, latency, batch *prometheus.Desc
	overshoots, overshootUSD     *prometheus.Desc
	openRes, reservedUSD         *prometheus.Desc
	waiting, waitingUSD          *prometheus.Desc
	killAll                      *prometheus.Desc
	spent, reserved              *prometheus.Desc
	limit, remaining             *prometheus.Desc
	alertsWaiting, alertsFailed  *prometheus.Desc
	scrapeErrors                 *prometheus.Desc
	tokenSpent, tokenReserved    *prometheus.Desc
	// perToken sends tokenSpent and tokenReserved for each live token, and
	// the limit and headroom of the tokens with a limit.
	perToken bool
}

func newBooks(db Books, s Settlements) *books {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc("hardcap_"+name, help, labels, nil)
	}
	return &books{
		db: db, settle: s,
		commits:       d("ledger_commits_total", "Transactions the ledger's group-commit writer committed since start."),
		ops:           d("ledger_operations_total", "Operations (reservations, settlements, ...) those commits carried."),
		latency:       d("ledger_commit_seconds", "Time one group commit spent writing and syncing: the wait of every reservation in it."),
		batch:         d("ledger_commit_batch_size", "Operations per group commit."),
		overshoots:    d("overshoots_total", "Settlements that charged more than they reserved; should stay zero."),
		overshootUSD:  d("overshoot_usd_total", "Sum of the charges above their reservations, in USD; should stay zero."),
		openRes:       d("reservations_open", "Reservations not yet settled: requests in flight."),
		reservedUSD:   d("reservations_open_usd", "Money the open reservations hold, in USD."),
		waiting:       d("settlements_waiting", "Settlements the ledger failed to write, waiting for a retry."),
		waitingUSD:    d("settlements_waiting_usd", "Money the reservations of the waiting settlements hold, in USD."),
		killAll:       d("kill_all", "1 when the global kill switch is on."),
		spent:         d("spent_usd", "Settled spend of the project's current budget window, in USD.", "project"),
		reserved:      d("reserved_usd", "Money held by the project's open reservations in its current window, in USD.", "project"),
		limit:         d("budget_limit_usd", "Ceiling of the budget's current window, in USD; only budgets with a limit.", "scope"),
		remaining:     d("budget_remaining_usd", "What a new reservation may still take from the budget: limit - spent - reserved, never negative, in USD.", "scope"),
		alertsWaiting: d("alerts_waiting", "Alerts waiting for delivery on some channel."),
		alertsFailed:  d("alerts_failed", "Alerts among the last listed whose delivery failed for good on some channel."),
		scrapeErrors:  d("scrape_errors_total", "Reads of the books that failed during scrapes (their metrics were left out)."),
		tokenSpent:    d("token_spent_usd", "Settled spend of the token's current budget window, in USD (metrics_per_token).", "token", "project"),
		tokenReserved: d("token_reserved_usd", "Money held by the token's open reservations in its current window, in USD (metrics_per_token).", "token", "project"),
	}
}

// Describe sends every metric's description.
func (b *books) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		b.commits, b.ops, b.latency, b.batch, b.overshoots, b.overshootUSD, b.openRes, b.reservedUSD,
		b.waiting, b.waitingUSD, b.killAll, b.spent, b.reserved, b.limit, b.remaining,
		b.alertsWaiting, b.alertsFailed, b.scrapeErrors,
	} {
		ch <- d
	}
	if b.perToken {
		ch <- b.tokenSpent
		ch <- b.tokenReserved
	}
}

// Collect reads the books. A read that fails leaves its metrics out and
// counts in hardcap_scrape_errors_total; the rest is still sent.
func (b *books) Collect(ch chan<- prometheus.Metric) {
	b.collectWriter(ch)
	if st, err := b.db.Status(); err != nil {
		b.errs.Add(1)
	} else {
		ch <- prometheus.MustNewConstMetric(b.overshoots, prometheus.CounterValue, float64(st.Overshoots))
		ch <- prometheus.MustNewConstMetric(b.overshootUSD, prometheus.CounterValue, usd(st.OvershootUSD))
		ch <- prometheus.MustNewConstMetric(b.killAll, prometheus.GaugeValue, boolValue(st.KillAll))
		b.collectLimit(ch, st.Global)
	}
	if open, err := b.db.OpenReservations(); err != nil {
		b.errs.Add(1)
	} else {
		var held budget.Money
		for _, r := range open {
			held += r.Amount
		}
		ch <- prometheus.MustNewConstMetric(b.openRes, prometheus.GaugeValue, float64(len(open)))
		ch <- prometheus.MustNewConstMetric(b.reservedUSD, prometheus.GaugeValue, usd(held))
	}
	if b.settle != nil {
		n, held := b.settle.SettlementsWaiting()
		ch <- prometheus.MustNewConstMetric(b.waiting, prometheus.GaugeValue, float64(n))
		ch <- prometheus.MustNewConstMetric(b.waitingUSD, prometheus.GaugeValue, usd(held))
	}
	b.collectProjects(ch)
	if b.perToken {
		b.collectTokens(ch)
	}
	if waiting, failed, err := b.db.AlertCounts(); err != nil {
		b.errs.Add(1)
	} else {
		ch <- prometheus.MustNewConstMetric(b.alertsWaiting, prometheus.GaugeValue, float64(waiting))
		ch <- prometheus.MustNewConstMetric(b.alertsFailed, prometheus.GaugeValue, float64(failed))
	}
	ch <- prometheus.MustNewConstMetric(b.scrapeErrors, prometheus.CounterValue, float64(b.errs.Load()))
}

// collectWriter sends the group-commit writer's counters and its two
// histograms, rebuilt from storage's buckets (cumulative, as Prometheus
// wants them; the overflow bucket is only in the count, as +Inf).
func (b *books) collectWriter(ch chan<- prometheus.Metric) {
	ws := b.db.WriterStats()
	ch <- prometheus.MustNewConstMetric(b.commits, prometheus.CounterValue, float64(ws.Commits))
	ch <- prometheus.MustNewConstMetric(b.ops, prometheus.CounterValue, float64(ws.Ops))
	lat := make(map[float64]uint64, len(storage.CommitLatencyBounds))
	var n uint64
	for i, bound := range storage.CommitLatencyBounds {
		if i < len(ws.CommitLatency) {
			n += ws.CommitLatency[i]
		}
		lat[bound.Seconds()] = n
	}
	ch <- prometheus.MustNewConstHistogram(b.latency, sum(ws.CommitLatency), ws.CommitTime.Seconds(), lat)
	size := make(map[float64]uint64, len(storage.BatchSizeBounds))
	n = 0
	for i, bound := range storage.BatchSizeBounds {
		if i < len(ws.BatchSize) {
			n += ws.BatchSize[i]
		}
		size[float64(bound)] = n
	}
	ch <- prometheus.MustNewConstHistogram(b.batch, sum(ws.BatchSize), float64(ws.Ops), size)
}

// collectProjects sends each project's spend and, when it has a limit, its
// limit and headroom, as hardcap project list computes them.
func (b *books) collectProjects(ch chan<- prometheus.Metric) {
	ps, err := b.db.Projects()
	if err != nil {
		b.errs.Add(1)
		return
	}
	sort.Slice(ps, func(i, j int) bool { return ps[i].Name < ps[j].Name })
	for _, p := range ps {
		bs, err := b.db.BudgetStatus(budget.ProjectScope(p.Name))
		if err != nil {
			b.errs.Add(1)
			continue
		}
		ch <- prometheus.MustNewConstMetric(b.spent, prometheus.GaugeValue, usd(bs.Committed), p.Name)
		ch <- prometheus.MustNewConstMetric(b.reserved, prometheus.GaugeValue, usd(bs.Reserved), p.Name)
		b.collectLimit(ch, bs)
	}
}

// collectTokens sends each live token's spend and reservations of its
// current window and, when it has a limit, its limit and headroom under
// the scope label "token:ID". Revoked tokens are left out: they can spend
// no more, and their series would only grow.
func (b *books) collectTokens(ch chan<- prometheus.Metric) {
	ts, err := b.db.Tokens("")
	if err != nil {
		b.errs.Add(1)
		return
	}
	for _, t := range ts {
		if !t.Revoked.IsZero() {
			continue
		}
		bs, err := b.db.BudgetStatus(budget.TokenScope(t.ID))
		if err != nil {
			b.errs.Add(1)
			continue
		}
		ch <- prometheus.MustNewConstMetric(b.tokenSpent, prometheus.GaugeValue, usd(bs.Committed), t.ID, t.Project)
		ch <- prometheus.MustNewConstMetric(b.tokenReserved, prometheus.GaugeValue, usd(bs.Reserved), t.ID, t.Project)
		b.collectLimit(ch, bs)
	}
}

// collectLimit sends a budget's limit and remaining headroom, when it has
// a limit (a zero ceiling included).
func (b *books) collectLimit(ch chan<- prometheus.Metric, bs storage.BudgetStatus) {
	c, ok := bs.Limit.Ceiling()
	if !ok {
		return
	}
	scope := string(bs.Scope)
	ch <- prometheus.MustNewConstMetric(b.limit, prometheus.GaugeValue, usd(c), scope)
	ch <- prometheus.MustNewConstMetric(b.remaining, prometheus.GaugeValue, usd(bs.Spend.Headroom(bs.Limit)), scope)
}

// usd converts nano-USD to USD for Prometheus, whose samples are float64
// by its format: here, and only here, money leaves integers. The whole
// dollars and the nanos are converted apart, so amounts up to 2^53 USD
// keep their cents.
func usd(m budget.Money) float64 {
	return float64(m/budget.NanoPerUSD) + float64(m%budget.NanoPerUSD)/budget.NanoPerUSD
}

func boolValue(v bool) float64 {
	if v {
		return 1
	}
	return 0
}

func sum(xs []uint64) uint64 {
	var n uint64
	for _, x := range xs {
		n += x
	}
	return n
}
