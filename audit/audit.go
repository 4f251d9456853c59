// Package audit reads hardcap's key ledger and reports what is wrong with
// it: zombie tokens, rotations overdue, tokens nothing bounds, key files
// others can read, real keys written into config files, old price data, and
// the provider settings hardcap cannot see (auto top-up). It is pure: the
// caller gathers the facts (tokens, provider keys, file modes and contents,
// price dates) and Check turns them into findings, most urgent first, at an
// injected clock.
package audit

import (
	"bytes"
	"fmt"
	"io/fs"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
)

// Severity ranks a finding. The zero value is not a severity.
type Severity int

// The severities, least urgent first.
const (
	Low Severity = iota + 1
	Medium
	High
	Critical
)

var severityNames = []string{"", "low", "medium", "high", "critical"}

// String is the severity's name: low, medium, high or critical.
func (s Severity) String() string {
	if s < Low || s > Critical {
		return fmt.Sprintf("severity(%d)", int(s))
	}
	return severityNames[s]
}

// ParseSeverity parses low, medium, high or critical.
func ParseSeverity(name string) (Severity, error) {
	if i := slices.Index(severityNames, strings.ToLower(strings.TrimSpace(name))); i > 0 {
		return Severity(i), nil
	}
	return 0, fmt.Errorf("%w, not %q", ErrSeverity, budget.Clip(name))
}

// MarshalText writes the severity's name, so JSON shows "high".
func (s Severity) MarshalText() ([]byte, error) {
	if s < Low || s > Critical {
		return nil, fmt.Errorf("%w, not %d", ErrSeverity, int(s))
	}
	return []byte(s.String()), nil
}

