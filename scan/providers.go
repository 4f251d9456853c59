package scan

import "strings"

// Provider says who issued a leaked key and where its owner revokes it.
type Provider struct {
	// Name is the issuer, e.g. "OpenAI"; for a rule that names no issuer
	// (generic-api-key, private-key, jwt) it is empty.
	Name string
	// Revoke is where to revoke the key: a URL for the main providers,
	// else a sentence.
	Revoke string
}

// revokeURLs are the consoles where a leaked key of the main providers is
// revoked, by the first part of the gitleaks rule id. The LLM providers a
// hardcap user holds keys of come first; the rest are the platforms whose
// keys most often sit beside them in a repository.
var revokeURLs = map[string]Provider{
	"openai":      {"OpenAI", "https://platform.openai.com/api-keys"},
	"anthropic":   {"Anthropic", "https://console.anthropic.com/settings/keys"},
	"cohere":      {"Cohere", "https://dashboard.cohere.com/api-keys"},
	"perplexity":  {"Perplexity", "https://www.perplexity.ai/settings/api"},
	"huggingface": {"Hugging Face", "https://huggingface.co/settings/tokens"},
	"gcp":         {"Google Cloud", "https://console.cloud.google.com/apis/credentials"},
	"aws":         {"AWS", "https://console.aws.amazon.com/iam/home#/security_credentials"},
	"github":      {"GitHub", "https://github.com/settings/tokens"},
	"gitlab":      {"GitLab", "https://gitlab.com/-/user_settings/personal_access_tokens"},
	"slack":       {"Slack", "https://api.slack.com/apps"},
	"stripe":      {"Stripe", "https://dashboard.stripe.com/apikeys"},
}

// genericRules name no issuer: the secret's shape alone matched.
var genericRules = map[string]bool{
	"generic-api-key": true, "private-key": true, "jwt": true, "jwt-base64": true,
	"curl-auth-header": true, "curl-auth-user": true, "kubernetes-secret-yaml": true, "pkcs12-file": true,
}

// ProviderOf returns who issued a key found by the gitleaks rule ruleID
// and where to revoke it.
func ProviderOf(ruleID string) Provider {
	if ruleID == "anthropic-admin-api-key" {
		return Provider{"Anthropic", "https://console.anthropic.com/settings/admin-keys"}
	}
	if genericRules[ruleID] {
		return Provider{Revoke: "revoke it where it was issued and replace it; the rule matched its shape, not its issuer"}
	}
	first, _, _ := strings.Cut(ruleID, "-")
	if p, ok := revokeURLs[first]; ok {
		return p
	}
	return Provider{Name: first, Revoke: "revoke it in " + first + "'s console or API settings and issue a new one"}
}
