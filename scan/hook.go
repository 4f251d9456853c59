package scan

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// HookScript is the pre-commit hook InstallHook writes. It runs `hardcap
// scan --staged`, whose exit status 1 on a finding stops the commit. A
// missing hardcap stops it too: a hook that passes without scanning would
// be trusted for nothing.
const HookScript = `#!/bin/sh
# hardcap: refuse a commit whose staged changes hold a provider key or a
# hardcap token. Installed by "hardcap scan --install-hook"; to commit
# anyway, once: git commit --no-verify.
if ! command -v hardcap >/dev/null 2>&1; then
	echo "hardcap pre-commit hook: hardcap is not in PATH, so the staged changes were not scanned; install it or remove $0" >&2
	exit 1
fi
exec hardcap scan --staged
`

// InstallHook writes HookScript as the pre-commit hook of the git
// repository holding dir (in core.hooksPath when that is set) and returns
// the hook's path; installed is false when the same hook was there
// already. It never replaces another hook: it returns ErrHookExists, and
// the caller can add the line `hardcap scan --staged` to that hook.
func InstallHook(ctx context.Context, dir string) (path string, installed bool, err error) {
	if err := checkRepo(ctx, dir); err != nil {
		return "", false, err
	}
	out, err := git(ctx, dir, "rev-parse", "--git-path", "hooks")
	if err != nil {
		return "", false, err
	}
	hooks := strings.TrimSpace(out)
	if !filepath.IsAbs(hooks) {
		hooks = filepath.Join(dir, hooks)
	}
	path = filepath.Join(hooks, "pre-commit")
	if old, err := os.ReadFile(path); err == nil {
		if string(old) == HookScript {
			return path, false, nil
		}
		return path, false, fmt.Errorf("%w: %s; add the line `hardcap scan --staged` to it yourself", ErrHookExists, Printable(path))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return path, false, fmt.Errorf("%w %s: %w", ErrUnreadable, Printable(path), unwrapPath(err))
	}
	if err := os.MkdirAll(hooks, 0o755); err != nil {
		return path, false, err
	}
	// O_EXCL: a hook that appeared since the check is not overwritten.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o755)
	if errors.Is(err, fs.ErrExist) {
		return path, false, fmt.Errorf("%w: %s", ErrHookExists, Printable(path))
	}
	if err != nil {
		return path, false, err
	}
	if _, err := f.WriteString(HookScript); err != nil {
		f.Close()
		os.Remove(path)
		return path, false, err
	}
	if err := f.Close(); err != nil {
		os.Remove(path)
		return path, false, err
	}
	return path, true, nil
}
