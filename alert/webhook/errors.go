package webhook

import "errors"

// Errors of configuration, returned by New. Their messages name a channel
// by its position and name, never by its URL, secret or password.
var (
	// ErrNoOutbox is returned when Options.Outbox is nil.
	ErrNoOutbox = errors.New("no outbox to deliver from")
	// ErrChannelName is returned for two channels of one name.
	ErrChannelName = errors.New("invalid channel name")
	// ErrURL is returned for a webhook URL that does not parse, is not
	// http or https, or is plain http to a host that is not loopback.
	ErrURL = errors.New("invalid webhook URL")
	// ErrFormat is returned for a Format that is not json, slack or
	// discord.
	ErrFormat = errors.New("invalid webhook format")
	// ErrSecret is returned for a "whsec_" secret whose key is not
	// base64.
	ErrSecret = errors.New("invalid webhook secret")
	// ErrSMTPConfig is returned for an SMTP channel without host, from
	// or to, with an address that does not parse, or with a StartTLS
	// that is not "required" or "off".
	ErrSMTPConfig = errors.New("invalid SMTP channel")
	// ErrRoute is returned for a route or default that names no channel,
	// an unknown channel or an unknown alert type.
	ErrRoute = errors.New("invalid alert route")
)

// Errors of delivery: the Error of a Delivery and a Result, logged at warn
// for each failed attempt.
var (
	// ErrStatus is a receiver's answer outside 2xx (a redirect included:
	// none is followed); the message is "status 500".
	ErrStatus = errors.New("status")
	// ErrRequest is a webhook request that got no answer; the message
	// says the operation and the cause ("connection refused",
	// "timeout"), never the URL.
	ErrRequest = errors.New("webhook request failed")
	// ErrNoChannel is an entry routed to a channel that is no longer
	// configured; its delivery fails at once.
	ErrNoChannel = errors.New("no channel of that name")

	// ErrTooOld is an alert a channel could not try before alert.MaxAge
	// had passed since it was raised (the channel was added later, or
	// hardcap was down when its last attempt was due): it is marked
	// failed there, not sent a day late.
	ErrTooOld = errors.New("raised more than 24 h before this channel could send it; not sent")
	// ErrNoStartTLS is an SMTP server that does not offer STARTTLS to a
	// channel that requires it.
	ErrNoStartTLS = errors.New("SMTP server does not offer STARTTLS")
	// ErrSMTP is an SMTP conversation that failed; the message says the
	// step and the server's answer, never the password.
	ErrSMTP = errors.New("SMTP delivery failed")
)
