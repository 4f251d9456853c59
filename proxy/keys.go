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
// key is picked up without a restart.
type KeySource struct {
	kind string // "env", "file", "cmd" or "static"
	arg  string

	mu      sync.Mutex
	key     string
	fetched time.Time
}

// KeyTTL is how long a key read from its source is reused.
const KeyTTL = 5 * time.Minute

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

// Key returns the key, reading it from its source when it has not been read
// within KeyTTL. Errors name the source, never the value.
func (k *KeySource) Key(ctx context.Context) (string, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.kind == "static" {
		return k.key, nil
	}
	if k.key != "" && time.Since(k.fetched) < KeyTTL {
		return k.key, nil
	}
	key, err := k.read(ctx)
	if err != nil {
		if k.key != "" {
			// A source that fails on refresh (a locked password manager)
			// does not take away the key read before.
			return k.key, nil
		}
		return "", fmt.Errorf("%w: %s: %v", ErrNoKey, k, err)
	}
	k.key, k.fetched = key, time.Now()
	return key, nil
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
