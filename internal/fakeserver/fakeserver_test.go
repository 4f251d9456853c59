package fakeserver

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

const realKey = "sk-real-provider-key"

// fake is a Server whose behavior is the Faults its handlers apply and
// whose calls are the request paths.
type fake = Server[Faults, string]

// start starts a fake whose handler is h, given the fake itself.
func start(t testing.TB, h func(s *fake, w http.ResponseWriter, r *http.Request)) *fake {
	t.Helper()
	var s *fake
	s = Start[Faults, string](t, "fakeserver", realKey, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h(s, w, r)
	}))
	return s
}

func get(t *testing.T, ctx context.Context, url string) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	return resp
}

func TestStartRejectsBadKeys(t *testing.T) {
	tests := []struct{ key, want string }{
		{"", "fakeserver: Options.APIKey is required"},
		{"hc_live_123", `fakeserver: Options.APIKey must not contain "hc_"`},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%q", tt.key), func(t *testing.T) {
			rec := &RecordingTB{TB: t}
			started := false
			CatchFatal(func() {
				Start[Faults, string](rec, "fakeserver", tt.key, http.NotFoundHandler())
				started = true
			})
			if got := rec.Errors(); !slices.Equal(got, []string{tt.want}) || started {
				t.Errorf("got errors %q, started %v; want [%q] and no server", got, started, tt.want)
			}
		})
	}
}

func TestRecordingTB(t *testing.T) {
	rec := &RecordingTB{TB: t}
	rec.Errorf("a %d", 1)
	reached := false
	CatchFatal(func() {
		rec.Fatal("b ", 2)
		reached = true
	})
	CatchFatal(func() {
		rec.Fatalf("c %d", 3)
		reached = true
	})
	if got := rec.Errors(); !slices.Equal(got, []string{"a 1", "b 2", "c 3"}) || reached {
		t.Errorf("got errors %q, reached %v; want [a 1, b 2, c 3] and Fatal and Fatalf to stop their caller", got, reached)
	}
	defer func() {
		if r := recover(); r != "other" {
			t.Errorf("got panic %v, want CatchFatal to pass on other panics", r)
		}
	}()
	CatchFatal(func() { panic("other") })
}

func TestURL(t *testing.T) {
	s := start(t, func(*fake, http.ResponseWriter, *http.Request) {})
	if got := s.URL(); !strings.HasPrefix(got, "http://") || strings.Contains(strings.TrimPrefix(got, "http://"), "/") {
		t.Errorf("got URL %q, want http://host:port", got)
	}
}

func TestBehaviorAndCalls(t *testing.T) {
	s := start(t, func(s *fake, w http.ResponseWriter, r *http.Request) {
		b := s.Behavior()
		i := s.Record(r.URL.Path)
		s.Update(i, func(c *string) { *c += fmt.Sprintf(" cut=%d", b.CutAfterEvents) })
	})
	if got := s.Behavior(); got != (Faults{}) {
		t.Errorf("got behavior %+v, want the zero value", got)
	}
	for i, path := range []string{"/a", "/b"} {
		s.SetBehavior(Faults{CutAfterEvents: i})
		io.Copy(io.Discard, get(t, context.Background(), s.URL()+path).Body)
	}
	calls := s.Calls()
	if want := []string{"/a cut=0", "/b cut=1"}; !slices.Equal(calls, want) {
		t.Errorf("got calls %q, want %q", calls, want)
	}
	calls[0] = "changed"
	if got := s.Calls()[0]; got != "/a cut=0" {
		t.Errorf("got call %q after changing a copy, want it unchanged", got)
	}
}

func TestConcurrentUse(t *testing.T) {
	s := start(t, func(s *fake, w http.ResponseWriter, r *http.Request) {
		i := s.Record(r.URL.Path)
		s.Update(i, func(c *string) { *c += "!" })
		s.Behavior()
	})
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			s.SetBehavior(Faults{StallAfterEvents: i})
			resp, err := http.Get(s.URL() + "/x")
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			s.Calls()
		})
	}
	wg.Wait()
	if got := s.Calls(); len(got) != 8 || slices.ContainsFunc(got, func(c string) bool { return c != "/x!" }) {
		t.Errorf("got calls %q, want 8 of /x!", got)
	}
}

