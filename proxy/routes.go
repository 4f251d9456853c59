package proxy

import (
	"net/http"
	"regexp"
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
	// openAIOnly marks a free route that is free only on OpenAI's own API
	// (the provider's prices id "openai"): an OpenAI-compatible provider may
	// bill the same path (Mistral prices its moderations), and hardcap does
	// not meter it there.
	openAIOnly bool
	// scope is the endpoint's name in a token's route scope, one of
	// tokens.RouteNames.
	scope string
}

// idParam ends a path pattern whose last segment is an id, as in
// "/models/{id}"; resolve substitutes it into upstream.
const idParam = "/{id}"

// pathID is the form of an id in a path: one segment, no dot-only names,
// so the upstream path is the one hardcap checked. Model ids such as
// "ft:gpt-4o-mini:org::abc" and "claude-sonnet-4-5@20250929" fit.
var pathID = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,255}$`)

// endpoints lists, per kind, every operation hardcap forwards. A path not
// listed is refused: an unmetered path would be a hole in the budget.
var endpoints = map[Kind][]endpoint{
	KindOpenAI: {
		{http.MethodPost, "/chat/completions", "/chat/completions", chatAPI{}, false, "chat"},
		{http.MethodPost, "/completions", "/completions", completionsAPI{}, false, "completions"},
		{http.MethodPost, "/embeddings", "/embeddings", embeddingsAPI{}, false, "embeddings"},
		{http.MethodPost, "/responses", "/responses", responsesAPI{}, false, "responses"},
		{http.MethodGet, "/models", "/models", nil, false, "models"},
		{http.MethodGet, "/models/{id}", "/models/{id}", nil, false, "models"},
		// Free at OpenAI (token counting and moderation of its API's
		// inputs and outputs bill nothing). GET /responses/{id} is not
		// here: every token shares one upstream key, so any token could
		// read any stored response.
		{http.MethodPost, "/responses/input_tokens", "/responses/input_tokens", nil, true, "count_tokens"},
		{http.MethodPost, "/moderations", "/moderations", nil, true, "moderations"},
	},
	KindAnthropic: {
		{http.MethodPost, "/messages", "/v1/messages", messagesAPI{}, false, "messages"},
		{http.MethodPost, "/messages/count_tokens", "/v1/messages/count_tokens", nil, false, "count_tokens"},
		{http.MethodGet, "/models", "/v1/models", nil, false, "models"},
		{http.MethodGet, "/models/{id}", "/v1/models/{id}", nil, false, "models"},
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
// /v1/messages, and model lists from an Anthropic client, go to the
// provider named "anthropic", other /v1/ requests to the one named
// "openai"; /p/{provider}/v1/... go to the named provider.
func (p *Proxy) resolve(r *http.Request, t *table) (route, error) {
	path := r.URL.Path
	provName := defaultProvider(r)
	if rest, ok := strings.CutPrefix(path, "/p/"); ok {
		name, sub, _ := strings.Cut(rest, "/")
		provName, path = name, "/"+sub
	}
	prov, ok := t.providers[provName]
	if !ok {
		return route{}, refuse(ErrUnknownRoute, "hardcap has no provider named %q.", safePath(provName))
	}
	rel, ok := strings.CutPrefix(path, "/v1")
	if !ok {
		return route{}, refuse(ErrUnknownRoute, "%s %s is not a route hardcap meters.", r.Method, safePath(r.URL.Path))
	}
	for _, ep := range endpoints[prov.Kind] {
		if ep.method != r.Method {
			continue
		}
		if prefix, ok := strings.CutSuffix(ep.path, idParam); ok {
			id, ok := strings.CutPrefix(rel, prefix+"/")
			if !ok || !pathID.MatchString(id) {
				continue
			}
			ep.upstream = strings.TrimSuffix(ep.upstream, idParam) + "/" + id
		} else if ep.path != rel {
			continue
		}
		if ep.openAIOnly && prov.Prices != "openai" {
			return route{}, refuse(ErrUnknownRoute, "%s /v1%s is free only on OpenAI's own API; hardcap does not meter it at provider %q.", r.Method, ep.path, prov.Name)
		}
		return route{provider: prov, endpoint: ep, name: r.Method + " /v1" + ep.path}, nil
	}
	return route{}, refuse(ErrUnknownRoute, "%s %s is not a route hardcap meters.", r.Method, safePath(r.URL.Path))
}

// defaultProvider names the provider a /v1/ request goes to: "anthropic"
// for the Messages routes, and for the model routes both APIs share when the
// request carries Anthropic's headers (its SDKs always send
// anthropic-version and put the key in x-api-key; OpenAI's never do);
// "openai" otherwise.
func defaultProvider(r *http.Request) string {
	path := r.URL.Path
	if path == "/v1/messages" || strings.HasPrefix(path, "/v1/messages/") {
		return "anthropic"
	}
	if path == "/v1/models" || strings.HasPrefix(path, "/v1/models/") {
		if r.Header.Get("Anthropic-Version") != "" || r.Header.Get("X-Api-Key") != "" {
			return "anthropic"
		}
	}
	return "openai"
}

// shapeOf is the error shape a request's caller expects: the kind of the
// provider it addresses, or of the default provider for its path.
func (p *Proxy) shapeOf(r *http.Request) Kind {
	name := defaultProvider(r)
	if rest, ok := strings.CutPrefix(r.URL.Path, "/p/"); ok {
		name, _, _ = strings.Cut(rest, "/")
	}
	if prov, ok := p.table.Load().providers[name]; ok {
		return prov.Kind
	}
	if name == "anthropic" {
		return KindAnthropic
	}
	return KindOpenAI
}
