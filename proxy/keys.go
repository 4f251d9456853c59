package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/rs/zerolog"
)

// KeySource reads a provider's real key from where the operator keeps it.
// The key is held in memory only and refreshed after KeyTTL, so a rotated
// key is picked up without a restart. The refresh runs in the background
// while requests go on with the key they have: a slow password manager must
// not stall the request path.
type KeySource struct {
	kind string // "env", "file", "cmd" or "static"
	arg  string

	mu         sync.Mutex // guards the fields below
	key        string
	fetched    time.Time
	refreshing bool
	// failure is the last failed read while no key is known, remembered
	// for keyRetryAfter so that a broken source is not run once per request.
	failure error
	failed  time.Time

	// first serializes reads while no key is known, so that concurrent
	// first requests run the source once.
	first sync.Mutex

	// RotateEvery is how often the operator means to replace this key
	// (providers.NAME.rotate_every); 0 is DefaultRotateEvery. It is
	// recorded in the key ledger with each read.
	RotateEvery time.Duration

	// keys and provider tie the source to the key ledger (see NewKeys);
	// nil keys records nothing.
	keys     *Keys
	provider string
	// recMu serializes the ledger writes of this source, so that its
	// reads are recorded in the order they were made.
	recMu sync.Mutex
	// Guarded by mu: the fingerprint prefix of the key the ledger
	// recorded last; the upstream 401s counted since the last ledger write
	// (pending), since the start (rejected) and the latest; when the last
	// warning about them was logged; the last read's error, nil after a
	// read that worked.
	fingerprint string
	pending     uint64
	rejected    uint64
	lastReject  time.Time
	lastWarn    time.Time
	readErr     error
}

// KeyTTL is how long a key read from its source is reused.
const KeyTTL = 5 * time.Minute

// keyRetryAfter is how long a failed first read is answered from memory.
const keyRetryAfter = 5 * time.Second

// KeyCommandTimeout bounds a cmd: key source.
const KeyCommandTimeout = 10 * time.Second

// ErrKeySource is returned for a key source spec that is not env:NAME,
// file:PATH or cmd:COMMAND.
var ErrKeySource = errors.New("api_key must be env:NAME, file:PATH or cmd:COMMAND ARGS")

// ParseKeySource parses "env:NAME", "file:PATH" or "cmd:COMMAND ARGS". A
// literal key is refused so that no real key is ever written into a config
// file.
func ParseKeySource(spec string) (*KeySource, error) {
	kind, arg, ok := strings.Cut(spec, ":")
	if !ok || strings.TrimSpace(arg) == "" {
		return nil, ErrKeySource
	}
	arg = strings.TrimSpace(arg)
	if looksLikeKey.MatchString(arg) {
		// "env:sk-proj-..." is a key pasted where its variable's name
		// belongs; it would be shown wherever the source is (hardcap
		// keys, logs). Never echo it.
		return nil, fmt.Errorf("%w: the %s: source holds what looks like a key itself; put the key in an environment variable or a file and name that", ErrKeySource, kind)
	}
	switch kind {
	case "cmd":
		if args, err := splitArgs(arg); err != nil || len(args) == 0 {
			return nil, fmt.Errorf("%w: the command line cannot be parsed", ErrKeySource)
		}
	case "env":
		if !envName.MatchString(arg) {
			return nil, fmt.Errorf("%w: env: takes the name of an environment variable (letters, digits and _, not starting with a digit)", ErrKeySource)
		}
	case "file":
	default:
		return nil, ErrKeySource
	}
	return &KeySource{kind: kind, arg: arg}, nil
}

