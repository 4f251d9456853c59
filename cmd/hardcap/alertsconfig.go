package main

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/alert/webhook"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/proxy/admin"
	"go.yaml.in/yaml/v3"
)

// AlertsConfig is alerts: in hardcap.yaml: which alerts fire, what the
// anomalies do, and the channels that carry them. Every key is optional;
// with none, alert.DefaultPolicy applies and alerts are recorded (hardcap
// alerts lists them) but sent nowhere.
type AlertsConfig struct {
	// Thresholds are decimal shares of a budget ("0.8"), kept as the text
	// the file holds so that no share goes through a float; nil is the
	// default [0.5, 0.8, 1.0], empty fires none.
	Thresholds *[]string `yaml:"thresholds"`
	// Exhausted turns budget.exhausted on or off; default on.
	Exhausted *bool `yaml:"exhausted"`
	// Webhooks are the HTTP channels: each a URL (the old form) or a map
	// (WebhookConfig).
	Webhooks []yaml.Node `yaml:"webhooks"`
	// Email is one SMTP channel (a map, EmailConfig) or a list of them.
	Email yaml.Node `yaml:"email"`
	// Anomalies set each detector: off, alert or freeze, or a map
	// (AnomalyConfig).
	Anomalies map[string]yaml.Node `yaml:"anomalies"`
	// Projects override the anomaly rules for a project's tokens.
	Projects map[string]ProjectAlertsConfig `yaml:"projects"`
	// Routes send some projects' and types' alerts to some channels; the
	// first that matches decides.
	Routes []RouteConfig `yaml:"routes"`
	// DefaultChannels receive the alerts no route matches; nil is every
	// channel.
	DefaultChannels *[]string `yaml:"default_channels"`
}

// WebhookConfig is one item of alerts.webhooks in its map form. URL and
// Secret are credentials: a literal, env:NAME or file:PATH.
type WebhookConfig struct {
	// Name is how routes and hardcap alerts test name the channel;
	// default webhook-N, slack-N or discord-N by format (N counts the
	// webhooks from 1).
	Name string `yaml:"name"`
	URL  string `yaml:"url"`
	// Format is json, slack or discord; empty chooses by the URL's host.
	Format string `yaml:"format"`
	// Secret signs JSON bodies per the Standard Webhooks spec.
	Secret string `yaml:"secret"`
}

// EmailConfig is an SMTP channel of alerts.email. Password is a
// credential: a literal, env:NAME or file:PATH.
type EmailConfig struct {
	// Name defaults to email-N (N counts the e-mail channels from 1).
	Name     string   `yaml:"name"`
	Host     string   `yaml:"host"`
	Port     int      `yaml:"port"`
	Username string   `yaml:"username"`
	Password string   `yaml:"password"`
	From     string   `yaml:"from"`
	To       []string `yaml:"to"`
	// StartTLS is required (the default) or off.
	StartTLS string `yaml:"starttls"`
}

// AnomalyConfig is the map form of an anomaly's setting. Only new_ip
// takes After, only spend_spike the spike settings.
type AnomalyConfig struct {
	// Action is off, alert or freeze.
	Action string `yaml:"action"`
	// Scope is what a freeze turns off: token (the default) or project.
	Scope string `yaml:"scope"`
	// After is how long an address may go unseen before it counts as new
	// again (new_ip; default 30d).
	After string `yaml:"after"`
	// Factor, FloorUSD, Window, Baseline and Cooldown are spend_spike's
	// setting (alert.Spike).
	Factor   string `yaml:"factor"`
	FloorUSD string `yaml:"floor_usd"`
	Window   string `yaml:"window"`
	Baseline string `yaml:"baseline"`
	Cooldown string `yaml:"cooldown"`
}

// ProjectAlertsConfig is one project's override of the anomaly rules.
type ProjectAlertsConfig struct {
	// Anomalies take off, alert or freeze, or a map with action and
	// scope; a detector's other settings are global.
	Anomalies map[string]yaml.Node `yaml:"anomalies"`
}

// RouteConfig is one item of alerts.routes (webhook.Route).
type RouteConfig struct {
	// Projects match the alert's project; empty matches any.
	Projects []string `yaml:"projects"`
	// Types are alert types or prefixes ending in "*"; empty matches any.
	Types []string `yaml:"types"`
	// Channels are channel names.
	Channels []string `yaml:"channels"`
}

