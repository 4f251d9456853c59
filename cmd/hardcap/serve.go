package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/alert/webhook"
	"github.com/hardcap/hardcap/audit"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
	"github.com/hardcap/hardcap/cluster"
	"github.com/hardcap/hardcap/demo"
	"github.com/hardcap/hardcap/internal/connguard"
	"github.com/hardcap/hardcap/metrics"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/proxy/admin"
	"github.com/hardcap/hardcap/proxy/admin/ui"
	"github.com/hardcap/hardcap/storage"
	"github.com/rs/zerolog"
	"golang.org/x/time/rate"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Main is a running hardcap server. End-to-end tests build one with
// NewMain, Run it, and Close it.
type Main struct {
	Config  Config
	DataDir string
	// Demo serves the built-in simulated OpenAI and Anthropic providers as
	// "openai" and "anthropic".
	Demo bool
	// Now is the clock; default time.Now.
	Now func() time.Time
	// LogOutput receives the logs; default stderr.
	LogOutput io.Writer
	// ConfigPath is the config file the server was started with ("" for
	// none), which hardcap audit searches for keys in clear and a SIGHUP
	// reads again.
	ConfigPath string
	// Hangups delivers SIGHUP (serveCommand subscribes it): each one
	// reloads the config from ConfigPath (reload.go) and re-reads every
	// provider key source, as hardcap keys reload does, while Run serves.
	// nil: none.
	Hangups <-chan os.Signal

	log     zerolog.Logger
	logBuf  *logBuffer // nil unless logs go to a file; see newLogger
	db      *storage.DB
	cluster *cluster.Node // nil without cluster:
	// clusterFeed carries the ledger's tenancy changes to the cluster.
	clusterFeed cluster.Feed
	proxy       *proxy.Proxy
	metrics     *metrics.Metrics
	keys        *proxy.Keys // the provider key sources, tied to the key ledger
	server      *http.Server
	listener    net.Listener
	demo        *http.Server
	// metricsServer and metricsListener serve metrics_listen; nil when
	// it is not set.
	metricsServer   *http.Server
	metricsListener net.Listener
	tls             *tlsServing // nil without tls:
	catalog         *pricing.Catalog
	started         time.Time
	closeMu         sync.Mutex
	closed          bool

	// notifier delivers alerts; nil when no channel is configured.
	notifier notifier
	// cutter and waker are the proxy and the notifier as the storage
	// callbacks see them: both are built after the database, whose
	// callbacks may run from the first request on.
	cutter atomic.Pointer[proxy.Proxy]
	waker  atomic.Pointer[notifier]
	// reconcile is the scheduled reconcile; nil when off.
	reconcile *reconcileLoop
	// reconcileFirst, when set, replaces the wait before the first
	// scheduled reconcile (tests).
	reconcileFirst time.Duration
	// tlsTuning shortens the TLS timings (tests).
	tlsTuning tlsTuning
	// stopBackground ends the deliverer and the scheduled reconcile;
	// background waits for them.
	stopBackground context.CancelFunc
	background     sync.WaitGroup
	// live is what a SIGHUP's config reload changes (reload.go).
	live live
}

// notifier is what the server needs of alert delivery (alert/webhook's
// Deliverer).
type notifier interface {
	// Run delivers the outbox until ctx ends.
	Run(ctx context.Context)
	// Wake makes Run read the outbox now: an alert was just recorded.
	Wake()
	// Channels lists the channels without URL or secret.
	Channels() []webhook.ChannelInfo
	// DeliverNow attempts an entry's delivery at once (hardcap alerts
	// test).
	DeliverNow(ctx context.Context, e alert.Entry) []webhook.Result
}

// settlementsOf is the proxy's settlement retry queue as the metrics read
// it: nothing waits before the proxy exists.
type settlementsOf struct{ p *atomic.Pointer[proxy.Proxy] }

// SettlementsWaiting is the proxy's SettlementsWaiting, or none before
// the proxy exists.
func (s settlementsOf) SettlementsWaiting() (int, budget.Money) {
	if p := s.p.Load(); p != nil {
		return p.SettlementsWaiting()
	}
	return 0, 0
}

// newNotifier builds the alert deliverer from the configured channels; it
// is webhook.New in a build with alert delivery.
var newNotifier = func(o webhook.Options) (notifier, error) { return webhook.New(o) }

