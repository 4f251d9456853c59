// Package alert is what hardcap tells people before the money is gone:
// budget thresholds, anomalies (a new client address, a spend spike, a
// new model, a provider refusing the real key, an overshoot, provider-side
// spend above the books) and the freezes they cause. It holds the events,
// the policy that says which fire and what they do, and the detectors;
// storage records alerts in its outbox in the same transaction as their
// cause, and alert/webhook delivers them.
package alert

import (
	"context"
	"time"

	"github.com/hardcap/hardcap/budget"
)

// Type is what an alert is about; it is the "type" field of every payload.
type Type string

// The alert types (SPEC §7).
const (
	TypeThreshold      Type = "budget.threshold"
	TypeExhausted      Type = "budget.exhausted"
	TypeNewIP          Type = "anomaly.new_ip"
	TypeSpendSpike     Type = "anomaly.spend_spike"
	TypeNewModel       Type = "anomaly.new_model"
	TypeKeyRejected    Type = "anomaly.key_rejected"
	TypeOvershoot      Type = "anomaly.overshoot"
	TypeReconcileDrift Type = "anomaly.reconcile_drift"
	TypeFrozen         Type = "token.frozen"
	TypeTest           Type = "test"
)

// Types lists every type, in the order documentation shows them.
var Types = []Type{TypeThreshold, TypeExhausted, TypeNewIP, TypeSpendSpike, TypeNewModel,
	TypeKeyRejected, TypeOvershoot, TypeReconcileDrift, TypeFrozen, TypeTest}

// Kind names an anomaly detector in the config (alerts.anomalies).
type Kind string

// The anomaly kinds. A new route counts as a new model: both say the
// token is used for something it never was.
const (
	NewIP          Kind = "new_ip"
	SpendSpike     Kind = "spend_spike"
	NewModel       Kind = "new_model"
	KeyRejected    Kind = "key_rejected"
	Overshoot      Kind = "overshoot"
	ReconcileDrift Kind = "reconcile_drift"
)

// Kinds lists every anomaly kind.
var Kinds = []Kind{NewIP, SpendSpike, NewModel, KeyRejected, Overshoot, ReconcileDrift}

// Type is the alert type an anomaly of kind k raises.
func (k Kind) Type() Type { return Type("anomaly." + string(k)) }

// Action is what an anomaly does.
type Action string

// The actions. ActionFreeze turns on the kill switch of the anomaly's token
// (or, with Rule.Scope "project", its project) in the step that records it.
const (
	ActionOff    Action = "off"
	ActionAlert  Action = "alert"
	ActionFreeze Action = "freeze"
)

// Scope is the budget or owner an alert is about.
type Scope struct {
	// Kind is "global", "project" or "token" (or "provider" for a
	// provider key's anomalies).
	Kind     string `json:"kind"`
	Project  string `json:"project,omitempty"`
	TokenID  string `json:"token_id,omitempty"`
	Provider string `json:"provider,omitempty"`
}

// Alert is one event to tell people about. Its JSON form is the payload of
// a JSON webhook (SPEC §7).
type Alert struct {
	// ID is stable across redeliveries: a receiver drops what it has seen.
	ID   string    `json:"id"`
	Type Type      `json:"type"`
	Time time.Time `json:"time"`
	// Scope is the budget, token or provider the alert is about.
	Scope Scope `json:"scope"`
	// Window is the budget window ("2026-12"), for budget alerts.
	Window string `json:"window,omitempty"`
	// Threshold is the share of the limit crossed, for budget.threshold.
	Threshold *budget.Fraction `json:"threshold,omitempty"`
	// Spent and Limit are in nano-USD (decimal strings in JSON): the
	// committed spend of the window and its ceiling for budget alerts,
	// the amount the anomaly is about otherwise.
	Spent budget.Money  `json:"spent_usd"`
	Limit *budget.Money `json:"limit_usd,omitempty"`
	// Message says what happened and what to do, for people.
	Message string `json:"message"`
	// Action is what hardcap did: "alert" or "freeze".
	Action Action `json:"action"`
	// Details are what the message is built from, for machines: ip,
	// model, route, provider, reservation, resume (the command that ends
	// a freeze), projection.
	Details map[string]string `json:"details,omitempty"`
}

// DeliveryState says where one channel's delivery of an alert stands.
type DeliveryState string

// The delivery states. Pending is retried; Delivered and Failed are final
// (Failed after MaxAge of attempts, or a test's one attempt).
const (
	Pending   DeliveryState = "pending"
	Delivered DeliveryState = "delivered"
	Failed    DeliveryState = "failed"
)

// MaxAge is how long a delivery is retried after its alert was raised.
const MaxAge = 24 * time.Hour

// Delivery is one channel's delivery of an alert.
type Delivery struct {
	Channel  string        `json:"channel"`
	State    DeliveryState `json:"state"`
	Attempts int           `json:"attempts"`
	// Next is when the next attempt is due (Pending only).
	Next time.Time `json:"next,omitzero"`
	// Last is when the last attempt ended.
	Last time.Time `json:"last,omitzero"`
	// Error is why the last attempt failed, without the channel's URL or
	// secret.
	Error string `json:"error,omitempty"`
}

// Entry is an alert in the outbox with its deliveries so far. A channel the
// alert is routed to with no Delivery yet has not been tried.
type Entry struct {
	Alert      Alert      `json:"alert"`
	Deliveries []Delivery `json:"deliveries"`
	// Channels, when set, are the only channels the alert goes to (a test
	// alert for one channel); otherwise the routes decide.
	Channels []string `json:"channels,omitempty"`
}

// Delivery returns the entry's delivery on channel, if there is one.
func (e Entry) Delivery(channel string) (Delivery, bool) {
	for _, d := range e.Deliveries {
		if d.Channel == channel {
			return d, true
		}
	}
	return Delivery{}, false
}

// Outbox is where alerts wait for delivery: storage's DB implements it.
type Outbox interface {
	// Undelivered returns up to n entries raised after the alert id
	// after ("" from the first), oldest first, that some channel may
	// still have to deliver: entries whose every Delivery is final are
	// left out once SetDelivery said they are done.
	Undelivered(ctx context.Context, after string, n int) ([]Entry, error)
	// SetDelivery records d for the alert id, replacing the channel's
	// earlier Delivery. done says that every channel the alert goes to
	// now has a final state, so Undelivered leaves it out from now on; a
	// d without a Channel records nothing but that.
	SetDelivery(ctx context.Context, id string, d Delivery, done bool) error
}
