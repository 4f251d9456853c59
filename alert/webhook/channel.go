package webhook

import (
	"encoding/base64"
	"fmt"
	"net"
	"net/mail"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/hardcap/hardcap/budget"
)

// Kinds of channel, as ChannelInfo.Kind says them.
const (
	kindEmail = "email"
)

// channel is one configured channel, resolved: its format chosen, its
// secret decoded, its addresses parsed.
type channel struct {
	name   string
	kind   string // json, slack, discord or email
	hook   *webhookChannel
	mail   *smtpChannel
	queue  chan job
	signed bool
	// behind says a pass found queue full: the worker wakes the loop
	// when the queue empties rather than waiting for the next poll.
	behind atomic.Bool
}

// webhookChannel is a resolved Webhook.
type webhookChannel struct {
	url    string
	format Format
	// key is the HMAC key of a signed JSON webhook; nil signs nothing.
	key []byte
}

// smtpChannel is a resolved SMTP channel.
type smtpChannel struct {
	cfg  SMTP
	addr string // host:port
	from string // the bare address, for MAIL FROM
	to   []string
	// header forms of From and To.
	fromHeader, toHeader string
}

// chooseFormat is the format of a webhook with no Format: Slack and
// Discord are told apart by the host of their incoming webhooks.
func chooseFormat(u *url.URL) Format {
	switch strings.TrimSuffix(strings.ToLower(u.Hostname()), ".") {
	case "hooks.slack.com":
		return FormatSlack
	case "discord.com", "www.discord.com", "discordapp.com", "www.discordapp.com":
		return FormatDiscord
	}
	return FormatJSON
}

// isLoopback reports whether host (no port) is this machine, where plain
// http cannot be read by anyone on the way.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// defaultName is the name of the channel of format prefix that has none:
// prefix-N with the least N from n up that no other channel is named.
func defaultName(prefix string, n int, taken map[string]bool) string {
	for ; ; n++ {
		name := prefix + "-" + strconv.Itoa(n)
		if !taken[name] {
			return name
		}
	}
}

// newChannels checks and resolves the channels of opts. An error names a
// channel by position and name, never by URL, secret or password.
func newChannels(opts Options) ([]*channel, error) {
	// Names given are taken first, so that a default never collides with
	// a name given to a later channel.
	taken := map[string]bool{}
	for _, w := range opts.Webhooks {
		taken[w.Name] = true
	}
	for _, s := range opts.SMTP {
		taken[s.Name] = true
	}
	seen := map[string]bool{}
	name := func(given, prefix string, count map[string]int) (string, error) {
		count[prefix]++
		n := given
		if n == "" {
			n = defaultName(prefix, count[prefix], taken)
			taken[n] = true
		}
		if seen[n] {
			return "", fmt.Errorf("%w: two channels are named %q", ErrChannelName, n)
		}
		seen[n] = true
		return n, nil
	}
	count := map[string]int{}
	var out []*channel
	for i, w := range opts.Webhooks {
		where := fmt.Sprintf("webhook %d", i+1)
		if w.Name != "" {
			where += fmt.Sprintf(" (name %s)", w.Name)
		}
		hc, err := newWebhook(w, where)
		if err != nil {
			return nil, err
		}
		prefix := string(hc.format)
		if hc.format == FormatJSON {
			prefix = "webhook"
		}
		n, err := name(w.Name, prefix, count)
		if err != nil {
			return nil, err
		}
		out = append(out, &channel{name: n, kind: string(hc.format), hook: hc, signed: hc.key != nil})
	}
	for i, s := range opts.SMTP {
		where := fmt.Sprintf("smtp %d", i+1)
		if s.Name != "" {
			where += fmt.Sprintf(" (name %s)", s.Name)
		}
		sc, err := newSMTP(s, where)
		if err != nil {
			return nil, err
		}
		n, err := name(s.Name, kindEmail, count)
		if err != nil {
			return nil, err
		}
		out = append(out, &channel{name: n, kind: kindEmail, mail: sc})
	}
	return out, nil
}

// newWebhook checks w; where names it in errors.
func newWebhook(w Webhook, where string) (*webhookChannel, error) {
	// The parse error is not wrapped: it quotes the URL.
	u, err := url.Parse(w.URL)
	if err != nil || w.URL == "" {
		return nil, fmt.Errorf("%w: %s: URL does not parse", ErrURL, where)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("%w: %s: URL is not http or https", ErrURL, where)
	case u.Hostname() == "":
		return nil, fmt.Errorf("%w: %s: URL has no host", ErrURL, where)
	case u.Scheme == "http" && !isLoopback(u.Hostname()):
		// The URL is a credential (Slack's and Discord's are the whole
		// secret): it crosses networks only inside TLS.
		return nil, fmt.Errorf("%w: %s: URL is not https", ErrURL, where)
	}
	f := w.Format
	switch f {
	case "":
		f = chooseFormat(u)
	case FormatJSON, FormatSlack, FormatDiscord:
	default:
		return nil, fmt.Errorf("%w: %s: %q (json, slack or discord)", ErrFormat, where, budget.Clip(string(f)))
	}
	hc := &webhookChannel{url: w.URL, format: f}
	if w.Secret != "" && f == FormatJSON {
		var ok bool
		if hc.key, ok = signingKey(w.Secret); !ok {
			return nil, fmt.Errorf("%w: %s: the secret is not base64 after an optional whsec_ (a Standard Webhooks secret)", ErrSecret, where)
		}
	}
	return hc, nil
}

// newSMTP checks s; where names it in errors.
func newSMTP(s SMTP, where string) (*smtpChannel, error) {
	bad := func(why string) error { return fmt.Errorf("%w: %s: %s", ErrSMTPConfig, where, why) }
	if s.Host == "" || strings.ContainsAny(s.Host, " \r\n/:") {
		return nil, bad("host is not set or is not a host name")
	}
	if s.Port == 0 {
		s.Port = 587
	}
	if s.Port < 0 || s.Port > 65535 {
		return nil, bad("port is out of range")
	}
	switch s.StartTLS {
	case "":
		s.StartTLS = "required"
	case "required", "off":
	default:
		return nil, bad(fmt.Sprintf("starttls %q (required or off)", budget.Clip(s.StartTLS)))
	}
	if s.Username != "" && s.StartTLS == "off" {
		// PLAIN sends the password as it is: only inside TLS.
		return nil, bad("a username needs starttls required")
	}
	from, err := mail.ParseAddress(s.From)
	if err != nil {
		return nil, bad("from is not set or is not an address")
	}
	if len(s.To) == 0 {
		return nil, bad("to is not set")
	}
	sc := &smtpChannel{cfg: s, addr: net.JoinHostPort(s.Host, strconv.Itoa(s.Port)),
		from: from.Address, fromHeader: from.String()}
	var hdr []string
	for i, t := range s.To {
		a, err := mail.ParseAddress(t)
		if err != nil {
			return nil, bad(fmt.Sprintf("to %d is not an address", i+1))
		}
		sc.to = append(sc.to, a.Address)
		hdr = append(hdr, a.String())
	}
	sc.toHeader = strings.Join(hdr, ", ")
	return sc, nil
}

// signingKey is the HMAC key of a Standard Webhooks secret: the decoded
// bytes of its base64, after an optional "whsec_", as the spec's own
// libraries read it. It is false for a secret that does not decode (the
// decoder's error, an offset into the secret, is not shown).
func signingKey(secret string) ([]byte, bool) {
	b64, _ := strings.CutPrefix(secret, "whsec_")
	key, err := base64.StdEncoding.DecodeString(b64)
	return key, err == nil && len(key) > 0
}