// Open prepares everything Run serves: logs, the database (with recovery),
// the admin token, prices and the listener.
func (m *Main) Open() error {
	if m.Now == nil {
		m.Now = time.Now
	}
	if m.LogOutput == nil {
		m.LogOutput = os.Stderr
	}
	var err error
	if m.log, m.logBuf, m.live.level, err = newLogger(m.Config.Log, m.LogOutput); err != nil {
		return err
	}
	set, err := m.Config.check()
	if err != nil {
		return err
	}
	// The database comes first: its lock keeps a second hardcap on this
	// directory from writing the admin token or anything else.
	if err := m.prepareDataDir(); err != nil {
		return err
	}
	m.db, err = m.openStorage(storage.Options{
		Now: m.Now, Location: set.location, Global: set.global, OnLow: set.onLow,
		Retention: set.retention,
		Alerts:    set.alerts.policy,
		// A freeze cuts the frozen token's (project's) streams, once the
		// proxy exists; the kill switch already refuses new requests.
		OnFreeze: func(t storage.KillTarget) {
			if p := m.cutter.Load(); p != nil {
				p.Cut(proxy.CutTarget{TokenID: t.Token, Project: t.Project})
			}
		},
		OnAlert: func() {
			if n := m.waker.Load(); n != nil {
				(*n).Wake()
			}
		},
		Escrow: set.cluster.on,
		Outbox: set.cluster.on,
		// In a cluster, every tenancy change is published to the others.
		Changed: m.clusterFeed.Changed,
	})
	if err != nil {
		return err
	}
	// Backup copies a crash left behind; only now, holding the lock, is it
	// certain that no running hardcap is still streaming one.
	if stale, _ := filepath.Glob(filepath.Join(m.DataDir, ".hardcap-backup-*.tmp")); len(stale) > 0 {
		for _, f := range stale {
			_ = os.Remove(f)
		}
		m.log.Info().Int("files", len(stale)).Msg("removed backup copies a previous run left in the data dir")
	}
	opened := false
	defer func() {
		if !opened {
			if m.demo != nil {
				_ = m.demo.Close()
				m.demo = nil
			}
			m.leaveCluster()
			_ = m.closeStorage()
		}
	}()
	adminToken, err := loadAdminToken(m.DataDir)
	if err != nil {
		return err
	}
	catalog, err := loadPricesFrom(m.Config.Prices, m.DataDir)
	if err != nil {
		return err
	}
	for _, s := range sourceAges(catalog, m.Now()) {
		if s["stale"] == true {
			m.log.Warn().Str("source", s["name"].(string)).Str("as_of", s["as_of"].(string)).Int("age_days", s["age_days"].(int)).
				Msg("price data is older than 90 days; run hardcap prices update")
		}
	}
	m.catalog = catalog
	var ledger budget.Ledger = m.db
	if set.cluster.on {
		if err := m.joinCluster(set); err != nil {
			return err
		}
		ledger = m.cluster.Escrow
	}
	if m.Demo {
		if set.providers, err = m.startDemo(set.providers); err != nil {
			return err
		}
	}
	for _, rec := range m.db.Recovered() {
		m.log.Warn().Str("reservation", rec.ReservationID).Str("token", rec.TokenID).Str("project", rec.Project).
			Str("model", rec.Model).Stringer("charged_usd", rec.Charged).
			Msg("charged in full a reservation the last run left unsettled")
	}
	// The metrics read the proxy's retry queue through m.cutter, set just
	// below: the proxy takes them as its Observer, so they come first.
	m.metrics = metrics.New(metrics.Options{Books: m.db, Settlements: settlementsOf{&m.cutter}, Runtime: true, PerToken: m.Config.MetricsPerToken})
	m.proxy = proxy.New(proxy.Options{
		Observer:        m.metrics,
		Providers:       set.providers,
		Tokens:          m.db,
		Ledger:          ledger,
		Prices:          catalog,
		Log:             m.log,
		Now:             m.Now,
		MaxBodyBytes:    m.Config.MaxBodyBytes,
		UpstreamTimeout: m.Config.UpstreamTimeout,
		TrustedProxies:  set.trustedProxies,
	})
	m.cutter.Store(m.proxy)
	if set.alerts.hasChannels() {
		opts := set.alerts.delivery
		opts.Outbox, opts.Log, opts.Now = m.alertOutbox(), m.log, m.Now
		n, err := newNotifier(opts)
		if err != nil {
			return err
		}
		m.live.alerts.swap(n)
	} else {
		m.log.Info().Msg("alerts: no channel configured (alerts.webhooks, alerts.email): alerts are recorded and hardcap alerts lists them, but none is sent")
	}
	// A reload swaps the deliverer behind this one (reload.go).
	m.notifier = &m.live.alerts
	m.waker.Store(&m.notifier)
	m.reconcile = newReconcileLoop(m.reconcileProviders(m.Config), set, m.db, m.Now, m.log)
	if m.reconcile != nil && m.reconcileFirst > 0 {
		m.reconcile.first = m.reconcileFirst
	}
	m.keys = proxy.NewKeys(proxy.KeysOptions{Providers: set.providers, Recorder: admin.KeyLedger{DB: m.db}, Log: m.log, Now: m.Now})
	adminAPI := admin.New(admin.Options{
		DB: m.db, Proxy: m.proxy, AdminToken: adminToken, Log: m.log, Now: m.Now,
		Status: func() map[string]any { return m.statusFacts(m.liveSettings(set)) },
		// hardcap audit: the server's files, prices and providers.
		AuditFacts: func() audit.Input { return m.auditFacts(m.liveSettings(set)) },
		// The key ledger's default rotation period (tokens.rotate_every).
		RotateEvery: set.rotateEvery,
		Keys:        m.keys,
		// Without a channel it has none to list or test.
		Notifier: m.notifier,
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.Handle("/admin/", adminAPI)
	mux.Handle("/ui/", ui.New(ui.Options{Admin: adminAPI, AdminToken: adminToken, Now: m.Now, Log: m.log, Thresholds: set.alerts.policy.Thresholds}))
	mux.Handle("/ui", http.RedirectHandler("/ui/", http.StatusMovedPermanently))
	// Every method, so that a POST /metrics is a 405 here, not the data
	// plane's unknown-route refusal.
	mux.Handle("/metrics", m.metricsHandler(adminToken, set.metricsToken))
	mux.Handle("/", m.proxy)
	m.server = &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: m.Config.ReadHeaderTimeout,
		// net/http lifts this deadline once the body has been read, so it
		// bounds a stalled upload and never a streaming response.
		ReadTimeout:    m.Config.ReadTimeout,
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       log.New(logWriter{m.log}, "", 0),
	}
	inner, err := net.Listen("tcp", m.Config.Listen)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	refuseLog := &rate.Sometimes{Interval: time.Second}
	m.listener = &connguard.Listener{
		Listener: inner, Max: m.Config.MaxConnections, PerIP: m.Config.MaxConnectionsPerIP,
		OnRefuse: func(ip, limit string) {
			// At most one line a second: a flood must not flood the log too.
			refuseLog.Do(func() {
				m.log.Warn().Str("client_ip", ip).Str("limit", limit).Msg("connections refused: too many open connections")
			})
		},
	}
	if m.listener, err = m.openTLS(set.tls, m.listener); err != nil {
		return err
	}
	if err := m.openMetricsListener(m.Config.MetricsListen); err != nil {
		_ = m.listener.Close()
		return err
	}
	m.startLive(set, catalog, adminToken, adminAPI)
	m.started = m.Now()
	opened = true
	return nil
}

// Addr is the address the server listens on.
func (m *Main) Addr() string { return m.listener.Addr().String() }

// Run serves until ctx ends, then shuts down gracefully: see Close.
func (m *Main) Run(ctx context.Context) error {
	m.log.Info().Str("listen", m.listenURL()).Str("data_dir", m.DataDir).Bool("demo", m.Demo).
		Str("version", version).Msg("hardcap serving")
	// Loading the price data and checking the database made garbage
	// that would otherwise stay mapped until the runtime's scavenger
	// returns it, minutes later: give it back before serving.
	debug.FreeOSMemory()
	// The key ledger sees each source now and at every KeyTTL, traffic or
	// not, so a changed key is recorded when it changes.
	m.keys.Start(proxy.KeyTTL)
	m.startBackground()
	m.startTLS()
	// SIGHUP reloads the config and re-reads the key sources; the loop
	// ends before Close, so no reload writes to a closing database.
	hupCtx, stopHups := context.WithCancel(ctx)
	var hups sync.WaitGroup
	hups.Go(func() { m.serveHangups(hupCtx) })
	errc := make(chan error, 1)
	go func() { errc <- m.server.Serve(m.listener) }()
	if m.metricsServer != nil {
		m.log.Info().Str("metrics_listen", "http://"+m.MetricsAddr()+"/metrics").Msg("metrics served without a token")
		go func() { _ = m.metricsServer.Serve(m.metricsListener) }()
	}
	select {
	case err := <-errc:
		stopHups()
		hups.Wait()
		if !errors.Is(err, http.ErrServerClosed) {
			_ = m.Close()
			return err
		}
		return nil
	case <-ctx.Done():
		stopHups()
		hups.Wait()
		return m.Close()
	}
}

// hangupActor is who the key ledger's audit log entries of a SIGHUP reload
// name.
const hangupActor = "signal"

// serveHangups reloads the config (reload.go) and re-reads the provider
// key sources at each SIGHUP until ctx ends.
func (m *Main) serveHangups(ctx context.Context) {
	if m.Hangups == nil {
		return
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.Hangups:
			m.reload(ctx)
		}
	}
}

