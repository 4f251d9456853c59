package browsertest

import (
	"bytes"
	"fmt"
	"github.com/hardcap/hardcap/internal/testreq"
	"image/png"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
)

const narrowPage = `<!doctype html><html><head><meta name="viewport" content="width=device-width, initial-scale=1">
<title>t</title></head><body>
<p id="count">0</p><button id="inc" onclick="document.getElementById('count').textContent = String(Number(document.getElementById('count').textContent) + 1)">+1</button>
<form method="post" action="/posted"><input name="word" id="word"><button id="send">send</button></form>
<div style="overflow-x:auto"><table><tr><td style="white-space:nowrap">` + "a very long line in a table that scrolls in its own box and not the page's body, wider than any phone" + `</td></tr></table></div>
</body></html>`

const widePage = `<!doctype html><html><head><meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body><div id="wide" class="too big" style="width:700px">wide</div></body></html>`

const noViewportPage = `<!doctype html><html><head></head><body><p>no viewport</p></body></html>`

func testSite(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	page := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprint(w, body)
		}
	}
	mux.HandleFunc("GET /{$}", page(narrowPage))
	mux.HandleFunc("GET /wide", page(widePage))
	mux.HandleFunc("GET /noviewport", page(noViewportPage))
	mux.HandleFunc("GET /error", page(`<!doctype html><body><script>throw new Error("boom")</script></body>`))
	mux.HandleFunc("GET /csp", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Security-Policy", "default-src 'self'")
		fmt.Fprint(w, `<!doctype html><body><p style="color:red">inline style</p></body>`)
	})
	mux.HandleFunc("POST /posted", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusAccepted)
		fmt.Fprintf(w, `<!doctype html><p id="got">%s</p>`, r.PostFormValue("word"))
	})
	mux.HandleFunc("GET /setcookie", func(w http.ResponseWriter, r *http.Request) {
		http.SetCookie(w, &http.Cookie{Name: "s", Value: "1", Path: "/", HttpOnly: true})
		http.Redirect(w, r, "/cookie", http.StatusSeeOther)
	})
	mux.HandleFunc("GET /cookie", func(w http.ResponseWriter, r *http.Request) {
		_, err := r.Cookie("s")
		fmt.Fprintf(w, `<!doctype html><p id="cookie">%v</p>`, err == nil)
	})
	mux.HandleFunc("POST /target", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `<!doctype html><p id="refused">refused</p>`)
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func TestTab(t *testing.T) {
	t.Setenv(EnvScreenshots, t.TempDir())
	site := testSite(t)
	tab := Start(t)

	if got := tab.Navigate(site.URL + "/"); got != 200 {
		t.Fatalf("status %d, want 200", got)
	}
	tab.Click("#inc")
	tab.Click("#inc")
	tab.WaitJS("the count at 2", `document.getElementById("count").textContent === "2"`)
	if got := tab.Text("#count"); got != "2" {
		t.Errorf("count %q, want 2", got)
	}

	tab.Type("#word", "hello")
	if got := tab.ClickAndWait("#send"); got != http.StatusAccepted {
		t.Errorf("posted: status %d, want 202", got)
	}
	if got := tab.Text("#got"); got != "hello" {
		t.Errorf("posted %q, want hello", got)
	}
	if !strings.HasSuffix(tab.Location(), "/posted") {
		t.Errorf("at %s, want /posted", tab.Location())
	}
	if tab.Has("#count") || !tab.Has("#got") || tab.Count("p") != 1 {
		t.Errorf("Has/Count disagree with the page: %s", tab.HTML())
	}

	tab.Navigate(site.URL + "/")
	tab.CheckWidths("home")
	paths := tab.Shoot("home")
	if len(paths) != 2 {
		t.Fatalf("%d screenshots, want 2", len(paths))
	}
	for i, v := range Viewports {
		f, err := os.ReadFile(paths[i])
		if err != nil {
			t.Fatal(err)
		}
		img, err := png.Decode(bytes.NewReader(f))
		if err != nil {
			t.Fatalf("%s: %v", paths[i], err)
		}
		if want := int(float64(v.Width) * v.Scale); img.Bounds().Dx() != want {
			t.Errorf("%s: %d px wide, want %d", paths[i], img.Bounds().Dx(), want)
		}
		if dir := filepath.Dir(paths[i]); dir != ScreenshotDir() {
			t.Errorf("screenshot in %s, want %s", dir, ScreenshotDir())
		}
	}
	if got := Run(tab, EvalArgs[int64](`() => window.innerWidth`)); got != Desktop.Width {
		t.Errorf("after Shoot the page is %d px wide, want %d", got, Desktop.Width)
	}
}