// alertSettings are the checked alerts: and reconcile: settings.
type alertSettings struct {
	policy alert.Policy
	// delivery holds the channels, with their credentials read, the routes
	// and the default; Outbox, Log and Now are the server's to set.
	delivery webhook.Options
}

// hasChannels reports whether any channel is configured.
func (s alertSettings) hasChannels() bool {
	return len(s.delivery.Webhooks)+len(s.delivery.SMTP) > 0
}

var (
	// errCredentialSource is a credential whose env: or file: source
	// cannot be read.
	errCredentialSource = errors.New("cannot be read")
	// channelName is the form of a channel's name.
	channelName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$`)
	// configKeyName is a key name an error may quote.
	configKeyName = regexp.MustCompile(`^[a-z_]{1,40}$`)
)

// maxCredentialFile bounds a credential read from a file.
const maxCredentialFile = 64 << 10

// readCredential resolves a credential setting: env:NAME is the
// variable's value, file:PATH the file's first 64 KiB trimmed, anything
// else the literal text. Errors name the source, never a value. A
// package variable so tests can count reads.
var readCredential = func(spec string) (string, error) {
	var v string
	switch {
	case strings.HasPrefix(spec, "env:"):
		name := strings.TrimSpace(strings.TrimPrefix(spec, "env:"))
		if !envName.MatchString(name) {
			return "", fmt.Errorf("%w: env: takes the name of an environment variable", errCredentialSource)
		}
		if v = os.Getenv(name); strings.TrimSpace(v) == "" {
			return "", fmt.Errorf("%w: the variable %s is empty or unset", errCredentialSource, name)
		}
	case strings.HasPrefix(spec, "file:"):
		f, err := os.Open(strings.TrimSpace(strings.TrimPrefix(spec, "file:")))
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return "", fmt.Errorf("%w: %w", errCredentialSource, pe.Err)
			}
			return "", errCredentialSource
		}
		defer f.Close()
		b := make([]byte, maxCredentialFile)
		n, _ := f.Read(b)
		if v = string(b[:n]); strings.TrimSpace(v) == "" {
			return "", fmt.Errorf("%w: the file is empty", errCredentialSource)
		}
	default:
		v = spec
	}
	return strings.TrimSpace(v), nil
}

// envName is the form of an environment variable's name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,255}$`)

// check validates the alerts: settings, reads the channels' credentials
// and builds the policy and the delivery options. Errors name the setting
// at fault (alerts.webhooks[1].url), never its value.
func (ac AlertsConfig) check() (alertSettings, error) {
	var s alertSettings
	var err error
	if s.policy, err = ac.buildPolicy(); err != nil {
		return s, err
	}
	if s.delivery, err = ac.buildDelivery(); err != nil {
		return s, err
	}
	return s, nil
}

// buildPolicy is alert.DefaultPolicy with the config applied.
func (ac AlertsConfig) buildPolicy() (alert.Policy, error) {
	p := alert.DefaultPolicy()
	if ac.Thresholds != nil {
		fs := make([]budget.Fraction, 0, len(*ac.Thresholds))
		for i, text := range *ac.Thresholds {
			if strings.HasPrefix(text, ".") {
				// YAML reads .5 as a number; so does hardcap.
				text = "0" + text
			}
			f, err := budget.ParseFraction(text)
			if err != nil {
				return p, fmt.Errorf("config: alerts.thresholds[%d] must be a decimal share above 0 and at most 10, such as 0.8 (at most 6 decimal places)", i)
			}
			fs = append(fs, f)
		}
		p.Thresholds = budget.SortFractions(fs)
	}
	if ac.Exhausted != nil {
		p.Exhausted = *ac.Exhausted
	}
	for _, name := range sortedKeys(ac.Anomalies) {
		where := "alerts.anomalies." + name
		kind, err := anomalyKind(name, "alerts.anomalies")
		if err != nil {
			return p, err
		}
		node := ac.Anomalies[name]
		ad, err := decodeAnomaly(&node, where)
		if err != nil {
			return p, err
		}
		rule, err := ad.rule(kind, where)
		if err != nil {
			return p, err
		}
		p.Rules[kind] = rule
		if err := ad.applyDetector(kind, where, &p); err != nil {
			return p, err
		}
	}
	for _, project := range sortedKeys(ac.Projects) {
		if project == "" {
			return p, errors.New("config: alerts.projects: a project name is empty")
		}
		over := map[alert.Kind]alert.Rule{}
		anomalies := ac.Projects[project].Anomalies
		for _, name := range sortedKeys(anomalies) {
			where := "alerts.projects." + project + ".anomalies." + name
			kind, err := anomalyKind(name, "alerts.projects."+project+".anomalies")
			if err != nil {
				return p, err
			}
			node := anomalies[name]
			ad, err := decodeAnomaly(&node, where)
			if err != nil {
				return p, err
			}
			if ad.After != "" || ad.Factor != "" || ad.FloorUSD != "" || ad.Window != "" || ad.Baseline != "" || ad.Cooldown != "" {
				return p, fmt.Errorf("config: %s: a project sets only action and scope; the detector's other settings are global (alerts.anomalies.%s)", where, name)
			}
			rule, err := ad.rule(kind, where)
			if err != nil {
				return p, err
			}
			over[kind] = rule
		}
		if len(over) > 0 {
			if p.Projects == nil {
				p.Projects = map[string]map[alert.Kind]alert.Rule{}
			}
			p.Projects[project] = over
		}
	}
	return p, nil
}

