package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/budget/pricing"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/proxy/admin"
	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
	"go.yaml.in/yaml/v3"
)

// Config is hardcap.yaml. Every key is optional; see defaultConfig and the
// README's config reference.
type Config struct {
	Listen    string                    `yaml:"listen"`
	DataDir   string                    `yaml:"data_dir"`
	Providers map[string]ProviderConfig `yaml:"providers"`
	Budget    BudgetConfig              `yaml:"budget"`
	Prices    PricesConfig              `yaml:"prices"`
	Log       LogConfig                 `yaml:"log"`
	// UpstreamTimeout bounds one upstream request, first byte sent to last
	// byte received; default 10m.
	UpstreamTimeout time.Duration `yaml:"upstream_timeout"`
	// MaxBodyBytes bounds request bodies; default 33554432 (32 MiB).
	MaxBodyBytes int64 `yaml:"max_body_bytes"`
	// ShutdownGrace is how long a stop waits for in-flight requests; default
	// 30s.
	ShutdownGrace time.Duration `yaml:"shutdown_grace"`
	// ReadHeaderTimeout bounds how long a client may take to send its
	// request headers (slow clients hold connections); default 10s.
	ReadHeaderTimeout time.Duration `yaml:"read_header_timeout"`
	// ReadTimeout bounds how long a client may take to send a whole request,
	// headers and body (a client stalled inside its body holds a
	// connection); default 60s. Responses are not bounded by it: a stream
	// may run for as long as upstream_timeout allows.
	ReadTimeout time.Duration `yaml:"read_timeout"`
	// MaxConnections caps the connections open at once; default 4096. A
	// connection over the cap is answered 503 with Retry-After and closed.
	MaxConnections int `yaml:"max_connections"`
	// MaxConnectionsPerIP caps the connections open at once from one client
	// IP; default 1024 (on loopback every local app shares 127.0.0.1).
	MaxConnectionsPerIP int `yaml:"max_connections_per_ip"`
	// Alerts says which alerts fire and where they go (see AlertsConfig).
	Alerts AlertsConfig `yaml:"alerts"`
	// Reconcile schedules the comparison of the providers' cost reports
	// with hardcap's books (see ReconcileConfig).
	Reconcile ReconcileConfig `yaml:"reconcile"`
	Usage     UsageConfig     `yaml:"usage"`
	Tokens    TokensConfig    `yaml:"tokens"`
	// AllowInsecureListen allows a listen address other than loopback
	// without tls: tokens and the admin token would cross the network in
	// clear; default false.
	AllowInsecureListen bool `yaml:"allow_insecure_listen"`
	// TrustedProxies lists the proxies in front of hardcap (CIDR prefixes
	// or addresses, IPv4 or IPv6) whose X-Forwarded-For it believes: a
	// request from one comes from the rightmost address of the header that
	// is not itself a trusted proxy. Default none: the client is the TCP
	// peer, and X-Forwarded-For is ignored.
	TrustedProxies []string `yaml:"trusted_proxies"`
	// MetricsToken is a second credential GET /metrics accepts besides the
	// admin token, so a Prometheus server need not hold the admin token:
	// env:NAME, file:PATH or the literal token; default none (the admin
	// token only).
	MetricsToken string `yaml:"metrics_token"`
	// MetricsListen is a second address serving only GET /metrics, with no
	// token, for a Prometheus server that should hold no credential
	// (host:port); default none. It shows project names and spend to whoever
	// reaches it: keep it on loopback or a private network.
	MetricsListen string `yaml:"metrics_listen"`
	// MetricsPerToken adds per-token series (spend, reservations, budget,
	// requests), labelled with token ids; default false (a series per token
	// grows with every token issued).
	MetricsPerToken bool `yaml:"metrics_per_token"`
	// TLS serves HTTPS (see TLSConfig); default off.
	TLS TLSConfig `yaml:"tls"`
	// Cluster makes this hardcap a replica of a cluster (see
	// ClusterConfig); default off.
	Cluster ClusterConfig `yaml:"cluster"`
}

