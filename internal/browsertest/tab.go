package browsertest

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	cdplog "github.com/chromedp/cdproto/log"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/cdproto/runtime"
	"github.com/chromedp/chromedp"
)

// Tab is one tab of a browser that Start started. Its methods end the test
// with t.Fatal when the browser fails or an action outlasts Timeout, so a
// test reads as a list of steps. A Tab is used by one goroutine at a time.
type Tab struct {
	t   *testing.T
	b   *browser
	ctx context.Context

	// Timeout bounds each action; Start sets DefaultTimeout.
	Timeout time.Duration

	errMu    *sync.Mutex
	jsErrors *[]string
}

// Context returns the tab's chromedp context, for the actions that Tab has
// no method for: chromedp.Run(tab.Context(), ...). It has no deadline;
// bound the call with context.WithTimeout.
func (p *Tab) Context() context.Context { return p.ctx }

// Tag returns the mark that Processes finds the browser's processes by.
func (p *Tab) Tag() string { return p.b.userDataDir }

// For returns the same tab bound to another test, such as a subtest of the
// test that started it: its failures and screenshots then go to that test.
func (p *Tab) For(t *testing.T) *Tab {
	q := *p
	q.t = t
	return &q
}

// NewTab opens another tab in the same browser context: it shares the first
// tab's cookies, so it is logged in when that one is.
func (p *Tab) NewTab() *Tab {
	p.t.Helper()
	ctx, cancel := chromedp.NewContext(p.ctx)
	return p.open(ctx, cancel)
}

// NewSession opens a tab in a new browser context, like a private window:
// no cookies or storage of the other tabs, so no session.
func (p *Tab) NewSession() *Tab {
	p.t.Helper()
	ctx, cancel := chromedp.NewContext(p.ctx, chromedp.WithNewBrowserContext())
	return p.open(ctx, cancel)
}

func (p *Tab) open(ctx context.Context, cancel context.CancelFunc) *Tab {
	p.t.Helper()
	p.t.Cleanup(cancel)
	q := &Tab{t: p.t, b: p.b, ctx: ctx, Timeout: p.Timeout}
	if err := firstRun(ctx, q.Timeout); err != nil {
		p.t.Fatalf("opening a tab: %v", err)
	}
	if err := q.listenErrors(); err != nil {
		p.t.Fatalf("listening to the page's errors: %v", err)
	}
	return q
}

// firstRun opens the tab of ctx (and starts the browser, for the first
// tab). It waits up to limit. The first run must have ctx itself, with no
// deadline: chromedp binds the tab's life to the context of that run.
func firstRun(ctx context.Context, limit time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- chromedp.Do(ctx) }()
	select {
	case err := <-done:
		return err
	case <-time.After(limit):
		return fmt.Errorf("no answer after %v", limit)
	}
}

// listenErrors collects the page's uncaught exceptions, console.error
// lines and the browser's own errors about the page (such as a refusal by
// the Content-Security-Policy), for JSErrors. A failed load of a resource is
// not one: a test that loads a 403 page on purpose would see it.
func (p *Tab) listenErrors() error {
	p.errMu, p.jsErrors = new(sync.Mutex), new([]string)
	mu, list := p.errMu, p.jsErrors
	return chromedp.Listen(p.ctx, func(ev any) {
		var line string
		switch ev := ev.(type) {
		case *runtime.EventExceptionThrown:
			line = "exception: " + exceptionText(ev.ExceptionDetails)
		case *runtime.EventConsoleAPICalled:
			if ev.Type != runtime.ConsoleAPICalledTypeError {
				return
			}
			var parts []string
			for _, a := range ev.Args {
				if a.Value != nil {
					parts = append(parts, strings.Trim(string(a.Value), `"`))
				} else if a.Description != "" {
					parts = append(parts, a.Description)
				}
			}
			line = "console.error: " + strings.Join(parts, " ")
		case *cdplog.EventEntryAdded:
			if ev.Entry == nil || ev.Entry.Level != cdplog.EntryLevelError || ev.Entry.Source == cdplog.EntrySourceNetwork {
				return
			}
			line = string(ev.Entry.Source) + ": " + ev.Entry.Text
		default:
			return
		}
		mu.Lock()
		defer mu.Unlock()
		if len(*list) < 100 {
			*list = append(*list, line)
		}
	})
}

func exceptionText(d *runtime.ExceptionDetails) string {
	if d == nil {
		return "(no details)"
	}
	text := d.Text
	if d.Exception != nil && d.Exception.Description != "" {
		text += " " + d.Exception.Description
	}
	return fmt.Sprintf("%s (%s:%d)", text, d.URL, d.LineNumber+1)
}

// JSErrors returns the page's uncaught exceptions, console.error lines and
// the browser's errors about the page seen so far in this tab, in order.
func (p *Tab) JSErrors() []string {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return append([]string(nil), (*p.jsErrors)...)
}

// Do runs the actions in order, each batch bounded by Timeout, and fails the
// test on an error.
func (p *Tab) Do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.Timeout)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("browser: %v (at %s)", err, p.location())
	}
}

// Run runs one action on the tab, bounded by its Timeout, and returns the
// action's value; it fails the test on an error.
func Run[T any](p *Tab, a chromedp.Action[T]) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.Timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		p.t.Fatalf("browser: %v (at %s)", err, p.location())
	}
	return v
}

// location is the tab's URL for error messages, or a note why there is none.
func (p *Tab) location() string {
	ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "unknown page"
	}
	return loc
}

// Navigate loads url, waits for the page's load event, and returns the HTTP
// status of the document it ended on (after redirects).
func (p *Tab) Navigate(url string) int64 {
	p.t.Helper()
	return status(Run(p, chromedp.NavigateResponse(url)))
}

