package tokens

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Project groups tokens under one budget and one kill switch.
type Project struct {
	Name    string    `json:"name"`
	Created time.Time `json:"created"`
	// Killed is the project's kill switch.
	Killed bool `json:"killed"`
	// AlertAt are the shares of the project's budget that fire a
	// threshold alert, in parts per million (budget.Fraction), ascending;
	// empty uses the config's.
	AlertAt []uint32 `json:"alert_at_ppm,omitempty"`
}

// Token is what an app holds instead of a real provider key. Its secret is
// never stored; Hash is.
type Token struct {
	// ID is the public name of the token ("tok_...").
	ID string `json:"id"`
	// Name is a free label, e.g. the app or purpose.
	Name string `json:"name,omitempty"`
	// Project is the name of the project the token spends from.
	Project string `json:"project"`
	// Owner is the person or team answerable for the token.
	Owner string `json:"owner,omitempty"`
	// Purpose says what the token is for, in free text.
	Purpose string `json:"purpose,omitempty"`
	// Hash is the SHA-256 of the secret, hex-encoded.
	Hash string `json:"hash"`
	// Models lists the models the token may use; empty means any priced
	// model.
	Models []string `json:"models,omitempty"`
	// Routes lists the routes the token may call, by the proxy's route
	// names (chat, completions, embeddings, responses, messages, models,
	// count_tokens); empty means every route.
	Routes []string `json:"routes,omitempty"`
	// IPs lists the client addresses the token may be used from, as CIDR
	// prefixes in canonical form (netip.Prefix.String); empty means any.
	IPs []string `json:"ips,omitempty"`
	// Expires is when the token stops working; zero means never.
	Expires time.Time `json:"expires,omitzero"`
	// RPM is the most requests per minute the token may make; 0 means no
	// limit.
	RPM int `json:"rpm,omitempty"`
	// MaxConcurrent is the most requests the token may have in flight at
	// once; 0 means no limit.
	MaxConcurrent int `json:"max_concurrent,omitempty"`
	// MaxRequest is the most one request's worst case may cost, in
	// nano-USD; 0 means no limit.
	MaxRequest int64 `json:"max_request_nanousd,omitempty"`
	// Created is when the token was issued, and CreatedBy the admin
	// credential that issued it (see storage.Actor).
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by,omitempty"`
	// RotateEvery is how often the secret should be rotated; RotateBy is
	// when it is next due (Created or the last rotation, plus RotateEvery).
	RotateEvery time.Duration `json:"rotate_every,omitempty"`
	RotateBy    time.Time     `json:"rotate_by,omitzero"`
	// Rotated is when the secret was last rotated. PrevHash is the hash of
	// the secret it replaced, kept so that a request with it is told the
	// token was rotated; it is accepted until RotatingUntil (the grace).
	Rotated       time.Time `json:"rotated,omitzero"`
	PrevHash      string    `json:"prev_hash,omitempty"`
	RotatingUntil time.Time `json:"rotating_until,omitzero"`
	// LastUsed is the token's most recent reserved request, and Requests
	// how many it has made.
	LastUsed Use   `json:"last_used,omitzero"`
	Requests int64 `json:"requests,omitempty"`
	// Revoked is when the token was revoked; zero means it is live.
	Revoked time.Time `json:"revoked,omitzero"`
	// Killed is the token's kill switch.
	Killed bool `json:"killed"`
	// AlertAt are the shares of the token's budget that fire a threshold
	// alert, in parts per million (budget.Fraction), ascending; empty uses
	// the config's.
	AlertAt []uint32 `json:"alert_at_ppm,omitempty"`

	// OldSecret is set, never stored, on the token Authenticate returns
	// when the secret presented is the one replaced by a rotation, still
	// in its grace.
	OldSecret bool `json:"-"`
	// Presented is set, never stored, on the token Authenticate returns:
	// the hash of the secret presented, so that the ledger can check at
	// reservation that a rotation has not ended it meanwhile.
	Presented Hash `json:"-"`
}

