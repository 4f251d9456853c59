package admin

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/alert/webhook"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/storage"
)

// AlertsView is the answer of GET /admin/v1/alerts: the alerts selected,
// newest first, each with its deliveries so far.
type AlertsView struct {
	Alerts []alert.Entry `json:"alerts"`
}

// AlertTestRequest is the body of POST /admin/v1/alerts/test. Channel names
// the one channel to send to; "" sends to every channel.
type AlertTestRequest struct {
	Channel string `json:"channel,omitempty"`
}

// AlertTestView is the answer of POST /admin/v1/alerts/test: the test alert
// as recorded in the outbox and the outcome of its delivery on each
// channel.
type AlertTestView struct {
	Alert   alert.Alert      `json:"alert"`
	Results []webhook.Result `json:"results"`
}

// AlertsStatus is the "alerts" part of GET /admin/v1/status: the channels
// by name and kind (never a URL or a secret), how many alerts wait for
// delivery and how many have a channel that failed for good.
type AlertsStatus struct {
	Channels []webhook.ChannelInfo `json:"channels"`
	Waiting  int                   `json:"waiting"`
	Failed   int                   `json:"failed"`
}

// TestMessage is the message of the alert POST /admin/v1/alerts/test sends.
const TestMessage = "Test message from hardcap: this channel receives hardcap's alerts."

// MaxAlertAt is the most alert thresholds a project or token may have; a
// handful is what people use, and the bound keeps a stored entry small.
const MaxAlertAt = 20

// noChannelMessage is the refusal of a test with no channel configured.
const noChannelMessage = "no alert channel is configured: add alerts.webhooks or alerts.email to the config"

// listAlerts serves GET /admin/v1/alerts[?limit=N][&type=T][&since=D]:
// the newest alerts (limit, default 100, at most storage.MaxAlertsListed)
// of one type or all, raised since a duration back from now ("7d") or a
// time in RFC 3339.
func (h *Handler) listAlerts(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var f storage.AlertFilter
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 0 || n > storage.MaxAlertsListed {
			writeError(w, http.StatusBadRequest, "invalid_request",
				fmt.Sprintf("limit %q is not a number of alerts from 0 to %d (0 is the default, 100)", budget.Clip(s), storage.MaxAlertsListed))
			return
		}
		f.Limit = n
	}
	if s := q.Get("type"); s != "" {
		if !slices.Contains(alert.Types, alert.Type(s)) {
			writeError(w, http.StatusBadRequest, "invalid_request",
				fmt.Sprintf("type %q is not an alert type: give one of %s", budget.Clip(s), typeList()))
			return
		}
		f.Type = alert.Type(s)
	}
	since, err := parseSince(q.Get("since"), h.opts.Now())
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
		return
	}
	f.Since = since
	if !h.flushed(w, r) {
		return
	}
	entries, err := h.opts.DB.Alerts(f)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	if entries == nil {
		entries = []alert.Entry{}
	}
	for i := range entries {
		if entries[i].Deliveries == nil {
			entries[i].Deliveries = []alert.Delivery{}
		}
	}
	writeJSON(w, http.StatusOK, AlertsView{Alerts: entries})
}

// typeList is every alert type, for a message.
func typeList() string {
	names := make([]string, len(alert.Types))
	for i, t := range alert.Types {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// testAlert serves POST /admin/v1/alerts/test: it records a test alert in
// the outbox for one channel or all, and delivers it at once, so the
// answer says whether each channel works.
func (h *Handler) testAlert(w http.ResponseWriter, r *http.Request) {
	var req AlertTestRequest
	if r.ContentLength != 0 && !decode(w, r, &req) {
		return
	}
	var channels []webhook.ChannelInfo
	if h.opts.Notifier != nil {
		channels = h.opts.Notifier.Channels()
	}
	if len(channels) == 0 {
		writeError(w, http.StatusConflict, "no_channel", noChannelMessage)
		return
	}
	names := make([]string, len(channels))
	for i, c := range channels {
		names[i] = c.Name
	}
	send := names
	if req.Channel != "" {
		if !slices.Contains(names, req.Channel) {
			writeError(w, http.StatusNotFound, "not_found",
				fmt.Sprintf("no alert channel is named %q; the channels are %s", budget.Clip(req.Channel), strings.Join(names, ", ")))
			return
		}
		send = []string{req.Channel}
	}
	e, _, err := h.opts.DB.RaiseAlert(r.Context(), alert.Alert{
		Type:    alert.TypeTest,
		Scope:   alert.Scope{Kind: "global"},
		Message: TestMessage,
	}, storage.RaiseOptions{Channels: send})
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	results := h.opts.Notifier.DeliverNow(r.Context(), e)
	if results == nil {
		results = []webhook.Result{}
	}
	failed := 0
	for _, res := range results {
		if !res.OK {
			failed++
		}
	}
	h.opts.Log.Info().Str("alert", e.Alert.ID).Strs("channels", send).Int("failed", failed).Msg("test alert sent")
	writeJSON(w, http.StatusOK, AlertTestView{Alert: e.Alert, Results: results})
}

// alertsStatus is the status answer's "alerts".
func (h *Handler) alertsStatus() (AlertsStatus, error) {
	s := AlertsStatus{Channels: []webhook.ChannelInfo{}}
	if h.opts.Notifier != nil {
		if cs := h.opts.Notifier.Channels(); cs != nil {
			s.Channels = cs
		}
	}
	var err error
	s.Waiting, s.Failed, err = h.opts.DB.AlertCounts()
	return s, err
}

// alertAtFrom parses the alert_at of a request: each a decimal share of
// the budget ("0.5"), at most MaxAlertAt of them; the empty list goes back
// to the config's thresholds. The shares come back ascending, without
// repeats.
func alertAtFrom(shares []string) ([]budget.Fraction, error) {
	if len(shares) > MaxAlertAt {
		return nil, fmt.Errorf("%w: alert_at has %d shares; give at most %d", budget.ErrInvalidFraction, len(shares), MaxAlertAt)
	}
	out := make([]budget.Fraction, 0, len(shares))
	for _, s := range shares {
		f, err := budget.ParseFraction(s)
		if err != nil {
			return nil, fmt.Errorf("alert_at: %w (give shares of the budget such as 0.5 and 0.9, above 0 and at most 10)", err)
		}
		out = append(out, f)
	}
	return budget.SortFractions(out), nil
}

// alertAtView shows stored thresholds (parts per million) as decimal
// shares; [] when the config's apply.
func alertAtView(ppm []uint32) []string {
	out := make([]string, len(ppm))
	for i, v := range ppm {
		out[i] = budget.Fraction(v).String()
	}
	return out
}

// writeBadAlertAt answers a request whose alert_at could not be parsed.
func writeBadAlertAt(w http.ResponseWriter, err error) {
	writeError(w, http.StatusBadRequest, "invalid_request", err.Error())
}

// alertAtChange parses the optional alert_at of a PATCH body: nil keeps
// the thresholds, [] goes back to the config's.
func alertAtChange(shares *[]string) (*[]budget.Fraction, error) {
	if shares == nil {
		return nil, nil
	}
	fs, err := alertAtFrom(*shares)
	if err != nil {
		return nil, err
	}
	return &fs, nil
}
