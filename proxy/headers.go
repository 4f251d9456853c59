package proxy

import (
	"net/http"
	"regexp"
	"strings"

	"github.com/hardcap/hardcap/budget/pricing"
)

// forwardedHeaders are the only client headers that reach a provider, by
// kind, in lower case; everything else is dropped. hardcap sets the
// credentials itself (Authorization: Bearer for openai, x-api-key for
// anthropic) and, for openai, OpenAI-Organization and OpenAI-Project from
// the provider's config, so a client can neither smuggle a key nor pick
// which organization or project pays. Accept-Encoding is dropped so the
// transport negotiates an encoding it decodes itself; headers with an
// underscore ("anthropic_beta") are different names and are dropped.
var forwardedHeaders = map[Kind]map[string]bool{
	KindOpenAI: {
		"content-type": true, "accept": true, "user-agent": true, "idempotency-key": true,
	},
	KindAnthropic: {
		"content-type": true, "accept": true, "user-agent": true, "idempotency-key": true,
		// Checked by checkHeaders before the request is reserved.
		"anthropic-version": true, "anthropic-beta": true,
	},
}

// forwardedPrefix is a family of headers that carry only SDK telemetry
// (language, version, retry count) and pass for every kind.
const forwardedPrefix = "x-stainless-"

// forwarded reports whether a client header may reach a provider of kind.
func forwarded(kind Kind, name string) bool {
	n := strings.ToLower(name)
	return forwardedHeaders[kind][n] || strings.HasPrefix(n, forwardedPrefix)
}

// anthropicVersion is the form of an anthropic-version value. Any dated
// version passes: a version that changed the response's usage would fail
// to parse, and a response without usable usage is charged in full.
var anthropicVersion = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)

// anthropicBetas are the anthropic-beta names whose cost effect hardcap
// knows: they change nothing it does not bound, or they only enable
// parameters, blocks and tools that hardcap checks on their own (and
// refuses where it cannot bound them). context-1m is checked apart.
var anthropicBetas = map[string]bool{
	"prompt-caching-2024-07-31": true, "extended-cache-ttl-2025-04-11": true,
	"token-efficient-tools-2025-02-19": true, "interleaved-thinking-2025-05-14": true,
	"output-128k-2025-02-19": true, "fine-grained-tool-streaming-2025-05-14": true,
	"computer-use-2024-10-22": true, "computer-use-2025-01-24": true, "computer-use-2025-11-24": true,
	"token-counting-2024-11-01": true, "messages-2023-12-15": true, "tools-2024-04-04": true,
	"tools-2024-05-16": true, "max-tokens-3-5-sonnet-2024-07-15": true, "pdfs-2024-09-25": true,
	"files-api-2025-04-14": true, "message-batches-2024-09-24": true,
	"model-context-window-exceeded-2025-08-26": true, "structured-outputs-2025-11-13": true,
	"effort-2025-11-24": true,
}

// checkHeaders refuses client headers that would change what the provider
// bills beyond what hardcap bounds: an anthropic-version that is not a
// version, a beta it does not know, and a long-context beta for a model
// whose prices have no long-context tier.
func checkHeaders(h http.Header, prov *Provider, m pricing.Model) error {
	if prov.Kind != KindAnthropic {
		return nil
	}
	for _, v := range h.Values("Anthropic-Version") {
		if !anthropicVersion.MatchString(strings.TrimSpace(v)) {
			return refuse(ErrBadRequest, "anthropic-version must be a date such as 2023-06-01.")
		}
	}
	for _, v := range h.Values("Anthropic-Beta") {
		for _, beta := range strings.Split(v, ",") {
			beta = strings.ToLower(strings.TrimSpace(beta))
			switch {
			case beta == "":
			case strings.HasPrefix(beta, "context-1m"):
				if !m.Prices.HasTiers() {
					return refuse(pricing.ErrModelNotPriced, "The price data has no long-context prices for %q, so hardcap cannot meter the context-1m beta with it.", m.ID)
				}
			case !anthropicBetas[beta] && !prov.Betas[beta]:
				return refuse(ErrUnbounded, "hardcap does not know what the beta %q does to the cost. An operator who has checked can allow it with providers.%s.betas.", beta, prov.Name)
			}
		}
	}
	return nil
}

// setHeaders makes h, the outgoing request's headers (a copy of the
// client's), what the provider may see: only forwarded headers, the real
// key where the provider's kind expects it, and for openai the configured
// organization and project.
func setHeaders(h http.Header, prov *Provider, key string) {
	for name := range h {
		if !forwarded(prov.Kind, name) {
			delete(h, name)
		}
	}
	if prov.Kind == KindAnthropic {
		h.Set("X-Api-Key", key)
		return
	}
	h.Set("Authorization", "Bearer "+key)
	if prov.Organization != "" {
		h.Set("OpenAI-Organization", prov.Organization)
	}
	if prov.Project != "" {
		h.Set("OpenAI-Project", prov.Project)
	}
}
