package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/budget"
)

// testSecret is a Standard Webhooks secret; testKey its decoded key.
var (
	testKey    = []byte("a key of thirty-two bytes, or so")
	testSecret = "whsec_" + base64.StdEncoding.EncodeToString(testKey)
)

// receiver is a JSON webhook receiver that checks each request the way a
// Standard Webhooks library does, from scratch, and fails on request.
type receiver struct {
	t   *testing.T
	key []byte
	// fail says how to answer attempt n (from 1) of id: "" accepts,
	// "500" fails with a status, "close" drops the connection.
	fail func(id string, n int) string

	mu       sync.Mutex
	got      map[string]int
	accepted map[string]int
	failed   map[string]int
	inflight map[string]bool
	bodies   map[string][]byte
}

func newReceiver(t *testing.T, key []byte, fail func(string, int) string) *receiver {
	if fail == nil {
		fail = func(string, int) string { return "" }
	}
	return &receiver{t: t, key: key, fail: fail, got: map[string]int{}, accepted: map[string]int{},
		failed: map[string]int{}, inflight: map[string]bool{}, bodies: map[string][]byte{}}
}

func (rc *receiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		rc.t.Errorf("reading body: %v", err)
		return
	}
	if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" || r.Header.Get("User-Agent") != "hardcap" {
		rc.t.Errorf("got %s %q %q, want POST application/json hardcap", r.Method, r.Header.Get("Content-Type"), r.Header.Get("User-Agent"))
	}
	var p struct {
		ID      string          `json:"id"`
		Type    string          `json:"type"`
		Time    time.Time       `json:"time"`
		Scope   alert.Scope     `json:"scope"`
		Spent   string          `json:"spent_usd"`
		Message string          `json:"message"`
		Action  string          `json:"action"`
		Extra   json.RawMessage `json:"details"`
	}
	if err := json.Unmarshal(b, &p); err != nil || p.ID == "" || p.Type == "" || p.Time.IsZero() || p.Scope.Kind == "" || p.Spent == "" || p.Message == "" || p.Action == "" {
		rc.t.Errorf("payload %s: missing fields (%v)", b, err)
	}
	id, ts := r.Header.Get("webhook-id"), r.Header.Get("webhook-timestamp")
	if id != p.ID {
		rc.t.Errorf("webhook-id %q, want the payload's id %q", id, p.ID)
	}
	if _, err := strconv.ParseInt(ts, 10, 64); err != nil {
		rc.t.Errorf("webhook-timestamp %q: %v", ts, err)
	}
	sig := r.Header.Get("webhook-signature")
	if rc.key != nil {
		m := hmac.New(sha256.New, rc.key)
		m.Write([]byte(id + "." + ts + "." + string(b)))
		if want := "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil)); sig != want {
			rc.t.Errorf("webhook-signature %q, want %q", sig, want)
		}
	} else if sig != "" {
		rc.t.Errorf("unsigned webhook got signature %q", sig)
	}
	key := r.URL.Path + " " + id
	rc.mu.Lock()
	if rc.inflight[key] {
		rc.t.Errorf("%s: two attempts at once", key)
	}
	rc.inflight[key] = true
	rc.got[key]++
	how := rc.fail(key, rc.got[key])
	switch how {
	case "":
		rc.accepted[key]++
		rc.bodies[key] = b
	default:
		rc.failed[key]++
	}
	rc.mu.Unlock()
	// The attempt ends here for the check: the client may retry as soon
	// as the answer (or the closed connection) reaches it, before this
	// handler returns.
	rc.mu.Lock()
	delete(rc.inflight, key)
	rc.mu.Unlock()
	switch how {
	case "":
		w.WriteHeader(http.StatusNoContent)
	case "close":
		conn, _, err := http.NewResponseController(w).Hijack()
		if err == nil {
			_ = conn.Close()
		}
	default:
		w.WriteHeader(http.StatusInternalServerError)
	}
}

