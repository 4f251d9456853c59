// Package browsertest is test support: it drives Debian's Chromium, headless,
// through chromedp, for the tests of the dashboard.
//
// Start finds the browser and starts it for one test; the test drives the
// returned Tab and takes screenshots of each page at the widths of Viewports.
// Without a browser the test skips with one line that says what to install,
// unless HARDCAP_TEST_REQUIRE asks for "chromium" (see package testreq), as
// CI does: then it fails.
package browsertest

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/hardcap/hardcap/internal/testreq"
)

// EnvChromium names the environment variable that gives the browser's
// program when it is neither /usr/bin/chromium nor "chromium" on PATH.
const EnvChromium = "HARDCAP_CHROMIUM"

// SkipMessage is the one line a browser test skips with when no browser is
// found.
const SkipMessage = "browser tests: install Debian's chromium (apt-get install chromium)"

// startTimeout bounds the browser's start: a browser that does not answer by
// then fails the test rather than hanging it.
const startTimeout = 30 * time.Second

// DefaultTimeout bounds each action of a Tab (a navigation, a click, a wait)
// unless Tab.Timeout says otherwise.
const DefaultTimeout = 15 * time.Second

// Option changes how Start starts the browser.
type Option func(*options)

type options struct {
	width, height int
}

// WindowSize sets the browser window's size in CSS pixels; the default is
// Desktop's 1280x900. Tab.SetViewport changes the page's viewport later.
func WindowSize(width, height int) Option {
	return func(o *options) { o.width, o.height = width, height }
}

// FindChromium returns the browser's program: $HARDCAP_CHROMIUM when it is
// set, else /usr/bin/chromium, else "chromium" on PATH. It returns "" when
// there is none; an error only when HARDCAP_CHROMIUM names a program that
// cannot be run, which is a mistake to report rather than a reason to skip.
func FindChromium() (string, error) {
	if p := os.Getenv(EnvChromium); p != "" {
		found, err := exec.LookPath(p)
		if err != nil {
			return "", fmt.Errorf("%s=%s: %w", EnvChromium, p, err)
		}
		return found, nil
	}
	for _, p := range candidates {
		if found, err := exec.LookPath(p); err == nil {
			return found, nil
		}
	}
	return "", nil
}

// candidates are where FindChromium looks without HARDCAP_CHROMIUM: Debian's
// package installs /usr/bin/chromium.
var candidates = []string{"/usr/bin/chromium", "chromium"}

// browser is one Chromium process and what its tabs share.
type browser struct {
	userDataDir string
	allocCtx    context.Context
	output      *tailBuffer

	shotsMu   sync.Mutex
	shotsSeen map[string]bool // the tests whose old screenshots are removed
}

// Start starts a headless Chromium for the test t and returns its first tab.
// Everything ends in t.Cleanup: the tabs and the browser are closed, and the
// cleanup fails the test if any process of the browser is still alive after
// a few seconds (it kills them then).
func Start(t *testing.T, opts ...Option) *Tab {
	t.Helper()
	o := options{width: int(Desktop.Width), height: int(Desktop.Height)}
	for _, opt := range opts {
		opt(&o)
	}
	path, err := FindChromium()
	if err != nil {
		t.Fatalf("browser tests: %v", err)
	}
	testreq.Need(t, "chromium", path != "", SkipMessage)

	b := &browser{userDataDir: t.TempDir(), output: &tailBuffer{max: 16 << 10}, shotsSeen: map[string]bool{}}
	allocOpts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		// Tests run as root in containers, where Chromium's sandbox cannot
		// start.
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(b.userDataDir),
		chromedp.WindowSize(o.width, o.height),
		chromedp.CombinedOutput(b.output),
		// Tests speak only to loopback: no proxy, no QUIC, and none of the
		// browser's own calls home (updates, sync, safe browsing).
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-default-apps", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-breakpad", true),
		chromedp.Flag("safebrowsing-disable-auto-update", true),
		chromedp.Flag("disable-client-side-phishing-detection", true),
		chromedp.Flag("metrics-recording-only", true),
		chromedp.Flag("disable-features", "Translate,MediaRouter,OptimizationHints"),
		// A page's timers must run on time even though no window is seen:
		// the dashboard polls every 2 s.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		// Small /dev/shm in containers makes Chromium crash.
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("password-store", "basic"),
		chromedp.Env(envTag + "=" + b.userDataDir),
		chromedp.Flag("use-mock-keychain", true),
	}
	allocCtx, allocCancel := chromedp.NewExecAllocator(context.Background(), allocOpts...)
	b.allocCtx = allocCtx

	logs := &guardedLog{t: t}
	ctx, cancel := chromedp.NewContext(allocCtx,
		chromedp.WithLogf(logs.logf), chromedp.WithErrorf(logs.logf))
	tab := &Tab{t: t, b: b, ctx: ctx, Timeout: DefaultTimeout}

	startErr := firstRun(ctx, startTimeout)

	t.Cleanup(func() {
		if t.Failed() && startErr == nil {
			tab.shootFailure()
		}
		// A graceful close lets Chromium end its own child processes.
		cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
		if err := chromedp.Cancel(cctx); err != nil && !errors.Is(err, context.Canceled) && startErr == nil {
			t.Logf("closing the browser: %v", err)
		}
		ccancel()
		cancel()
		allocCancel()
		logs.close()
		if left := waitGone(b.userDataDir, 5*time.Second); len(left) > 0 {
			t.Errorf("browser processes still alive after the test (killed now): %v", left)
		}
		if t.Failed() {
			t.Logf("the browser's output (last %d bytes, without D-Bus complaints):\n%s", b.output.max, b.output.String())
		}
	})
	if startErr != nil {
		t.Fatalf("starting %s: %v\n%s", path, startErr, b.output.String())
	}
	if err := tab.listenErrors(); err != nil {
		t.Fatalf("listening to the page's errors: %v", err)
	}
	return tab
}

// guardedLog sends chromedp's log lines to the test until the test's cleanup
// closes it: a line after that would panic the test binary.
type guardedLog struct {
	mu     sync.Mutex
	t      *testing.T
	closed bool
}

func (g *guardedLog) logf(format string, args ...any) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if !g.closed {
		g.t.Logf("chromedp: "+format, args...)
	}
}

func (g *guardedLog) close() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
}

// tailBuffer keeps the last max bytes written to it: the browser's output is
// shown when a test fails, and it must not grow without bound.
type tailBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

// Write appends p, dropping the oldest bytes past max.
func (w *tailBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.b = append(w.b, p...)
	if over := len(w.b) - w.max; over > 0 {
		w.b = append(w.b[:0], w.b[over:]...)
	}
	return len(p), nil
}

// String returns what is kept, less the lines about D-Bus: a container has
// no D-Bus, Chromium says so many times, and it does not matter.
func (w *tailBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var keep []string
	for line := range strings.Lines(string(w.b)) {
		if !strings.Contains(line, "dbus") {
			keep = append(keep, line)
		}
	}
	return strings.TrimSpace(strings.Join(keep, ""))
}
