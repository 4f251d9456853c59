package proxy

import (
	"net/http"
	"strings"
)

// Kind is the API family a provider speaks.
type Kind string

// The provider kinds.
const (
	// KindOpenAI is the OpenAI API and every OpenAI-compatible API. Its base
	// URL includes the version, e.g. https://api.openai.com/v1.
	KindOpenAI Kind = "openai"
	// KindAnthropic is the Anthropic Messages API. Its base URL does not
	// include the version, e.g. https://api.anthropic.com.
	KindAnthropic Kind = "anthropic"
)

// endpoint is one upstream operation hardcap forwards.
type endpoint struct {
	method string
	// path is the client's path after /v1, e.g. "/chat/completions".
	path string
	// upstream is the path appended to the provider's base URL.
	upstream string
	// api meters the endpoint; nil means free (the request still needs a
	// live token).
	api api
}

// endpoints lists, per kind, every operation hardcap forwards. A path not
// listed is refused: an unmetered path would be a hole in the budget.
var endpoints = map[Kind][]endpoint{
	KindOpenAI: {
		{http.MethodPost, "/chat/completions", "/chat/completions", chatAPI{}},
		{http.MethodPost, "/completions", "/completions", completionsAPI{}},
		{http.MethodPost, "/embeddings", "/embeddings", embeddingsAPI{}},
		{http.MethodPost, "/responses", "/responses", responsesAPI{}},
		{http.MethodGet, "/models", "/models", nil},
	},
	KindAnthropic: {
		{http.MethodPost, "/messages", "/v1/messages", messagesAPI{}},
		{http.MethodPost, "/messages/count_tokens", "/v1/messages/count_tokens", nil},
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
// /v1/messages go to the provider named "anthropic", other /v1/ requests to
// the one named "openai"; /p/{provider}/v1/... go to the named provider.
func (p *Proxy) resolve(r *http.Request) (route, error) {
	path := r.URL.Path
	provName := defaultProvider(path)
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

func defaultProvider(path string) string {
	if path == "/v1/messages" || strings.HasPrefix(path, "/v1/messages/") {
		return "anthropic"
	}
	return "openai"
}

// shapeOf is the error shape a request's caller expects: the kind of the
// provider it addresses, or of the default provider for its path.
func (p *Proxy) shapeOf(r *http.Request) Kind {
	name := defaultProvider(r.URL.Path)
	if rest, ok := strings.CutPrefix(r.URL.Path, "/p/"); ok {
		name, _, _ = strings.Cut(rest, "/")
	}
	if prov, ok := p.providers[name]; ok {
		return prov.Kind
	}
	if name == "anthropic" {
		return KindAnthropic
	}
	return KindOpenAI
}