// reloadKeys re-reads every provider key source (what hardcap keys reload
// does, as the actor "signal") and logs one info line with what changed. A
// source that fails keeps the key read before.
func (m *Main) reloadKeys(ctx context.Context) {
	got, err := m.keys.Reload(storage.WithActor(context.WithoutCancel(ctx), hangupActor), "")
	const msg = "SIGHUP: provider keys re-read"
	if err != nil {
		// ErrNoProviders: nothing to re-read.
		m.log.Info().Str("result", err.Error()).Msg(msg)
		return
	}
	var changed, reused, first, unchanged, failed []string
	for _, r := range got {
		switch {
		case r.Err != nil:
			// The error names the source, never a value.
			failed = append(failed, r.Provider+": "+r.Err.Error())
		case r.Reused:
			reused = append(reused, r.Provider+" "+r.Previous+" -> "+r.Fingerprint)
		case r.Changed:
			changed = append(changed, r.Provider+" "+r.Previous+" -> "+r.Fingerprint)
		case r.First:
			first = append(first, r.Provider+" "+r.Fingerprint)
		default:
			unchanged = append(unchanged, r.Provider)
		}
	}
	m.log.Info().Int("providers", len(got)).Strs("changed", changed).Strs("reused", reused).Strs("first", first).
		Strs("unchanged", unchanged).Strs("failed", failed).Msg(msg)
}

