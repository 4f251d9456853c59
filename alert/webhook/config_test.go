package webhook

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/alert"
)

func TestNew_Invalid(t *testing.T) {
	const secretURL = "https://hooks.example.org/T0/sekrit-path?token=sekrit-query"
	ob := newOutbox()
	for _, tc := range []struct {
		name string
		opts Options
		want error
		text string
	}{
		{"no outbox", Options{}, ErrNoOutbox, ""},
		{"not a URL", Options{Outbox: ob, Webhooks: []Webhook{{URL: "https://[::1/sekrit-path"}}}, ErrURL, "webhook 1: URL does not parse"},
		{"empty URL", Options{Outbox: ob, Webhooks: []Webhook{{Name: "ops"}}}, ErrURL, "webhook 1 (name ops): URL does not parse"},
		{"ftp", Options{Outbox: ob, Webhooks: []Webhook{{URL: "ftp://example.org/sekrit-path"}}}, ErrURL, "URL is not http or https"},
		{"plain http", Options{Outbox: ob, Webhooks: []Webhook{{URL: secretURL}, {Name: "ops", URL: "http://hooks.example.org/sekrit-path"}}},
			ErrURL, "webhook 2 (name ops): URL is not https"},
		{"no host", Options{Outbox: ob, Webhooks: []Webhook{{URL: "https:///sekrit-path"}}}, ErrURL, "URL has no host"},
		{"format", Options{Outbox: ob, Webhooks: []Webhook{{URL: secretURL, Format: "teams"}}}, ErrFormat, `"teams"`},
		{"secret", Options{Outbox: ob, Webhooks: []Webhook{{URL: secretURL, Secret: "whsec_sekrit!!"}}}, ErrSecret, "not base64"},
		{"duplicate", Options{Outbox: ob, Webhooks: []Webhook{{Name: "ops", URL: secretURL}, {Name: "ops", URL: secretURL}}},
			ErrChannelName, `"ops"`},
		{"duplicate across kinds", Options{Outbox: ob, Webhooks: []Webhook{{Name: "ops", URL: secretURL}},
			SMTP: []SMTP{{Name: "ops", Host: "mail.example.org", From: "a@example.org", To: []string{"b@example.org"}}}}, ErrChannelName, `"ops"`},
		{"smtp host", Options{Outbox: ob, SMTP: []SMTP{{From: "a@example.org", To: []string{"b@example.org"}}}}, ErrSMTPConfig, "smtp 1: host"},
		{"smtp from", Options{Outbox: ob, SMTP: []SMTP{{Host: "mail.example.org", To: []string{"b@example.org"}}}}, ErrSMTPConfig, "from"},
		{"smtp to", Options{Outbox: ob, SMTP: []SMTP{{Host: "mail.example.org", From: "a@example.org"}}}, ErrSMTPConfig, "to is not set"},
		{"smtp bad to", Options{Outbox: ob, SMTP: []SMTP{{Host: "mail.example.org", From: "a@example.org", To: []string{"b@example.org", "x\r\nBcc: y"}}}},
			ErrSMTPConfig, "to 2"},
		{"smtp starttls", Options{Outbox: ob, SMTP: []SMTP{{Host: "mail.example.org", From: "a@example.org", To: []string{"b@example.org"}, StartTLS: "maybe"}}},
			ErrSMTPConfig, "starttls"},
		{"smtp password in clear", Options{Outbox: ob, SMTP: []SMTP{{Host: "mail.example.org", From: "a@example.org", To: []string{"b@example.org"},
			StartTLS: "off", Username: "u", Password: "sekrit-pass"}}}, ErrSMTPConfig, "username"},
		{"route channel", Options{Outbox: ob, Webhooks: []Webhook{{URL: secretURL}}, Routes: []Route{{Channels: []string{"nope"}}}}, ErrRoute, `"nope"`},
		{"route no channel", Options{Outbox: ob, Webhooks: []Webhook{{URL: secretURL}}, Routes: []Route{{Types: []string{"test"}}}}, ErrRoute, "route 1 names no channel"},
		{"route type", Options{Outbox: ob, Webhooks: []Webhook{{URL: secretURL}}, Routes: []Route{{Types: []string{"budget.treshold"}, Channels: []string{"webhook-1"}}}},
			ErrRoute, "budget.treshold"},
		{"default channel", Options{Outbox: ob, Webhooks: []Webhook{{URL: secretURL}}, Default: []string{"nope"}}, ErrRoute, "the default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(tc.opts)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
			if !strings.Contains(err.Error(), tc.text) {
				t.Errorf("error %q does not say %q", err, tc.text)
			}
			checkNoCredentials(t, err.Error(), "sekrit")
		})
	}
}

