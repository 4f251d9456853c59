package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"reflect"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/alert/webhook"
	"github.com/hardcap/hardcap/budget/pricing"
	"github.com/hardcap/hardcap/metrics"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/proxy/admin"
	"github.com/rs/zerolog"
)

// A SIGHUP reloads the config file: it is read and checked as at the
// start, and applied whole or not at all. What a running server can change
// (providers and their key sources, prices, alerts and their channels,
// the reconcile schedule, trusted_proxies, metrics_token, log.level,
// usage.retention, tokens.rotate_every, max_body_bytes, upstream_timeout)
// changes for the requests that start after it; a request in flight
// finishes with the providers and prices it started with. What only a
// restart can change (restartKeys) keeps its running value, with a
// warning naming it.

// live is what a reload changes of a running server, beside the proxy's
// table and the database's policy.
type live struct {
	// mu serializes reloads.
	mu sync.Mutex
	// cur is the config being served; nil before Open finishes.
	cur atomic.Pointer[running]
	// flags re-applies the command line's overrides (serve --listen,
	// --allow-insecure-listen) to a config read again; nil for none.
	flags func(*Config)
	// level filters the log by log.level (see newLogger).
	level *levelGate
	// metrics is GET /metrics behind its credentials, which metrics_token
	// changes.
	metrics    swapHandler
	metricsRaw http.Handler
	adminToken string
	admin      *admin.Handler
	// alerts is the alert deliverer the server and the admin API see;
	// reconcile the scheduled reconcile (nil inside when off).
	alerts    liveNotifier
	reconcile swapper[*reconcileLoop]
}

// running is a config being served, with its checked settings and price
// catalog.
type running struct {
	cfg     Config
	set     settings
	catalog *pricing.Catalog
}

// startLive records what Open built, for the reloads to come.
func (m *Main) startLive(set settings, catalog *pricing.Catalog, adminToken string, api *admin.Handler) {
	m.live.adminToken, m.live.admin = adminToken, api
	m.live.reconcile.swap(m.reconcile)
	m.live.cur.Store(&running{cfg: m.Config, set: set, catalog: catalog})
}

// liveConfig is the config being served: the last reload's, else the
// start's.
func (m *Main) liveConfig() Config {
	if r := m.live.cur.Load(); r != nil {
		return r.cfg
	}
	return m.Config
}

// liveSettings is liveConfig's settings; set before Open finishes.
func (m *Main) liveSettings(set settings) settings {
	if r := m.live.cur.Load(); r != nil {
		return r.set
	}
	return set
}

// liveCatalog is liveConfig's price catalog.
func (m *Main) liveCatalog() *pricing.Catalog {
	if r := m.live.cur.Load(); r != nil {
		return r.catalog
	}
	return m.catalog
}

// restartKeys are the config keys a running server cannot change: a
// reload that changes one keeps the running value and warns. The budget
// keys are the database's (its global counter and its calendar); the
// others are the listener's, the HTTP server's or the log's output.
var restartKeys = []struct {
	name string
	get  func(*Config) any
}{
	{"listen", func(c *Config) any { return c.Listen }},
	{"data_dir", func(c *Config) any { return c.DataDir }},
	{"allow_insecure_listen", func(c *Config) any { return c.AllowInsecureListen }},
	{"log.format", func(c *Config) any { return c.Log.Format }},
	{"shutdown_grace", func(c *Config) any { return c.ShutdownGrace }},
	{"read_header_timeout", func(c *Config) any { return c.ReadHeaderTimeout }},
	{"read_timeout", func(c *Config) any { return c.ReadTimeout }},
	{"max_connections", func(c *Config) any { return c.MaxConnections }},
	{"max_connections_per_ip", func(c *Config) any { return c.MaxConnectionsPerIP }},
	{"budget.global", func(c *Config) any { return c.Budget.Global }},
	{"budget.on_low", func(c *Config) any { return c.Budget.OnLow }},
	{"budget.timezone", func(c *Config) any { return c.Budget.Timezone }},
	// The certificate files themselves are re-read (reloadTLS); which
	// files, ACME and the redirect listener are the listener's.
	{"tls", func(c *Config) any { return c.TLS }},
	{"cluster", func(c *Config) any { return c.Cluster }},
	{"metrics_listen", func(c *Config) any { return c.MetricsListen }},
	{"metrics_per_token", func(c *Config) any { return c.MetricsPerToken }},
}