func (rc *receiver) count(m map[string]int, k string) int {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return m[k]
}

// TestRun_RedeliversWithBackoff: a receiver that fails the first attempts
// gets the alert again under the same id, the waits doubling to the cap,
// and the delivery ends Delivered.
func TestRun_RedeliversWithBackoff(t *testing.T) {
	for _, how := range []string{"500", "close"} {
		t.Run(how, func(t *testing.T) {
			rc := newReceiver(t, testKey, func(_ string, n int) string {
				if n <= 3 {
					return how
				}
				return ""
			})
			srv := httptest.NewServer(rc)
			defer srv.Close()
			lim := budget.Money(10 * budget.NanoPerUSD)
			th := budget.Fraction(800_000)
			a := testAlert("al_1", alert.TypeThreshold, time.Now())
			a.Limit, a.Threshold, a.Spent, a.Window = &lim, &th, 8*budget.NanoPerUSD, "2026-12"
			ob := newOutbox(alert.Entry{Alert: a})
			log, buf := newLog()
			d := mustNew(t, Options{Outbox: ob, Webhooks: []Webhook{{Name: "ops", URL: srv.URL + "/hook?token=q", Secret: testSecret}},
				MinBackoff: 10 * time.Millisecond, MaxBackoff: 25 * time.Millisecond, Poll: 2 * time.Millisecond, Log: log})
			start(t, d)
			waitFor(t, "the alert done", func() bool { return ob.isDone("al_1") })

			h := ob.history("al_1", "ops")
			wantWait := []time.Duration{10 * time.Millisecond, 20 * time.Millisecond, 25 * time.Millisecond}
			if len(h) != 4 {
				t.Fatalf("got %d deliveries recorded, want 4: %+v", len(h), h)
			}
			for i, del := range h[:3] {
				if del.State != alert.Pending || del.Attempts != i+1 || del.Next.Sub(del.Last) != wantWait[i] || del.Error == "" {
					t.Errorf("delivery %d: got %+v, want pending attempt %d next after %v", i+1, del, i+1, wantWait[i])
				}
			}
			if last := h[3]; last.State != alert.Delivered || last.Attempts != 4 || last.Error != "" {
				t.Errorf("last delivery: got %+v, want delivered attempt 4", last)
			}
			if got := rc.count(rc.got, "/hook al_1"); got != 4 {
				t.Errorf("receiver got %d requests of al_1, want 4", got)
			}
			want, _ := json.Marshal(a)
			if got := rc.bodies["/hook al_1"]; string(got) != string(want) {
				t.Errorf("body %s, want json.Marshal of the alert %s", got, want)
			}
			checkNoCredentials(t, buf.String(), srv.URL, "token=q", testSecret, base64.StdEncoding.EncodeToString(testKey))
			if !strings.Contains(buf.String(), `"attempt":3`) || !strings.Contains(buf.String(), `"channel":"ops"`) {
				t.Errorf("log lacks the failed attempts: %s", buf.String())
			}
			for _, del := range h {
				checkNoCredentials(t, del.Error, srv.URL, "token=q", testSecret)
			}
		})
	}
}

// checkNoCredentials fails if text holds any of secrets.
func checkNoCredentials(t *testing.T, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(text, s) {
			t.Errorf("%q holds a credential %q", text, s)
		}
	}
}