// ProviderConfig is one upstream API.
type ProviderConfig struct {
	// Kind is the API family: openai, or anthropic; default anthropic for a
	// provider named anthropic and openai otherwise.
	Kind string `yaml:"kind"`
	// BaseURL is the API root, e.g. https://api.openai.com/v1.
	BaseURL string `yaml:"base_url"`
	// APIKey is env:NAME, file:PATH or cmd:COMMAND ARGS.
	APIKey string `yaml:"api_key"`
	// Prices is the provider id in the price data; default the provider's
	// name.
	Prices string `yaml:"prices"`
	// CapField is where an injected output cap goes: max_completion_tokens
	// (default for prices: openai) or max_tokens (default otherwise).
	CapField string `yaml:"cap_field"`
	// ExtraParams lists request parameters beyond the ones hardcap knows
	// that this provider may receive. Only list parameters that cannot change
	// what a request costs (sampling knobs, for example).
	ExtraParams []string `yaml:"extra_params"`
	// Allowances grant a per-request amount for inputs and tools a request
	// cannot bound, in USD ("0.05") or tokens ("20000 tokens"):
	// stored_state (previous_response_id, conversation, item references,
	// stored prompts), files (files and images by id), opaque (per
	// encrypted reasoning item or signed thinking block), and, in USD only,
	// the server tools web_search, file_search, code_interpreter, shell,
	// image_generation and mcp (their allowance is also charged, since the
	// usage does not carry per-call fees).
	Allowances map[string]string `yaml:"allowances"`
	// PriceMultiplier scales every rate and fee of this provider, e.g.
	// "1.1" for regional processing; default 1, never below 1.
	PriceMultiplier string `yaml:"price_multiplier"`
	// Organization and Project are the OpenAI organization and project that
	// pay (kind openai only); clients cannot choose them.
	Organization string `yaml:"organization"`
	Project      string `yaml:"project"`
	// Betas lists anthropic-beta names allowed beyond the ones hardcap
	// knows. Only list betas that cannot change what a request costs.
	Betas []string `yaml:"betas"`
	// MaxToolCalls is the max_tool_calls hardcap writes into a Responses
	// request with per-call server tools (web search, file search, image
	// generation, MCP) that sets none; default 8.
	MaxToolCalls int64 `yaml:"max_tool_calls"`
	// AdminKey is the provider's admin key (env:, file: or cmd:), read
	// for the provider's cost report by hardcap reconcile and by the
	// server's scheduled reconcile (reconcile.every), never for requests.
	AdminKey string `yaml:"admin_key"`
	// RotateEvery is how often the provider's real key should be replaced,
	// e.g. "90d" (the default) or "30d": hardcap keys shows the due date
	// and hardcap audit reports a key past it.
	RotateEvery string `yaml:"rotate_every"`
}

// allowanceNames are the keys providers.<name>.allowances accepts, and
// whether they are server tools (USD only).
var allowanceNames = func() map[string]bool {
	m := map[string]bool{proxy.AllowStoredState: false, proxy.AllowFiles: false, proxy.AllowOpaque: false}
	for _, t := range proxy.ServerTools {
		m[t] = true
	}
	return m
}()

// BudgetConfig is the global budget and how limits behave.
type BudgetConfig struct {
	Global   LimitConfig `yaml:"global"`
	OnLow    string      `yaml:"on_low"`
	Timezone string      `yaml:"timezone"`
}

// LimitConfig is a limit in USD over a period.
type LimitConfig struct {
	// LimitUSD is a decimal USD amount; "0" is a limit of zero (every priced
	// request refused), "unlimited" or no value is no limit.
	LimitUSD string `yaml:"limit_usd"`
	Period   string `yaml:"period"`
}

// PricesConfig points at newer price data and overrides single models.
type PricesConfig struct {
	// File is a genai-prices v2 JSON file or a LiteLLM
	// model_prices_and_context_window.json; its prices win over the
	// embedded data.
	File      string           `yaml:"file"`
	Overrides []OverrideConfig `yaml:"overrides"`
	// GenAIURL and LiteLLMURL are where hardcap prices update downloads
	// the two data sets; default the projects' published raw files.
	GenAIURL   string `yaml:"genai_url"`
	LiteLLMURL string `yaml:"litellm_url"`
}