// keepRestartKeys puts the running values of the restart keys back into
// next (and into its settings) and returns the names of those that
// differed.
func keepRestartKeys(old *running, next *running) []string {
	var changed []string
	for _, k := range restartKeys {
		if !reflect.DeepEqual(k.get(&old.cfg), k.get(&next.cfg)) {
			changed = append(changed, k.name)
		}
	}
	c, o := &next.cfg, &old.cfg
	c.Listen, c.DataDir, c.AllowInsecureListen, c.Log.Format = o.Listen, o.DataDir, o.AllowInsecureListen, o.Log.Format
	c.ShutdownGrace, c.ReadHeaderTimeout, c.ReadTimeout = o.ShutdownGrace, o.ReadHeaderTimeout, o.ReadTimeout
	c.MaxConnections, c.MaxConnectionsPerIP = o.MaxConnections, o.MaxConnectionsPerIP
	c.Budget = o.Budget
	c.TLS, c.MetricsListen, c.MetricsPerToken = o.TLS, o.MetricsListen, o.MetricsPerToken
	next.set.tls = old.set.tls
	next.set.global, next.set.onLow, next.set.location = old.set.global, old.set.onLow, old.set.location
	return changed
}

// reloadPlan is a checked config ready to apply, with what it changes.
type reloadPlan struct {
	next *running
	// notifier is the new deliverer when the channels changed (nil inside
	// for none); reconcile the new schedule when it changed.
	notifier  *notifier
	reconcile **reconcileLoop
	// metrics is the new GET /metrics when metrics_token changed.
	metrics http.Handler
	// policy says the alert policy changed.
	policy bool
	// level is log.level's.
	level zerolog.Level

	added, removed, changed []string // providers, by name
	keys                    []string // other keys that change
	restart                 []string // keys that need a restart
	unpriced                []string // models priced before and not now
}

// reload runs one SIGHUP: the config is read again and applied, or
// refused with the running one kept; then every provider key source is
// re-read, as before, so a SIGHUP after a key rotation picks the new key
// up even when the config file has a mistake.
func (m *Main) reload(ctx context.Context) {
	m.live.mu.Lock()
	defer m.live.mu.Unlock()
	old := m.live.cur.Load()
	plan, err := m.planReload(old)
	if err == nil {
		err = m.applyReload(ctx, old, plan)
	}
	if err != nil {
		// The checks' errors name the key at fault, never a value.
		m.log.Error().Str("config", m.ConfigPath).Str("error", err.Error()).
			Msg("SIGHUP: the config was refused; the running config is kept")
	} else {
		m.logReload(plan)
	}
	m.reloadKeys(ctx)
}