func TestKeyRuleCheck(t *testing.T) {
	rule := KeyRule{
		Header:    "Authorization",
		Value:     "Bearer " + realKey,
		Describe:  `"Bearer " followed by the real API key`,
		Forbidden: []string{"X-Api-Key", "Api-Key"},
		Provider:  "OpenAI",
	}
	tests := []struct {
		name     string
		target   string
		header   map[string][]string
		wantErrs []string
	}{
		{name: "real key"},
		{name: "missing", header: map[string][]string{"Authorization": nil},
			wantErrs: []string{`header "Authorization" is missing`}},
		{name: "repeated", header: map[string][]string{"Authorization": {"Bearer " + realKey, "Bearer " + realKey}},
			wantErrs: []string{`header "Authorization" appears 2 times, want once`}},
		{name: "wrong", header: map[string][]string{"Authorization": {"Bearer sk-other-SECRET"}},
			wantErrs: []string{`header "Authorization" is not "Bearer " followed by the real API key`}},
		{name: "forbidden", header: map[string][]string{"Api-Key": {"whatever"}, "X-Api-Key": {realKey}},
			wantErrs: []string{`header "X-Api-Key" must not be sent to OpenAI`, `header "Api-Key" must not be sent to OpenAI`}},
		{name: "hardcap keys", header: map[string][]string{"Authorization": {"Bearer hc_SECRET"}, "X-Trace": {"a", "b hc_SECRET", "hc_SECRET"}},
			wantErrs: []string{
				`header "Authorization" is not "Bearer " followed by the real API key`,
				`header "Authorization" contains a hardcap key ("hc_")`,
				`header "X-Trace" contains a hardcap key ("hc_")`,
			}},
		{name: "hc_ in query", target: "/v1/x?key=hc_SECRET", wantErrs: []string{`URL contains a hardcap key ("hc_")`}},
		{name: "escaped hc_ in path", target: "/v1/hc%5FSECRET", wantErrs: []string{`URL contains a hardcap key ("hc_")`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := tt.target
			if target == "" {
				target = "/v1/x"
			}
			r := httptest.NewRequest("POST", target, nil)
			r.Header.Set("Authorization", "Bearer "+realKey)
			for k, v := range tt.header {
				r.Header[k] = v
			}
			var errs []string
			ok := rule.Check(r, func(format string, args ...any) { errs = append(errs, fmt.Sprintf(format, args...)) })
			if ok != (len(tt.wantErrs) == 0) || !slices.Equal(errs, tt.wantErrs) {
				t.Errorf("got %v and errors %q, want %v and %q", ok, errs, len(tt.wantErrs) == 0, tt.wantErrs)
			}
			for _, e := range errs {
				for _, secret := range []string{"SECRET", realKey, "whatever"} {
					if strings.Contains(e, secret) {
						t.Errorf("got error %q, want no header value in it", e)
					}
				}
			}
		})
	}
}

type message struct {
	ID   string `json:"id"`
	Text string `json:"text"`
}

const malformedPrefix = `{"id":"m1","text":`

func TestComplete(t *testing.T) {
	v := message{ID: "m1", Text: "hello there"}
	b, _ := json.Marshal(v)
	whole, malformed := string(b), malformedPrefix+string(b)
	tests := []struct {
		name   string
		faults Faults
		full   string // the body announced by Content-Length
		cut    bool   // only its first half is sent
	}{
		{"plain", Faults{}, whole, false},
		{"malformed", Faults{MalformedJSON: true}, malformed, false},
		{"cut", Faults{CutAfterEvents: 1}, whole, true},
		{"malformed and cut", Faults{CutAfterEvents: 3, MalformedJSON: true}, malformed, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, func(s *fake, w http.ResponseWriter, r *http.Request) {
				s.Complete(w, r, s.Behavior(), v, malformedPrefix)
			})
			s.SetBehavior(tt.faults)
			resp := get(t, context.Background(), s.URL())
			if resp.StatusCode != 200 || resp.Header.Get("Content-Type") != "application/json" || resp.ContentLength != int64(len(tt.full)) {
				t.Errorf("got status %d Content-Type %q Content-Length %d, want 200 application/json %d",
					resp.StatusCode, resp.Header.Get("Content-Type"), resp.ContentLength, len(tt.full))
			}
			want, wantErr := tt.full, error(nil)
			if tt.cut {
				want, wantErr = tt.full[:len(tt.full)/2], io.ErrUnexpectedEOF
			}
			got, err := io.ReadAll(resp.Body)
			if string(got) != want || !errors.Is(err, wantErr) {
				t.Errorf("got body %q (%v), want %q (%v)", got, err, want, wantErr)
			}
		})
	}
}