// TestRun_FailedAfterMaxAge: the last attempt is due when the alert is
// MaxAge old, and its failure is final.
func TestRun_FailedAfterMaxAge(t *testing.T) {
	rc := newReceiver(t, nil, func(string, int) string { return "500" })
	srv := httptest.NewServer(rc)
	defer srv.Close()
	raised := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: raised.Add(alert.MaxAge - time.Minute)}
	ob := newOutbox(alert.Entry{Alert: testAlert("al_old", alert.TypeNewIP, raised)})
	d := mustNew(t, Options{Outbox: ob, Webhooks: []Webhook{{URL: srv.URL}}, Now: clock.Now,
		MinBackoff: time.Hour, Poll: 2 * time.Millisecond})
	start(t, d)
	waitFor(t, "the first attempt", func() bool { return len(ob.history("al_old", "webhook-1")) == 1 })
	first := ob.history("al_old", "webhook-1")[0]
	if deadline := raised.Add(alert.MaxAge); first.State != alert.Pending || !first.Next.Equal(deadline) || first.Error != "status 500" {
		t.Fatalf("got %+v, want pending with next at the deadline %v and error status 500", first, deadline)
	}
	clock.Advance(time.Minute)
	waitFor(t, "the alert done", func() bool { return ob.isDone("al_old") })
	h := ob.history("al_old", "webhook-1")
	if len(h) != 2 || h[1].State != alert.Failed || h[1].Attempts != 2 {
		t.Fatalf("got %+v, want a second, failed attempt", h)
	}
}

// TestRun_DeadChannelDelaysNoOther: a receiver that never answers holds
// only its own channel; another delivers meanwhile.
func TestRun_DeadChannelDelaysNoOther(t *testing.T) {
	release := make(chan struct{})
	started := make(chan struct{}, 100)
	dead := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		started <- struct{}{}
		select {
		case <-release:
		case <-r.Context().Done():
		}
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer dead.Close()
	defer close(release)
	rc := newReceiver(t, nil, nil)
	healthy := httptest.NewServer(rc)
	defer healthy.Close()
	ob := newOutbox()
	for i := range 5 {
		ob.add(alert.Entry{Alert: testAlert(fmt.Sprintf("al_%d", i), alert.TypeSpendSpike, time.Now())})
	}
	d := mustNew(t, Options{Outbox: ob, Webhooks: []Webhook{{Name: "dead", URL: dead.URL}, {Name: "healthy", URL: healthy.URL}},
		Client: &http.Client{Timeout: 30 * time.Second}, Poll: 2 * time.Millisecond})
	start(t, d)
	<-started
	waitFor(t, "the healthy channel", func() bool {
		for i := range 5 {
			if del, _ := ob.delivery(fmt.Sprintf("al_%d", i), "healthy"); del.State != alert.Delivered {
				return false
			}
		}
		return true
	})
	for i := range 5 {
		if del, ok := ob.delivery(fmt.Sprintf("al_%d", i), "dead"); ok {
			t.Errorf("al_%d: the dead channel recorded %+v while its first attempt hangs", i, del)
		}
	}
}

// TestRun_NoAlertLost: 500 alerts on two channels to a receiver failing
// at random all arrive, each accepted once, and the deliveries recorded
// match the requests received.
func TestRun_NoAlertLost(t *testing.T) {
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(1, 2))
	rc := newReceiver(t, testKey, func(string, int) string {
		mu.Lock()
		defer mu.Unlock()
		switch r := rng.IntN(10); {
		case r < 2:
			return "500"
		case r < 3:
			return "close"
		}
		return ""
	})
	srv := httptest.NewServer(rc)
	defer srv.Close()
	ob := newOutbox()
	const n = 500
	now := time.Now()
	for i := range n {
		ob.add(alert.Entry{Alert: testAlert(fmt.Sprintf("al_%03d", i), alert.TypeNewModel, now)})
	}
	log, buf := newLog()
	d := mustNew(t, Options{Outbox: ob, Webhooks: []Webhook{
		{Name: "a", URL: srv.URL + "/a", Secret: testSecret}, {Name: "b", URL: srv.URL + "/b", Secret: testSecret}},
		MinBackoff: time.Millisecond, MaxBackoff: 4 * time.Millisecond, Poll: 2 * time.Millisecond, Log: log})
	start(t, d)
	waitFor(t, "every alert done", ob.allDone)

	distinct := 0
	for i := range n {
		id := fmt.Sprintf("al_%03d", i)
		for _, ch := range []string{"a", "b"} {
			k := "/" + ch + " " + id
			got, acc, failed := rc.count(rc.got, k), rc.count(rc.accepted, k), rc.count(rc.failed, k)
			if acc != 1 {
				t.Errorf("%s: accepted %d times, want 1", k, acc)
			}
			if got > 1 && failed == 0 {
				t.Errorf("%s: received %d times with no failure", k, got)
			}
			del, _ := ob.delivery(id, ch)
			if del.State != alert.Delivered || del.Attempts < got {
				t.Errorf("%s: recorded %+v after %d requests", k, del, got)
			}
			if acc > 0 && ch == "a" {
				distinct++
			}
		}
	}
	if distinct != n {
		t.Errorf("got %d distinct ids, want %d", distinct, n)
	}
	checkNoCredentials(t, buf.String(), srv.URL, testSecret)
}