// planReload reads and checks the config file as Open does, and works
// out what applying it changes. Nothing is changed yet.
func (m *Main) planReload(old *running) (*reloadPlan, error) {
	cfg, err := loadConfig(m.ConfigPath)
	if err != nil {
		return nil, err
	}
	if m.live.flags != nil {
		m.live.flags(&cfg)
	}
	set, err := cfg.check()
	if err != nil {
		return nil, err
	}
	// newLogger's checks: a bad level or format refuses the config here
	// as it refuses the start.
	level, err := parseLogLevel(cfg.Log)
	if err != nil {
		return nil, err
	}
	catalog, err := loadPricesFrom(cfg.Prices, m.DataDir)
	if err != nil {
		return nil, err
	}
	p := &reloadPlan{next: &running{cfg: cfg, set: set, catalog: catalog}, level: level}
	p.restart = keepRestartKeys(old, p.next)
	if m.Demo {
		set.providers = withDemoProviders(old.set.providers, set.providers)
		p.next.set.providers = set.providers
	}
	p.added, p.removed, p.changed = providerChanges(old.cfg.Providers, cfg.Providers, m.Demo)
	for _, k := range []struct {
		name     string
		old, new any
	}{
		{"prices", old.cfg.Prices, cfg.Prices},
		// The checked values, not the YAML: alerts keeps YAML nodes, whose
		// line numbers move with any edit above them.
		{"alerts", old.set.alerts, set.alerts},
		{"reconcile", old.set.reconcile, set.reconcile},
		{"trusted_proxies", old.set.trustedProxies, set.trustedProxies},
		{"metrics_token", old.set.metricsToken, set.metricsToken},
		{"log.level", old.cfg.Log.Level, cfg.Log.Level},
		{"usage.retention", old.set.retention, set.retention},
		{"tokens.rotate_every", old.set.rotateEvery, set.rotateEvery},
		{"max_body_bytes", old.cfg.MaxBodyBytes, cfg.MaxBodyBytes},
		{"upstream_timeout", old.cfg.UpstreamTimeout, cfg.UpstreamTimeout},
	} {
		if !reflect.DeepEqual(k.old, k.new) {
			p.keys = append(p.keys, k.name)
		}
	}
	p.policy = !reflect.DeepEqual(old.set.alerts.policy, set.alerts.policy)
	// A deliverer is built only when the channels (credentials read again
	// included) changed: an unchanged one goes on with its retries.
	if !reflect.DeepEqual(old.set.alerts.delivery, set.alerts.delivery) {
		var n notifier
		if set.alerts.hasChannels() {
			opts := set.alerts.delivery
			opts.Outbox, opts.Log, opts.Now = m.alertOutbox(), m.log, m.Now
			if n, err = newNotifier(opts); err != nil {
				return nil, err
			}
		}
		p.notifier = &n
	}
	// Likewise the schedule: a new loop waits its first delay again.
	loop := newReconcileLoop(m.reconcileProviders(cfg), set, m.db, m.Now, m.log)
	if loop != nil && m.reconcileFirst > 0 {
		loop.first = m.reconcileFirst
	}
	if cur := m.live.reconcile.load(); !sameSchedule(cur, loop) {
		p.reconcile = &loop
	}
	if set.metricsToken != old.set.metricsToken {
		p.metrics = metrics.RequireToken(m.live.metricsRaw, m.live.adminToken, set.metricsToken)
	}
	p.unpriced = unpricedModels(old, p.next, m.Now())
	return p, nil
}

// applyReload applies a plan. Only the database's policy swap can fail
// once the config is checked; the proxy's refusal would be a bug, and
// undoes what came before it.
func (m *Main) applyReload(ctx context.Context, old *running, p *reloadPlan) error {
	next := p.next
	if p.policy {
		if err := m.db.SetAlerts(ctx, next.set.alerts.policy); err != nil {
			return fmt.Errorf("alerts: the database did not take the new policy: %w", err)
		}
	}
	if err := m.keys.Follow(ctx, next.set.providers); err != nil {
		m.log.Warn().Err(err).Msg("SIGHUP: upstream 401 counts of replaced key sources were not written to the key ledger")
	}
	if err := m.proxy.Reconfigure(proxy.Reconfiguration{
		Providers: next.set.providers, Prices: next.catalog, TrustedProxies: next.set.trustedProxies,
		MaxBodyBytes: next.cfg.MaxBodyBytes, UpstreamTimeout: next.cfg.UpstreamTimeout,
	}); err != nil {
		_ = m.keys.Follow(ctx, old.set.providers)
		if p.policy {
			if perr := m.db.SetAlerts(ctx, old.set.alerts.policy); perr != nil {
				err = errors.Join(err, perr)
			}
		}
		return err
	}
	// The certificate and key files are re-read now; a pair that fails
	// keeps the one served (reloadTLS logs why).
	if err := m.reloadTLS(); err != nil {
		m.log.Warn().Err(err).Msg("SIGHUP: tls.cert_file/key_file not reloaded; the certificate served before is kept")
	}
	m.db.SetRetention(next.set.retention)
	m.live.admin.SetRotateEvery(next.set.rotateEvery)
	m.live.level.set(p.level)
	if p.metrics != nil {
		m.live.metrics.set(p.metrics)
	}
	if p.notifier != nil {
		m.live.alerts.swap(*p.notifier)
	}
	if p.reconcile != nil {
		m.live.reconcile.swap(*p.reconcile)
	}
	m.live.cur.Store(next)
	return nil
}

