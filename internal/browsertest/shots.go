package browsertest

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// EnvScreenshots names the environment variable that gives the folder for
// screenshots. Without it they go to ScreenshotDir's default, outside the
// repository, so test runs never leave files for git to see.
const EnvScreenshots = "HARDCAP_SCREENSHOTS"

// ScreenshotDir returns the folder that screenshots are written to:
// $HARDCAP_SCREENSHOTS, else hardcap-screenshots in the system's temporary
// folder.
func ScreenshotDir() string {
	if d := os.Getenv(EnvScreenshots); d != "" {
		return d
	}
	return filepath.Join(os.TempDir(), "hardcap-screenshots")
}

// Viewport is a page size to check a page at.
type Viewport struct {
	// Name goes into the screenshots' file names.
	Name string
	// Width and Height are in CSS pixels.
	Width, Height int64
	// Mobile emulates a phone: the page's <meta name=viewport> is obeyed
	// and touch events are on.
	Mobile bool
	// Scale is the device pixel ratio; screenshots have Width*Scale pixels.
	Scale float64
}

// Desktop is a laptop screen's page, 1280 CSS pixels wide.
var Desktop = Viewport{Name: "1280", Width: 1280, Height: 900, Scale: 1}

// Phone is a phone's page, 390 CSS pixels wide, held upright.
var Phone = Viewport{Name: "390", Width: 390, Height: 844, Mobile: true, Scale: 2}

// Viewports are the sizes Shoot checks each page at.
var Viewports = []Viewport{Desktop, Phone}

// SetViewport gives the page the size of v, emulating a phone when v.Mobile
// is set. The page reflows without reloading.
func (p *Tab) SetViewport(v Viewport) {
	p.t.Helper()
	opts := []chromedp.EmulateViewportOption{chromedp.EmulateScale(v.Scale), chromedp.EmulatePortrait}
	if v.Mobile {
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	p.Do(chromedp.EmulateViewport(v.Width, v.Height, opts...))
	// Two animation frames: the page has laid out and painted at the new
	// size before anything reads or shoots it.
	Run(p, chromedp.Evaluate[chromedp.Void](
		`new Promise(r => requestAnimationFrame(() => requestAnimationFrame(() => r())))`,
		chromedp.EvalAwaitPromise))
}

var unsafeName = regexp.MustCompile(`[^A-Za-z0-9._-]+`)

// Screenshot writes a PNG of the whole page (beyond the viewport) to
// ScreenshotDir, named after the test and name, and returns its path. The
// first screenshot of a test removes the files an earlier run of the same
// test left, and logs the folder.
func (p *Tab) Screenshot(name string) string {
	p.t.Helper()
	dir := ScreenshotDir()
	prefix := unsafeName.ReplaceAllString(p.t.Name(), "_") + "-"
	p.b.shotsMu.Lock()
	first := !p.b.shotsSeen[prefix]
	p.b.shotsSeen[prefix] = true
	p.b.shotsMu.Unlock()
	if first {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			p.t.Fatalf("screenshots: %v", err)
		}
		old, _ := filepath.Glob(filepath.Join(dir, prefix+"*.png"))
		for _, f := range old {
			_ = os.Remove(f)
		}
		p.t.Logf("screenshots in %s", dir)
	}
	png := Run(p, chromedp.FullScreenshot(100))
	path := filepath.Join(dir, prefix+unsafeName.ReplaceAllString(name, "_")+".png")
	if err := os.WriteFile(path, png, 0o644); err != nil {
		p.t.Fatalf("screenshots: %v", err)
	}
	return path
}

// shootFailure writes a screenshot of the page a failed test ended on,
// named after the test with "-failed", and logs its path. It reports its
// own trouble in the log only: the test has failed already.
func (p *Tab) shootFailure() {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err == nil {
		err = os.MkdirAll(ScreenshotDir(), 0o755)
	}
	path := filepath.Join(ScreenshotDir(), unsafeName.ReplaceAllString(p.t.Name(), "_")+"-failed.png")
	if err == nil {
		err = os.WriteFile(path, png, 0o644)
	}
	if err != nil {
		p.t.Logf("no screenshot of the failure: %v", err)
		return
	}
	p.t.Logf("the page at the failure (%s): %s", p.location(), path)
}