// TestRun_RedirectIsAFailure: a 3xx is not followed (it would send the
// alert elsewhere) and counts as a failed attempt.
func TestRun_RedirectIsAFailure(t *testing.T) {
	other := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		t.Error("the redirect was followed")
	}))
	defer other.Close()
	srv := httptest.NewServer(http.RedirectHandler(other.URL, http.StatusTemporaryRedirect))
	defer srv.Close()
	ob := newOutbox()
	d := mustNew(t, Options{Outbox: ob, Webhooks: []Webhook{{URL: srv.URL}}})
	res := d.DeliverNow(context.Background(), alert.Entry{Alert: testAlert("al_r", alert.TypeNewIP, time.Now())})
	if len(res) != 1 || res[0].OK || res[0].Status != http.StatusTemporaryRedirect || res[0].Error != "status 307" {
		t.Fatalf("got %+v, want one failed result with status 307", res)
	}
	if del, _ := ob.delivery("al_r", "webhook-1"); del.State != alert.Pending || del.Attempts != 1 {
		t.Errorf("recorded %+v, want pending after attempt 1", del)
	}
}

// TestDeliverNow: a test alert gets one attempt per channel, recorded
// final whatever its outcome, and the errors say only the cause.
func TestDeliverNow(t *testing.T) {
	rc := newReceiver(t, nil, nil)
	ok := httptest.NewServer(rc)
	defer ok.Close()
	refused := httptest.NewServer(http.NotFoundHandler())
	refusedURL := refused.URL + "/hook/secret-path"
	refused.Close() // nothing listens on its address now
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	defer failing.Close()
	ob := newOutbox()
	log, buf := newLog()
	d := mustNew(t, Options{Outbox: ob, Log: log, Webhooks: []Webhook{
		{Name: "ok", URL: ok.URL}, {Name: "refused", URL: refusedURL}, {Name: "failing", URL: failing.URL}}})
	e := alert.Entry{Alert: testAlert("al_test", alert.TypeTest, time.Now()), Channels: []string{"ok", "refused", "failing", "gone"}}
	ob.add(e)
	res := d.DeliverNow(context.Background(), e)
	want := []Result{
		{Channel: "ok", OK: true, Status: http.StatusNoContent},
		{Channel: "refused", Error: "webhook request failed: Post: connection refused"},
		{Channel: "failing", Status: http.StatusBadGateway, Error: "status 502"},
		{Channel: "gone", Error: ErrNoChannel.Error()},
	}
	if fmt.Sprint(res) != fmt.Sprint(want) {
		t.Fatalf("got %+v, want %+v", res, want)
	}
	for _, ch := range []string{"refused", "failing", "gone"} {
		if del, _ := ob.delivery("al_test", ch); del.State != alert.Failed || del.Attempts != 1 {
			t.Errorf("%s: recorded %+v, want failed after one attempt", ch, del)
		}
	}
	if !ob.isDone("al_test") {
		t.Error("the test alert is not done")
	}
	checkNoCredentials(t, buf.String(), refusedURL, "secret-path", strings.TrimPrefix(refused.URL, "http://"))
}

