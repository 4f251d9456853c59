package proxy

import (
	"net/http"
	"strings"

	"github.com/hardcap/hardcap/tokens"
)

// credentialHeaders are the headers a client may present its hardcap token
// in. None reaches the provider (see forwardedHeaders).
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
