package tokens

import (
	"errors"
	"net/netip"
	"testing"
)

func TestParseIPs(t *testing.T) {
	tests := []struct {
		in   []string
		want []string
		bad  bool
	}{
		{in: []string{"10.0.0.0/8"}, want: []string{"10.0.0.0/8"}},
		{in: []string{"10.1.2.3/8"}, bad: true},
		{in: []string{"2001:db8::1/32"}, bad: true},
		{in: []string{"192.0.2.7"}, want: []string{"192.0.2.7/32"}},
		{in: []string{"2001:db8::/32", "2001:db8::/32"}, want: []string{"2001:db8::/32"}},
		{in: []string{"::ffff:10.0.0.0/104"}, want: []string{"10.0.0.0/8"}},
		{in: []string{"::ffff:10.0.0.1/104"}, bad: true},
		{in: []string{"::1"}, want: []string{"::1/128"}},
		{in: []string{"10.0.0.0/33"}, bad: true},
		{in: []string{"example.com"}, bad: true},
		{in: []string{"fe80::1%eth0"}, bad: true},
		{in: []string{""}, bad: true},
	}
	for _, tt := range tests {
		got, err := ParseIPs(tt.in)
		if tt.bad {
			if !errors.Is(err, ErrInvalidScope) {
				t.Errorf("ParseIPs(%q) = %v, %v; want ErrInvalidScope", tt.in, got, err)
			}
			continue
		}
		if err != nil || len(got) != len(tt.want) {
			t.Errorf("ParseIPs(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			continue
		}
		for i := range got {
			if got[i] != tt.want[i] {
				t.Errorf("ParseIPs(%q)[%d] = %q; want %q", tt.in, i, got[i], tt.want[i])
			}
		}
	}
}

func TestAllowsIP(t *testing.T) {
	tok := Token{IPs: []string{"10.0.0.0/8", "2001:db8::/32"}}
	for addr, want := range map[string]bool{
		"10.9.9.9": true, "::ffff:10.1.1.1": true, "11.0.0.1": false,
		"2001:db8:1::5": true, "2001:db9::1": false,
	} {
		if got := tok.AllowsIP(netip.MustParseAddr(addr)); got != want {
			t.Errorf("AllowsIP(%s) = %v; want %v", addr, got, want)
		}
	}
	if tok.AllowsIP(netip.Addr{}) {
		t.Error("an unknown address passed an address scope")
	}
	if open := (Token{}); !open.AllowsIP(netip.Addr{}) {
		t.Error("a token without an address scope refused an unknown address")
	}
}

func TestCheckRoutes(t *testing.T) {
	if err := CheckRoutes([]string{"chat", "embeddings"}); err != nil {
		t.Fatal(err)
	}
	for _, bad := range [][]string{{"chat", "chat"}, {"images"}, {""}} {
		if err := CheckRoutes(bad); !errors.Is(err, ErrInvalidScope) {
			t.Errorf("CheckRoutes(%q) = %v; want ErrInvalidScope", bad, err)
		}
	}
}