// logReload logs an applied reload: one info line with what changed
// (names only), a warning for the keys that need a restart and one for
// models no longer priced.
func (m *Main) logReload(p *reloadPlan) {
	if len(p.restart) > 0 {
		m.log.Warn().Strs("keys", p.restart).
			Msg("SIGHUP: these config keys change only with a restart; their running values are kept")
	}
	if len(p.unpriced) > 0 {
		shown := p.unpriced[:min(len(p.unpriced), 20)]
		m.log.Warn().Int("models", len(p.unpriced)).Strs("examples", shown).
			Msg("SIGHUP: models priced before the reload have no price now: their requests are refused until a price is configured")
	}
	m.log.Info().Strs("providers_added", p.added).Strs("providers_removed", p.removed).
		Strs("providers_changed", p.changed).Strs("changed", p.keys).Msg("config reloaded")
}

// parseLogLevel is log.level as newLogger reads it, with log.format
// checked too.
func parseLogLevel(lc LogConfig) (zerolog.Level, error) {
	switch lc.Format {
	case "", "auto", "console", "json":
	default:
		return 0, fmt.Errorf("config: log.format: %q (want auto, console or json)", lc.Format)
	}
	if lc.Level == "" {
		return zerolog.InfoLevel, nil
	}
	l, err := zerolog.ParseLevel(lc.Level)
	if err != nil {
		return 0, fmt.Errorf("config: log.level: %w", err)
	}
	return l, nil
}

// withDemoProviders is the demo mode's providers after a reload: the
// simulated openai and anthropic the server started with, and the
// configured others.
func withDemoProviders(running, configured []*proxy.Provider) []*proxy.Provider {
	var out []*proxy.Provider
	for _, p := range running {
		if isDemoName(p.Name) {
			out = append(out, p)
		}
	}
	for _, p := range configured {
		if !isDemoName(p.Name) {
			out = append(out, p)
		}
	}
	return out
}

// isDemoName says whether the demo mode serves a provider of that name
// itself.
func isDemoName(name string) bool { return name == "openai" || name == "anthropic" }

// providerChanges compares two configs' providers by name; in demo mode
// the simulated ones do not count.
func providerChanges(old, next map[string]ProviderConfig, demo bool) (added, removed, changed []string) {
	for _, name := range slices.Sorted(maps.Keys(next)) {
		if demo && isDemoName(name) {
			continue
		}
		o, had := old[name]
		switch {
		case !had:
			added = append(added, name)
		case !reflect.DeepEqual(o, next[name]):
			changed = append(changed, name)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(old)) {
		if _, ok := next[name]; !ok && !(demo && isDemoName(name)) {
			removed = append(removed, name)
		}
	}
	return added, removed, changed
}

// sameSchedule reports whether two reconcile loops would do the same.
func sameSchedule(a, b *reconcileLoop) bool {
	if a == nil || b == nil {
		return a == b
	}
	return reflect.DeepEqual(a.providers, b.providers) && a.set == b.set && a.first == b.first
}

// unpricedModels lists the models (as provider/model) of the new config's
// providers that the running catalog prices and the new one does not, as
// of now.
func unpricedModels(old, next *running, now time.Time) []string {
	var out []string
	for _, p := range next.set.providers {
		for _, name := range old.catalog.Names(p.Prices) {
			if _, err := old.catalog.Lookup(p.Prices, name, now); err != nil {
				continue
			}
			if _, err := next.catalog.Lookup(p.Prices, name, now); err != nil {
				out = append(out, p.Name+"/"+name)
			}
		}
	}
	return out
}

// levelGate drops the log lines below a level that a reload may change:
// the logger itself logs every level (see newLogger), so the components
// that hold a copy of it follow the change.
type levelGate struct {
	out   io.Writer
	level atomic.Int32
}

func newLevelGate(out io.Writer, l zerolog.Level) *levelGate {
	g := &levelGate{out: out}
	g.set(l)
	return g
}

func (g *levelGate) set(l zerolog.Level) {
	if g != nil {
		g.level.Store(int32(l))
	}
}

// Write passes p on; zerolog calls WriteLevel, which filters.
func (g *levelGate) Write(p []byte) (int, error) { return g.out.Write(p) }

// WriteLevel passes p on when l is at or above the gate's level.
func (g *levelGate) WriteLevel(l zerolog.Level, p []byte) (int, error) {
	if floor := zerolog.Level(g.level.Load()); l < floor || floor == zerolog.Disabled {
		return len(p), nil
	}
	return g.out.Write(p)
}

// swapHandler serves with the handler set last.
type swapHandler struct{ h atomic.Pointer[http.Handler] }

func (s *swapHandler) set(h http.Handler) { s.h.Store(&h) }

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	(*s.h.Load()).ServeHTTP(w, r)
}

