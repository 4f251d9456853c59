package proxy

import (
	"net/http"
	"strings"
)

// Kind is the API family a provider speaks.
type Kind string

// The provider kinds.
const (
	// KindOpenAI is the OpenAI API and every OpenAI-compatible API.
	KindOpenAI Kind = "openai"
)

// endpoint is one upstream operation hardcap forwards.
type endpoint struct {
	method string
	// path is relative to the provider's base URL, e.g. "/chat/completions".
	path string
	// metered endpoints reserve and settle; the others are free but still
	// need a live token.
	metered bool
}

// endpoints lists, per kind, every operation hardcap forwards. A path not
// listed is refused: an unmetered path would be a hole in the budget.
var endpoints = map[Kind][]endpoint{
	KindOpenAI: {
		{http.MethodPost, "/chat/completions", true},
		{http.MethodGet, "/models", false},
	},
}

// route is a resolved request: which provider and which operation.
type route struct {
	provider *Provider
	endpoint endpoint
	// name is the route as records show it, e.g. "POST /v1/chat/completions".
	name string
}

// resolve maps a request to a provider and an endpoint. Requests under
// /v1/ go to the default provider of the OpenAI kind ("openai");
// /p/{provider}/v1/... go to the named provider.
func (p *Proxy) resolve(r *http.Request) (route, error) {
	path := r.URL.Path
	provName := "openai"
	if rest, ok := strings.CutPrefix(path, "/p/"); ok {
		name, sub, _ := strings.Cut(rest, "/")
		provName, path = name, "/"+sub
	}
	prov, ok := p.providers[provName]
	if !ok {
		return route{}, refuse(ErrUnknownRoute, "hardcap has no provider named %q.", provName)
	}
	rel, ok := strings.CutPrefix(path, "/v1")
	if !ok {
		return route{}, refuse(ErrUnknownRoute, "%s %s is not a route hardcap meters.", r.Method, r.URL.Path)
	}
	for _, ep := range endpoints[prov.Kind] {
		if ep.path == rel && ep.method == r.Method {
			return route{provider: prov, endpoint: ep, name: r.Method + " /v1" + rel}, nil
		}
	}
	return route{}, refuse(ErrUnknownRoute, "%s %s is not a route hardcap meters.", r.Method, r.URL.Path)
}