// Close stops accepting requests, waits up to ShutdownGrace for in-flight
// requests to finish and settle, cuts and settles what is left, tries once
// more the settlements the ledger failed to write, then syncs and closes
// the database. Anything cut short is charged in full by the next start's
// recovery.
func (m *Main) Close() error {
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.closed || m.db == nil {
		return nil
	}
	m.closed = true
	grace := m.Config.ShutdownGrace
	ctx, cancel := context.WithTimeout(context.Background(), grace)
	defer cancel()
	m.log.Info().Dur("grace", grace).Int("in_flight", m.proxy.InFlight()).Msg("shutting down")
	err := m.server.Shutdown(ctx)
	if err == nil {
		err = m.proxy.Wait(ctx)
	}
	m.proxy.Close()
	if err != nil {
		n := m.proxy.Close()
		m.log.Warn().Int("cut", n).Msg("grace period over: cutting in-flight requests")
		_ = m.server.Close()
		wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = m.proxy.Wait(wctx)
		wcancel()
	}
	m.closeTLS()
	if m.demo != nil {
		_ = m.demo.Close()
	}
	if m.metricsServer != nil {
		_ = m.metricsServer.Close()
		_ = m.metricsListener.Close() // when Run never served it
	}
	// Settlements the ledger failed to write get one more try before the
	// database closes; the next start charges what is left in full.
	fctx, fcancel := context.WithTimeout(context.Background(), 5*time.Second)
	if n, held := m.proxy.FlushSettlements(fctx); n > 0 {
		m.log.Error().Int("settlements", n).Stringer("held_usd", held).
			Msg("settlements still not recorded at shutdown: the next start charges their reservations in full")
	}
	fcancel()
	// Every request has settled: the slices go back to the cluster.
	m.leaveCluster()
	// Alert delivery and the scheduled reconcile end before the database
	// closes; what is not delivered yet waits in the outbox for the next
	// start.
	m.stopBackgroundWork()
	// The upstream 401 counts held in memory go to the key ledger.
	if m.keys != nil {
		kctx, kcancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := m.keys.Close(kctx); err != nil {
			m.log.Warn().Err(err).Msg("upstream 401 counts of the provider keys were not written to the key ledger")
		}
		kcancel()
	}
	if err := m.closeStorage(); err != nil {
		return err
	}
	m.log.Info().Msg("stopped")
	// Lines after this one (Run returning) are written through.
	m.closeLog()
	return nil
}

