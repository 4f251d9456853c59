// Package webhook delivers alerts from the outbox to the channels people
// look at: a JSON webhook signed per the Standard Webhooks spec, Slack and
// Discord incoming webhooks, and e-mail over SMTP. Delivery is at least
// once, each alert under its stable id, retried with exponential backoff
// for up to alert.MaxAge; each channel is served on its own, so a dead one
// delays nothing else.
package webhook

import (
	"crypto/tls"
	"net/http"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/rs/zerolog"
)

// Format is the body a webhook receives.
type Format string

// The formats. An empty Format is chosen from the URL's host:
// hooks.slack.com is Slack, discord.com and discordapp.com are Discord,
// anything else JSON.
const (
	FormatJSON    Format = "json"
	FormatSlack   Format = "slack"
	FormatDiscord Format = "discord"
)

// Webhook is an HTTP channel. Its URL and Secret are credentials: never
// logged, never in an error or a status.
type Webhook struct {
	// Name is how routes and `hardcap alerts test --channel` name it.
	Name string
	// URL receives a POST per alert.
	URL string
	// Format is the body; empty chooses it from the URL's host.
	Format Format
	// Secret, when set, signs JSON bodies per the Standard Webhooks spec:
	// "whsec_" and the base64 key (the prefix may be left out).
	Secret string
}

// SMTP is an e-mail channel. Password is a credential.
type SMTP struct {
	Name string
	// Host and Port are the submission server (port 587 by default).
	Host string
	Port int
	// Username and Password authenticate with PLAIN, over TLS only.
	Username, Password string
	From               string
	To                 []string
	// StartTLS is "required" (the default: refuse to send without it) or
	// "off" (plain text; loopback servers only).
	StartTLS string
	// TLS is the client TLS configuration; nil verifies against the
	// system roots with Host as the server name.
	TLS *tls.Config
}

// Route sends the alerts of some projects and types to some channels.
// The first route that matches an alert decides; an alert no route matches
// goes to Options.Default.
type Route struct {
	// Projects match an alert's scope project; empty matches every alert.
	Projects []string
	// Types match an alert's type, exactly or by a prefix ending in "*"
	// ("anomaly.*"); empty matches every type.
	Types []string
	// Channels are the names of the channels the alert goes to.
	Channels []string
}

// Options configure a Deliverer.
type Options struct {
	// Outbox is where alerts wait (storage's DB).
	Outbox   alert.Outbox
	Webhooks []Webhook
	SMTP     []SMTP
	Routes   []Route
	// Default are the channels of an alert no route matches; nil is
	// every channel, an empty (non-nil) list none.
	Default []string
	// Client sends webhooks; nil is a client with a 10 s timeout that
	// follows no redirect. A client given is used as it is (its redirect
	// policy too); an attempt is cut at its Timeout, or 10 s without one.
	Client *http.Client
	// Now is the clock; nil is time.Now.
	Now func() time.Time
	// Log gets a line per failed attempt, without URL or secret.
	Log zerolog.Logger
	// MinBackoff and MaxBackoff bound the wait between two attempts of
	// one channel (doubling from MinBackoff); 5 s and 1 h by default.
	MinBackoff, MaxBackoff time.Duration
	// Poll is how often the outbox is read when nothing woke the
	// deliverer; 5 s by default.
	Poll time.Duration
}

// ChannelInfo describes a channel without its credentials, for status
// output and the dashboard.
type ChannelInfo struct {
	Name string `json:"name"`
	// Kind is "json", "slack", "discord" or "email".
	Kind string `json:"kind"`
	// Signed says a JSON webhook carries Standard Webhooks signatures.
	Signed bool `json:"signed,omitempty"`
}

// Result is the outcome of one attempt to deliver an alert on a channel.
type Result struct {
	Channel string `json:"channel"`
	OK      bool   `json:"ok"`
	// Status is the receiver's HTTP status, when it answered.
	Status int `json:"status,omitempty"`
	// Error says why the attempt failed, without URL or secret.
	Error string `json:"error,omitempty"`
}