func TestCompletePanicsOnBadValue(t *testing.T) {
	defer func() {
		if recover() == nil {
			t.Error("got no panic, want one for a value JSON cannot encode")
		}
	}()
	s := start(t, func(*fake, http.ResponseWriter, *http.Request) {})
	s.Complete(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), Faults{}, math.Inf(1), "")
}

// streamEvents is the handler of the stream tests: n events "e0" to
// "e<n-1>", then "end" when Stream allows it.
func streamEvents(n int) func(s *fake, w http.ResponseWriter, r *http.Request) {
	return func(s *fake, w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		http.NewResponseController(w).Flush()
		write := func(i int) error { return WriteEvent(w, fmt.Sprintf("e%d", i), i) }
		if s.Stream(w, r, s.Behavior(), n, write) {
			WriteEvent(w, "end", nil)
		}
	}
}

// readNames reads event names until the stream ends; err is the read
// error that ended it, nil on a clean end.
func readNames(resp *http.Response) (names []string, err error) {
	br := bufio.NewReader(resp.Body)
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && line == "" {
				return names, nil
			}
			return names, err
		}
		if name, ok := strings.CutPrefix(strings.TrimSuffix(line, "\n"), "event: "); ok {
			names = append(names, name)
		}
	}
}

func TestStream(t *testing.T) {
	tests := []struct {
		name      string
		faults    Faults
		wantNames []string
		wantCut   bool
	}{
		{"whole", Faults{MalformedJSON: true}, []string{"e0", "e1", "e2", "end"}, false},
		{"cut mid", Faults{CutAfterEvents: 2}, []string{"e0", "e1"}, true},
		{"cut after all", Faults{CutAfterEvents: 99}, []string{"e0", "e1", "e2"}, true},
		{"cut wins over stall", Faults{CutAfterEvents: 1, StallAfterEvents: 1}, []string{"e0"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := start(t, streamEvents(3))
			s.SetBehavior(tt.faults)
			names, err := readNames(get(t, context.Background(), s.URL()))
			if !slices.Equal(names, tt.wantNames) || (err != nil) != tt.wantCut {
				t.Errorf("got events %q (err %v), want %q and cut %v", names, err, tt.wantNames, tt.wantCut)
			}
		})
	}
}

func TestStreamStopsAtWriteError(t *testing.T) {
	s := start(t, func(*fake, http.ResponseWriter, *http.Request) {})
	var wrote []int
	ok := s.Stream(httptest.NewRecorder(), httptest.NewRequest("GET", "/", nil), Faults{}, 5, func(i int) error {
		wrote = append(wrote, i)
		if i == 1 {
			return errors.New("gone")
		}
		return nil
	})
	if ok || !slices.Equal(wrote, []int{0, 1}) {
		t.Errorf("got %v after writing %v, want false after [0 1]", ok, wrote)
	}
}

func TestStall(t *testing.T) {
	tests := []struct {
		name    string
		handler func(s *fake, w http.ResponseWriter, r *http.Request)
		lines   int
	}{
		{"stream", streamEvents(3), 2 * 3}, // two events of three lines
		{"complete", func(s *fake, w http.ResponseWriter, r *http.Request) {
			s.Complete(w, r, s.Behavior(), message{ID: "m1"}, "")
		}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			returned := make(chan struct{})
			s := start(t, func(s *fake, w http.ResponseWriter, r *http.Request) {
				defer close(returned)
				tt.handler(s, w, r)
			})
			s.SetBehavior(Faults{StallAfterEvents: 2})
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			ExpectStall(t, get(t, ctx, s.URL()).Body, tt.lines, cancel)
			select {
			case <-returned:
			case <-time.After(5 * time.Second):
				t.Fatal("handler still stalled 5s after the client left")
			}
		})
	}
}