// startDemo serves the simulated providers on a loopback port and points
// the "openai" provider at the OpenAI simulator (under /v1) and the
// "anthropic" provider at the Anthropic one (under /anthropic/v1); other
// configured providers are kept as they are.
func (m *Main) startDemo(provs []*proxy.Provider) ([]*proxy.Provider, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("demo provider: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("/", demo.NewOpenAI(demo.Options{}))
	mux.Handle("/anthropic/", http.StripPrefix("/anthropic", demo.NewAnthropic(demo.Options{})))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	m.demo = srv
	// srv, not m.demo: a failed Open clears m.demo while this runs.
	go func() { _ = srv.Serve(ln) }()
	base, _ := url.Parse("http://" + ln.Addr().String() + "/v1")
	antBase, _ := url.Parse("http://" + ln.Addr().String() + "/anthropic")
	out := []*proxy.Provider{
		{Name: "openai", Kind: proxy.KindOpenAI, BaseURL: base, Key: proxy.StaticKey("demo-key"), Prices: "openai"},
		{Name: "anthropic", Kind: proxy.KindAnthropic, BaseURL: antBase, Key: proxy.StaticKey("demo-key"), Prices: "anthropic"},
	}
	for _, p := range provs {
		if p.Name != "openai" && p.Name != "anthropic" {
			out = append(out, p)
		}
	}
	m.log.Info().Str("models", strings.Join(demo.DefaultModels, ", ")).
		Str("completions_models", strings.Join(demo.CompletionsModels, ", ")).
		Str("embedding_models", strings.Join(demo.EmbeddingModels, ", ")).
		Str("anthropic_models", strings.Join(demo.DefaultAnthropicModels, ", ")).
		Msg("demo providers: simulated OpenAI and Anthropic, no key, no network")
	return out, nil
}

// startBackground starts the alert deliverer, when a channel is
// configured, and the scheduled reconcile, when on.
func (m *Main) startBackground() {
	ctx, cancel := context.WithCancel(context.Background())
	m.closeMu.Lock()
	defer m.closeMu.Unlock()
	if m.closed {
		cancel()
		return
	}
	m.stopBackground = cancel
	if n := m.notifier; n != nil {
		m.background.Go(func() { n.Run(ctx) })
	}
	// The scheduled reconcile as the last reload set it (reload.go).
	m.background.Go(func() { m.runReconcile(ctx) })
}

// stopBackgroundWork ends what startBackground started and waits for it.
// Close calls it with closeMu held.
func (m *Main) stopBackgroundWork() {
	if m.stopBackground != nil {
		m.stopBackground()
	}
	m.background.Wait()
}

// reconcileProviders is the config the scheduled reconcile reads of cfg:
// in demo mode the simulated providers replace openai and anthropic, so
// their admin keys would compare a real bill with simulated books.
func (m *Main) reconcileProviders(cfg Config) Config {
	if m.Demo {
		all := cfg.Providers
		cfg.Providers = map[string]ProviderConfig{}
		for name, pc := range all {
			if name != "openai" && name != "anthropic" {
				cfg.Providers[name] = pc
			}
		}
	}
	return cfg
}

func (m *Main) statusFacts(set settings) map[string]any {
	provs := make([]map[string]string, 0, len(set.providers))
	for _, p := range set.providers {
		provs = append(provs, map[string]string{"name": p.Name, "kind": string(p.Kind), "base_url": p.BaseURL.String(), "prices": p.Prices, "key_source": p.Key.String()})
	}
	facts := map[string]any{
		"version":   version,
		"listen":    m.Addr(),
		"demo":      m.Demo,
		"uptime_s":  int64(m.Now().Sub(m.started).Seconds()),
		"providers": provs,
		"on_low":    set.onLow,
		"timezone":  set.location.String(),
		"prices":    sourceAges(m.liveCatalog(), m.Now()),
		// Names and kinds only: a channel's URL and secret are credentials.
	}
	if c := m.cluster; c != nil {
		facts["cluster"] = c.State()
	}
	return facts
}

// loadPrices is the catalog of the built-in price data, prices.file and
// the overrides (no downloaded data).
func loadPrices(pc PricesConfig) (*pricing.Catalog, error) { return loadPricesFrom(pc, "") }

// loadAdminToken returns $HARDCAP_ADMIN_TOKEN, else the token in
// <dataDir>/admin.token, creating that file (mode 0600) on first start. The
// file is written whole or not at all (temporary file, sync, rename), so a
// crash or a full disk cannot leave it empty; a file that is empty or
// malformed anyway is refused with what to do, never echoed.
func loadAdminToken(dataDir string) (string, error) {
	if t := strings.TrimSpace(os.Getenv("HARDCAP_ADMIN_TOKEN")); t != "" {
		return t, nil
	}
	path := filepath.Join(dataDir, "admin.token")
	b, err := os.ReadFile(path)
	if err == nil {
		t := strings.TrimSpace(string(b))
		if problem := adminTokenProblem(t); problem != "" {
			return "", fmt.Errorf("admin token: %s %s: delete it and hardcap writes a new one at the next start (CLI users then read the new file), or set $HARDCAP_ADMIN_TOKEN", path, problem)
		}
		return t, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return "", fmt.Errorf("admin token: %w", err)
	}
	t := "hcadmin_" + rand.Text()
	if err := writeFileAtomic(path, []byte(t+"\n")); err != nil {
		return "", fmt.Errorf("admin token: writing %s: %w", path, err)
	}
	return t, nil
}

// Bounds of an admin token read from a file; hardcap writes 34 characters.
const (
	minAdminToken = 16
	maxAdminToken = 512
)

// adminTokenProblem says what is wrong with a token read from admin.token,
// or "" when nothing is. It never quotes the token.
func adminTokenProblem(t string) string {
	switch {
	case t == "":
		return "is empty (a crash or a full disk while it was written?)"
	case len(t) < minAdminToken:
		return fmt.Sprintf("holds a token shorter than %d characters, too short to be safe", minAdminToken)
	case len(t) > maxAdminToken:
		return fmt.Sprintf("holds more than %d characters, not a token (damaged?)", maxAdminToken)
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] > '~' {
			return "is not one word of printable characters (damaged?)"
		}
	}
	return ""
}