// OverrideConfig sets one model's prices (USD per million tokens, as
// decimal strings) or limits, over the price data. A model the data lacks
// is created; it then needs input_mtok and output_mtok.
type OverrideConfig struct {
	Provider            string `yaml:"provider"`
	Model               string `yaml:"model"`
	InputMTok           string `yaml:"input_mtok"`
	CacheReadMTok       string `yaml:"cache_read_mtok"`
	CacheWriteMTok      string `yaml:"cache_write_mtok"`
	CacheWrite1hMTok    string `yaml:"cache_write_1h_mtok"`
	OutputMTok          string `yaml:"output_mtok"`
	OutputReasoningMTok string `yaml:"output_reasoning_mtok"`
	ContextWindow       int64  `yaml:"context_window"`
	MaxOutputTokens     int64  `yaml:"max_output_tokens"`
	// Untiered declares that the model's price does not change with input
	// size: no implied long-context tier.
	Untiered bool `yaml:"untiered"`
}

func (o OverrideConfig) override() pricing.Override {
	return pricing.Override{
		Provider: o.Provider, Model: o.Model,
		InputMTok: o.InputMTok, CacheReadMTok: o.CacheReadMTok, CacheWriteMTok: o.CacheWriteMTok,
		CacheWrite1hMTok: o.CacheWrite1hMTok, OutputMTok: o.OutputMTok, OutputReasoningMTok: o.OutputReasoningMTok,
		ContextWindow: o.ContextWindow, MaxOutputTokens: o.MaxOutputTokens, Untiered: o.Untiered,
	}
}

// LogConfig sets logging.
type LogConfig struct {
	// Level is debug, info, warn or error; default info.
	Level string `yaml:"level"`
	// Format is auto (console on a terminal, JSON otherwise), console or
	// json.
	Format string `yaml:"format"`
}

// UsageConfig sets how the usage history is kept.
type UsageConfig struct {
	// Retention is how long usage records are kept one by one, as a
	// duration ("400d", "8760h"); older ones are rolled up into daily
	// totals per token, model and outcome, which usage totals, budgets and
	// hardcap reconcile go on counting. "0" or "off" keeps every record;
	// default 400d. At least 1d.
	Retention string `yaml:"retention"`
}

// TokensConfig sets the defaults of new tokens.
type TokensConfig struct {
	// RotateEvery is how often a new token's secret is due for rotation
	// when token create gives no --rotate-every, as a duration ("90d",
	// "2160h") or "never"; default 90d.
	RotateEvery string `yaml:"rotate_every"`
}

func defaultConfig() Config {
	return Config{
		Listen: "127.0.0.1:8787",
		Providers: map[string]ProviderConfig{
			"openai":    {Kind: "openai", BaseURL: "https://api.openai.com/v1", APIKey: "env:OPENAI_API_KEY", Prices: "openai"},
			"anthropic": {Kind: "anthropic", BaseURL: "https://api.anthropic.com", APIKey: "env:ANTHROPIC_API_KEY", Prices: "anthropic"},
		},
		UpstreamTimeout:     10 * time.Minute,
		MaxBodyBytes:        32 << 20,
		ShutdownGrace:       30 * time.Second,
		ReadHeaderTimeout:   10 * time.Second,
		ReadTimeout:         60 * time.Second,
		MaxConnections:      4096,
		MaxConnectionsPerIP: 1024,
	}
}

// loadConfig reads the file at path over the defaults. An empty path with
// no $HARDCAP_CONFIG means defaults only. Unknown keys are errors, so a typo
// cannot silently drop a limit.
func loadConfig(path string) (Config, error) {
	cfg := defaultConfig()
	if path == "" {
		path = os.Getenv("HARDCAP_CONFIG")
	}
	if path == "" {
		return cfg, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return cfg, fmt.Errorf("config: %w", err)
	}
	return parseConfig(data, cfg)
}