// envName is the form of an environment variable's name a key source may
// name.
var envName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,255}$`)

// looksLikeKey matches the common forms of a provider key or a hardcap
// token: sk-... (OpenAI, Anthropic and many compatible providers) and
// hc_..., which no variable name, path or command of a config needs.
var looksLikeKey = regexp.MustCompile(`(^|[^A-Za-z0-9])(sk-[A-Za-z0-9_-]{16,}|hc_[A-Za-z0-9]{16,})`)

// StaticKey is a key source for a key that is not a secret, such as the
// demo provider's placeholder.
func StaticKey(key string) *KeySource { return &KeySource{kind: "static", key: key} }

// String describes the source without its value. For cmd: only the
// program's name is shown: its arguments may name or carry secrets.
func (k *KeySource) String() string {
	switch k.kind {
	case "static":
		return "static"
	case "cmd":
		args, _ := splitArgs(k.arg)
		if len(args) == 0 {
			return "cmd:"
		}
		return "cmd:" + args[0] + " ..."
	}
	return k.kind + ":" + k.arg
}

// Key returns the key. A known key is returned at once; once it is older
// than KeyTTL one background refresh replaces it, and a refresh that fails
// keeps it (a locked password manager does not take away the key read
// before). Without a known key the source is read now. Errors name the
// source, never the value.
func (k *KeySource) Key(ctx context.Context) (string, error) {
	if k.kind == "static" {
		return k.key, nil
	}
	if key, ok := k.cached(); ok {
		return key, nil
	}
	k.first.Lock()
	defer k.first.Unlock()
	k.mu.Lock()
	if k.key != "" {
		key := k.key
		k.mu.Unlock()
		return key, nil
	}
	if k.failure != nil && time.Since(k.failed) < keyRetryAfter {
		err := k.failure
		k.mu.Unlock()
		return "", err
	}
	k.mu.Unlock()
	// Not the request's context: one client leaving must not fail the read
	// for the others waiting on it. read bounds commands itself.
	key, err := k.read(context.WithoutCancel(ctx))
	k.mu.Lock()
	if err != nil {
		k.failure, k.failed = fmt.Errorf("%w: %s: %v", ErrNoKey, k, err), time.Now()
		k.readErr = k.failure
		k.mu.Unlock()
		return "", k.failure
	}
	k.key, k.fetched, k.failure, k.readErr = key, time.Now(), nil, nil
	k.mu.Unlock()
	// Once per process and source: the ledger write shares the writer's
	// next group commit.
	_, _ = k.record(context.WithoutCancel(ctx), key)
	return key, nil
}

// cached returns the known key, starting a background refresh when it is
// older than KeyTTL.
func (k *KeySource) cached() (string, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.key == "" {
		return "", false
	}
	if time.Since(k.fetched) >= KeyTTL && !k.refreshing {
		k.refreshing = true
		go k.refresh()
	}
	return k.key, true
}

// refresh reads the source again. Success or not, the next try is a full
// KeyTTL away.
func (k *KeySource) refresh() {
	key, err := k.read(context.Background())
	k.mu.Lock()
	k.refreshing = false
	k.fetched = time.Now()
	if err != nil {
		k.readErr = fmt.Errorf("%w: %s: %v", ErrNoKey, k, err)
		k.mu.Unlock()
		return
	}
	k.key, k.readErr = key, nil
	k.mu.Unlock()
	_, _ = k.record(context.Background(), key)
}

func (k *KeySource) read(ctx context.Context) (string, error) {
	var v string
	switch k.kind {
	case "env":
		v = os.Getenv(k.arg)
		if v == "" {
			return "", errors.New("the variable is empty or unset")
		}
	case "file":
		b, err := os.ReadFile(k.arg)
		if err != nil {
			var pe *os.PathError
			if errors.As(err, &pe) {
				return "", pe.Err
			}
			return "", errors.New("cannot read the file")
		}
		v = string(b)
	case "cmd":
		ctx, cancel := context.WithTimeout(ctx, KeyCommandTimeout)
		defer cancel()
		args, err := splitArgs(k.arg)
		if err != nil || len(args) == 0 {
			return "", errors.New("the command line cannot be parsed")
		}
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		var out bytes.Buffer
		cmd.Stdout = &out
		// stderr is discarded: a failing password manager may print what it
		// was asked for.
		if err := cmd.Run(); err != nil {
			if ctx.Err() != nil {
				return "", fmt.Errorf("the command did not finish within %s", KeyCommandTimeout)
			}
			var ee *exec.ExitError
			if errors.As(err, &ee) {
				return "", fmt.Errorf("the command failed (%s)", ee.ProcessState)
			}
			return "", errors.New("the command could not be started")
		}
		v = out.String()
	}
	v = strings.TrimSpace(v)
	if v == "" {
		return "", errors.New("the source gave an empty key")
	}
	if strings.ContainsAny(v, "\r\n") {
		return "", errors.New("the source gave more than one line")
	}
	return v, nil
}

// splitArgs splits a command line into words at spaces, keeping what is
// inside single or double quotes together; a backslash escapes the next
// character outside single quotes. No shell is run.
func splitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inWord := false
	var quote rune
	escaped := false
	for _, c := range s {
		switch {
		case escaped:
			cur.WriteRune(c)
			escaped = false
		case c == '\\' && quote != '\'':
			escaped, inWord = true, true
		case quote != 0:
			if c == quote {
				quote = 0
			} else {
				cur.WriteRune(c)
			}
		case c == '\'' || c == '"':
			quote, inWord = c, true
		case c == ' ' || c == '\t':
			if inWord {
				args = append(args, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(c)
			inWord = true
		}
	}
	if quote != 0 || escaped {
		return nil, errors.New("unterminated quote or escape")
	}
	if inWord {
		args = append(args, cur.String())
	}
	return args, nil
}

// Kind is the kind of the source: "env", "file", "cmd" or "static".
func (k *KeySource) Kind() string { return k.kind }

// DefaultRotateEvery is how often a provider key is due for replacement
// when providers.NAME.rotate_every is not set: about three months, the
// usual advice.
const DefaultRotateEvery = 90 * 24 * time.Hour

// fingerprintShown is how many hex digits of a key's fingerprint logs and
// answers show.
const fingerprintShown = 8

// rejectWarnEvery is the least time between two warnings about upstream
// 401s for one provider: a revoked key makes every request fail, and the
// log must not fill with one line each.
const rejectWarnEvery = time.Minute

// KeyRecorder keeps the ledger of the real provider keys hardcap reads: a
// keyed fingerprint of each, never the key. The database is the
// implementation (through a small adapter in cmd/hardcap, since proxy does
// not import storage).
type KeyRecorder interface {
	// SeeKey records a successful read of a provider's key and says
	// whether it differs from the one recorded before.
	SeeKey(ctx context.Context, r KeyRead) (KeyChange, error)
	// AddUnauthorized adds n upstream 401s, the latest at last, to the
	// provider's current key.
	AddUnauthorized(ctx context.Context, provider string, n uint64, last time.Time) error
}

// KeyRead is one successful read of a provider's key, for a KeyRecorder.
type KeyRead struct {
	// Provider is the provider's name.
	Provider string
	// Key is the value read: to be hashed, never stored or shown.
	Key string
	// Kind and Source describe the source without its value (see
	// KeySource.Kind and KeySource.String).
	Kind, Source string
	// RotateEvery is the source's rotation interval.
	RotateEvery time.Duration
	// Time is when it was read.
	Time time.Time
	// Unauthorized counts the upstream 401s since the last write, the
	// latest at LastUnauthorized; they belong to the key recorded before.
	Unauthorized     uint64
	LastUnauthorized time.Time
}

// KeyChange is what a KeyRecorder found: the fingerprint of the key read
// and, when it replaced another, that one's.
type KeyChange struct {
	Fingerprint, Previous string
	// First says no key of the provider was recorded before; Rotated that
	// the key differs from the one recorded; Reused that it is a key the
	// provider had before (a replaced key in use again, which keeps its
	// first-seen time and due date).
	First, Rotated, Reused bool
}

// Keys ties the key sources of a set of providers to the key ledger: every
// read (the first, the background refresh after KeyTTL, a Reload) is
// recorded, a changed key as a rotation, and upstream 401s are counted in
// memory and written with the next read or at Close. It never holds a key
// itself; the sources do.
type Keys struct {
	// provs are the providers by name; Follow replaces the slice (never
	// its elements) under provsMu, and readers take it with list.
	provsMu sync.Mutex
	provs   []*Provider
	rec     KeyRecorder
	log     zerolog.Logger
	now     func() time.Time

	stop    chan struct{}
	done    chan struct{}
	started atomic.Bool
	once    sync.Once
	// counting is held shared by every write that moves 401 counts from
	// memory to the ledger, and exclusively by Counted, so that a reader
	// never sees a count in neither place (or in both).
	counting sync.RWMutex
}

// Counted calls fn with the key states while no 401 count is on its way
// from memory to the ledger: what fn reads of the ledger and the states'
// Pending counts add up.
func (ks *Keys) Counted(fn func([]KeyState) error) error {
	ks.counting.Lock()
	defer ks.counting.Unlock()
	return fn(ks.States())
}

// KeysOptions configures NewKeys.
type KeysOptions struct {
	// Providers whose key sources are watched.
	Providers []*Provider
	// Recorder is the key ledger; nil records nothing (counts stay in
	// memory).
	Recorder KeyRecorder
	// Log receives key changes, ledger failures and upstream 401
	// warnings; default no logging.
	Log zerolog.Logger
	// Now returns the current time; default time.Now.
	Now func() time.Time
}

// NewKeys returns the Keys of opts.Providers and attaches it to their
// sources. Call it before serving.
func NewKeys(opts KeysOptions) *Keys {
	ks := &Keys{rec: opts.Recorder, log: opts.Log, now: opts.Now, stop: make(chan struct{}), done: make(chan struct{})}
	if ks.now == nil {
		ks.now = time.Now
	}
	for _, p := range opts.Providers {
		if p == nil || p.Key == nil {
			continue
		}
		ks.provs = append(ks.provs, p)
		p.Key.keys, p.Key.provider = ks, p.Name
	}
	sortProviders(ks.provs)
	return ks
}

func sortProviders(ps []*Provider) {
	for i := 1; i < len(ps); i++ {
		for j := i; j > 0 && ps[j].Name < ps[j-1].Name; j-- {
			ps[j], ps[j-1] = ps[j-1], ps[j]
		}
	}
}

// Start re-reads every source now and then every interval until Close, so
// the ledger sees a changed key (and records its last-seen time) even
// while no request comes. Its ledger entries are made by "system".
func (ks *Keys) Start(interval time.Duration) {
	if ks.started.Swap(true) {
		return
	}
	go func() {
		defer close(ks.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			got, _ := ks.Reload(context.Background(), "")
			for _, r := range got {
				if r.Err != nil {
					// The error names the source, never a value.
					ks.log.Warn().Err(r.Err).Str("provider", r.Provider).Msg("re-reading the provider key failed; the key read before is kept")
				}
			}
			select {
			case <-ks.stop:
				return
			case <-t.C:
			}
		}
	}()
}

// Close stops what Start started and writes the 401 counts still in
// memory. What a crash skips of them is lost, which only understates a
// count that a log line already reported.
func (ks *Keys) Close(ctx context.Context) error {
	ks.once.Do(func() {
		close(ks.stop)
		if !ks.started.Load() {
			return
		}
		select {
		case <-ks.done:
		case <-ctx.Done():
		}
	})
	return ks.Flush(ctx)
}

// Flush writes the 401 counts held in memory to the ledger.
func (ks *Keys) Flush(ctx context.Context) error { return ks.flush(ctx, ks.list()) }

// flush writes the 401 counts of provs' sources to the ledger.
func (ks *Keys) flush(ctx context.Context, provs []*Provider) error {
	if ks.rec == nil {
		return nil
	}
	var errs []error
	for _, p := range provs {
		k := p.Key
		k.recMu.Lock()
		ks.counting.RLock()
		k.mu.Lock()
		n, last := k.pending, k.lastReject
		k.pending = 0
		k.mu.Unlock()
		if n > 0 {
			if err := ks.rec.AddUnauthorized(ctx, p.Name, n, last); err != nil {
				k.mu.Lock()
				k.pending += n
				k.mu.Unlock()
				errs = append(errs, err)
			}
		}
		ks.counting.RUnlock()
		k.recMu.Unlock()
	}
	return errors.Join(errs...)
}

// KeyReload is what a Reload found for one provider.
type KeyReload struct {
	// Provider is the provider's name; Source its key source (never the
	// value).
	Provider, Source string
	// Fingerprint is the first digits of the key's fingerprint after the
	// reload; Previous those of the key it replaced, when Changed.
	Fingerprint, Previous string
	// First says the ledger held no key of the provider before; Changed
	// that the key differs from the one it held, recorded as a rotation;
	// Reused that the new key is one replaced before, in use again.
	First, Changed, Reused bool
	// Err says why the source could not be read (the key read before is
	// kept) or the read not recorded; it names the source, never a value.
	Err error
}

// Reload reads the source of provider now (every provider's when it is
// ""), replaces the key in memory and records it in the ledger as
// storage.ActorFrom(ctx). A source that fails keeps the key read before.
// It returns ErrNoProviders when there is nothing to reload and
// ErrProviderNotFound for a provider the config does not have.
func (ks *Keys) Reload(ctx context.Context, provider string) ([]KeyReload, error) {
	all := ks.list()
	provs := all
	if provider != "" {
		provs = nil
		for _, p := range all {
			if p.Name == provider {
				provs = []*Provider{p}
			}
		}
		if provs == nil {
			return nil, fmt.Errorf("%w: %q (see hardcap keys)", ErrProviderNotFound, budget.Clip(provider))
		}
	}
	if len(provs) == 0 {
		return nil, ErrNoProviders
	}
	out := make([]KeyReload, 0, len(provs))
	for _, p := range provs {
		r := KeyReload{Provider: p.Name, Source: p.Key.String()}
		key, err := p.Key.reload(ctx)
		if err != nil {
			r.Err = err
			out = append(out, r)
			continue
		}
		ch, err := p.Key.record(ctx, key)
		if err != nil {
			r.Err = fmt.Errorf("%w: the key of %s was read but the key ledger could not record it (see the server log)", ErrStorage, p.Name)
		}
		r.Fingerprint, r.Previous = shortFingerprint(ch.Fingerprint), shortFingerprint(ch.Previous)
		r.First, r.Changed, r.Reused = ch.First, ch.Rotated, ch.Reused
		out = append(out, r)
	}
	return out, nil
}

// KeyState is what the proxy knows of a provider's key now, beside what
// the ledger holds.
type KeyState struct {
	// Provider is the provider's name; Kind and Source its key source's
	// (never the value).
	Provider, Kind, Source string
	// RotateEvery is the source's rotation interval (DefaultRotateEvery
	// when not configured).
	RotateEvery time.Duration
	// Fingerprint is the first digits of the fingerprint of the key
	// recorded last; "" before the first read.
	Fingerprint string
	// Pending counts upstream 401s not yet written to the ledger;
	// Rejected those since the start; LastRejected is the latest.
	Pending, Rejected uint64
	LastRejected      time.Time
	// ReadError is why the last read of the source failed, "" after one
	// that worked.
	ReadError string
}

// States returns the state of each provider's key, by provider name.
func (ks *Keys) States() []KeyState {
	provs := ks.list()
	out := make([]KeyState, 0, len(provs))
	for _, p := range provs {
		k := p.Key
		k.mu.Lock()
		st := KeyState{Provider: p.Name, Kind: k.kind, Source: k.String(), RotateEvery: k.rotateEvery(),
			Fingerprint: k.fingerprint, Pending: k.pending, Rejected: k.rejected, LastRejected: k.lastReject}
		if k.readErr != nil {
			st.ReadError = k.readErr.Error()
		}
		k.mu.Unlock()
		out = append(out, st)
	}
	return out
}

func (k *KeySource) rotateEvery() time.Duration {
	if k.RotateEvery > 0 {
		return k.RotateEvery
	}
	return DefaultRotateEvery
}

// reload reads the source now and replaces the key; a failed read keeps
// the key known and returns the error, which names the source only.
func (k *KeySource) reload(ctx context.Context) (string, error) {
	if k.kind == "static" {
		return k.key, nil
	}
	key, err := k.read(ctx)
	k.mu.Lock()
	defer k.mu.Unlock()
	if err != nil {
		k.readErr = fmt.Errorf("%w: %s: %v", ErrNoKey, k, err)
		return "", k.readErr
	}
	k.key, k.fetched, k.failure, k.readErr = key, time.Now(), nil, nil
	return key, nil
}

// record writes a read of key to the ledger, with the 401s counted since
// the last write, and logs a change. A ledger that cannot write is logged
// and the key still served: the ledger is a record, not a gate.
func (k *KeySource) record(ctx context.Context, key string) (KeyChange, error) {
	ks := k.keys
	if ks == nil || ks.rec == nil {
		return KeyChange{}, nil
	}
	k.recMu.Lock()
	defer k.recMu.Unlock()
	ks.counting.RLock()
	defer ks.counting.RUnlock()
	k.mu.Lock()
	n, last := k.pending, k.lastReject
	k.pending = 0
	k.mu.Unlock()
	ch, err := ks.rec.SeeKey(ctx, KeyRead{
		Provider: k.provider, Key: key, Kind: k.kind, Source: k.String(), RotateEvery: k.rotateEvery(),
		Time: ks.now(), Unauthorized: n, LastUnauthorized: last,
	})
	if err != nil {
		k.mu.Lock()
		k.pending += n
		k.mu.Unlock()
		// The error is the ledger's (the key is hashed inside the write
		// and never part of it).
		ks.log.Error().Err(err).Str("provider", k.provider).Str("source", k.String()).Msg("the key ledger could not record a read of the provider key")
		return KeyChange{}, err
	}
	fp := shortFingerprint(ch.Fingerprint)
	k.mu.Lock()
	k.fingerprint = fp
	k.mu.Unlock()
	switch {
	case ch.Reused:
		ks.log.Warn().Str("provider", k.provider).Str("fingerprint", fp).Str("previous", shortFingerprint(ch.Previous)).
			Str("source", k.String()).Msg("provider key changed back to a replaced key: a replaced key is in use again; it keeps its first-seen time and due date, and if it may have leaked, put a new key in the source")
	case ch.Rotated:
		ks.log.Warn().Str("provider", k.provider).Str("fingerprint", fp).Str("previous", shortFingerprint(ch.Previous)).
			Str("source", k.String()).Msg("provider key changed: recorded as a rotation")
	case ch.First:
		ks.log.Info().Str("provider", k.provider).Str("fingerprint", fp).Str("source", k.String()).Msg("provider key recorded in the key ledger")
	}
	return ch, nil
}

// reject counts an upstream 401 to a request that carried this source's
// key and says whether to warn (at most once per rejectWarnEvery), with
// the count since the start and the fingerprint prefix.
func (k *KeySource) reject(now time.Time) (n uint64, fp string, warn bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.pending++
	k.rejected++
	if now.After(k.lastReject) {
		k.lastReject = now
	}
	if k.lastWarn.IsZero() || now.Sub(k.lastWarn) >= rejectWarnEvery {
		k.lastWarn, warn = now, true
	}
	return k.rejected, k.fingerprint, warn
}

// keyRejected counts an upstream 401 answered to a request that carried
// prov's real key: a revoked or expired key is found at once, not by
// users.
func (p *Proxy) keyRejected(prov *Provider) {
	n, fp, warn := prov.Key.reject(p.now())
	if warn {
		p.log.Warn().Str("provider", prov.Name).Str("fingerprint", fp).Uint64("unauthorized", n).
			Msg("the provider refused its real key (401): revoked or expired? Put a valid key in the source, then run hardcap keys reload")
		if ks := prov.Key.keys; ks != nil {
			// Into the ledger now, not at shutdown: the ledger raises the
			// key_rejected alert as it records them.
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = ks.Flush(ctx)
			}()
		}
	}
}

func shortFingerprint(fp string) string {
	if len(fp) > fingerprintShown {
		return fp[:fingerprintShown]
	}
	return fp
}