// Use is one use of a token: when, from which client address, with which
// user agent.
type Use struct {
	Time      time.Time `json:"time"`
	IP        string    `json:"ip,omitempty"`
	UserAgent string    `json:"user_agent,omitempty"`
}

// Usable reports why t cannot be used at now, or nil when it can.
func (t *Token) Usable(now time.Time) error {
	switch {
	case !t.Revoked.IsZero():
		return ErrRevoked
	case !t.Expires.IsZero() && !now.Before(t.Expires):
		return ErrExpired
	case t.Killed:
		return fmt.Errorf("%w for token %s", ErrKilled, t.ID)
	}
	return nil
}

// Allows reports whether t may call model.
func (t *Token) Allows(model string) bool {
	return len(t.Models) == 0 || slices.Contains(t.Models, model)
}

// MaxProjectName and MaxTokenName are the longest project name and token
// label, in characters. They keep names readable in tables and keep every
// message that names one short.
const (
	MaxProjectName = 64
	MaxTokenName   = 128
)

// MaxModels and MaxModelName bound a token's model list: how many models it
// may name, and how long each id may be, in characters. Real model ids are
// far shorter (fine-tunes included); the bounds keep a token record, and
// every answer that shows it, small.
const (
	MaxModels    = 256
	MaxModelName = 128
)