// metricsHandler is GET /metrics behind the admin token and
// metrics_token, which a reload may replace.
func (m *Main) metricsHandler(adminToken, metricsToken string) http.Handler {
	m.live.metricsRaw = m.metrics.Handler()
	m.live.metrics.set(metrics.RequireToken(m.live.metricsRaw, adminToken, metricsToken))
	return &m.live.metrics
}

// swapper holds the current one of a background task a reload replaces
// (the alert deliverer, the scheduled reconcile) and runs it: the one
// replaced is stopped, and waited for, before the next one starts, so two
// deliverers never work the outbox at once. The zero value holds the zero
// T.
type swapper[T any] struct {
	mu      sync.Mutex
	cur     T
	changed chan struct{} // closed by the next swap
}

func (s *swapper[T]) load() T {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.cur
}

func (s *swapper[T]) swap(v T) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.cur = v
	if s.changed != nil {
		close(s.changed)
	}
	s.changed = make(chan struct{})
}

// run runs start with the current task until ctx ends, restarting it
// with each swap. start returns when its ctx ends (at once for a task
// that is off).
func (s *swapper[T]) run(ctx context.Context, start func(context.Context, T)) {
	for {
		s.mu.Lock()
		if s.changed == nil {
			s.changed = make(chan struct{})
		}
		cur, changed := s.cur, s.changed
		s.mu.Unlock()
		tctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() {
			defer close(done)
			start(tctx, cur)
		}()
		select {
		case <-ctx.Done():
		case <-changed:
		}
		cancel()
		<-done
		if ctx.Err() != nil {
			return
		}
	}
}

// runReconcile runs the scheduled reconcile, as a reload sets it, until
// ctx ends.
func (m *Main) runReconcile(ctx context.Context) {
	m.live.reconcile.run(ctx, func(ctx context.Context, l *reconcileLoop) {
		if l != nil {
			l.run(ctx)
		}
	})
}

// liveNotifier is the notifier of the server and its admin API: it
// forwards to the deliverer set last (none when no channel is
// configured), so a reload may add, change or remove channels. What is
// not delivered waits in the outbox for the next deliverer.
type liveNotifier struct{ swapper[notifier] }

// Run runs the current deliverer until ctx ends, the next one after each
// swap (once the one before has finished its attempts under way).
func (l *liveNotifier) Run(ctx context.Context) {
	l.run(ctx, func(ctx context.Context, n notifier) {
		if n != nil {
			n.Run(ctx)
		}
	})
}

// Wake wakes the current deliverer.
func (l *liveNotifier) Wake() {
	if n := l.load(); n != nil {
		n.Wake()
	}
}

// Channels lists the current deliverer's channels; none without one.
func (l *liveNotifier) Channels() []webhook.ChannelInfo {
	if n := l.load(); n != nil {
		return n.Channels()
	}
	return nil
}

// DeliverNow attempts e's delivery with the current deliverer; nothing
// without one.
func (l *liveNotifier) DeliverNow(ctx context.Context, e alert.Entry) []webhook.Result {
	if n := l.load(); n != nil {
		return n.DeliverNow(ctx, e)
	}
	return nil
}
