package proxy

import (
	"net/http"
	"strings"
	"testing"

	"github.com/hardcap/hardcap/tokens"
)

func TestTokenInQuery(t *testing.T) {
	secret, err := tokens.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	for raw, want := range map[string]bool{
		"":                       false,
		"api-version=2024-06-01": false,
		"key=" + secret:          true,
		"a=1&api_key=" + secret:  true,
		"k=" + strings.Replace(secret, "_", "%5F", 1): true,
		"note=hc_short": false,
	} {
		if got := tokenInQuery(raw); got != want {
			t.Errorf("tokenInQuery(%q) = %v; want %v", raw, got, want)
		}
	}
}

func TestScrubHeaders(t *testing.T) {
	key := "sk-proj-REALKEY0123456789"
	h := http.Header{"X-Echo-Key": {"Bearer " + key}, "X-Ok": {"fine"}}
	scrubHeaders(h, key)
	for name, vs := range h {
		for _, v := range vs {
			if strings.Contains(name+v, key) {
				t.Errorf("header %s: %s still holds the key", name, v)
			}
		}
	}
	if h.Get("X-Ok") != "fine" || h.Get("X-Echo-Key") != "Bearer [redacted]" {
		t.Errorf("headers after scrub: %v", h)
	}
}