// anomalyKind checks an anomaly's name.
func anomalyKind(name, where string) (alert.Kind, error) {
	kind := alert.Kind(name)
	if slices.Contains(alert.Kinds, kind) {
		return kind, nil
	}
	names := make([]string, len(alert.Kinds))
	for i, k := range alert.Kinds {
		names[i] = string(k)
	}
	return "", fmt.Errorf("config: %s: unknown anomaly %s (want %s)", where, quoteKey(name), strings.Join(names, ", "))
}

// decodeAnomaly reads an anomaly's setting: an action, or a map.
func decodeAnomaly(n *yaml.Node, where string) (AnomalyConfig, error) {
	var ad AnomalyConfig
	if n.Kind == yaml.ScalarNode {
		ad.Action = n.Value
		return ad, nil
	}
	err := decodeStrict(n, where, &ad)
	return ad, err
}

// rule is the anomaly's alert.Rule.
func (ad AnomalyConfig) rule(kind alert.Kind, where string) (alert.Rule, error) {
	var r alert.Rule
	if ad.Action == "" {
		return r, fmt.Errorf("config: %s.action must be off, alert or freeze", where)
	}
	a, err := alert.ParseAction(ad.Action)
	if err != nil {
		return r, fmt.Errorf("config: %s must be off, alert or freeze", where)
	}
	if a == alert.ActionFreeze && !kind.CanFreeze() {
		return r, fmt.Errorf("config: %s: %s cannot freeze: it is about a provider key, with no token or project to turn off (use alert)", where, kind)
	}
	r.Action = a
	switch ad.Scope {
	case "", "token":
	case "project":
		if a != alert.ActionFreeze {
			return r, fmt.Errorf("config: %s.scope: scope says what a freeze turns off; it needs action freeze", where)
		}
		r.FreezeProject = true
	default:
		return r, fmt.Errorf("config: %s.scope must be token or project", where)
	}
	return r, nil
}

// applyDetector sets the detector settings of the map form.
func (ad AnomalyConfig) applyDetector(kind alert.Kind, where string, p *alert.Policy) error {
	if ad.After != "" {
		if kind != alert.NewIP {
			return fmt.Errorf("config: %s.after is a setting of new_ip only", where)
		}
		d, err := admin.ParseDuration(ad.After)
		if err != nil || d < 0 {
			return fmt.Errorf("config: %s.after must be a duration such as 30d or 720h", where)
		}
		p.NewIPAfter = d
	}
	spike := ad.Factor != "" || ad.FloorUSD != "" || ad.Window != "" || ad.Baseline != "" || ad.Cooldown != ""
	if !spike {
		return nil
	}
	if kind != alert.SpendSpike {
		return fmt.Errorf("config: %s: factor, floor_usd, window, baseline and cooldown are settings of spend_spike only", where)
	}
	if ad.Factor != "" {
		f, err := strconv.ParseInt(ad.Factor, 10, 64)
		if err != nil || f < 1 || f > 1_000_000 {
			return fmt.Errorf("config: %s.factor must be a whole number from 1 to 1000000", where)
		}
		p.Spike.Factor = f
	}
	if ad.FloorUSD != "" {
		m, err := budget.ParseUSD(ad.FloorUSD)
		if err != nil {
			return fmt.Errorf("config: %s.floor_usd must be a decimal USD amount such as \"1\" or \"0.25\"", where)
		}
		p.Spike.Floor = m
	}
	for _, d := range []struct {
		key, text string
		to        *time.Duration
		zero      bool
	}{
		{"window", ad.Window, &p.Spike.Window, false},
		{"baseline", ad.Baseline, &p.Spike.Baseline, false},
		{"cooldown", ad.Cooldown, &p.Spike.Cooldown, true},
	} {
		if d.text == "" {
			continue
		}
		v, err := admin.ParseDuration(d.text)
		if err != nil || v < 0 || (v == 0 && !d.zero) {
			return fmt.Errorf("config: %s.%s must be a positive duration such as 10m, 24h or 1d", where, d.key)
		}
		*d.to = v
	}
	if p.Spike.Baseline < p.Spike.Window {
		return fmt.Errorf("config: %s: baseline must be at least as long as window", where)
	}
	return nil
}

