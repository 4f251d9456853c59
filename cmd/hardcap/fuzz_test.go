package main

import (
	"strings"
	"testing"
)

// FuzzConfig: no config file makes loading panic, and no error repeats a
// key-looking value from the file.
func FuzzConfig(f *testing.F) {
	f.Add([]byte(specExample))
	f.Add([]byte("providers:\n  openai: {base_url: https://x/v1, api_key: sk-proj-secretsecret}\n"))
	f.Add([]byte("budget: {global: {limit_usd: \"1\", period: day}, timezone: Asia/Tokyo}\n"))
	f.Add([]byte("prices:\n  overrides:\n    - {provider: openai, model: m, input_mtok: \"1\"}\n"))
	f.Add([]byte(fullAlerts))
	f.Add([]byte("alerts:\n  webhooks: [{url: \"https://x.example.com/sk-proj-secretsecret\", secret: sk-proj-secretsecret}]\n"))
	f.Add([]byte("alerts: {thresholds: [0.5, .8, 1], anomalies: {new_ip: {action: freeze, scope: project}}, routes: [{channels: [a]}]}\n"))
	f.Add([]byte("alerts: {email: [{host: h, password: sk-proj-secretsecret, to: [a@b]}]}\nreconcile: {every: 6h, tolerance: {percent: \"2\", usd: \"0.10\"}}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseConfig(data, defaultConfig())
		if err == nil {
			_, err = cfg.check()
		}
		if err != nil && strings.Contains(err.Error(), "sk-proj-secret") {
			t.Fatalf("a config error repeats a key: %v", err)
		}
	})
}