// TestDeliverNow_WhileRunning: DeliverNow and Run never attempt one alert
// on one channel at once (the receiver checks), and all is recorded.
func TestDeliverNow_WhileRunning(t *testing.T) {
	rc := newReceiver(t, nil, func(_ string, n int) string {
		time.Sleep(time.Millisecond)
		if n%2 == 1 {
			return "500"
		}
		return ""
	})
	srv := httptest.NewServer(rc)
	defer srv.Close()
	ob := newOutbox()
	d := mustNew(t, Options{Outbox: ob, Webhooks: []Webhook{{URL: srv.URL}},
		MinBackoff: time.Millisecond, MaxBackoff: time.Millisecond, Poll: time.Millisecond})
	start(t, d)
	var wg sync.WaitGroup
	for i := range 20 {
		e := alert.Entry{Alert: testAlert(fmt.Sprintf("al_%d", i), alert.TypeNewIP, time.Now())}
		ob.add(e)
		d.Wake()
		wg.Go(func() { d.DeliverNow(context.Background(), e) })
	}
	wg.Wait()
	waitFor(t, "every alert done", ob.allDone)
}

// TestRun_Wake: an alert added after a pass goes out on Wake, not at the
// next poll an hour away.
func TestRun_Wake(t *testing.T) {
	rc := newReceiver(t, nil, nil)
	srv := newLoopbackServer(t, rc)
	ob := newOutbox()
	d := mustNew(t, Options{Outbox: ob, Webhooks: []Webhook{{URL: srv}}, Poll: time.Hour})
	start(t, d)
	// Wake twice before and after the add: it never blocks.
	d.Wake()
	d.Wake()
	ob.add(alert.Entry{Alert: testAlert("al_w", alert.TypeNewIP, time.Now())})
	d.Wake()
	waitFor(t, "the woken delivery", func() bool { return ob.isDone("al_w") })
}

// TestRun_EndsAfterAttemptsInFlight: Run's end waits for the attempt
// under way, which is recorded as it ended.
func TestRun_EndsAfterAttemptsInFlight(t *testing.T) {
	started, release := make(chan struct{}), make(chan struct{})
	var once sync.Once
	srv := newLoopbackServer(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		once.Do(func() { close(started) })
		<-release
		w.WriteHeader(http.StatusOK)
	}))
	ob := newOutbox(alert.Entry{Alert: testAlert("al_f", alert.TypeNewIP, time.Now())})
	d := mustNew(t, Options{Outbox: ob, Webhooks: []Webhook{{URL: srv}}})
	ctx, cancel := context.WithCancel(context.Background())
	ended := make(chan struct{})
	go func() {
		d.Run(ctx)
		close(ended)
	}()
	<-started
	cancel()
	close(release)
	<-ended
	if del, _ := ob.delivery("al_f", "webhook-1"); del.State != alert.Delivered || !ob.isDone("al_f") {
		t.Errorf("recorded %+v, want delivered and done", del)
	}
}

// TestRun_OldEntriesDoNotHideNewOnes: more than a page of entries waiting
// on a dead channel's backoff does not keep a newer entry from a healthy
// channel.
func TestRun_OldEntriesDoNotHideNewOnes(t *testing.T) {
	rc := newReceiver(t, nil, func(string, int) string { return "" })
	srv := httptest.NewServer(rc)
	defer srv.Close()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	clock := &fakeClock{t: now}
	ob := newOutbox()
	for i := range batch + 5 {
		id := fmt.Sprintf("al_x_%d", i+1)
		ob.add(alert.Entry{Alert: testAlert(id, alert.TypeNewIP, now), Deliveries: []alert.Delivery{
			{Channel: "healthy", State: alert.Delivered, Attempts: 1, Last: now},
			{Channel: "dead", State: alert.Pending, Attempts: 3, Last: now, Next: now.Add(time.Hour)},
		}})
	}
	ob.add(alert.Entry{Alert: testAlert("al_x_new", alert.TypeNewIP, now)})
	d := mustNew(t, Options{Outbox: ob, Now: clock.Now, Poll: 2 * time.Millisecond,
		Webhooks: []Webhook{{Name: "healthy", URL: srv.URL}, {Name: "dead", URL: "http://127.0.0.1:1/"}}})
	start(t, d)
	waitFor(t, "the newest alert on the healthy channel", func() bool {
		del, ok := ob.delivery("al_x_new", "healthy")
		return ok && del.State == alert.Delivered
	})
}