// overflowJS measures the page's width against the viewport. It names the
// outermost elements that stick out on the right, which are what to fix.
const overflowJS = `(vw) => {
	const doc = document.documentElement;
	const out = [];
	const name = el => el.tagName.toLowerCase() + (el.id ? "#" + el.id : "") +
		(typeof el.className === "string" && el.className.trim() ? "." + el.className.trim().split(/\s+/).join(".") : "");
	for (const el of document.body ? document.body.querySelectorAll("*") : []) {
		const r = el.getBoundingClientRect();
		if (r.width === 0 || r.right <= vw + 1) continue;
		const parent = el.parentElement;
		if (parent && parent !== document.body && parent.getBoundingClientRect().right > vw + 1) continue;
		out.push(name(el) + " (right edge " + Math.round(r.right) + " px)");
		if (out.length >= 5) break;
	}
	const meta = document.querySelector('meta[name="viewport"]');
	return {
		deviceWidth: !!meta && /width\s*=\s*device-width/.test(meta.content),
		innerWidth: window.innerWidth,
		scrollWidth: doc.scrollWidth,
		bodyScrollWidth: document.body ? document.body.scrollWidth : 0,
		wide: out,
	};
}`

type overflow struct {
	DeviceWidth     bool     `json:"deviceWidth"`
	InnerWidth      int64    `json:"innerWidth"`
	ScrollWidth     int64    `json:"scrollWidth"`
	BodyScrollWidth int64    `json:"bodyScrollWidth"`
	Wide            []string `json:"wide"`
}

// CheckNoHorizontalScroll fails the test (without stopping it) when the
// page is wider than the viewport of width want, so that the body would
// scroll sideways: tables and code must scroll inside their own boxes. It
// also fails for a page without <meta name="viewport"
// content="width=device-width">, which a phone lays out at 980 px and shrinks
// to unreadable size.
func (p *Tab) CheckNoHorizontalScroll(page string, want int64) {
	p.t.Helper()
	if problem := p.horizontalScroll(want); problem != "" {
		p.t.Errorf("%s at %d px: %s", page, want, problem)
	}
}

// horizontalScroll returns what is wrong with the page's width at a
// viewport of width want, or "". A phone widens its layout to fit content
// that sticks out, so the page is measured against want, not innerWidth.
func (p *Tab) horizontalScroll(want int64) string {
	p.t.Helper()
	o := Run(p, EvalArgs[overflow](overflowJS, want))
	if !o.DeviceWidth {
		return "the page has no <meta name=\"viewport\" content=\"width=device-width\">, so a phone lays it out wider and shrinks it"
	}
	if o.ScrollWidth > want || o.BodyScrollWidth > want || o.InnerWidth > want {
		return fmt.Sprintf("the page scrolls sideways (document %d px, body %d px, layout %d px wide); too wide: %s",
			o.ScrollWidth, o.BodyScrollWidth, o.InnerWidth, strings.Join(o.Wide, ", "))
	}
	return ""
}

// Shoot checks the current page at each of Viewports: it sets the size,
// checks that the body does not scroll sideways, and takes a screenshot
// named page-WIDTH. It leaves the tab at Desktop's size and returns the
// screenshots' paths.
func (p *Tab) Shoot(page string) []string {
	p.t.Helper()
	return p.atViewports(page, true)
}

// CheckWidths is Shoot without the screenshots, for one more state of a
// page already shot: cheaper, and the check is the same.
func (p *Tab) CheckWidths(page string) {
	p.t.Helper()
	p.atViewports(page, false)
}

func (p *Tab) atViewports(page string, shoot bool) []string {
	p.t.Helper()
	var paths []string
	for _, v := range Viewports {
		p.SetViewport(v)
		p.CheckNoHorizontalScroll(page, v.Width)
		if shoot {
			paths = append(paths, p.Screenshot(page+"-"+v.Name))
		}
	}
	p.SetViewport(Desktop)
	return paths
}

func jsonString(v any) (string, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return "", fmt.Errorf("browsertest: an argument for the page: %w", err)
	}
	return string(b), nil
}
