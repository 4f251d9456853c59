package main

import (
	"net/http"
	"strings"
	"testing"
)

// TestConfig_TrustedProxies: trusted_proxies takes CIDR prefixes and single
// addresses, IPv4 and IPv6, and refuses what is neither without echoing it.
func TestConfig_TrustedProxies(t *testing.T) {
	cfg, err := parseConfig([]byte("trusted_proxies: [10.0.0.0/8, 192.0.2.7, \"2001:db8::/32\"]\n"), defaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	set, err := cfg.check()
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, p := range set.trustedProxies {
		got = append(got, p.String())
	}
	if strings.Join(got, " ") != "10.0.0.0/8 192.0.2.7/32 2001:db8::/32" {
		t.Fatalf("trusted proxies %v", got)
	}
	if set, _ := defaultConfig().check(); len(set.trustedProxies) != 0 {
		t.Fatalf("default trusted proxies %v, want none", set.trustedProxies)
	}
	cfg, err = parseConfig([]byte("trusted_proxies: [10.0.0.0/8, not-a-secret-value]\n"), defaultConfig())
	if err == nil {
		_, err = cfg.check()
	}
	if err == nil || !strings.Contains(err.Error(), "trusted_proxies: ") || !strings.Contains(err.Error(), "entry 2") || strings.Contains(err.Error(), "not-a-secret-value") ||
		strings.Contains(err.Error(), "token scope") {
		t.Fatalf("a bad entry: %v", err)
	}
	for _, bad := range []string{"0.0.0.0/0", "\"::/0\"", "10.0.0.1/8"} {
		cfg, err = parseConfig([]byte("trusted_proxies: ["+bad+"]\n"), defaultConfig())
		if err == nil {
			_, err = cfg.check()
		}
		if err == nil || !strings.Contains(err.Error(), "trusted_proxies: ") {
			t.Errorf("trusted_proxies [%s] was accepted (%v)", bad, err)
		}
	}
}

// TestServe_TrustedProxyAndRecordFields: behind a trusted proxy the
// record's client IP is the forwarded address, and usage --json and --csv
// show the user agent; from an untrusted peer the header is ignored.
func TestServe_TrustedProxyAndRecordFields(t *testing.T) {
	for _, tt := range []struct {
		name, config, want string
	}{
		{"trusted", "trusted_proxies: [127.0.0.1]\n", "203.0.113.9"},
		{"untrusted", "", "127.0.0.1"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := startServer(t, tt.config)
			s.mustCLI("project", "create", "web")
			var tok struct{ ID, Token string }
			decodeJSON(t, s.mustCLI("token", "create", "--project", "web", "--json"), &tok)
			req, _ := http.NewRequest("POST", s.url+"/v1/chat/completions", strings.NewReader(hello))
			req.Header.Set("Authorization", "Bearer "+tok.Token)
			req.Header.Set("X-Forwarded-For", "203.0.113.9")
			req.Header.Set("User-Agent", "e2e-agent/1.0")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != 200 {
				t.Fatalf("got %d", resp.StatusCode)
			}
			var u struct {
				Records []struct {
					ClientIP  string `json:"client_ip"`
					UserAgent string `json:"user_agent"`
				}
			}
			waitFor(t, "the record", func() bool {
				decodeJSON(t, s.mustCLI("usage", "--json"), &u)
				return len(u.Records) == 1
			})
			if r := u.Records[0]; r.ClientIP != tt.want || r.UserAgent != "e2e-agent/1.0" {
				t.Fatalf("record %+v, want client IP %s and the user agent", r, tt.want)
			}
			csv := s.mustCLI("usage", "--csv")
			if !strings.Contains(csv, "user_agent,old_secret,request_id") || !strings.Contains(csv, ",e2e-agent/1.0,false,") {
				t.Fatalf("usage --csv:\n%s", csv)
			}
		})
	}
}