// TestRun_RoutedNowhereIsDone: an alert no channel gets (an empty
// default) leaves the outbox.
func TestRun_RoutedNowhereIsDone(t *testing.T) {
	ob := newOutbox(alert.Entry{Alert: testAlert("al_none", alert.TypeNewIP, time.Now())})
	d := mustNew(t, Options{Outbox: ob, Default: []string{}, Poll: 2 * time.Millisecond,
		Webhooks: []Webhook{{Name: "ops", URL: "http://127.0.0.1:1/"}}})
	start(t, d)
	waitFor(t, "the unrouted alert done", func() bool { return ob.isDone("al_none") })
	if h := ob.history("al_none", "ops"); len(h) != 0 {
		t.Fatalf("an unrouted alert was attempted: %+v", h)
	}
}

// TestRun_StaleAlertNotSent: an alert older than MaxAge that a channel
// never tried (the channel was added later) is marked failed there, not
// sent a day late.
func TestRun_StaleAlertNotSent(t *testing.T) {
	rc := newReceiver(t, nil, func(string, int) string { return "" })
	srv := httptest.NewServer(rc)
	defer srv.Close()
	now := time.Date(2026, 12, 8, 10, 0, 0, 0, time.UTC)
	ob := newOutbox(alert.Entry{Alert: testAlert("al_week", alert.TypeNewIP, now.Add(-7*24*time.Hour))})
	d := mustNew(t, Options{Outbox: ob, Now: func() time.Time { return now }, Poll: 2 * time.Millisecond,
		Webhooks: []Webhook{{Name: "ops", URL: srv.URL}}})
	start(t, d)
	waitFor(t, "the stale alert done", func() bool { return ob.isDone("al_week") })
	del, _ := ob.delivery("al_week", "ops")
	if del.State != alert.Failed || del.Error != ErrTooOld.Error() || rc.count(rc.got, "/ al_week") != 0 {
		t.Fatalf("got %+v, sent %d times", del, rc.count(rc.got, "/ al_week"))
	}
}

// TestRun_LastAttemptMissedIsNotSent: hardcap was down when an alert's
// last attempt was due; hours later it is marked failed, not sent.
func TestRun_LastAttemptMissedIsNotSent(t *testing.T) {
	rc := newReceiver(t, nil, func(string, int) string { return "" })
	srv := httptest.NewServer(rc)
	defer srv.Close()
	raised := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	deadline := raised.Add(alert.MaxAge)
	ob := newOutbox(alert.Entry{Alert: testAlert("al_late", alert.TypeNewIP, raised), Deliveries: []alert.Delivery{
		{Channel: "ops", State: alert.Pending, Attempts: 9, Last: deadline.Add(-time.Hour), Next: deadline},
	}})
	d := mustNew(t, Options{Outbox: ob, Now: func() time.Time { return deadline.Add(2 * time.Hour) }, Poll: 2 * time.Millisecond,
		Webhooks: []Webhook{{Name: "ops", URL: srv.URL}}})
	start(t, d)
	waitFor(t, "the late alert done", func() bool { return ob.isDone("al_late") })
	if del, _ := ob.delivery("al_late", "ops"); del.State != alert.Failed || rc.count(rc.got, "/ al_late") != 0 {
		t.Fatalf("got %+v, sent %d times", del, rc.count(rc.got, "/ al_late"))
	}
}