// buildDelivery reads the channels, routes and default.
func (ac AlertsConfig) buildDelivery() (webhook.Options, error) {
	var o webhook.Options
	names := map[string]string{} // name -> the setting that defines it
	addName := func(name, where string) error {
		if !channelName.MatchString(name) {
			return fmt.Errorf("config: %s.name must be 1 to 64 letters, digits, '.', '-' or '_'", where)
		}
		if other, dup := names[name]; dup {
			return fmt.Errorf("config: %s.name: the channel name %q is also %s's", where, name, other)
		}
		names[name] = where
		return nil
	}
	for i := range ac.Webhooks {
		where := fmt.Sprintf("alerts.webhooks[%d]", i)
		wh, err := webhookChannel(&ac.Webhooks[i], where, i+1)
		if err != nil {
			return o, err
		}
		if err := addName(wh.Name, where); err != nil {
			return o, err
		}
		o.Webhooks = append(o.Webhooks, wh)
	}
	emails, err := emailConfigs(&ac.Email)
	if err != nil {
		return o, err
	}
	for i, ec := range emails {
		where := "alerts.email"
		if ac.Email.Kind == yaml.SequenceNode {
			where = fmt.Sprintf("alerts.email[%d]", i)
		}
		sm, err := ec.channel(where, i+1)
		if err != nil {
			return o, err
		}
		if err := addName(sm.Name, where); err != nil {
			return o, err
		}
		o.SMTP = append(o.SMTP, sm)
	}
	known := func(list []string, where string) error {
		for j, c := range list {
			if _, ok := names[c]; !ok {
				return fmt.Errorf("config: %s[%d]: no channel is named %q (the channels are %s)", where, j, c, channelList(names))
			}
		}
		return nil
	}
	for i, rc := range ac.Routes {
		where := fmt.Sprintf("alerts.routes[%d]", i)
		if len(rc.Channels) == 0 {
			return o, fmt.Errorf("config: %s.channels: a route needs at least one channel", where)
		}
		if err := known(rc.Channels, where+".channels"); err != nil {
			return o, err
		}
		for j, t := range rc.Types {
			if !knownTypePattern(t) {
				return o, fmt.Errorf("config: %s.types[%d]: %q matches no alert type (types such as budget.threshold or anomaly.new_ip, or a prefix ending in *, such as anomaly.*)", where, j, budget.Clip(t))
			}
		}
		for j, p := range rc.Projects {
			if p == "" {
				return o, fmt.Errorf("config: %s.projects[%d] is empty", where, j)
			}
		}
		o.Routes = append(o.Routes, webhook.Route{Projects: rc.Projects, Types: rc.Types, Channels: rc.Channels})
	}
	if ac.DefaultChannels != nil {
		if err := known(*ac.DefaultChannels, "alerts.default_channels"); err != nil {
			return o, err
		}
		// Not nil: an empty list sends unrouted alerts nowhere, where nil
		// would send them everywhere.
		o.Default = append([]string{}, *ac.DefaultChannels...)
	}
	return o, nil
}

// channelList names the channels for an error.
func channelList(names map[string]string) string {
	if len(names) == 0 {
		return "none: alerts.webhooks and alerts.email define them"
	}
	return strings.Join(sortedKeys(names), ", ")
}

// knownTypePattern reports whether t is an alert type or a prefix ending
// in "*" of at least one.
func knownTypePattern(t string) bool {
	prefix, wild := strings.CutSuffix(t, "*")
	for _, k := range alert.Types {
		if string(k) == t || (wild && strings.HasPrefix(string(k), prefix)) {
			return true
		}
	}
	return false
}

