package proxy

import (
	"net/http"
	"strings"

	"github.com/hardcap/hardcap/tokens"
)

// credentialHeaders are the headers a client may present its hardcap token
// in. All of them are removed before the real key is added, so neither the
// token nor a second key can reach the provider.
var credentialHeaders = []string{"Authorization", "X-Api-Key", "Api-Key"}

// presentedSecret returns the token the client sent: a Bearer
// Authorization, else x-api-key, else api-key. When several are present they
// must agree, so a request cannot carry one credential for hardcap and a
// different one for the provider.
func presentedSecret(h http.Header) (string, error) {
	var found string
	for _, name := range credentialHeaders {
		for _, v := range h.Values(name) {
			if name == "Authorization" {
				scheme, rest, ok := strings.Cut(v, " ")
				if !ok || !strings.EqualFold(scheme, "Bearer") {
					return "", tokens.ErrMalformed
				}
				v = rest
			}
			v = strings.TrimSpace(v)
			if found != "" && v != found {
				return "", tokens.ErrMalformed
			}
			found = v
		}
	}
	if found == "" {
		return "", tokens.ErrUnknown
	}
	return found, nil
}

// hopHeaders are removed from the outgoing request on top of the
// credentials: cookies for hardcap's host, and hints that could make the
// provider answer in a shape hardcap cannot meter.
var strippedHeaders = []string{"Cookie", "Accept-Encoding", "Forwarded", "X-Forwarded-For", "X-Forwarded-Host", "X-Forwarded-Proto", "X-Real-Ip"}

// credentialLike matches header names that could carry a credential for
// the provider: any of them from the client could smuggle a second key past
// hardcap, so all are removed. anthropic-* headers that are not
// credentials (version, beta) pass.
func credentialLike(name string) bool {
	n := strings.ToLower(name)
	for _, w := range []string{"key", "token", "auth", "secret", "credential", "cookie", "session", "signature"} {
		if strings.Contains(n, w) {
			return true
		}
	}
	return false
}

// setCredentials removes every client credential from h and sets the real
// key where the provider's kind expects it: Anthropic's x-api-key, or a
// Bearer Authorization.
func setCredentials(h http.Header, kind Kind, key string) {
	for _, name := range credentialHeaders {
		h.Del(name)
	}
	for _, name := range strippedHeaders {
		h.Del(name)
	}
	for name := range h {
		if credentialLike(name) {
			h.Del(name)
		}
	}
	if kind == KindAnthropic {
		h.Set("X-Api-Key", key)
		return
	}
	h.Set("Authorization", "Bearer "+key)
}