func parseConfig(data []byte, cfg Config) (Config, error) {
	var file Config
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&file); err != nil && !errors.Is(err, io.EOF) {
		return cfg, yamlError(err)
	}
	if file.Listen != "" {
		cfg.Listen = file.Listen
	}
	if file.DataDir != "" {
		cfg.DataDir = file.DataDir
	}
	if file.Providers != nil {
		// A config that lists providers lists all of them.
		cfg.Providers = file.Providers
	}
	cfg.Budget = file.Budget
	cfg.Prices = file.Prices
	cfg.Log = file.Log
	cfg.Alerts = file.Alerts
	cfg.Reconcile = file.Reconcile
	cfg.Usage = file.Usage
	cfg.Tokens = file.Tokens
	cfg.AllowInsecureListen = file.AllowInsecureListen
	cfg.TrustedProxies = file.TrustedProxies
	cfg.MetricsToken = file.MetricsToken
	cfg.MetricsListen = file.MetricsListen
	cfg.MetricsPerToken = file.MetricsPerToken
	cfg.TLS = file.TLS
	cfg.Cluster = file.Cluster
	if file.UpstreamTimeout != 0 {
		cfg.UpstreamTimeout = file.UpstreamTimeout
	}
	if file.MaxBodyBytes != 0 {
		cfg.MaxBodyBytes = file.MaxBodyBytes
	}
	if file.ShutdownGrace != 0 {
		cfg.ShutdownGrace = file.ShutdownGrace
	}
	if file.ReadHeaderTimeout != 0 {
		cfg.ReadHeaderTimeout = file.ReadHeaderTimeout
	}
	if file.ReadTimeout != 0 {
		cfg.ReadTimeout = file.ReadTimeout
	}
	if file.MaxConnections != 0 {
		cfg.MaxConnections = file.MaxConnections
	}
	if file.MaxConnectionsPerIP != 0 {
		cfg.MaxConnectionsPerIP = file.MaxConnectionsPerIP
	}
	return cfg, nil
}

// errShortMetricsToken is a metrics_token too short to be a credential.
var errShortMetricsToken = fmt.Errorf("the token is shorter than %d characters, too short to be safe", minAdminToken)

// settings are the checked, typed values of a Config.
type settings struct {
	global    budget.Limit
	onLow     budget.OnLow
	location  *time.Location
	providers []*proxy.Provider
	// retention is usage.retention; 0 keeps every record.
	retention time.Duration
	// rotateEvery is tokens.rotate_every; negative is never.
	rotateEvery time.Duration
	// trustedProxies is trusted_proxies.
	trustedProxies []netip.Prefix
	// alerts are the alert policy and the channels, credentials read.
	alerts alertSettings
	// reconcile is the scheduled reconcile's setting.
	reconcile reconcileSettings
	// metricsToken is metrics_token, read; "" for none.
	metricsToken string
	// tls is tls:, files read.
	tls tlsSettings
	// cluster is cluster:, the DSN read.
	cluster clusterSettings
}