// webhookChannel reads one item of alerts.webhooks: a URL, or a map.
func webhookChannel(n *yaml.Node, where string, index int) (webhook.Webhook, error) {
	var wc WebhookConfig
	switch n.Kind {
	case yaml.ScalarNode:
		wc.URL = n.Value
	case yaml.MappingNode:
		if err := decodeStrict(n, where, &wc); err != nil {
			return webhook.Webhook{}, err
		}
	default:
		return webhook.Webhook{}, fmt.Errorf("config: %s must be a URL or a map with url (and name, format, secret)", where)
	}
	if wc.URL == "" {
		return webhook.Webhook{}, fmt.Errorf("config: %s.url is missing", where)
	}
	u, err := readCredential(wc.URL)
	if err != nil {
		return webhook.Webhook{}, fmt.Errorf("config: %s.url: %w", where, err)
	}
	parsed, err := url.Parse(u)
	if err != nil || parsed.Host == "" || (parsed.Scheme != "https" && parsed.Scheme != "http") {
		return webhook.Webhook{}, fmt.Errorf("config: %s.url is not an http(s) URL (the value is not shown)", where)
	}
	if parsed.Scheme == "http" && !loopbackHost(parsed.Hostname()) {
		return webhook.Webhook{}, fmt.Errorf("config: %s.url is plain http to a host other than loopback: alerts and their signatures would cross the network in clear; use https", where)
	}
	format := webhook.Format(wc.Format)
	switch format {
	case webhook.FormatJSON, webhook.FormatSlack, webhook.FormatDiscord:
	case "":
		format = formatOfHost(parsed.Hostname())
	default:
		return webhook.Webhook{}, fmt.Errorf("config: %s.format must be json, slack or discord", where)
	}
	wh := webhook.Webhook{Name: wc.Name, URL: u, Format: format}
	if wc.Secret != "" {
		if format != webhook.FormatJSON {
			return webhook.Webhook{}, fmt.Errorf("config: %s.secret signs JSON webhooks only; Slack and Discord URLs carry their own secret", where)
		}
		if wh.Secret, err = readCredential(wc.Secret); err != nil {
			return webhook.Webhook{}, fmt.Errorf("config: %s.secret: %w", where, err)
		}
	}
	if wh.Name == "" {
		wh.Name = defaultWebhookName(format, index)
	}
	return wh, nil
}

// formatOfHost is the format an empty format stands for, as the webhook
// package chooses it: hooks.slack.com is Slack, discord.com and
// discordapp.com (and their www. forms) are Discord, anything else JSON.
func formatOfHost(host string) webhook.Format {
	switch strings.TrimPrefix(strings.ToLower(strings.TrimSuffix(host, ".")), "www.") {
	case "hooks.slack.com":
		return webhook.FormatSlack
	case "discord.com", "discordapp.com":
		return webhook.FormatDiscord
	}
	return webhook.FormatJSON
}

// defaultWebhookName is the name of the index-th webhook (from 1) that
// names none: slack-N, discord-N or webhook-N.
func defaultWebhookName(f webhook.Format, index int) string {
	switch f {
	case webhook.FormatSlack:
		return "slack-" + strconv.Itoa(index)
	case webhook.FormatDiscord:
		return "discord-" + strconv.Itoa(index)
	}
	return "webhook-" + strconv.Itoa(index)
}

// emailConfigs reads alerts.email: absent, a map or a list of maps.
func emailConfigs(n *yaml.Node) ([]EmailConfig, error) {
	switch n.Kind {
	case 0:
		return nil, nil
	case yaml.MappingNode:
		var ec EmailConfig
		if err := decodeStrict(n, "alerts.email", &ec); err != nil {
			return nil, err
		}
		return []EmailConfig{ec}, nil
	case yaml.SequenceNode:
		out := make([]EmailConfig, len(n.Content))
		for i, item := range n.Content {
			if err := decodeStrict(item, fmt.Sprintf("alerts.email[%d]", i), &out[i]); err != nil {
				return nil, err
			}
		}
		return out, nil
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil, nil
		}
	}
	return nil, errors.New("config: alerts.email must be a map (host, port, from, to, ...) or a list of them")
}