// UnmarshalText reads a severity's name.
func (s *Severity) UnmarshalText(b []byte) error {
	v, err := ParseSeverity(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// The kinds of finding. A finding's Key is its kind and target joined by a
// colon, the form `hardcap audit --ack` takes.
const (
	// KindZombie: a live token unused for ZombieAfter, or never used
	// NeverUsedAfter after its creation.
	KindZombie = "zombie-token"
	// KindTokenRotation: a live token past its rotate_by.
	KindTokenRotation = "token-rotation-due"
	// KindTokenUnbounded: a live token with no budget of its own, no
	// expiry and no scope (models, routes, ips, max request cost) that
	// restricts it: a route list naming every route, or an address list
	// allowing every IPv4 or every IPv6 address (0.0.0.0/0, ::/0), counts
	// as none.
	KindTokenUnbounded = "token-unbounded"
	// KindTokenOwner: a live token with no owner.
	KindTokenOwner = "token-no-owner"
	// KindTokenGrace: a rotated token whose old secret is still accepted.
	KindTokenGrace = "token-old-secret"
	// KindProviderRotation: a provider key past its rotation date.
	KindProviderRotation = "provider-key-rotation-due"
	// KindProviderRejected: a provider key the provider answered 401 to.
	KindProviderRejected = "provider-key-rejected"
	// KindProviderReused: a provider key replaced before and put back in
	// use: an old key may be a leaked one.
	KindProviderReused = "provider-key-reused"
	// KindFileMode: a file holding a secret that its group or others can
	// read or write.
	KindFileMode = "key-file-mode"
	// KindLiteralKey: a config or env file holding a real key in clear.
	KindLiteralKey = "literal-key"
	// KindPricesStale: price data older than PricesMaxAge.
	KindPricesStale = "prices-stale"
	// KindAutoTopUp: the reminder to turn off a provider's automatic
	// top-up, which hardcap cannot see.
	KindAutoTopUp = "auto-topup"
)

// Kinds lists every kind of finding.
var Kinds = []string{KindZombie, KindTokenRotation, KindTokenUnbounded, KindTokenOwner, KindTokenGrace,
	KindProviderRotation, KindProviderRejected, KindProviderReused, KindFileMode, KindLiteralKey, KindPricesStale, KindAutoTopUp}

// Ackable lists the kinds a finding of which can be acknowledged (dismissed
// for good): what hardcap cannot check (a provider console's auto top-up)
// or what is a choice rather than a fault (a token nobody owns). Every other
// finding stays until it is fixed.
var Ackable = []string{KindAutoTopUp, KindTokenOwner}

// Thresholds of the findings.
const (
	// ZombieAfter is how long a token may go unused before it is a zombie.
	ZombieAfter = 30 * 24 * time.Hour
	// NeverUsedAfter is how long after its creation a token never used is
	// a zombie.
	NeverUsedAfter = 7 * 24 * time.Hour
	// PricesMaxAge is how old price data may be before it is stale: prices
	// that rose since would be reserved too low.
	PricesMaxAge = 90 * 24 * time.Hour
)

// Token is a token with what the audit needs to know besides the token
// record.
type Token struct {
	tokens.Token
	// Budgeted is whether the token has a budget of its own (a finite
	// limit, zero included).
	Budgeted bool
}

// ProviderKey is one provider's real key as the provider-key ledger knows
// it: never the key, only a fingerprint.
type ProviderKey struct {
	// Provider is the provider's name in the config.
	Provider string `json:"provider"`
	// FingerprintPrefix is the first characters of the key's keyed hash,
	// enough to tell keys apart.
	FingerprintPrefix string `json:"fingerprint_prefix"`
	// FirstSeen is when hardcap first read this key.
	FirstSeen time.Time `json:"first_seen"`
	// RotateBy is when the key is due for rotation; zero means no date.
	RotateBy time.Time `json:"rotate_by,omitzero"`
	// Unauthorized counts the upstream 401 answers to requests made with
	// this key.
	Unauthorized int64 `json:"unauthorized"`
	// Reused says the key is one the provider had before and that was
	// replaced, put back in use at ReusedAt.
	Reused   bool      `json:"reused,omitempty"`
	ReusedAt time.Time `json:"reused_at,omitzero"`
}

// FileKind says what a file is for, and so what is checked in it.
type FileKind string

// The kinds of file.
const (
	// SecretFile holds a secret by design (admin.token, the file of a
	// file: key source): only its owner may read it.
	SecretFile FileKind = "secret"
	// ConfigFile is a config or env file: it must hold no key in clear.
	ConfigFile FileKind = "config"
)

// File is one file the audit looks at.
type File struct {
	// Path is where it is, as the operator named it.
	Path string
	Kind FileKind
	// What names its role in a few words ("admin token",
	// "providers.openai.api_key", "config", "env file").
	What string
	// Mode is the file's mode (its permission bits are checked).
	Mode fs.FileMode
	// Content is what a ConfigFile holds (the caller may bound it); it is
	// searched for keys and never copied into a finding.
	Content []byte
}

// PriceSource is one source of price data and the date its prices are
// from; a zero AsOf (no date known) is not checked.
type PriceSource struct {
	Name string
	AsOf time.Time
}

// Provider is one configured provider with a real account behind it (not
// the demo's simulator).
type Provider struct {
	Name string
	// Kind is the API family, openai or anthropic.
	Kind string
	// BaseURL is the API root, whose host says whose console it is.
	BaseURL string
}

// Ack is a stored acknowledgement of a finding.
type Ack struct {
	// Key is the finding's Key (KIND:TARGET).
	Key string
	// Time is when it was acknowledged, and Actor by which admin
	// credential.
	Time  time.Time
	Actor string
}

// Input is everything Check looks at.
type Input struct {
	// Now is the clock; default time.Now.
	Now          func() time.Time
	Tokens       []Token
	ProviderKeys []ProviderKey
	Files        []File
	Prices       []PriceSource
	Providers    []Provider
	Acks         []Ack
}

// Finding is one thing wrong, with the command or step that fixes it.
type Finding struct {
	Severity Severity `json:"severity"`
	Kind     string   `json:"kind"`
	// Target is what it is about: a token id, a provider name, a file path,
	// a price source.
	Target string `json:"target"`
	// Message says what is wrong in one line; it never holds a secret.
	Message string `json:"message"`
	// Fix is the command (or step) that fixes it.
	Fix string `json:"fix"`
	// AckedAt and AckedBy are set on an acknowledged finding.
	AckedAt time.Time `json:"acknowledged_at,omitzero"`
	AckedBy string    `json:"acknowledged_by,omitempty"`
}

// Key is the finding's kind and target as KIND:TARGET.
func (f Finding) Key() string { return f.Kind + ":" + f.Target }

// Report is the audit's answer.
type Report struct {
	// Time is when the audit ran.
	Time time.Time `json:"time"`
	// Findings are the open findings, most urgent first.
	Findings []Finding `json:"findings"`
	// Acknowledged are the findings dismissed with --ack, most urgent
	// first; they do not count for --fail-on.
	Acknowledged []Finding `json:"acknowledged"`
	// Counts counts the open findings by severity name.
	Counts map[string]int `json:"counts"`
}

// AtOrAbove counts the open findings of severity s or higher.
func (r Report) AtOrAbove(s Severity) int {
	n := 0
	for _, f := range r.Findings {
		if f.Severity >= s {
			n++
		}
	}
	return n
}

// Ackable returns the finding that key (KIND:TARGET) names, open or already
// acknowledged, when it may be acknowledged: ErrInvalidAck for a key that is
// not one, ErrNotAckable for a kind that must be fixed, ErrNoFinding when
// nothing has that key.
func (r Report) Ackable(key string) (Finding, error) {
	kind, target, err := ParseAck(key)
	if err != nil {
		return Finding{}, err
	}
	if !slices.Contains(Ackable, kind) {
		return Finding{}, fmt.Errorf("%w: %s (acknowledge only %s)", ErrNotAckable, kind, strings.Join(Ackable, ", "))
	}
	for _, f := range slices.Concat(r.Findings, r.Acknowledged) {
		if f.Kind == kind && f.Target == target {
			return f, nil
		}
	}
	return Finding{}, fmt.Errorf("%w: %s:%s (hardcap audit --json lists each finding's kind and target)", ErrNoFinding, kind, budget.Clip(target))
}

// MaxTarget is the longest target an acknowledgement may name, in bytes.
const MaxTarget = 256

// ParseAck splits an acknowledgement KIND:TARGET, checking that the kind is
// one of Kinds and the target is 1 to MaxTarget bytes of printable text.
func ParseAck(key string) (kind, target string, err error) {
	kind, target, ok := strings.Cut(strings.TrimSpace(key), ":")
	if !ok || target == "" {
		return "", "", fmt.Errorf("%w, not %q", ErrInvalidAck, budget.Clip(key))
	}
	if !slices.Contains(Kinds, kind) {
		return "", "", fmt.Errorf("%w: %q is not a kind of finding (%s)", ErrInvalidAck, budget.Clip(kind), strings.Join(Kinds, ", "))
	}
	if len(target) > MaxTarget {
		return "", "", fmt.Errorf("%w: the target has %d bytes, at most %d", ErrInvalidAck, len(target), MaxTarget)
	}
	for _, c := range target {
		if !unicode.IsPrint(c) || c == unicode.ReplacementChar {
			return "", "", fmt.Errorf("%w: the target holds a control character or is not UTF-8", ErrInvalidAck)
		}
	}
	return kind, target, nil
}

// Check audits in and returns the findings, most urgent first.
func Check(in Input) Report {
	now := time.Now
	if in.Now != nil {
		now = in.Now
	}
	t := now()
	var all []Finding
	for _, tok := range in.Tokens {
		all = append(all, checkToken(tok, t)...)
	}
	for _, k := range in.ProviderKeys {
		all = append(all, checkProviderKey(k, t)...)
		all = append(all, checkProviderKeyReused(k)...)
	}
	for _, f := range in.Files {
		all = append(all, checkFile(f)...)
	}
	for _, p := range in.Prices {
		if !p.AsOf.IsZero() && t.Sub(p.AsOf) > PricesMaxAge {
			all = append(all, Finding{Severity: Medium, Kind: KindPricesStale, Target: p.Name,
				Message: fmt.Sprintf("price data %s is from %s (%d days old): a price that rose since is reserved too low", p.Name, day(p.AsOf), days(t.Sub(p.AsOf))),
				Fix:     "hardcap prices update"})
		}
	}
	for _, p := range in.Providers {
		all = append(all, Finding{Severity: Low, Kind: KindAutoTopUp, Target: p.Name,
			Message: fmt.Sprintf("provider %s: hardcap cannot see the account's automatic top-up; with it on, a key used outside hardcap spends without end: turn it off in %s", p.Name, console(p)),
			Fix:     "hardcap audit --ack " + KindAutoTopUp + ":" + p.Name})
	}
	slices.SortStableFunc(all, func(a, b Finding) int {
		if a.Severity != b.Severity {
			return int(b.Severity) - int(a.Severity)
		}
		if c := strings.Compare(a.Kind, b.Kind); c != 0 {
			return c
		}
		return strings.Compare(a.Target, b.Target)
	})
	acks := map[string]Ack{}
	for _, a := range in.Acks {
		acks[a.Key] = a
	}
	r := Report{Time: t, Findings: []Finding{}, Acknowledged: []Finding{}, Counts: map[string]int{}}
	for _, s := range severityNames[1:] {
		r.Counts[s] = 0
	}
	for _, f := range all {
		if a, ok := acks[f.Key()]; ok && slices.Contains(Ackable, f.Kind) {
			f.AckedAt, f.AckedBy = a.Time, a.Actor
			r.Acknowledged = append(r.Acknowledged, f)
			continue
		}
		r.Findings = append(r.Findings, f)
		r.Counts[f.Severity.String()]++
	}
	return r
}

// checkToken audits one token. A revoked or expired token can no longer be
// used, so nothing about it is a risk.
func checkToken(tok Token, now time.Time) []Finding {
	if !tok.Revoked.IsZero() || (!tok.Expires.IsZero() && !now.Before(tok.Expires)) {
		return nil
	}
	id := tok.ID
	who := fmt.Sprintf("token %s (project %s)", id, tok.Project)
	var out []Finding
	switch last := tok.LastUsed.Time; {
	case !last.IsZero() && now.Sub(last) > ZombieAfter:
		out = append(out, Finding{Severity: High, Kind: KindZombie, Target: id,
			Message: fmt.Sprintf("%s has not been used for %d days (last on %s): a forgotten live token is a leak waiting to happen", who, days(now.Sub(last)), day(last)),
			Fix:     "hardcap token revoke " + id})
	case last.IsZero() && now.Sub(tok.Created) > NeverUsedAfter:
		out = append(out, Finding{Severity: High, Kind: KindZombie, Target: id,
			Message: fmt.Sprintf("%s was never used in the %d days since it was created on %s", who, days(now.Sub(tok.Created)), day(tok.Created)),
			Fix:     "hardcap token revoke " + id})
	}
	if !tok.RotateBy.IsZero() && now.After(tok.RotateBy) {
		out = append(out, Finding{Severity: Medium, Kind: KindTokenRotation, Target: id,
			Message: fmt.Sprintf("%s was due for rotation on %s (%d days ago)", who, day(tok.RotateBy), days(now.Sub(tok.RotateBy))),
			Fix:     "hardcap token rotate " + id + " --grace 24h"})
	}
	if !tok.Budgeted && tok.Expires.IsZero() && len(tok.Models) == 0 && !restrictsRoutes(tok.Routes) && !restrictsIPs(tok.IPs) && tok.MaxRequest == 0 {
		out = append(out, Finding{Severity: Medium, Kind: KindTokenUnbounded, Target: id,
			Message: fmt.Sprintf("%s has no budget of its own, no expiry and no scope that restricts it (models, routes, ips, max request cost; every route or every address counts as none): only the project's and the global budget bound it", who),
			Fix:     "hardcap token set " + id + " --budget USD --period month --expires 90d"})
	}
	if strings.TrimSpace(tok.Owner) == "" {
		out = append(out, Finding{Severity: Low, Kind: KindTokenOwner, Target: id,
			Message: fmt.Sprintf("%s has no owner: nobody answers for it when it leaks", who),
			Fix:     "hardcap token set " + id + " --owner WHO"})
	}
	if now.Before(tok.RotatingUntil) {
		out = append(out, Finding{Severity: Low, Kind: KindTokenGrace, Target: id,
			Message: fmt.Sprintf("%s: the secret it had before its rotation on %s is still accepted until %s", who, day(tok.Rotated), tok.RotatingUntil.UTC().Format(time.RFC3339)),
			Fix:     "move the apps still sending the old secret to the new one (hardcap usage --token " + id + " --since 24h: their requests are marked)"})
	}
	return out
}

// restrictsRoutes reports whether a route scope leaves out some route: an
// empty list, or one naming every route of tokens.RouteNames, allows all.
func restrictsRoutes(routes []string) bool {
	for _, r := range tokens.RouteNames {
		if !slices.Contains(routes, r) {
			return len(routes) > 0
		}
	}
	return false
}

// restrictsIPs reports whether an address scope leaves out addresses of
// both families: an empty list allows all, and so, for the audit, does one
// whose prefixes together hold every IPv4 address (0.0.0.0/0, or
// 0.0.0.0/1 and 128.0.0.0/1) or every IPv6 address (::/0): whoever holds
// the token can use it from anywhere that family reaches. Entries that do
// not parse (tokens.ParseIPs never stores one) restrict nothing.
func restrictsIPs(ips []string) bool {
	if len(ips) == 0 {
		return false
	}
	var ps []netip.Prefix
	for _, s := range ips {
		if p, err := netip.ParsePrefix(s); err == nil {
			ps = append(ps, p.Masked())
		}
	}
	all4 := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
	all6 := netip.PrefixFrom(netip.IPv6Unspecified(), 0)
	return !covered(all4, ps) && !covered(all6, ps)
}

// covered reports whether the prefixes ps together hold every address of
// p. It splits p in halves only where a prefix of ps lies strictly inside,
// so it visits at most one node per prefix and level.
func covered(p netip.Prefix, ps []netip.Prefix) bool {
	inside := false
	for _, q := range ps {
		switch {
		case q.Bits() <= p.Bits() && q.Contains(p.Addr()):
			return true
		case q.Bits() > p.Bits() && p.Contains(q.Addr()):
			inside = true
		}
	}
	if !inside || p.Bits() >= p.Addr().BitLen() {
		return false
	}
	lo := netip.PrefixFrom(p.Addr(), p.Bits()+1)
	b := p.Addr().As16()
	off := 0
	if p.Addr().Is4() {
		off = 12
	}
	i := off + p.Bits()/8
	b[i] |= 0x80 >> (p.Bits() % 8)
	hiAddr := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		hiAddr = hiAddr.Unmap()
	}
	return covered(lo, ps) && covered(netip.PrefixFrom(hiAddr, p.Bits()+1), ps)
}

func checkProviderKey(k ProviderKey, now time.Time) []Finding {
	var out []Finding
	fp := k.FingerprintPrefix
	if fp == "" {
		fp = "unknown"
	}
	if !k.RotateBy.IsZero() && now.After(k.RotateBy) {
		out = append(out, Finding{Severity: High, Kind: KindProviderRotation, Target: k.Provider,
			Message: fmt.Sprintf("provider %s's key (fingerprint %s, first seen %s) was due for rotation on %s (%d days ago)", k.Provider, fp, day(k.FirstSeen), day(k.RotateBy), days(now.Sub(k.RotateBy))),
			Fix:     "create a new key in the provider's console, put it where providers." + k.Provider + ".api_key names, run hardcap keys reload, then revoke the old key"})
	}
	if k.Unauthorized > 0 {
		out = append(out, Finding{Severity: High, Kind: KindProviderRejected, Target: k.Provider,
			Message: fmt.Sprintf("provider %s answered 401 to %d request(s) made with its key (fingerprint %s): the key is revoked, expired or wrong", k.Provider, k.Unauthorized, fp),
			Fix:     "put a valid key where providers." + k.Provider + ".api_key names, then hardcap keys reload"})
	}
	return out
}

// checkProviderKeyReused reports a replaced provider key back in use: the
// key was replaced for a reason (a rotation, perhaps a leak), and putting
// it back brings the old risk back with it.
func checkProviderKeyReused(k ProviderKey) []Finding {
	if !k.Reused {
		return nil
	}
	fp := k.FingerprintPrefix
	if fp == "" {
		fp = "unknown"
	}
	since := ""
	if !k.ReusedAt.IsZero() {
		since = " since " + day(k.ReusedAt)
	}
	return []Finding{{Severity: High, Kind: KindProviderReused, Target: k.Provider,
		Message: fmt.Sprintf("provider %s uses again a key it had replaced (fingerprint %s, first seen %s)%s: a replaced key may be a leaked one", k.Provider, fp, day(k.FirstSeen), since),
		Fix:     "create a new key in the provider's console, put it where providers." + k.Provider + ".api_key names, run hardcap keys reload, then revoke the old key"}}
}

func checkFile(f File) []Finding {
	switch f.Kind {
	case SecretFile:
		perm := f.Mode.Perm()
		if perm&0o077 == 0 {
			return nil
		}
		sev, who := High, "its group"
		if perm&0o007 != 0 {
			sev, who = Critical, "every user of the machine"
		}
		return []Finding{{Severity: sev, Kind: KindFileMode, Target: f.Path,
			Message: fmt.Sprintf("%s (%s) has mode %04o: %s can read or change the secret it holds", f.Path, f.What, perm, who),
			Fix:     "chmod 600 " + shellQuote(f.Path)}}
	case ConfigFile:
		line, what := LiteralKey(f.Content)
		if line == 0 {
			return nil
		}
		return []Finding{{Severity: Critical, Kind: KindLiteralKey, Target: f.Path,
			Message: fmt.Sprintf("%s (%s) holds %s in clear on line %d: anyone who reads, copies or backs up the file has it", f.Path, f.What, what, line),
			Fix:     fmt.Sprintf("move the key out of %s (name it as env:NAME or file:PATH with mode 0600), then rotate it at the provider: it was on disk in clear", f.Path)}}
	}
	return nil
}

var (
	anthropicKey = regexp.MustCompile(`\bsk-ant-[A-Za-z0-9_-]{20,}`)
	openAIKey    = regexp.MustCompile(`\bsk-[A-Za-z0-9_-]{20,}`)
	// configKey is a key-source setting of hardcap.yaml (api_key,
	// admin_key, a webhook secret) and its value.
	configKey = regexp.MustCompile(`^\s*-?\s*(api_key|admin_key|secret)\s*:\s*(.*)$`)
	// envKey is an env file's assignment of a variable named like a key.
	envKey = regexp.MustCompile(`^\s*(?:export\s+)?[A-Za-z0-9_]*(?:API_KEY|ADMIN_KEY|SECRET_KEY)\s*=\s*(.*)$`)
)

// LiteralKey reports the first line (counted from 1) of content that holds
// a provider key in clear, and what kind of key it is; 0 when none does. A
// key is an OpenAI (sk-...) or Anthropic (sk-ant-...) key anywhere, a
// hardcap config key setting (api_key, admin_key, secret) whose value is
// not an env:, file: or cmd: source, or an env file's *_API_KEY= with a
// value. The key itself is never returned.
func LiteralKey(content []byte) (line int, what string) {
	for i, l := range bytes.Split(content, []byte("\n")) {
		s := string(l)
		switch {
		case anthropicKey.MatchString(s):
			return i + 1, "an Anthropic key (sk-ant-...)"
		case openAIKey.MatchString(s):
			return i + 1, "an OpenAI key (sk-...)"
		}
		if m := configKey.FindStringSubmatch(s); m != nil && literal(m[2]) {
			return i + 1, "a key written as the value of " + m[1] + " (not env:, file: or cmd:)"
		}
		if m := envKey.FindStringSubmatch(s); m != nil && literal(m[1]) && !strings.HasPrefix(strings.TrimSpace(m[1]), "$") {
			return i + 1, "a key assigned to a *_KEY variable"
		}
	}
	return 0, ""
}

// literal reports whether a config value (after the colon) is a value in
// clear rather than empty, a comment, a key source or a YAML block.
func literal(v string) bool {
	v = strings.TrimSpace(v)
	if i := strings.Index(v, " #"); i >= 0 {
		v = strings.TrimSpace(v[:i])
	}
	v = strings.Trim(v, `"'`)
	if v == "" || strings.HasPrefix(v, "#") || v == "|" || v == ">" || v == "~" || v == "null" {
		return false
	}
	for _, p := range []string{"env:", "file:", "cmd:"} {
		if strings.HasPrefix(v, p) {
			return false
		}
	}
	return true
}

// console says where a provider's automatic top-up is turned off.
func console(p Provider) string {
	host := ""
	if u, err := url.Parse(p.BaseURL); err == nil {
		host = u.Hostname()
	}
	switch {
	case host == "api.openai.com" || (host == "" && p.Kind == "openai" && p.Name == "openai"):
		return "the OpenAI platform: Settings > Organization > Billing (platform.openai.com/settings/organization/billing), auto recharge"
	case host == "api.anthropic.com" || (host == "" && p.Kind == "anthropic"):
		return "the Anthropic Console: Settings > Billing (console.anthropic.com/settings/billing), auto-reload"
	}
	return p.Name + "'s console, in its billing settings (auto recharge, auto top-up or auto-reload)"
}

// shellQuote quotes a path for a command line when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r == '/' || r == '.' || r == '_' || r == '-' || unicode.IsLetter(r) || unicode.IsDigit(r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func day(t time.Time) string { return t.UTC().Format(time.DateOnly) }

func days(d time.Duration) int { return int(d / (24 * time.Hour)) }