func TestHorizontalScroll(t *testing.T) {
	site := testSite(t)
	tab := Start(t)
	tests := []struct {
		path string
		v    Viewport
		want string // in the problem; "" for none
	}{
		{"/", Desktop, ""},
		{"/", Phone, ""},
		{"/wide", Desktop, ""},
		{"/wide", Phone, "div#wide.too.big (right edge 7"},
		{"/noviewport", Phone, "no <meta name=\"viewport\""},
	}
	for _, tt := range tests {
		tab.Navigate(site.URL + tt.path)
		tab.SetViewport(tt.v)
		got := tab.horizontalScroll(tt.v.Width)
		if tt.want == "" && got != "" || !strings.Contains(got, tt.want) {
			t.Errorf("%s at %d px: %q, want %q", tt.path, tt.v.Width, got, tt.want)
		}
	}
}

func TestSessions(t *testing.T) {
	site := testSite(t)
	tab := Start(t)
	tab.Navigate(site.URL + "/setcookie")
	if got := tab.Text("#cookie"); got != "true" {
		t.Fatalf("cookie after setting it: %s", got)
	}
	other := tab.NewTab()
	other.Navigate(site.URL + "/cookie")
	if got := other.Text("#cookie"); got != "true" {
		t.Errorf("a new tab lacks the cookie: %s", got)
	}
	fresh := tab.NewSession()
	fresh.Navigate(site.URL + "/cookie")
	if got := fresh.Text("#cookie"); got != "false" {
		t.Errorf("a new session has the cookie: %s", got)
	}
}

// TestNextDocument has a page of one origin submit a form to another by
// script, as a forged request would, and reads the answer's status.
func TestNextDocument(t *testing.T) {
	site := testSite(t)
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `<!doctype html><form id="f" method="post" action="%s/target"><input type="hidden" name="confirm" value="yes"></form>
<script>window.onload = () => document.getElementById("f").submit()</script>`, site.URL)
	}))
	t.Cleanup(evil.Close)
	tab := Start(t)
	status, url := tab.NextDocument(site.URL+"/target", chromedp.Navigate(evil.URL))
	if status != http.StatusForbidden || url != site.URL+"/target" {
		t.Errorf("got %d from %s, want 403 from %s/target", status, url, site.URL)
	}
	tab.WaitJS("the refusal page", `document.getElementById("refused") !== null`)
}

func TestJSErrors(t *testing.T) {
	site := testSite(t)
	tab := Start(t)
	tab.Navigate(site.URL + "/")
	if errs := tab.JSErrors(); len(errs) != 0 {
		t.Errorf("errors on a clean page: %v", errs)
	}
	tab.Navigate(site.URL + "/error")
	tab.WaitJS("the error to be seen", "true")
	waitErrors := func() []string {
		for range 100 {
			if errs := tab.JSErrors(); len(errs) > 0 {
				return errs
			}
			tab.WaitJS("a frame", `new Promise(r => setTimeout(() => r(true), 10))`)
		}
		return nil
	}
	errs := waitErrors()
	if len(errs) != 1 || !strings.Contains(errs[0], "boom") {
		t.Errorf("errors %q, want one with boom", errs)
	}

	csp := tab.NewTab()
	csp.Navigate(site.URL + "/csp")
	tab = csp
	errs = waitErrors()
	if len(errs) != 1 || !strings.Contains(errs[0], "Content Security Policy") {
		t.Errorf("errors %q, want one about the Content Security Policy", errs)
	}
}

