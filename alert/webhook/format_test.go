package webhook

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/budget"
)

func TestChooseFormat(t *testing.T) {
	for _, tc := range []struct {
		url  string
		want Format
	}{
		{"https://hooks.slack.com/services/T0/B0/xyz", FormatSlack},
		{"https://HOOKS.SLACK.COM./services/T0/B0/xyz", FormatSlack},
		{"https://discord.com/api/webhooks/1/abc", FormatDiscord},
		{"https://www.discord.com/api/webhooks/1/abc", FormatDiscord},
		{"https://discordapp.com/api/webhooks/1/abc", FormatDiscord},
		{"https://www.discordapp.com/api/webhooks/1/abc", FormatDiscord},
		{"https://slack.com.example.org/hook", FormatJSON},
		{"https://notdiscord.com/api/webhooks/1", FormatJSON},
		{"http://127.0.0.1:8080/alerts", FormatJSON},
	} {
		u, err := url.Parse(tc.url)
		if err != nil {
			t.Fatal(err)
		}
		if got := chooseFormat(u); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.url, got, tc.want)
		}
	}
}

// hostileAlert is an overshoot whose text came from a client.
func hostileAlert() alert.Alert {
	lim := budget.Money(5 * budget.NanoPerUSD)
	a := testAlert("al_x", alert.TypeOvershoot, time.Date(2026, 12, 2, 9, 30, 0, 0, time.UTC))
	a.Scope = alert.Scope{Kind: "token", Project: "web", TokenID: "tok_1"}
	a.Message = "model <script>alert(1)</script> & co @everyone @here spent above the limit"
	a.Spent, a.Limit, a.Window = 6*budget.NanoPerUSD, &lim, "2026-12"
	a.Action = alert.ActionFreeze
	a.Details = map[string]string{"model": "<b>gpt</b>", "ip": "10.0.0.1"}
	return a
}

// capture is a receiver that keeps the last body.
type capture struct {
	mu   sync.Mutex
	body []byte
	path string
}

func (c *capture) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b, _ := io.ReadAll(r.Body)
	c.mu.Lock()
	c.body, c.path = b, r.URL.Path
	c.mu.Unlock()
	_, _ = io.WriteString(w, "ok")
}

func (c *capture) last(t *testing.T, into any) string {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := json.Unmarshal(c.body, into); err != nil {
		t.Fatalf("body %s: %v", c.body, err)
	}
	return string(c.body)
}

// toServer is a transport that sends every request to srv, so that a
// real Slack or Discord URL reaches the test's receiver.
type toServer struct{ srv *httptest.Server }

func (ts toServer) RoundTrip(r *http.Request) (*http.Response, error) {
	u, _ := url.Parse(ts.srv.URL)
	r = r.Clone(r.Context())
	r.URL.Scheme, r.URL.Host = u.Scheme, u.Host
	return http.DefaultTransport.RoundTrip(r)
}