// CheckModels reports whether models can be a token's model list: at most
// MaxModels ids, each 1 to MaxModelName printable characters without
// spaces or commas (the CLI separates ids with commas).
func CheckModels(models []string) error {
	if len(models) > MaxModels {
		return fmt.Errorf("%w: a token names at most %d models, this list has %d", ErrInvalidScope, MaxModels, len(models))
	}
	for i, m := range models {
		if n := utf8.RuneCountInString(m); n == 0 || n > MaxModelName {
			return fmt.Errorf("%w: model %d of the list has %d characters; a model id has 1 to %d", ErrInvalidScope, i+1, n, MaxModelName)
		}
		if !utf8.ValidString(m) {
			return fmt.Errorf("%w: model %d of the list is not UTF-8 text", ErrInvalidScope, i+1)
		}
		for _, r := range m {
			if !unicode.IsPrint(r) || unicode.IsSpace(r) || r == ',' {
				return fmt.Errorf("%w: model %d of the list holds a space, comma or control character", ErrInvalidScope, i+1)
			}
		}
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$`)

// CheckName reports whether s can name a project: 1 to 64 characters of
// letters, digits, '.', '_' and '-', starting with a letter or digit.
func CheckName(s string) error {
	if len(s) > MaxProjectName {
		return fmt.Errorf("%w: a project name has at most %d characters, this one has %d", ErrInvalidName, MaxProjectName, utf8.RuneCountInString(s))
	}
	if !nameRE.MatchString(s) {
		return fmt.Errorf("%w: %q (1-64 letters, digits, '.', '_' or '-')", ErrInvalidName, s)
	}
	return nil
}

// CheckLabel reports whether s can be a token's name: empty, or up to 128
// characters of printable text (no control characters, valid UTF-8).
func CheckLabel(s string) error {
	if n := utf8.RuneCountInString(s); n > MaxTokenName {
		return fmt.Errorf("%w: a token name has at most %d characters, this one has %d", ErrInvalidName, MaxTokenName, n)
	}
	if !utf8.ValidString(s) {
		return fmt.Errorf("%w: a token name must be UTF-8 text", ErrInvalidName)
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("%w: a token name must not hold control characters", ErrInvalidName)
		}
	}
	return nil
}

// Authenticator finds the live token a presented secret belongs to.
// storage.DB is the implementation.
type Authenticator interface {
	// Authenticate returns the token, or ErrMalformed, ErrUnknown,
	// ErrRevoked, ErrExpired or ErrKilled.
	Authenticate(secret string) (Token, error)
}

// RouteNames are the names a token's route scope may list, each one kind
// of endpoint of any provider: chat (chat completions), completions,
// embeddings, responses, messages, count_tokens (Anthropic's and the
// Responses API's input token counts), models (the model lists) and
// moderations.
var RouteNames = []string{"chat", "completions", "embeddings", "responses", "messages", "count_tokens", "models", "moderations"}

// CheckRoutes reports whether routes can be a token's route scope: names
// from RouteNames, none twice.
func CheckRoutes(routes []string) error {
	for i, r := range routes {
		if !slices.Contains(RouteNames, r) {
			return fmt.Errorf("%w: route %d of the list is not one of %s", ErrInvalidScope, i+1, strings.Join(RouteNames, ", "))
		}
		if slices.Contains(routes[:i], r) {
			return fmt.Errorf("%w: route %q is listed twice", ErrInvalidScope, r)
		}
	}
	return nil
}

// MaxIPs bounds a token's address scope.
const MaxIPs = 256

// ParseIPs parses a token's address scope: IPv4 or IPv6 CIDR prefixes, or
// single addresses (a /32 or /128). It returns them in canonical form
// (netip.Prefix.String), or ErrInvalidScope naming the entry that is not
// one. A prefix with bits set past its length (10.0.0.1/8) is refused,
// not widened.
func ParseIPs(list []string) ([]string, error) {
	if len(list) > MaxIPs {
		return nil, fmt.Errorf("%w: a token names at most %d address ranges, this list has %d", ErrInvalidScope, MaxIPs, len(list))
	}
	out := make([]string, 0, len(list))
	for i, s := range list {
		s = strings.TrimSpace(s)
		var p netip.Prefix
		var err error
		if strings.Contains(s, "/") {
			p, err = netip.ParsePrefix(s)
		} else {
			var a netip.Addr
			if a, err = netip.ParseAddr(s); err == nil && a.Zone() != "" {
				err = errors.New("zone")
			} else if err == nil {
				p = netip.PrefixFrom(a, a.BitLen())
			}
		}
		if err != nil || p.Addr().Zone() != "" {
			return nil, fmt.Errorf("%w: entry %d of the address list is not an IPv4 or IPv6 CIDR prefix (such as 10.0.0.0/8 or 2001:db8::/32)", ErrInvalidScope, i+1)
		}
		if p.Addr().Is4In6() {
			p = netip.PrefixFrom(p.Addr().Unmap(), max(p.Bits()-96, 0))
		}
		if m := p.Masked(); m != p {
			// 10.0.0.1/8 is most likely one host meant, or a range
			// mistyped; widening it silently would grant 16M addresses.
			return nil, fmt.Errorf("%w: entry %d of the address list, %s, has bits set past its /%d: write %s for that one address or %s for the whole range",
				ErrInvalidScope, i+1, p, p.Bits(), netip.PrefixFrom(p.Addr(), p.Addr().BitLen()), m)
		}
		c := p.String()
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// AllowsIP reports whether the token may be used from addr: its address
// scope is empty, or a prefix holds addr (an IPv4-mapped IPv6 address
// counts as its IPv4 address). An invalid addr is allowed only by an empty
// scope.
func (t *Token) AllowsIP(addr netip.Addr) bool {
	if len(t.IPs) == 0 {
		return true
	}
	if !addr.IsValid() {
		return false
	}
	addr = addr.Unmap().WithZone("")
	for _, s := range t.IPs {
		if p, err := netip.ParsePrefix(s); err == nil && p.Contains(addr) {
			return true
		}
	}
	return false
}

// AllowsRoute reports whether the token may call the route named name
// (one of RouteNames).
func (t *Token) AllowsRoute(name string) bool {
	return len(t.Routes) == 0 || slices.Contains(t.Routes, name)
}
