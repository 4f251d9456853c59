package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/alert/webhook"
	"github.com/hardcap/hardcap/budget"
)

// Credentials of the alert config tests: no error may repeat them.
const (
	testWebhookURL    = "https://hooks.example.com/T000/SECRETPATHsecretpath"
	testWebhookSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	testSMTPPassword  = "smtp-PASSWORD-value-42"
)

// fullAlerts is the alerts: block of the README's example, every key set.
const fullAlerts = `
alerts:
  thresholds: [0.5, 0.8, 1.0]
  exhausted: true
  webhooks:
    - https://hooks.slack.com/services/T0/B0/xyz
    - name: ops
      url: env:HARDCAP_TEST_OPS_URL
      format: json
      secret: env:HARDCAP_TEST_OPS_SECRET
    - https://discord.com/api/webhooks/1/abc
  email:
    name: mail
    host: smtp.example.com
    port: 587
    username: hardcap
    password: env:HARDCAP_TEST_SMTP_PASSWORD
    from: hardcap@example.com
    to: [ops@example.com]
    starttls: required
  anomalies:
    new_ip: {action: alert, after: 7d}
    spend_spike: {action: freeze, factor: 5, floor_usd: "0.5", window: 5m, baseline: 12h, cooldown: 30m}
    new_model: off
    key_rejected: alert
    overshoot: {action: freeze, scope: project}
    reconcile_drift: alert
  projects:
    billing: {anomalies: {new_ip: freeze}}
  routes:
    - projects: [billing]
      types: [budget.*, anomaly.new_ip]
      channels: [ops]
  default_channels: [ops, slack-1]
reconcile:
  every: 12h
  tolerance: {percent: "5", usd: "1"}
`

func setAlertEnv(t *testing.T) {
	t.Helper()
	t.Setenv("HARDCAP_TEST_OPS_URL", testWebhookURL)
	t.Setenv("HARDCAP_TEST_OPS_SECRET", testWebhookSecret)
	t.Setenv("HARDCAP_TEST_SMTP_PASSWORD", testSMTPPassword)
}

func checkYAML(t *testing.T, y string) (settings, error) {
	t.Helper()
	cfg, err := parseConfig([]byte(y), defaultConfig())
	if err != nil {
		return settings{}, err
	}
	return cfg.check()
}

