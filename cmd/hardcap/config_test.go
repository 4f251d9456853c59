package main

import (
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/budget"
)

// specExample is the config of SPEC §2.
const specExample = `
listen: 127.0.0.1:8787
data_dir: ./data
providers:
  openai:                      # OpenAI API (kind: openai)
    base_url: https://api.openai.com/v1
    api_key: env:OPENAI_API_KEY        # env:NAME | file:PATH | cmd:COMMAND ARGS
  anthropic:                   # Anthropic API (kind: anthropic)
    base_url: https://api.anthropic.com
    api_key: env:ANTHROPIC_API_KEY
  groq:                        # any OpenAI-compatible upstream
    kind: openai
    base_url: https://api.groq.com/openai/v1
    api_key: env:GROQ_API_KEY
    prices: groq               # provider id in the price data
budget:
  global: {limit_usd: "50", period: month}
  on_low: clamp                # clamp | reject
alerts:
  thresholds: [0.5, 0.8, 1.0]
  webhooks: [https://hooks.slack.com/services/x]
`

func TestConfig_SpecExample(t *testing.T) {
	cfg, err := parseConfig([]byte(specExample), defaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	set, err := cfg.check()
	if err != nil {
		t.Fatal(err)
	}
	if set.global.Amount != 50*budget.NanoPerUSD || set.global.Period != budget.Month || set.onLow != budget.Clamp {
		t.Fatalf("got global %+v on_low %s", set.global, set.onLow)
	}
	var names []string
	for _, p := range set.providers {
		names = append(names, p.Name+":"+p.Prices+":"+p.CapField)
	}
	if got := strings.Join(names, ","); got != "anthropic:anthropic:,groq:groq:,openai:openai:" {
		t.Fatalf("got providers %s", got)
	}
	if set.providers[0].Kind != "anthropic" || set.providers[1].Kind != "openai" {
		t.Fatalf("got kinds %s and %s", set.providers[0].Kind, set.providers[1].Kind)
	}
	if cfg.DataDir != "./data" || cfg.Listen != "127.0.0.1:8787" {
		t.Fatalf("got %+v", cfg)
	}
}

func TestConfig_Defaults(t *testing.T) {
	cfg, err := parseConfig([]byte(""), defaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	set, err := cfg.check()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:8787" || cfg.UpstreamTimeout != 10*time.Minute || len(set.providers) != 2 || set.providers[1].Key.String() != "env:OPENAI_API_KEY" || set.providers[0].Key.String() != "env:ANTHROPIC_API_KEY" {
		t.Fatalf("got %+v", cfg)
	}
	if !set.global.Unlimited() || set.location != time.UTC {
		t.Fatalf("got global %+v in %s", set.global, set.location)
	}
}

// TestConfig_UsageRetention: usage.retention defaults to 400 days; "0"
// and "off" keep every record; a duration sets it.
func TestConfig_UsageRetention(t *testing.T) {
	tests := []struct {
		yaml string
		want time.Duration
	}{
		{"", 400 * 24 * time.Hour},
		{"usage: {retention: off}\n", 0},
		{"usage: {retention: \"0\"}\n", 0},
		{"usage: {retention: 30d}\n", 30 * 24 * time.Hour},
		{"usage: {retention: 36h}\n", 36 * time.Hour},
	}
	for _, tt := range tests {
		cfg, err := parseConfig([]byte(tt.yaml), defaultConfig())
		if err != nil {
			t.Fatal(err)
		}
		set, err := cfg.check()
		if err != nil || set.retention != tt.want {
			t.Errorf("%q: retention %s (%v), want %s", tt.yaml, set.retention, err, tt.want)
		}
	}
}

func TestConfig_Errors(t *testing.T) {
	tests := map[string]string{
		"unknown key":       "budjet: {}\n",
		"literal key":       "providers:\n  openai: {base_url: https://x/v1, api_key: sk-proj-abc}\n",
		"bad url":           "providers:\n  openai: {base_url: ftp://x, api_key: env:K}\n",
		"bad kind":          "providers:\n  openai: {kind: gemini, base_url: https://x, api_key: env:K}\n",
		"bad period":        "budget: {global: {limit_usd: \"1\", period: year}}\n",
		"bad amount":        "budget: {global: {limit_usd: \"1.5.0\"}}\n",
		"float amount":      "budget: {global: {limit_usd: \"1e3\"}}\n",
		"bad on_low":        "budget: {on_low: warn}\n",
		"bad timezone":      "budget: {timezone: Mars/Olympus}\n",
		"bad cap field":     "providers:\n  openai: {base_url: https://x/v1, api_key: env:K, cap_field: tokens}\n",
		"bad provider":      "providers:\n  \"a/b\": {base_url: https://x/v1, api_key: env:K}\n",
		"negative timeout":  "upstream_timeout: -1s\n",
		"unknown allowance": "providers:\n  openai: {base_url: https://x/v1, api_key: env:K, allowances: {web: \"1\"}}\n",
		"bad allowance":     "providers:\n  openai: {base_url: https://x/v1, api_key: env:K, allowances: {web_search: \"-1\"}}\n",
		"bad retention":     "usage: {retention: forever}\n",
		"short retention":   "usage: {retention: 2h}\n",
	}
	for name, yaml := range tests {
		t.Run(name, func(t *testing.T) {
			cfg, err := parseConfig([]byte(yaml), defaultConfig())
			if err == nil {
				_, err = cfg.check()
			}
			if err == nil {
				t.Fatalf("config %q loaded, want an error", yaml)
			}
			if strings.Contains(err.Error(), "sk-proj-abc") {
				t.Fatalf("the error echoes the key: %v", err)
			}
		})
	}
}

func TestConfig_Allowances(t *testing.T) {
	cfg, err := parseConfig([]byte("providers:\n  openai: {base_url: https://x/v1, api_key: env:K, allowances: {web_search: \"0.05\", stored_state: \"1\", opaque: \"20000 tokens\"}}\n"), defaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	set, err := cfg.check()
	if err != nil {
		t.Fatal(err)
	}
	a := set.providers[0].Allowances
	if a["web_search"].USD != 50_000_000 || a["stored_state"].USD != budget.NanoPerUSD || a["opaque"].Tokens != 20_000 {
		t.Fatalf("got %v", a)
	}
}

func TestConfig_ProviderBilling(t *testing.T) {
	cfg, err := parseConfig([]byte("providers:\n  openai: {base_url: https://x/v1, api_key: env:K, price_multiplier: \"1.1\", organization: org-1, project: proj_1, betas: [Some-Beta], admin_key: env:ADMIN}\n"), defaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	set, err := cfg.check()
	if err != nil {
		t.Fatal(err)
	}
	p := set.providers[0]
	if p.PriceMultiplier.String() != "1.100000" || p.Organization != "org-1" || p.Project != "proj_1" || !p.Betas["some-beta"] {
		t.Fatalf("got multiplier %s, org %q, project %q, betas %v", p.PriceMultiplier, p.Organization, p.Project, p.Betas)
	}
	for _, bad := range []string{
		"providers:\n  openai: {base_url: https://x/v1, api_key: env:K, price_multiplier: \"0.9\"}\n",
		"providers:\n  openai: {base_url: https://x/v1, api_key: env:K, allowances: {web_search: \"100 tokens\"}}\n",
		"providers:\n  openai: {base_url: https://x/v1, api_key: env:K, allowances: {opaque: \"-3 tokens\"}}\n",
		"providers:\n  anthropic: {base_url: https://x, api_key: env:K, organization: org-1}\n",
		"providers:\n  openai: {base_url: https://x/v1, api_key: env:K, admin_key: \"plain-secret\"}\n",
	} {
		cfg, err := parseConfig([]byte(bad), defaultConfig())
		if err == nil {
			_, err = cfg.check()
		}
		if err == nil {
			t.Errorf("%q: got no error", bad)
		} else if strings.Contains(err.Error(), "plain-secret") {
			t.Errorf("the error echoes the key: %v", err)
		}
	}
}

func TestConfig_ListenMustBeLoopbackWithoutTLS(t *testing.T) {
	tests := []struct {
		listen string
		allow  bool
		ok     bool
	}{
		{"127.0.0.1:8787", false, true},
		{"[::1]:8787", false, true},
		{"localhost:8787", false, true},
		{"127.0.0.1:0", false, true},
		{"0.0.0.0:8787", false, false},
		{":8787", false, false},
		{"192.168.1.5:8787", false, false},
		{"0.0.0.0:8787", true, true},
		{"nonsense", true, false},
	}
	for _, tt := range tests {
		cfg := defaultConfig()
		cfg.Listen, cfg.AllowInsecureListen = tt.listen, tt.allow
		if _, err := cfg.check(); (err == nil) != tt.ok {
			t.Errorf("listen %q (allow %v): got %v, want ok=%v", tt.listen, tt.allow, err, tt.ok)
		}
	}
}

func TestConfig_Timezone(t *testing.T) {
	cfg, _ := parseConfig([]byte("budget: {timezone: Asia/Tokyo}\n"), defaultConfig())
	set, err := cfg.check()
	if err != nil {
		t.Fatal(err)
	}
	if set.location.String() != "Asia/Tokyo" {
		t.Fatalf("got %s", set.location)
	}
}
