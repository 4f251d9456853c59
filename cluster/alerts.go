package cluster

import (
	"context"
	"fmt"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/storage/postgres"
	"github.com/rs/zerolog"
)

// OnceOutbox is a replica's alert outbox as its delivery sees it in a
// cluster: an alert that any replica may raise for the same event (a
// budget's threshold or exhaustion in a window, which every replica sees
// in the cluster's figures) is delivered by the first replica to claim it
// in the store; the others mark theirs done unsent. Alerts about what one
// replica saw (anomalies of its traffic) are its own. When the store
// cannot be reached, an alert is delivered rather than lost.
type OnceOutbox struct {
	alert.Outbox
	Store *postgres.Store
	Log   zerolog.Logger
}

// Undelivered is the outbox's, less the alerts another replica claimed.
func (o *OnceOutbox) Undelivered(ctx context.Context, after string, n int) ([]alert.Entry, error) {
	entries, err := o.Outbox.Undelivered(ctx, after, n)
	if err != nil {
		return nil, err
	}
	out := entries[:0]
	for _, e := range entries {
		key := onceKey(e.Alert)
		if key == "" {
			out = append(out, e)
			continue
		}
		mine, err := o.Store.ClaimAlert(ctx, key)
		if err != nil || mine {
			out = append(out, e)
			continue
		}
		if err := o.Outbox.SetDelivery(ctx, e.Alert.ID, alert.Delivery{}, true); err != nil {
			o.Log.Warn().Err(err).Str("alert", e.Alert.ID).Msg("cluster: an alert another replica sent was not marked done; it is claimed again on the next pass")
		}
	}
	return out, nil
}

// onceKey names the event an alert is about, the same on every replica;
// "" for an alert only its replica raises.
func onceKey(a alert.Alert) string {
	scope := a.Scope.Kind + ":" + a.Scope.Project + ":" + a.Scope.TokenID
	switch a.Type {
	case alert.TypeThreshold:
		limit, share := "", ""
		if a.Limit != nil {
			limit = a.Limit.String()
		}
		if a.Threshold != nil {
			share = a.Threshold.String()
		}
		return fmt.Sprintf("%s|%s|%s|%s|%s", a.Type, scope, a.Window, limit, share)
	case alert.TypeExhausted:
		return fmt.Sprintf("%s|%s|%s", a.Type, scope, a.Window)
	}
	return ""
}
