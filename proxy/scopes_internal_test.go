package proxy

import (
	"net/http"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/hardcap/hardcap/tokens"
)

// TestEndpoints_HaveRouteScopes: every endpoint hardcap forwards has a
// scope name a token's route scope can list, and each name the tokens
// package offers is some endpoint's.
func TestEndpoints_HaveRouteScopes(t *testing.T) {
	used := map[string]bool{}
	for kind, eps := range endpoints {
		for _, ep := range eps {
			if !slices.Contains(tokens.RouteNames, ep.scope) {
				t.Errorf("%s %s %s: scope %q is not one of tokens.RouteNames", kind, ep.method, ep.path, ep.scope)
			}
			used[ep.scope] = true
		}
	}
	for _, name := range tokens.RouteNames {
		if !used[name] {
			t.Errorf("route name %q names no endpoint", name)
		}
	}
	want := map[string]string{
		"/chat/completions": "chat", "/completions": "completions", "/embeddings": "embeddings",
		"/responses": "responses", "/models": "models", "/models/{id}": "models",
		"/responses/input_tokens": "count_tokens", "/moderations": "moderations",
		"/messages": "messages", "/messages/count_tokens": "count_tokens",
	}
	for kind, eps := range endpoints {
		for _, ep := range eps {
			if ep.scope != want[ep.path] {
				t.Errorf("%s %s: scope %q, want %q", kind, ep.path, ep.scope, want[ep.path])
			}
		}
	}
}

// TestClientAddr: the TCP peer, unless it is a trusted proxy; then the
// rightmost X-Forwarded-For entry that is not one, walking right to left
// over every header line; the peer again when the header is missing or
// malformed. IPv4 and IPv6, mapped addresses as IPv4.
func TestClientAddr(t *testing.T) {
	trusted := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8")}
	tests := []struct {
		name    string
		peer    string
		xff     []string
		trusted []netip.Prefix
		want    string
	}{
		{"peer without trusted proxies", "192.0.2.1:5000", []string{"203.0.113.9"}, nil, "192.0.2.1"},
		{"untrusted peer's header is ignored", "192.0.2.1:5000", []string{"203.0.113.9"}, trusted, "192.0.2.1"},
		{"trusted peer, one hop", "10.1.2.3:5000", []string{"203.0.113.9"}, trusted, "203.0.113.9"},
		{"spoofed left entries are skipped", "10.1.2.3:5000", []string{"1.1.1.1, 203.0.113.9, 10.9.9.9"}, trusted, "203.0.113.9"},
		{"several header lines", "10.1.2.3:5000", []string{"1.1.1.1, 198.51.100.4", "10.2.2.2"}, trusted, "198.51.100.4"},
		{"all hops trusted: the leftmost", "10.1.2.3:5000", []string{"10.5.5.5, 10.6.6.6"}, trusted, "10.5.5.5"},
		{"no header", "10.1.2.3:5000", nil, trusted, "10.1.2.3"},
		{"malformed entry", "10.1.2.3:5000", []string{"203.0.113.9, not-an-ip"}, trusted, "10.1.2.3"},
		{"empty entry", "10.1.2.3:5000", []string{"203.0.113.9,,"}, trusted, "10.1.2.3"},
		{"entry with a port", "10.1.2.3:5000", []string{"203.0.113.9:443"}, trusted, "203.0.113.9"},
		{"IPv6 peer and hop", "[fd00::1]:5000", []string{"2001:db8::7"}, trusted, "2001:db8::7"},
		{"IPv6 hop with a port", "[fd00::1]:5000", []string{"[2001:db8::7]:8443"}, trusted, "2001:db8::7"},
		{"IPv4-mapped peer is IPv4", "[::ffff:10.1.2.3]:5000", []string{"203.0.113.9"}, trusted, "203.0.113.9"},
		{"IPv6 peer with a zone", "[fe80::1%eth0]:5000", nil, nil, "fe80::1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, _ := http.NewRequest(http.MethodPost, "http://hardcap/v1/chat/completions", nil)
			r.RemoteAddr = tt.peer
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			addr, s := clientAddr(r, tt.trusted)
			if s != tt.want || addr.String() != tt.want {
				t.Fatalf("got %s (%q), want %s", addr, s, tt.want)
			}
		})
	}
	r, _ := http.NewRequest(http.MethodGet, "http://hardcap/", nil)
	r.RemoteAddr = "pipe"
	if addr, s := clientAddr(r, trusted); addr.IsValid() || s != "pipe" {
		t.Fatalf("a peer that is not an address: got %s %q, want invalid and the text", addr, s)
	}
}

// TestPrintable: what records keep of client and provider text is bounded
// and printable; plain short text is kept as it is.
func TestPrintable(t *testing.T) {
	tests := []struct{ in, want string }{
		{"OpenAI/Python 1.99.9", "OpenAI/Python 1.99.9"},
		{"a\x00b\x1bc\x7f", "a?b?c?"},
		{"日本\xffx", "日本?x"},
		{strings.Repeat("a", 300), strings.Repeat("a", 256)},
		{strings.Repeat("a", 255) + "é", strings.Repeat("a", 255)},
	}
	for _, tt := range tests {
		if got := printable(tt.in, maxUserAgent); got != tt.want {
			t.Errorf("printable(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
	h := http.Header{}
	h.Set("Request-Id", "req_011CSHoEeqs5C35K2UUqR7Fy")
	if got := requestID(h); got != "req_011CSHoEeqs5C35K2UUqR7Fy" {
		t.Errorf("Anthropic's request-id: got %q", got)
	}
	h.Set("X-Request-Id", "req_abc")
	if got := requestID(h); got != "req_abc" {
		t.Errorf("x-request-id first: got %q", got)
	}
	h.Set("X-Request-Id", strings.Repeat("x", 1000))
	if got := requestID(h); len(got) != maxRequestID {
		t.Errorf("a long id kept %d bytes, want %d", len(got), maxRequestID)
	}
}

// TestConcurrency_AcquireRelease: a token with a limit gets that many
// slots and no more; released slots come back and leave no entry behind;
// tokens without a limit are not counted.
func TestConcurrency_AcquireRelease(t *testing.T) {
	var c concurrency
	tok := &tokens.Token{ID: "tok_a", MaxConcurrent: 2}
	for i := range 2 {
		if held, err := c.acquire(tok); !held || err != nil {
			t.Fatalf("slot %d: held %v, %v", i+1, held, err)
		}
	}
	if held, err := c.acquire(tok); held || err == nil || !strings.Contains(err.Error(), "at most 2 requests in flight") {
		t.Fatalf("third slot: held %v, %v; want refused naming the limit", held, err)
	}
	c.release(tok.ID)
	if held, err := c.acquire(tok); !held || err != nil {
		t.Fatalf("after a release: held %v, %v", held, err)
	}
	c.release(tok.ID)
	c.release(tok.ID)
	if n := len(c.n); n != 0 || c.active(tok.ID) != 0 {
		t.Fatalf("after every release: %d entries, %d active; want none", n, c.active(tok.ID))
	}
	if held, err := c.acquire(&tokens.Token{ID: "tok_b"}); held || err != nil || len(c.n) != 0 {
		t.Fatalf("no limit: held %v, %v, %d entries; want nothing counted", held, err, len(c.n))
	}
}