// check validates cfg and converts it. Errors name the key at fault and
// never a key's value.
func (cfg Config) check() (settings, error) {
	var s settings
	var err error
	if _, err = budget.ParsePeriod(cfg.Budget.Global.Period); err != nil {
		return s, fmt.Errorf("config: budget.global.period: %w", err)
	}
	// "0" is a ceiling of zero; "unlimited" or no key is none.
	if s.global, err = budget.ParseLimit(cfg.Budget.Global.LimitUSD, cfg.Budget.Global.Period); err != nil {
		return s, fmt.Errorf("config: budget.global.limit_usd: %w", err)
	}
	if s.onLow, err = budget.ParseOnLow(cfg.Budget.OnLow); err != nil {
		return s, fmt.Errorf("config: budget.on_low: %w", err)
	}
	s.location = time.UTC
	if cfg.Budget.Timezone != "" {
		if s.location, err = time.LoadLocation(cfg.Budget.Timezone); err != nil {
			return s, fmt.Errorf("config: budget.timezone: %w", err)
		}
	}
	if s.retention, err = parseRetention(cfg.Usage.Retention); err != nil {
		return s, err
	}
	if s.rotateEvery, err = parseRotateEvery(cfg.Tokens.RotateEvery); err != nil {
		return s, err
	}
	if s.trustedProxies, err = parseTrustedProxies(cfg.TrustedProxies); err != nil {
		return s, err
	}
	names := make([]string, 0, len(cfg.Providers))
	for name := range cfg.Providers {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		pc := cfg.Providers[name]
		p, err := pc.provider(name)
		if err != nil {
			return s, err
		}
		s.providers = append(s.providers, p)
	}
	if err := checkListen(cfg.Listen, cfg.AllowInsecureListen || cfg.TLS.configured()); err != nil {
		return s, err
	}
	if s.tls, err = cfg.TLS.check(cfg.Listen); err != nil {
		return s, err
	}
	if cfg.UpstreamTimeout < 0 || cfg.MaxBodyBytes < 0 || cfg.ShutdownGrace < 0 || cfg.ReadHeaderTimeout < 0 || cfg.ReadTimeout < 0 {
		return s, errors.New("config: upstream_timeout, max_body_bytes, shutdown_grace, read_header_timeout and read_timeout must not be negative")
	}
	if cfg.MaxConnections < 0 || cfg.MaxConnectionsPerIP < 0 {
		return s, errors.New("config: max_connections and max_connections_per_ip must not be negative")
	}
	if cfg.MetricsToken != "" {
		if s.metricsToken, err = readCredential(cfg.MetricsToken); err != nil {
			return s, fmt.Errorf("config: metrics_token: %w", err)
		}
		if len(s.metricsToken) < minAdminToken {
			return s, fmt.Errorf("config: metrics_token: %w", errShortMetricsToken)
		}
	}
	if err := checkMetricsListen(cfg.MetricsListen, cfg.Listen); err != nil {
		return s, err
	}
	if s.reconcile, err = cfg.Reconcile.check(); err != nil {
		return s, err
	}
	if s.cluster, err = cfg.Cluster.check(); err != nil {
		return s, err
	}
	// Last: it reads the channels' credentials.
	if s.alerts, err = cfg.Alerts.check(); err != nil {
		return s, err
	}
	return s, nil
}

func (pc ProviderConfig) provider(name string) (*proxy.Provider, error) {
	if name == "" || !validProviderName(name) {
		return nil, fmt.Errorf("config: providers: %q is not a usable provider name (letters, digits, '-' and '_')", name)
	}
	kind := pc.kind(name)
	if kind != string(proxy.KindOpenAI) && kind != string(proxy.KindAnthropic) {
		return nil, fmt.Errorf("config: providers.%s.kind: %q (want openai or anthropic)", name, kind)
	}
	u, err := url.Parse(pc.BaseURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("config: providers.%s.base_url must be an http(s) URL", name)
	}
	key, err := proxy.ParseKeySource(pc.APIKey)
	if err != nil {
		return nil, fmt.Errorf("config: providers.%s.api_key: %w", name, err)
	}
	if pc.RotateEvery != "" {
		d, err := admin.ParseDuration(pc.RotateEvery)
		if err != nil || d <= 0 {
			return nil, fmt.Errorf("config: providers.%s.rotate_every must be a positive duration such as 90d or 30d", name)
		}
		key.RotateEvery = d
	}
	prices := pc.Prices
	if prices == "" {
		prices = name
	}
	switch pc.CapField {
	case "", "max_tokens", "max_completion_tokens":
	default:
		return nil, fmt.Errorf("config: providers.%s.cap_field must be max_tokens or max_completion_tokens", name)
	}
	extra := map[string]bool{}
	for _, p := range pc.ExtraParams {
		extra[p] = true
	}
	allow := map[string]proxy.Allowance{}
	for k, v := range pc.Allowances {
		server, known := allowanceNames[k]
		if !known {
			return nil, fmt.Errorf("config: providers.%s.allowances: unknown allowance %q", name, k)
		}
		a, err := parseAllowance(v, server)
		if err != nil {
			return nil, fmt.Errorf("config: providers.%s.allowances.%s: %w", name, k, err)
		}
		allow[k] = a
	}
	p := &proxy.Provider{Name: name, Kind: proxy.Kind(kind), BaseURL: u, Key: key, Prices: prices, CapField: pc.CapField,
		ExtraParams: extra, Allowances: allow, Organization: pc.Organization, Project: pc.Project}
	if pc.PriceMultiplier != "" {
		if p.PriceMultiplier, err = pricing.ParseMultiplier(pc.PriceMultiplier); err != nil {
			return nil, fmt.Errorf("config: providers.%s.price_multiplier: %w", name, err)
		}
	}
	if (pc.Organization != "" || pc.Project != "") && kind != string(proxy.KindOpenAI) {
		return nil, fmt.Errorf("config: providers.%s: organization and project are for kind openai", name)
	}
	for _, v := range []string{pc.Organization, pc.Project} {
		if strings.ContainsAny(v, "\r\n\x00") {
			return nil, fmt.Errorf("config: providers.%s: organization and project must be one line", name)
		}
	}
	if pc.MaxToolCalls < 0 {
		return nil, fmt.Errorf("config: providers.%s.max_tool_calls must not be negative", name)
	}
	p.MaxToolCalls = pc.MaxToolCalls
	if len(pc.Betas) > 0 {
		p.Betas = map[string]bool{}
		for _, b := range pc.Betas {
			p.Betas[strings.ToLower(strings.TrimSpace(b))] = true
		}
	}
	if pc.AdminKey != "" {
		// Checked here so a typo shows at start; read only by reconcile.
		if _, err := proxy.ParseKeySource(pc.AdminKey); err != nil {
			return nil, fmt.Errorf("config: providers.%s.admin_key: %w", name, err)
		}
	}
	return p, nil
}