// channel checks an e-mail channel and reads its password.
func (ec EmailConfig) channel(where string, index int) (webhook.SMTP, error) {
	sm := webhook.SMTP{Name: ec.Name, Host: ec.Host, Port: ec.Port, Username: ec.Username, From: ec.From, To: ec.To, StartTLS: ec.StartTLS}
	if sm.Name == "" {
		sm.Name = "email-" + strconv.Itoa(index)
	}
	if ec.Host == "" || strings.ContainsAny(ec.Host, " /:\r\n") {
		return sm, fmt.Errorf("config: %s.host must be the SMTP server's host name", where)
	}
	if sm.Port == 0 {
		sm.Port = 587
	}
	if sm.Port < 1 || sm.Port > 65535 {
		return sm, fmt.Errorf("config: %s.port must be from 1 to 65535", where)
	}
	if !plainAddress(ec.From) {
		return sm, fmt.Errorf("config: %s.from must be one e-mail address", where)
	}
	if len(ec.To) == 0 {
		return sm, fmt.Errorf("config: %s.to needs at least one address", where)
	}
	for i, a := range ec.To {
		if !plainAddress(a) {
			return sm, fmt.Errorf("config: %s.to[%d] must be one e-mail address", where, i)
		}
	}
	switch ec.StartTLS {
	case "":
		sm.StartTLS = "required"
	case "required":
	case "off":
		if !loopbackHost(ec.Host) {
			return sm, fmt.Errorf("config: %s.starttls: off sends mail (and the password) in clear; it is for a loopback server only", where)
		}
	default:
		return sm, fmt.Errorf("config: %s.starttls must be required or off", where)
	}
	if (ec.Username == "") != (ec.Password == "") {
		return sm, fmt.Errorf("config: %s: username and password go together", where)
	}
	if ec.Password != "" {
		pw, err := readCredential(ec.Password)
		if err != nil {
			return sm, fmt.Errorf("config: %s.password: %w", where, err)
		}
		sm.Password = pw
	}
	return sm, nil
}

// plainAddress reports whether s is one bare e-mail address: no name, no
// list, nothing a header could be split with.
func plainAddress(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && domain != "" && !strings.ContainsAny(s, " <>,;\"\r\n\t") && !strings.Contains(domain, "@")
}

// decodeStrict decodes the map n into the struct v, refusing keys v has
// no field for: a yaml.Node's Decode does not apply the decoder's
// KnownFields.
func decodeStrict(n *yaml.Node, where string, v any) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("config: %s must be a map", where)
	}
	keys := yamlKeys(reflect.TypeOf(v).Elem())
	for i := 0; i+1 < len(n.Content); i += 2 {
		k := n.Content[i].Value
		if !slices.Contains(keys, k) {
			return fmt.Errorf("config: %s (line %d): unknown key %s (want %s)", where, n.Content[i].Line, quoteKey(k), strings.Join(keys, ", "))
		}
	}
	if err := n.Decode(v); err != nil {
		// Name the key whose value does not decode: each value alone
		// into its field's type.
		t := reflect.TypeOf(v).Elem()
		for i := 0; i+1 < len(n.Content); i += 2 {
			ft, ok := yamlField(t, n.Content[i].Value)
			if !ok {
				continue
			}
			if n.Content[i+1].Decode(reflect.New(ft).Interface()) != nil {
				return fmt.Errorf("config: %s.%s (line %d): a value has the wrong type, want %s (the value is not shown)", where, n.Content[i].Value, n.Content[i+1].Line, kindWords(ft))
			}
		}
		return fmt.Errorf("config: %s (line %d): a value has the wrong type (the value is not shown)", where, n.Line)
	}
	return nil
}

// yamlField is the type of the field of struct type t with yaml key k.
func yamlField(t reflect.Type, k string) (reflect.Type, bool) {
	for i := range t.NumField() {
		if name, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); name == k {
			return t.Field(i).Type, true
		}
	}
	return nil, false
}

// kindWords says what a config value of type t must be.
func kindWords(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.String:
		return "a string"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "a map"
	}
	return "another kind of value"
}

// yamlKeys lists the yaml keys of the struct type t.
func yamlKeys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("yaml"), ","); k != "" {
			out = append(out, k)
		}
	}
	return out
}

// quoteKey quotes a key the file holds when it is shaped like a key name,
// and says "(not shown)" otherwise: a credential pasted on the wrong line
// must not reach an error.
func quoteKey(k string) string {
	if configKeyName.MatchString(k) {
		return strconv.Quote(k)
	}
	return "(not shown)"
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
