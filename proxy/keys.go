package proxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"
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
	switch kind {
	case "cmd":
		if args, err := splitArgs(arg); err != nil || len(args) == 0 {
			return nil, fmt.Errorf("%w: the command line cannot be parsed", ErrKeySource)
		}
		fallthrough
	case "env", "file":
		return &KeySource{kind: kind, arg: strings.TrimSpace(arg)}, nil
	}
	return nil, ErrKeySource
}

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
	defer k.mu.Unlock()
	if err != nil {
		k.failure, k.failed = fmt.Errorf("%w: %s: %v", ErrNoKey, k, err), time.Now()
		return "", k.failure
	}
	k.key, k.fetched, k.failure = key, time.Now(), nil
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
	defer k.mu.Unlock()
	k.refreshing = false
	k.fetched = time.Now()
	if err == nil {
		k.key = key
	}
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