// parseTrustedProxies reads trusted_proxies: CIDR prefixes or single
// addresses, as a token's address scope takes them.
func parseTrustedProxies(list []string) ([]netip.Prefix, error) {
	canon, err := tokens.ParseIPs(list)
	if err != nil {
		// The same parse as a token's address scope, but not one.
		return nil, fmt.Errorf("config: trusted_proxies: %s", strings.TrimPrefix(err.Error(), tokens.ErrInvalidScope.Error()+": "))
	}
	for _, c := range canon {
		if strings.HasSuffix(c, "/0") {
			return nil, fmt.Errorf("config: trusted_proxies: %s trusts every address, so any client could set its own address with X-Forwarded-For (and pass a token's --ips); list the addresses of your proxies", c)
		}
	}
	out := make([]netip.Prefix, 0, len(canon))
	for _, c := range canon {
		p, err := netip.ParsePrefix(c)
		if err != nil {
			return nil, fmt.Errorf("config: trusted_proxies: %w", err)
		}
		out = append(out, p)
	}
	return out, nil
}

// parseAllowance reads an allowance: USD ("0.05") or tokens ("20000
// tokens"); server tools take USD only, since their fees are not tokens.
func parseAllowance(v string, usdOnly bool) (proxy.Allowance, error) {
	if n, ok := strings.CutSuffix(strings.TrimSpace(v), "tokens"); ok {
		if usdOnly {
			return proxy.Allowance{}, errors.New("a server tool's allowance is in USD, since its fees are not tokens")
		}
		t, err := strconv.ParseInt(strings.TrimSpace(n), 10, 64)
		if err != nil || t <= 0 {
			return proxy.Allowance{}, errors.New("want a positive number of tokens, as in \"20000 tokens\"")
		}
		return proxy.Allowance{Tokens: t}, nil
	}
	m, err := budget.ParseUSD(v)
	if err != nil {
		return proxy.Allowance{}, err
	}
	return proxy.Allowance{USD: m}, nil
}

// kind is the provider's kind: as configured, else "anthropic" for a
// provider named anthropic, else "openai".
func (pc ProviderConfig) kind(name string) string {
	switch {
	case pc.Kind != "":
		return pc.Kind
	case name == string(proxy.KindAnthropic):
		return string(proxy.KindAnthropic)
	}
	return string(proxy.KindOpenAI)
}