func TestNew_Names(t *testing.T) {
	d := mustNew(t, Options{Outbox: newOutbox(),
		Webhooks: []Webhook{
			{URL: "https://example.org/a", Secret: "cGxhaW4gdGV4dCBrZXk="},
			{URL: "https://hooks.slack.com/services/x"},
			{URL: "http://localhost:9000/b"},
			{URL: "https://discord.com/api/webhooks/1/x"},
			{Name: "webhook-2", URL: "http://[::1]:9000/c"},
			{URL: "https://example.org/d", Format: FormatSlack},
		},
		SMTP: []SMTP{{Host: "mail.example.org", From: "a@example.org", To: []string{"b@example.org"}, Password: "sekrit"}},
	})
	want := []ChannelInfo{
		{Name: "webhook-1", Kind: "json", Signed: true},
		{Name: "slack-1", Kind: "slack"},
		{Name: "webhook-3", Kind: "json"}, // webhook-2 is taken by a later channel
		{Name: "discord-1", Kind: "discord"},
		{Name: "webhook-2", Kind: "json"},
		{Name: "slack-2", Kind: "slack"},
		{Name: "email-1", Kind: "email"},
	}
	if got := d.Channels(); !slices.Equal(got, want) {
		t.Errorf("got %+v, want %+v", got, want)
	}
}

func TestRoute(t *testing.T) {
	hook := func(name string) Webhook { return Webhook{Name: name, URL: "https://example.org/" + name} }
	opts := Options{Outbox: newOutbox(), Webhooks: []Webhook{hook("ops"), hook("web"), hook("sec"), hook("all")},
		Routes: []Route{
			{Projects: []string{"web"}, Types: []string{"budget.*"}, Channels: []string{"web"}},
			{Types: []string{"anomaly.new_ip", "anomaly.key_rejected"}, Channels: []string{"sec", "ops"}},
			{Projects: []string{"batch"}, Channels: []string{"ops"}},
		}}
	a := func(project string, typ alert.Type) alert.Alert {
		return alert.Alert{ID: "al", Type: typ, Scope: alert.Scope{Kind: "project", Project: project}}
	}
	cases := []struct {
		name string
		a    alert.Alert
		want []string
	}{
		{"project and prefix", a("web", alert.TypeThreshold), []string{"web"}},
		{"prefix, other project", a("api", alert.TypeExhausted), nil},
		{"type list", a("web", alert.TypeNewIP), []string{"sec", "ops"}},
		{"project only", a("batch", alert.TypeSpendSpike), []string{"ops"}},
		{"first route wins", a("web", alert.TypeExhausted), []string{"web"}},
		{"no route", a("api", alert.TypeNewModel), nil},
	}
	for _, dflt := range [][]string{nil, {"all"}} {
		opts.Default = dflt
		d := mustNew(t, opts)
		for _, tc := range cases {
			want := tc.want
			if want == nil {
				want = dflt
				if dflt == nil {
					want = []string{"ops", "web", "sec", "all"}
				}
			}
			if got := d.Route(tc.a); !slices.Equal(got, want) {
				t.Errorf("default %v, %s: got %v, want %v", dflt, tc.name, got, want)
			}
		}
		e := alert.Entry{Alert: a("web", alert.TypeThreshold), Channels: []string{"sec", "sec"}}
		if got := d.channelsOf(e); !slices.Equal(uniq(got), []string{"sec"}) {
			t.Errorf("an entry's own channels: got %v, want [sec]", got)
		}
	}
}

// TestRun_EntryChannels: an entry's own channels override the routes.
func TestRun_EntryChannels(t *testing.T) {
	rc := newReceiver(t, nil, nil)
	srv := newLoopbackServer(t, rc)
	ob := newOutbox(alert.Entry{Alert: testAlert("al_own", alert.TypeNewIP, time.Now()), Channels: []string{"b"}},
		alert.Entry{Alert: testAlert("al_routed", alert.TypeNewIP, time.Now())})
	d := mustNew(t, Options{Outbox: ob, Poll: 2 * time.Millisecond,
		Webhooks: []Webhook{{Name: "a", URL: srv + "/a"}, {Name: "b", URL: srv + "/b"}},
		Routes:   []Route{{Types: []string{"anomaly.*"}, Channels: []string{"a"}}}})
	start(t, d)
	waitFor(t, "both alerts done", ob.allDone)
	for k, want := range map[string]int{"/b al_own": 1, "/a al_own": 0, "/a al_routed": 1, "/b al_routed": 0} {
		if got := rc.count(rc.accepted, k); got != want {
			t.Errorf("%s: got %d, want %d", k, got, want)
		}
	}
}
