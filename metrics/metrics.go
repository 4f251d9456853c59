package metrics

import (
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Books is what the metrics read of the ledger at scrape time.
// *storage.DB is the implementation.
type Books interface {
	// WriterStats are the group-commit writer's figures since Open.
	WriterStats() storage.WriterStats
	// Status summarizes the books: the global budget, open reservations
	// and overshoots.
	Status() (storage.Status, error)
	// OpenReservations lists the reservations not yet settled.
	OpenReservations() ([]budget.Reservation, error)
	// Projects lists the projects.
	Projects() ([]tokens.Project, error)
	// Tokens lists the tokens of a project, or of every project for "".
	Tokens(project string) ([]tokens.Token, error)
	// BudgetStatus is a scope's limit and current window's spend.
	BudgetStatus(scope budget.Scope) (storage.BudgetStatus, error)
	// AlertCounts are the alerts waiting for delivery and those failed.
	AlertCounts() (waiting, failed int, err error)
}

// Settlements is what the metrics read of the proxy's retry queue.
// *proxy.Proxy is the implementation.
type Settlements interface {
	// SettlementsWaiting is how many settlements wait for a retry and the
	// money (nano-USD) their reservations hold.
	SettlementsWaiting() (n int, held budget.Money)
}

var (
	_ Books          = (*storage.DB)(nil)
	_ Settlements    = (*proxy.Proxy)(nil)
	_ proxy.Observer = (*Metrics)(nil)
)

// Options configures Metrics.
type Options struct {
	// Books is the ledger; nil reports only the request counters.
	Books Books
	// Settlements is the proxy's settlement retry queue; nil reports no
	// settlements waiting metric.
	Settlements Settlements
	// Runtime adds the Go runtime's and the process's standard metrics
	// (go_*, process_*); default false.
	Runtime bool
	// PerToken adds series labelled with token ids: each live token's
	// spend, reservations and budget, and its requests by outcome. Default
	// false: a series per token grows with every token issued, and a
	// token id names who spends (cardinality and privacy are the
	// operator's choice). Token ids only: never a secret.
	PerToken bool
}

// Metrics is hardcap's Prometheus registry. It is the proxy's Observer
// (counting requests and refusals) and serves the scrape with Handler.
type Metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	refusals *prometheus.CounterVec
	// firstByte and duration are the upstream's time to first byte and
	// each settled request's time from reservation to settlement, by
	// provider (a configured name: bounded).
	firstByte *prometheus.HistogramVec
	duration  *prometheus.HistogramVec
	// models are the model names given a label of their own, at most
	// MaxModelLabels: a priced model may be matched by a prefix or a
	// pattern, so a token holder could otherwise make a series per name.
	models  sync.Map
	nModels atomic.Int64
	// tokenRequests counts settled requests by token id and outcome; nil
	// unless Options.PerToken. Only tokens that authenticated settle, so
	// its label values are the operator's tokens, never a client's text.
	tokenRequests *prometheus.CounterVec
}

// MaxModelLabels bounds the model label's values; later models are
// counted under OtherModel.
const MaxModelLabels = 200

// OtherModel is the model label of the models past MaxModelLabels.
const OtherModel = "other"

// New builds the metrics on a registry of their own (never Prometheus's
// global one, so two servers in one process, as in tests, do not clash).
func New(opts Options) *Metrics {
	m := &Metrics{
		reg: prometheus.NewRegistry(),
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hardcap_requests_total",
			Help: "Requests settled, by route, provider, model and outcome.",
		}, []string{"route", "provider", "model", "outcome"}),
		refusals: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hardcap_refusals_total",
			Help: "Requests refused before anything was forwarded, by error code.",
		}, []string{"code"}),
	}
	m.firstByte = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "hardcap_upstream_first_byte_seconds",
		Help:    "Time from a metered request's reservation to the provider's answer headers, by provider.",
		Buckets: latencyBuckets,
	}, []string{"provider"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "hardcap_request_duration_seconds",
		Help:    "Time from a metered request's reservation to its settlement (the whole answer, streams included), by provider.",
		Buckets: latencyBuckets,
	}, []string{"provider"})
	m.reg.MustRegister(m.requests, m.refusals, m.firstByte, m.duration)
	if opts.PerToken {
		m.tokenRequests = prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "hardcap_token_requests_total",
			Help: "Requests settled, by token id, project and outcome (metrics_per_token).",
		}, []string{"token", "project", "outcome"})
		m.reg.MustRegister(m.tokenRequests)
	}
	if opts.Books != nil {
		b := newBooks(opts.Books, opts.Settlements)
		b.perToken = opts.PerToken
		m.reg.MustRegister(b)
	}
	if opts.Runtime {
		m.reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	}
	return m
}

// Settled counts a settled request (proxy.Observer).
func (m *Metrics) Settled(rec budget.Record) {
	m.requests.WithLabelValues(rec.Route, rec.Provider, m.modelLabel(rec.Model), string(rec.Outcome)).Inc()
	m.duration.WithLabelValues(rec.Provider).Observe(float64(rec.LatencyMS) / 1000)
	if m.tokenRequests != nil && rec.TokenID != "" {
		m.tokenRequests.WithLabelValues(rec.TokenID, rec.Project, string(rec.Outcome)).Inc()
	}
}

// Responded observes the upstream's time to first byte (proxy.Observer).
func (m *Metrics) Responded(provider string, firstByte time.Duration) {
	m.firstByte.WithLabelValues(provider).Observe(firstByte.Seconds())
}

// latencyBuckets span a fast upstream's first byte to a long stream's
// end, in seconds.
var latencyBuckets = []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600}

// modelLabel is model, while fewer than MaxModelLabels models have a
// label, else OtherModel.
func (m *Metrics) modelLabel(model string) string {
	if _, ok := m.models.Load(model); ok {
		return model
	}
	if m.nModels.Add(1) > MaxModelLabels {
		m.nModels.Add(-1)
		return OtherModel
	}
	if _, loaded := m.models.LoadOrStore(model, struct{}{}); loaded {
		m.nModels.Add(-1)
	}
	return model
}

// Refused counts a refusal by its public code (proxy.Observer).
func (m *Metrics) Refused(code string) {
	m.refusals.WithLabelValues(code).Inc()
}

// Handler serves the scrape in Prometheus's text (or negotiated) format.
// A figure the books cannot give (a damaged database) is left out and the
// rest is still served, so one failing read does not blind the dashboard:
// hardcap_scrape_errors_total says a read failed. At most four scrapes
// run at once; more are answered 503, so a flood of scrapes cannot pile
// reads on the database.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorHandling:       promhttp.ContinueOnError,
		MaxRequestsInFlight: 4,
	})
}