// TestAlertsConfig_Full: every key of alerts: and reconcile: reaches the
// policy, the delivery options and the reconcile setting, credentials read
// from their sources.
func TestAlertsConfig_Full(t *testing.T) {
	setAlertEnv(t)
	set, err := checkYAML(t, fullAlerts)
	if err != nil {
		t.Fatal(err)
	}
	p := set.alerts.policy
	if !reflect.DeepEqual(p.Thresholds, []budget.Fraction{500_000, 800_000, 1_000_000}) || !p.Exhausted {
		t.Errorf("thresholds %v exhausted %v", p.Thresholds, p.Exhausted)
	}
	if p.NewIPAfter != 7*24*time.Hour {
		t.Errorf("new_ip after %s", p.NewIPAfter)
	}
	wantSpike := alert.Spike{Window: 5 * time.Minute, Baseline: 12 * time.Hour, Factor: 5, Floor: budget.NanoPerUSD / 2, Cooldown: 30 * time.Minute}
	if p.Spike != wantSpike {
		t.Errorf("spike %+v, want %+v", p.Spike, wantSpike)
	}
	wantRules := map[alert.Kind]alert.Rule{
		alert.NewIP: {Action: alert.ActionAlert}, alert.SpendSpike: {Action: alert.ActionFreeze},
		alert.NewModel: {Action: alert.ActionOff}, alert.KeyRejected: {Action: alert.ActionAlert},
		alert.Overshoot: {Action: alert.ActionFreeze, FreezeProject: true}, alert.ReconcileDrift: {Action: alert.ActionAlert},
	}
	if !reflect.DeepEqual(p.Rules, wantRules) {
		t.Errorf("rules %v, want %v", p.Rules, wantRules)
	}
	if r := p.Rule(alert.NewIP, "billing"); r.Action != alert.ActionFreeze {
		t.Errorf("billing's new_ip: %+v", r)
	}
	if r := p.Rule(alert.NewIP, "other"); r.Action != alert.ActionAlert {
		t.Errorf("other's new_ip: %+v", r)
	}
	d := set.alerts.delivery
	wantHooks := []webhook.Webhook{
		{Name: "slack-1", URL: "https://hooks.slack.com/services/T0/B0/xyz", Format: webhook.FormatSlack},
		{Name: "ops", URL: testWebhookURL, Format: webhook.FormatJSON, Secret: testWebhookSecret},
		{Name: "discord-3", URL: "https://discord.com/api/webhooks/1/abc", Format: webhook.FormatDiscord},
	}
	if !reflect.DeepEqual(d.Webhooks, wantHooks) {
		t.Errorf("webhooks %+v", d.Webhooks)
	}
	wantMail := []webhook.SMTP{{Name: "mail", Host: "smtp.example.com", Port: 587, Username: "hardcap", Password: testSMTPPassword,
		From: "hardcap@example.com", To: []string{"ops@example.com"}, StartTLS: "required"}}
	if !reflect.DeepEqual(d.SMTP, wantMail) {
		t.Errorf("smtp %+v", d.SMTP)
	}
	wantRoutes := []webhook.Route{{Projects: []string{"billing"}, Types: []string{"budget.*", "anomaly.new_ip"}, Channels: []string{"ops"}}}
	if !reflect.DeepEqual(d.Routes, wantRoutes) || !reflect.DeepEqual(d.Default, []string{"ops", "slack-1"}) {
		t.Errorf("routes %+v default %v", d.Routes, d.Default)
	}
	if r := set.reconcile; r.every != 12*time.Hour || r.percent != 5*budget.NanoPerUSD || r.usd != budget.NanoPerUSD {
		t.Errorf("reconcile %+v", r)
	}
}

// TestAlertsConfig_Defaults: no alerts: key is alert.DefaultPolicy, no
// channel, reconcile every 6 hours with 2 % and USD 0.10.
func TestAlertsConfig_Defaults(t *testing.T) {
	set, err := checkYAML(t, "")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(set.alerts.policy, alert.DefaultPolicy()) {
		t.Errorf("policy %+v", set.alerts.policy)
	}
	if set.alerts.hasChannels() || set.alerts.delivery.Default != nil {
		t.Errorf("delivery %+v", set.alerts.delivery)
	}
	if r := set.reconcile; r.every != 6*time.Hour || r.percent != 2*budget.NanoPerUSD || r.usd != budget.NanoPerUSD/10 {
		t.Errorf("reconcile %+v", r)
	}
}