func TestExpectStallFails(t *testing.T) {
	tests := []struct {
		name, body string
		lines      int
		want       string
	}{
		{"more data", "a\nb", 1, "got more data"},
		{"too few lines", "a\n", 2, "EOF"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := &RecordingTB{TB: t}
			CatchFatal(func() { ExpectStall(rec, strings.NewReader(tt.body), tt.lines, func() {}) })
			if errs := rec.Errors(); len(errs) != 1 || !strings.Contains(errs[0], tt.want) {
				t.Errorf("got errors %q, want one containing %q", errs, tt.want)
			}
		})
	}
}

func TestStallReleasedOnCleanup(t *testing.T) {
	// A stalled handler whose client is still connected must not hang the
	// server's cleanup: the client body is closed only after it (cleanups
	// run last-registered first).
	returned := make(chan struct{})
	t.Run("stalled", func(t *testing.T) {
		var resp *http.Response
		t.Cleanup(func() {
			if resp != nil {
				resp.Body.Close()
			}
		})
		s := start(t, func(s *fake, w http.ResponseWriter, r *http.Request) {
			defer close(returned)
			w.WriteHeader(http.StatusOK)
			http.NewResponseController(w).Flush()
			s.Stall(r)
		})
		var err error
		if resp, err = http.Get(s.URL()); err != nil {
			t.Fatal(err)
		}
	})
	select {
	case <-returned:
	default:
		t.Error("handler still stalled after the server's cleanup")
	}
}

func TestDropReportsHijackFailure(t *testing.T) {
	rec := &RecordingTB{TB: t}
	s := Start[Faults, string](rec, "fakeserver", realKey, http.NotFoundHandler())
	s.Drop(httptest.NewRecorder()) // a ResponseRecorder cannot be hijacked
	if errs := rec.Errors(); len(errs) != 1 || !strings.HasPrefix(errs[0], "fakeserver: cannot drop the connection: ") {
		t.Errorf("got errors %q, want one about dropping the connection", errs)
	}
}

func TestErrorf(t *testing.T) {
	rec := &RecordingTB{TB: t}
	s := Start[Faults, string](rec, "fakex", realKey, http.NotFoundHandler())
	s.Errorf("call %d: %s", 3, "oops")
	if got := rec.Errors(); !slices.Equal(got, []string{"fakex: call 3: oops"}) {
		t.Errorf("got errors %q, want [fakex: call 3: oops]", got)
	}
}

func TestWriteEvent(t *testing.T) {
	w := httptest.NewRecorder()
	if err := WriteEvent(w, "message_stop", map[string]string{"type": "message_stop"}); err != nil {
		t.Fatal(err)
	}
	if got, want := w.Body.String(), "event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n"; got != want || !w.Flushed {
		t.Errorf("got %q flushed %v, want %q flushed", got, w.Flushed, want)
	}
	w = httptest.NewRecorder()
	if err := WriteEvent(w, "x", math.NaN()); err == nil || w.Body.Len() != 0 {
		t.Errorf("got error %v and %d bytes, want an encoding error and nothing written", err, w.Body.Len())
	}
}

func TestTokens(t *testing.T) {
	tests := []struct {
		prefix string
		n      int64
		want   []string
	}{
		{"w", 0, []string{}},
		{"w", 1, []string{"w1"}},
		{"t", 3, []string{"t1", " t2", " t3"}},
	}
	for _, tt := range tests {
		if got := Tokens(tt.prefix, tt.n); !slices.Equal(got, tt.want) {
			t.Errorf("Tokens(%q, %d) = %q, want %q", tt.prefix, tt.n, got, tt.want)
		}
	}
}