func TestSlackBody(t *testing.T) {
	c := &capture{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	ob := newOutbox()
	// The format comes from the host: no Format is given.
	d := mustNew(t, Options{Outbox: ob, Webhooks: []Webhook{{URL: "https://hooks.slack.com/services/T0/B0/sekrit"}},
		Client: &http.Client{Transport: toServer{srv}}})
	if got := d.Channels(); len(got) != 1 || got[0] != (ChannelInfo{Name: "slack-1", Kind: "slack"}) {
		t.Fatalf("Channels: got %+v, want slack-1 of kind slack", got)
	}
	res := d.DeliverNow(context.Background(), alert.Entry{Alert: hostileAlert()})
	if !res[0].OK {
		t.Fatalf("got %+v", res)
	}
	var m struct {
		Text   string `json:"text"`
		Blocks []struct {
			Type string `json:"type"`
			Text *struct {
				Type, Text string
			} `json:"text"`
			Fields []struct {
				Type, Text string
			} `json:"fields"`
			Elements []struct {
				Type, Text string
			} `json:"elements"`
		} `json:"blocks"`
	}
	raw := c.last(t, &m)
	if c.path != "/services/T0/B0/sekrit" {
		t.Errorf("path %q", c.path)
	}
	if strings.Contains(raw, "<script>") || strings.Contains(raw, "<b>") {
		t.Errorf("unescaped markup in %s", raw)
	}
	wantMsg := "model &lt;script&gt;alert(1)&lt;/script&gt; &amp; co @everyone @here spent above the limit"
	if m.Text != wantMsg {
		t.Errorf("text %q, want %q", m.Text, wantMsg)
	}
	if len(m.Blocks) != 3 {
		t.Fatalf("got %d blocks, want header, section, context: %s", len(m.Blocks), raw)
	}
	if b := m.Blocks[0]; b.Type != "header" || b.Text.Type != "plain_text" || b.Text.Text != "Spend above the limit (frozen)" {
		t.Errorf("header %+v", b)
	}
	sec := m.Blocks[1]
	if sec.Type != "section" || sec.Text.Type != "mrkdwn" || sec.Text.Text != wantMsg {
		t.Errorf("section %+v", sec)
	}
	var fields []string
	for _, f := range sec.Fields {
		fields = append(fields, f.Text)
	}
	wantFields := []string{"*Scope*\ntoken tok_1 (project web)", "*Window*\n2026-12", "*Spent*\n6.000000 USD",
		"*Limit*\n5.000000 USD", "*Action*\nfreeze", "*ip*\n10.0.0.1", "*model*\n&lt;b&gt;gpt&lt;/b&gt;"}
	if strings.Join(fields, "|") != strings.Join(wantFields, "|") {
		t.Errorf("fields %q, want %q", fields, wantFields)
	}
	if ctx := m.Blocks[2]; ctx.Type != "context" || len(ctx.Elements) != 1 || ctx.Elements[0].Text != "al_x · 2026-12-02T09:30:00Z" {
		t.Errorf("context %+v", ctx)
	}
}

func TestDiscordBody(t *testing.T) {
	c := &capture{}
	srv := httptest.NewServer(c)
	defer srv.Close()
	ob := newOutbox()
	d := mustNew(t, Options{Outbox: ob, Webhooks: []Webhook{{Name: "chat", URL: srv.URL, Format: FormatDiscord}}})
	for _, tc := range []struct {
		name  string
		a     alert.Alert
		color int
		title string
	}{
		{"overshoot", hostileAlert(), colorRed, "Spend above the limit (frozen)"},
		{"threshold", func() alert.Alert {
			f := budget.Fraction(800_000)
			a := testAlert("al_t", alert.TypeThreshold, time.Now())
			a.Threshold = &f
			return a
		}(), colorAmber, "Budget 80 % reached"},
		{"new ip", testAlert("al_ip", alert.TypeNewIP, time.Now()), colorBlue, "New client address"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if res := d.DeliverNow(context.Background(), alert.Entry{Alert: tc.a}); !res[0].OK {
				t.Fatalf("got %+v", res)
			}
			var m struct {
				Content *string `json:"content"`
				Embeds  []struct {
					Title, Description, Timestamp string
					Color                         int
					Fields                        []struct {
						Name, Value string
						Inline      bool
					}
					Footer struct{ Text string }
				}
				AllowedMentions struct {
					Parse *[]string `json:"parse"`
				} `json:"allowed_mentions"`
			}
			raw := c.last(t, &m)
			if m.Content == nil || *m.Content != "" {
				t.Errorf("content missing or not empty: %s", raw)
			}
			if m.AllowedMentions.Parse == nil || len(*m.AllowedMentions.Parse) != 0 {
				t.Errorf("allowed_mentions.parse is not an empty list: %s", raw)
			}
			if strings.Contains(raw, "@everyone") || strings.Contains(raw, "@here") {
				t.Errorf("a mass mention survives: %s", raw)
			}
			if len(m.Embeds) != 1 {
				t.Fatalf("got %d embeds, want 1", len(m.Embeds))
			}
			e := m.Embeds[0]
			if e.Title != tc.title || e.Color != tc.color || e.Footer.Text != tc.a.ID || e.Timestamp != tc.a.Time.UTC().Format(time.RFC3339) {
				t.Errorf("embed %+v, want title %q colour %x footer %q", e, tc.title, tc.color, tc.a.ID)
			}
			if !strings.HasPrefix(e.Description, discordText.Replace(strings.Split(tc.a.Message, "@")[0])) || len(e.Fields) == 0 || e.Fields[0].Name != "Scope" {
				t.Errorf("embed %+v", e)
			}
		})
	}
}

func TestMailMessage_StripsLineBreaks(t *testing.T) {
	a := hostileAlert()
	a.Type = "custom\r\nBcc: victim@example.org"
	sc, err := newSMTP(SMTP{Host: "mail.example.org", From: "hardcap@example.org", To: []string{"ops@example.org"}}, "smtp 1")
	if err != nil {
		t.Fatal(err)
	}
	msg := string(mailMessage(sc, a, time.Now()))
	head, _, _ := strings.Cut(msg, "\r\n\r\n")
	if strings.Contains(head, "\nBcc:") {
		t.Errorf("a header was injected:\n%s", head)
	}
}

func TestDiscordText_NoLinkFromClientText(t *testing.T) {
	got := discordText.Replace("ua [Known CI runner](https://evil.example) **bold** `code` > quote")
	for _, bad := range []string{"[Known", "](", "**", "`code`"} {
		if strings.Contains(strings.ReplaceAll(got, `\`, ""), bad) && !strings.Contains(got, `\`+bad[:1]) {
			t.Errorf("%q survives unescaped in %q", bad, got)
		}
	}
	if strings.Contains(got, "[Known CI runner](https") {
		t.Errorf("a markdown link survives: %q", got)
	}
}