func validProviderName(s string) bool {
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// dataDir resolves the data directory: flag, then config, then
// $HARDCAP_DATA_DIR, then the user's data dir (~/.local/share/hardcap).
func dataDir(flagValue, configValue string) (string, error) {
	for _, v := range []string{flagValue, configValue, os.Getenv("HARDCAP_DATA_DIR")} {
		if v != "" {
			return v, nil
		}
	}
	if x := os.Getenv("XDG_DATA_HOME"); x != "" {
		return filepath.Join(x, "hardcap"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("no data dir: set --data-dir or $HARDCAP_DATA_DIR (%w)", err)
	}
	return filepath.Join(home, ".local", "share", "hardcap"), nil
}

// checkListen refuses a listen address that is not loopback, unless TLS is
// configured or the operator accepts the risk: without TLS, hardcap tokens
// and the admin token would cross the network in clear.
func checkListen(addr string, allow bool) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("config: listen %q: %w", addr, err)
	}
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	if allow {
		return nil
	}
	return fmt.Errorf("config: listen %q is not a loopback address and tls is not configured: tokens would travel in clear. Configure tls (tls.acme, or tls.cert_file and tls.key_file), listen on 127.0.0.1 behind a TLS proxy, or accept the risk with --allow-insecure-listen (allow_insecure_listen: true)", addr)
}

var (
	yamlLine       = regexp.MustCompile(`line (\d+)`)
	yamlUnknownKey = regexp.MustCompile(`field ([a-z_]{1,40}) not found`)
)

// yamlWant finds the Go type in a yaml type error ("... into bool").
var yamlWant = regexp.MustCompile(`into ([][A-Za-z0-9.\[\]*]+)`)

// yamlError turns a YAML parser error into one that never repeats what the
// file says: the parser quotes values (a key pasted in the wrong place
// would end up in a log), so only line numbers, known key names and the
// Go type a value was for are kept.
func yamlError(err error) error {
	msg := err.Error()
	var lines []string
	for _, m := range yamlLine.FindAllStringSubmatch(msg, -1) {
		lines = append(lines, m[1])
	}
	where := "the file"
	if len(lines) > 0 {
		where = "line " + strings.Join(lines, ", ")
	}
	switch {
	case strings.Contains(msg, "not found in type"):
		if m := yamlUnknownKey.FindStringSubmatch(msg); m != nil {
			return fmt.Errorf("config: %s: unknown key %q", where, m[1])
		}
		return fmt.Errorf("config: %s: unknown key", where)
	case strings.Contains(msg, "cannot unmarshal"):
		want := ""
		if m := yamlWant.FindStringSubmatch(msg); m != nil {
			// The Go type the value was for (never the value itself).
			switch ty := m[1]; {
			case ty == "bool":
				want = ", want true or false"
			case strings.HasPrefix(ty, "int") || strings.HasPrefix(ty, "uint"):
				want = ", want a whole number"
			case ty == "string":
				want = ", want a string"
			case strings.HasPrefix(ty, "[]"):
				want = ", want a list"
			case strings.HasPrefix(ty, "map["):
				want = ", want a map"
			}
		}
		return fmt.Errorf("config: %s: a value has the wrong type%s (the value is not shown)", where, want)
	}
	return fmt.Errorf("config: %s: invalid YAML (the text is not shown)", where)
}

// parseRetention reads usage.retention: empty is storage.DefaultRetention,
// "0" or "off" is none (0).
func parseRetention(v string) (time.Duration, error) {
	switch v {
	case "":
		return storage.DefaultRetention, nil
	case "0", "off":
		return 0, nil
	}
	d, err := admin.ParseDuration(v)
	if err != nil || d < 24*time.Hour {
		return 0, errors.New(`config: usage.retention must be a duration of at least 1d such as 400d or 8760h, or "off" (0) to keep every record`)
	}
	return d, nil
}

// parseRotateEvery reads tokens.rotate_every: "" is the default (90d),
// "never" is returned as -1 (admin.Options.RotateEvery's never).
func parseRotateEvery(v string) (time.Duration, error) {
	switch v {
	case "":
		return tokens.DefaultRotateEvery, nil
	case admin.NeverExpires:
		return -1, nil
	}
	d, err := admin.ParseDuration(v)
	if err != nil || d <= 0 {
		return 0, errors.New(`config: tokens.rotate_every must be a positive duration such as 90d or 2160h, or "never"`)
	}
	return d, nil
}