// Reload reloads the page and returns the document's HTTP status.
func (p *Tab) Reload() int64 {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.Timeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Reload())
	if err != nil {
		p.t.Fatalf("browser: reload: %v (at %s)", err, p.location())
	}
	return status(resp)
}

// ClickAndWait clicks the first element that matches the CSS selector sel,
// such as a form's submit button, waits until the page it leads to has
// loaded, and returns that document's HTTP status.
func (p *Tab) ClickAndWait(sel string) int64 {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.Timeout)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
	if err != nil {
		p.t.Fatalf("browser: click %s: %v (at %s)", sel, err, p.location())
	}
	return status(resp)
}

func status(resp *network.Response) int64 {
	if resp == nil {
		return 0
	}
	return resp.Status
}

// NextDocument runs trigger and returns the HTTP status and URL of the next
// HTML document that the tab receives whose URL contains urlPart: for a page
// that navigates by itself, such as a form a script submits.
func (p *Tab) NextDocument(urlPart string, trigger ...chromedp.Action[chromedp.Void]) (int64, string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, p.Timeout)
	defer cancel()
	responses := chromedp.Events(ctx, network.ResponseReceived)
	if err := chromedp.Do(ctx, trigger...); err != nil {
		p.t.Fatalf("browser: %v (at %s)", err, p.location())
	}
	for ev, err := range responses {
		if err != nil {
			p.t.Fatalf("browser: waiting for a document at %q: %v (at %s)", urlPart, err, p.location())
		}
		if ev.Type == network.ResourceTypeDocument && strings.Contains(ev.Response.URL, urlPart) {
			return ev.Response.Status, ev.Response.URL
		}
	}
	p.t.Fatalf("browser: no document at %q", urlPart)
	return 0, ""
}

// Location returns the tab's URL.
func (p *Tab) Location() string {
	p.t.Helper()
	return Run(p, chromedp.Location())
}

// Text returns the visible text of the first element that matches the CSS
// selector sel, waiting for it to appear.
func (p *Tab) Text(sel string) string {
	p.t.Helper()
	return Run(p, chromedp.Text(chromedp.CSS(sel)))
}

// Attr returns the attribute name of the first element that matches the CSS
// selector sel, waiting for it to appear; "" when the element has no such
// attribute.
func (p *Tab) Attr(sel, name string) string {
	p.t.Helper()
	return Run(p, EvalArgs[string](`(sel, name) => {
		const el = document.querySelector(sel);
		if (!el) throw new Error("no element " + sel);
		return el.getAttribute(name) || "";
	}`, sel, name))
}

// Has reports whether an element matches the CSS selector sel now, without
// waiting.
func (p *Tab) Has(sel string) bool {
	p.t.Helper()
	return Run(p, EvalArgs[bool](`(sel) => document.querySelector(sel) !== null`, sel))
}

// Count returns how many elements match the CSS selector sel now.
func (p *Tab) Count(sel string) int {
	p.t.Helper()
	return Run(p, EvalArgs[int](`(sel) => document.querySelectorAll(sel).length`, sel))
}

// HTML returns the page's whole HTML as the browser holds it now.
func (p *Tab) HTML() string {
	p.t.Helper()
	return Run(p, chromedp.Evaluate[string](`document.documentElement.outerHTML`))
}

// SetValue sets the value of the form field that matches the CSS selector
// sel, waiting for it to appear.
func (p *Tab) SetValue(sel, value string) {
	p.t.Helper()
	p.Do(chromedp.SetValue(chromedp.CSS(sel), value))
}

// Type focuses the field that matches the CSS selector sel and types value
// into it as key strokes, after what it held.
func (p *Tab) Type(sel, value string) {
	p.t.Helper()
	p.Do(chromedp.SendKeys(chromedp.CSS(sel), value))
}

// Click clicks the first visible element that matches the CSS selector sel
// and returns at once, without waiting for what the click leads to.
func (p *Tab) Click(sel string) {
	p.t.Helper()
	p.Do(chromedp.Click(chromedp.CSS(sel), chromedp.NodeVisible))
}

// EvalArgs returns an action that calls the JavaScript function fn with
// args (encoded as JSON) in the page and decodes its result as T. A function
// that returns a promise is awaited.
func EvalArgs[T any](fn string, args ...any) chromedp.Action[T] {
	return func(ctx context.Context, t *chromedp.Target) (T, error) {
		var zero T
		var b strings.Builder
		b.WriteString("(")
		b.WriteString(fn)
		b.WriteString(")(")
		for i, a := range args {
			if i > 0 {
				b.WriteString(",")
			}
			js, err := jsonString(a)
			if err != nil {
				return zero, err
			}
			b.WriteString(js)
		}
		b.WriteString(")")
		return chromedp.Evaluate[T](b.String(), chromedp.EvalAwaitPromise)(ctx, t)
	}
}

// WaitJS waits until the JavaScript expression expr is true in the page,
// checking every 50 ms up to Timeout, and fails the test with what when it
// never is. Errors of the expression count as false while the page changes
// (a navigation, a script that rewrites the DOM).
func (p *Tab) WaitJS(what, expr string) {
	p.t.Helper()
	deadline := time.Now().Add(p.Timeout)
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(p.ctx, 2*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		if err != nil {
			lastErr = err
		}
		if p.ctx.Err() != nil {
			p.t.Fatalf("browser: waiting for %s: %v", what, p.ctx.Err())
		}
		if time.Now().After(deadline) {
			msg := fmt.Sprintf("browser: timed out after %v waiting for %s (at %s)", p.Timeout, what, p.location())
			if lastErr != nil && !errors.Is(lastErr, context.DeadlineExceeded) {
				msg += fmt.Sprintf("; last error: %v", lastErr)
			}
			p.t.Fatal(msg)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