// newLogger builds the logger: console format on a terminal, JSON
// otherwise, unless the config says which. Output to a file (stderr
// redirected, not a terminal) goes through a logBuffer, returned so the
// caller closes it (flushing its last lines); nil otherwise. The level is
// applied by the returned gate, which a reload changes.
func newLogger(lc LogConfig, out io.Writer) (zerolog.Logger, *logBuffer, *levelGate, error) {
	level, err := parseLogLevel(lc)
	if err != nil {
		return zerolog.Logger{}, nil, nil, err
	}
	terminal, file := false, false
	if f, ok := out.(*os.File); ok {
		file = true
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			terminal = true
		}
	}
	format := lc.Format
	if format == "" || format == "auto" {
		format = "json"
		if terminal {
			format = "console"
		}
	}
	// A write syscall per line costs more than the rest of a request's
	// line; a person watching a terminal wants each line as it comes.
	var buffered *logBuffer
	if file && !terminal {
		buffered = newLogBuffer(out, logFlushEvery)
		out = buffered
	}
	if format == "console" {
		out = zerolog.ConsoleWriter{Out: out, TimeFormat: time.TimeOnly}
	}
	// The logger passes every level to the gate, which drops those below
	// log.level: a reload changes the gate, and every copy of the logger
	// follows. Debug lines are rare (none on a request's path), so the
	// ones dropped cost little.
	gate := newLevelGate(out, level)
	return zerolog.New(gate).Level(zerolog.TraceLevel).With().Timestamp().Logger(), buffered, gate, nil
}

// closeLog flushes and stops the log buffer, if there is one: the last
// lines reach the output before the process exits.
func (m *Main) closeLog() {
	if m.logBuf != nil {
		_ = m.logBuf.Close()
	}
}

// logWriter sends the standard library's server errors to zerolog. Most
// are a client's doing (a bad request line, a reset) and go to debug; a
// handler panic that net/http recovered is hardcap's fault and goes to error
// with its stack, never hidden at debug.
type logWriter struct{ l zerolog.Logger }

func (w logWriter) Write(p []byte) (int, error) {
	msg := strings.TrimSpace(string(p))
	if strings.HasPrefix(msg, "http: panic serving") {
		first, stack, _ := strings.Cut(msg, "\n")
		w.l.Error().Str("stack", stack).Msg(first)
		return len(p), nil
	}
	w.l.Debug().Msg(msg)
	return len(p), nil
}

var _ budget.Ledger = (*storage.DB)(nil)