// TestNoProcessLeft checks that a test's cleanup leaves no process of its
// browser.
func TestNoProcessLeft(t *testing.T) {
	needBrowser(t)
	var dir string
	var pids []int
	t.Run("browser", func(t *testing.T) {
		tab := Start(t)
		tab.NewTab()
		tab.NewSession()
		dir = tab.Tag()
		pids = Processes(dir)
	})
	if len(pids) < 2 {
		t.Fatalf("while the browser ran, found %v with its user data directory; want the browser and its helpers", pids)
	}
	if left := Processes(dir); len(left) != 0 {
		t.Errorf("processes left after the test: %v", left)
	}
}

// TestMissingBrowser runs the child test below with no browser to find.
func TestMissingBrowser(t *testing.T) {
	tests := []struct {
		name, require, chromium string
		wantFail                bool
		wantOut                 string
	}{
		{"skips", "", "", false, "--- SKIP: TestMissingBrowserChild"},
		{"skips when another is required", "postgres", "", false, SkipMessage},
		{"fails when required", "all", "", true, "chromium is required (HARDCAP_TEST_REQUIRE=all) but missing: " + SkipMessage},
		{"fails when listed", "pebble,chromium", "", true, "--- FAIL: TestMissingBrowserChild"},
		{"fails on a wrong HARDCAP_CHROMIUM", "", "/nonexistent/chromium", true, "HARDCAP_CHROMIUM=/nonexistent/chromium"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cmd := exec.Command(os.Args[0], "-test.run=^TestMissingBrowserChild$", "-test.v")
			cmd.Env = append(os.Environ(), "BROWSERTEST_CHILD=1",
				"HARDCAP_TEST_REQUIRE="+tt.require, EnvChromium+"="+tt.chromium)
			out, err := cmd.CombinedOutput()
			if failed := err != nil; failed != tt.wantFail {
				t.Fatalf("child failed = %v (%v), want %v:\n%s", failed, err, tt.wantFail, out)
			}
			if !strings.Contains(string(out), tt.wantOut) {
				t.Errorf("child output lacks %q:\n%s", tt.wantOut, out)
			}
		})
	}
}

func TestMissingBrowserChild(t *testing.T) {
	if os.Getenv("BROWSERTEST_CHILD") != "1" {
		t.Skip("run by TestMissingBrowser")
	}
	candidates = []string{"/nonexistent/chromium"}
	Start(t)
	t.Error("Start returned without a browser")
}

// TestFailureScreenshot runs a failing child test and finds the screenshot
// of the page it failed on.
func TestFailureScreenshot(t *testing.T) {
	needBrowser(t)
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestFailureScreenshotChild$", "-test.v")
	cmd.Env = append(os.Environ(), "BROWSERTEST_CHILD=1", EnvScreenshots+"="+dir)
	out, err := cmd.CombinedOutput()
	if err == nil {
		t.Fatalf("the child passed:\n%s", out)
	}
	path := filepath.Join(dir, "TestFailureScreenshotChild-failed.png")
	if !strings.Contains(string(out), "the page at the failure") || !strings.Contains(string(out), path) {
		t.Errorf("the child's output does not name %s:\n%s", path, out)
	}
	f, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := png.Decode(bytes.NewReader(f)); err != nil {
		t.Errorf("%s: %v", path, err)
	}
}

func TestFailureScreenshotChild(t *testing.T) {
	if os.Getenv("BROWSERTEST_CHILD") != "1" {
		t.Skip("run by TestFailureScreenshot")
	}
	site := testSite(t)
	tab := Start(t)
	tab.Navigate(site.URL + "/")
	t.Error("failing on purpose")
}

// needBrowser skips (or fails, by HARDCAP_TEST_REQUIRE) a test whose
// checks only mean something with a browser to start.
func needBrowser(t *testing.T) {
	t.Helper()
	path, _ := FindChromium()
	testreq.Need(t, "chromium", path != "", SkipMessage)
}