// TestAlertsConfig_Forms: the short forms and the edge values.
func TestAlertsConfig_Forms(t *testing.T) {
	dir := t.TempDir()
	secretFile := filepath.Join(dir, "secret")
	if err := os.WriteFile(secretFile, []byte(testWebhookSecret+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, yaml string
		check      func(t *testing.T, s settings)
	}{
		{"no thresholds", "alerts: {thresholds: []}\n", func(t *testing.T, s settings) {
			if s.alerts.policy.Thresholds == nil || len(s.alerts.policy.Thresholds) != 0 {
				t.Errorf("thresholds %#v, want empty", s.alerts.policy.Thresholds)
			}
		}},
		{"thresholds sorted, exact", "alerts: {thresholds: [1, .25, 0.333333, 0.5]}\n", func(t *testing.T, s settings) {
			if want := []budget.Fraction{250_000, 333_333, 500_000, 1_000_000}; !reflect.DeepEqual(s.alerts.policy.Thresholds, want) {
				t.Errorf("thresholds %v, want %v", s.alerts.policy.Thresholds, want)
			}
		}},
		{"exhausted off", "alerts: {exhausted: false}\n", func(t *testing.T, s settings) {
			if s.alerts.policy.Exhausted {
				t.Error("exhausted on")
			}
		}},
		{"webhook file secret, explicit format", "alerts:\n  webhooks:\n    - {url: \"http://127.0.0.1:9/x\", secret: \"file:" + secretFile + "\"}\n    - {url: \"https://hooks.slack.com/services/a\", format: json}\n", func(t *testing.T, s settings) {
			w := s.alerts.delivery.Webhooks
			if len(w) != 2 || w[0].Name != "webhook-1" || w[0].Secret != testWebhookSecret || w[1].Name != "webhook-2" || w[1].Format != webhook.FormatJSON {
				t.Errorf("webhooks %+v", w)
			}
		}},
		{"email list", "alerts:\n  email:\n    - {host: smtp.example.com, from: a@example.com, to: [b@example.com]}\n    - {host: 127.0.0.1, port: 2525, starttls: \"off\", from: a@example.com, to: [c@example.com]}\n", func(t *testing.T, s settings) {
			m := s.alerts.delivery.SMTP
			if len(m) != 2 || m[0].Name != "email-1" || m[0].Port != 587 || m[0].StartTLS != "required" || m[1].Name != "email-2" || m[1].StartTLS != "off" || m[1].Port != 2525 {
				t.Errorf("smtp %+v", m)
			}
		}},
		{"empty default", "alerts:\n  webhooks: [https://x.example.com/h]\n  default_channels: []\n", func(t *testing.T, s settings) {
			if d := s.alerts.delivery.Default; d == nil || len(d) != 0 {
				t.Errorf("default %#v, want empty and not nil", d)
			}
		}},
		{"reconcile off", "reconcile: {every: \"off\"}\n", func(t *testing.T, s settings) {
			if s.reconcile.every != 0 {
				t.Errorf("every %s", s.reconcile.every)
			}
		}},
		{"new_ip after 0", "alerts: {anomalies: {new_ip: {action: alert, after: \"0\"}}}\n", func(t *testing.T, s settings) {
			if s.alerts.policy.NewIPAfter != 0 {
				t.Errorf("after %s", s.alerts.policy.NewIPAfter)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := checkYAML(t, tt.yaml)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, s)
		})
	}
}

// TestAlertsConfig_Errors: each mistake is refused at start with an error
// that names the setting, and no error repeats a credential.
func TestAlertsConfig_Errors(t *testing.T) {
	setAlertEnv(t)
	t.Setenv("HARDCAP_TEST_EMPTY", "")
	tests := []struct {
		name, yaml string
		// want is in the error.
		want string
	}{
		{"unknown alerts key", "alerts: {webhook: []}\n", `unknown key "webhook"`},
		{"unknown webhook key", "alerts: {webhooks: [{url: env:HARDCAP_TEST_OPS_URL, secrett: x}]}\n", `alerts.webhooks[0] (line 1): unknown key "secrett"`},
		{"secret as a key", "alerts: {webhooks: [{url: env:HARDCAP_TEST_OPS_URL, " + testWebhookSecret + ": x}]}\n", "unknown key (not shown)"},
		{"bad share", "alerts: {thresholds: [0.5, 1.5.0]}\n", "alerts.thresholds[1]"},
		{"share zero", "alerts: {thresholds: [0]}\n", "alerts.thresholds[0]"},
		{"share too precise", "alerts: {thresholds: [0.1234567]}\n", "alerts.thresholds[0]"},
		{"share above 10", "alerts: {thresholds: [11]}\n", "alerts.thresholds[0]"},
		{"bad action", "alerts: {anomalies: {new_ip: page}}\n", "alerts.anomalies.new_ip must be off, alert or freeze"},
		{"bad map action", "alerts: {anomalies: {new_ip: {action: loud}}}\n", "alerts.anomalies.new_ip must be off"},
		{"no action", "alerts: {anomalies: {new_ip: {after: 1d}}}\n", "alerts.anomalies.new_ip.action"},
		{"unknown anomaly", "alerts: {anomalies: {new_ipp: alert}}\n", `unknown anomaly "new_ipp"`},
		{"unknown anomaly key", "alerts: {anomalies: {spend_spike: {action: alert, facter: 2}}}\n", `unknown key "facter"`},
		{"freeze key_rejected", "alerts: {anomalies: {key_rejected: freeze}}\n", "key_rejected cannot freeze"},
		{"freeze reconcile_drift", "alerts: {anomalies: {reconcile_drift: {action: freeze}}}\n", "reconcile_drift cannot freeze"},
		{"project freeze key_rejected", "alerts: {projects: {p: {anomalies: {key_rejected: freeze}}}}\n", "alerts.projects.p.anomalies.key_rejected"},
		{"project unknown anomaly", "alerts: {projects: {p: {anomalies: {typo: alert}}}}\n", `unknown anomaly "typo"`},
		{"project detector setting", "alerts: {projects: {p: {anomalies: {spend_spike: {action: alert, factor: 2}}}}}\n", "a project sets only action and scope"},
		{"bad scope", "alerts: {anomalies: {overshoot: {action: freeze, scope: org}}}\n", "scope must be token or project"},
		{"scope without freeze", "alerts: {anomalies: {overshoot: {action: alert, scope: project}}}\n", "needs action freeze"},
		{"after on another kind", "alerts: {anomalies: {new_model: {action: alert, after: 1d}}}\n", "after is a setting of new_ip only"},
		{"bad after", "alerts: {anomalies: {new_ip: {action: alert, after: soon}}}\n", "new_ip.after"},
		{"spike setting on another kind", "alerts: {anomalies: {overshoot: {action: alert, factor: 2}}}\n", "settings of spend_spike only"},
		{"bad factor", "alerts: {anomalies: {spend_spike: {action: alert, factor: 1.5}}}\n", "spend_spike.factor"},
		{"bad floor", "alerts: {anomalies: {spend_spike: {action: alert, floor_usd: -1}}}\n", "spend_spike.floor_usd"},
		{"zero window", "alerts: {anomalies: {spend_spike: {action: alert, window: 0s}}}\n", "spend_spike.window"},
		{"baseline under window", "alerts: {anomalies: {spend_spike: {action: alert, window: 2h, baseline: 1h}}}\n", "baseline must be at least"},
		{"webhook url unset", "alerts: {webhooks: [{url: env:HARDCAP_TEST_EMPTY}]}\n", "alerts.webhooks[0].url"},
		{"webhook url missing", "alerts: {webhooks: [{name: a}]}\n", "alerts.webhooks[0].url is missing"},
		{"webhook url not a url", "alerts: {webhooks: [https://hooks.example.com/ok, \"ftp://x/" + testWebhookSecret + "\"]}\n", "alerts.webhooks[1].url is not an http(s) URL"},
		{"webhook plain http", "alerts: {webhooks: [\"http://hooks.example.com/" + testWebhookSecret + "\"]}\n", "alerts.webhooks[0].url is plain http"},
		{"webhook bad format", "alerts: {webhooks: [{url: env:HARDCAP_TEST_OPS_URL, format: teams}]}\n", "alerts.webhooks[0].format"},
		{"webhook secret unset", "alerts: {webhooks: [{url: env:HARDCAP_TEST_OPS_URL, secret: env:HARDCAP_TEST_EMPTY}]}\n", "alerts.webhooks[0].secret"},
		{"webhook secret file missing", "alerts: {webhooks: [{url: env:HARDCAP_TEST_OPS_URL, secret: \"file:/nonexistent/hardcap-secret\"}]}\n", "alerts.webhooks[0].secret"},
		{"slack with secret", "alerts: {webhooks: [{url: \"https://hooks.slack.com/services/x\", secret: env:HARDCAP_TEST_OPS_SECRET}]}\n", "signs JSON webhooks only"},
		{"webhook list item", "alerts: {webhooks: [[a, b]]}\n", "alerts.webhooks[0] must be a URL or a map"},
		{"duplicate name", "alerts: {webhooks: [{url: env:HARDCAP_TEST_OPS_URL, name: a}, {url: env:HARDCAP_TEST_OPS_URL, name: a}]}\n", "alerts.webhooks[1].name"},
		{"bad name", "alerts: {webhooks: [{url: env:HARDCAP_TEST_OPS_URL, name: \"a b\"}]}\n", "alerts.webhooks[0].name"},
		{"email and webhook share a name", "alerts: {webhooks: [{url: env:HARDCAP_TEST_OPS_URL, name: a}], email: {name: a, host: h.example.com, from: a@example.com, to: [b@example.com]}}\n", "alerts.email.name"},
		{"email no host", "alerts: {email: {from: a@example.com, to: [b@example.com]}}\n", "alerts.email.host"},
		{"email no to", "alerts: {email: {host: h.example.com, from: a@example.com}}\n", "alerts.email.to"},
		{"email bad to", "alerts: {email: {host: h.example.com, from: a@example.com, to: [\"x@example.com, y@example.com\"]}}\n", "alerts.email.to[0]"},
		{"email bad from", "alerts: {email: {host: h.example.com, from: nobody, to: [b@example.com]}}\n", "alerts.email.from"},
		{"email bad port", "alerts: {email: {host: h.example.com, port: 70000, from: a@example.com, to: [b@example.com]}}\n", "alerts.email.port"},
		{"email starttls off remote", "alerts: {email: {host: h.example.com, starttls: \"off\", from: a@example.com, to: [b@example.com]}}\n", "alerts.email.starttls"},
		{"email bad starttls", "alerts: {email: {host: h.example.com, starttls: maybe, from: a@example.com, to: [b@example.com]}}\n", "alerts.email.starttls"},
		{"email password without user", "alerts: {email: {host: h.example.com, password: env:HARDCAP_TEST_SMTP_PASSWORD, from: a@example.com, to: [b@example.com]}}\n", "username and password go together"},
		{"email password unset", "alerts: {email: {host: h.example.com, username: u, password: env:HARDCAP_TEST_EMPTY, from: a@example.com, to: [b@example.com]}}\n", "alerts.email.password"},
		{"email unknown key", "alerts: {email: [{host: h.example.com, pass: " + testSMTPPassword + ", from: a@example.com, to: [b@example.com]}]}\n", `alerts.email[0] (line 1): unknown key "pass"`},
		{"email scalar", "alerts: {email: ops@example.com}\n", "alerts.email must be a map"},
		{"route unknown channel", "alerts: {webhooks: [https://x.example.com/h], routes: [{channels: [ops]}]}\n", `alerts.routes[0].channels[0]: no channel is named "ops"`},
		{"route no channel", "alerts: {webhooks: [https://x.example.com/h], routes: [{types: [test]}]}\n", "alerts.routes[0].channels"},
		{"route unknown type", "alerts: {webhooks: [https://x.example.com/h], routes: [{types: [budget.thresold], channels: [webhook-1]}]}\n", "alerts.routes[0].types[0]"},
		{"route prefix of nothing", "alerts: {webhooks: [https://x.example.com/h], routes: [{types: [alarm.*], channels: [webhook-1]}]}\n", "alerts.routes[0].types[0]"},
		{"route unknown key", "alerts: {routes: [{chanels: [a]}]}\n", `unknown key "chanels"`},
		{"default unknown channel", "alerts: {webhooks: [https://x.example.com/h], default_channels: [webhook-2]}\n", `alerts.default_channels[0]: no channel is named "webhook-2"`},
		{"default without channels", "alerts: {default_channels: [ops]}\n", "none: alerts.webhooks and alerts.email define them"},
		{"reconcile bad every", "reconcile: {every: sometimes}\n", "reconcile.every"},
		{"reconcile every too short", "reconcile: {every: 1m}\n", "reconcile.every"},
		{"reconcile bad percent", "reconcile: {tolerance: {percent: \"2%\"}}\n", "reconcile.tolerance.percent"},
		{"reconcile percent above 100", "reconcile: {tolerance: {percent: \"101\"}}\n", "reconcile.tolerance.percent"},
		{"reconcile bad usd", "reconcile: {tolerance: {usd: -1}}\n", "reconcile.tolerance.usd"},
		{"reconcile unknown key", "reconcile: {tolerance: {pct: 2}}\n", `unknown key "pct"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checkYAML(t, tt.yaml)
			if err == nil {
				t.Fatalf("loaded, want an error with %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want it to contain %q", err, tt.want)
			}
			for _, secret := range []string{testWebhookSecret, testWebhookURL, testSMTPPassword, "SECRETPATH", "MfKQ9r8GKYq"} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("the error repeats a credential: %v", err)
				}
			}
		})
	}
}

// TestAlertsConfig_CredentialsReadAtStart: env: and file: sources are read
// when the config is checked, so a change later needs a restart, and a
// source that cannot be read stops the start.
func TestAlertsConfig_CredentialsReadAtStart(t *testing.T) {
	t.Setenv("HARDCAP_TEST_OPS_URL", "https://one.example.com/h")
	set, err := checkYAML(t, "alerts: {webhooks: [{url: env:HARDCAP_TEST_OPS_URL}]}\n")
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("HARDCAP_TEST_OPS_URL", "https://two.example.com/h")
	if got := set.alerts.delivery.Webhooks[0].URL; got != "https://one.example.com/h" {
		t.Fatalf("url %q", got)
	}
}

// TestAlertsConfig_Docs: examples/alerts.yaml, the README's config
// reference and its Alerts example load and pass the checks.
func TestAlertsConfig_Docs(t *testing.T) {
	for _, v := range []string{"HARDCAP_SLACK_WEBHOOK_URL", "HARDCAP_OPS_WEBHOOK_URL"} {
		t.Setenv(v, "https://hooks.slack.com/services/T0/B0/x")
	}
	t.Setenv("HARDCAP_WEBHOOK_SECRET", testWebhookSecret)
	t.Setenv("SMTP_PASSWORD", testSMTPPassword)
	t.Setenv("HARDCAP_METRICS_TOKEN", "a-metrics-token-for-the-docs-test")
	example, err := os.ReadFile("../../examples/alerts.yaml")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]string{"examples/alerts.yaml": string(example)}
	for i, block := range strings.Split(string(readme), "```yaml\n")[1:] {
		block, _, _ = strings.Cut(block, "```")
		if strings.Contains(block, "\nalerts:") || strings.HasPrefix(block, "alerts:") {
			docs["README yaml block "+strings.Repeat("#", i+1)] = block
		}
	}
	if len(docs) < 3 {
		t.Fatalf("found %d documents with alerts, want the example and two README blocks", len(docs))
	}
	for name, doc := range docs {
		s, err := checkYAML(t, doc)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if !s.alerts.hasChannels() {
			t.Errorf("%s: no channel", name)
		}
	}
}

func TestConfig_AlertsWrongTypeNamesTheKey(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"alerts: {exhausted: maybe}\n", "want true or false"},
		{"alerts:\n  email: {host: smtp.example.com, port: many, from: a@b.example, to: [c@d.example]}\n", "alerts.email.port"},
	} {
		cfg, err := parseConfig([]byte(tc.yaml), defaultConfig())
		if err == nil {
			_, err = cfg.check() // the channels are read at start
		}
		if err == nil {
			t.Fatalf("%q loaded", tc.yaml)
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %q does not name %s", tc.yaml, err, tc.want)
		}
	}
}
