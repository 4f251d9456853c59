package webhook

import (
	"fmt"
	"slices"
	"strings"

	"github.com/hardcap/hardcap/alert"
)

// Route returns the channels alert a goes to: the first matching route's,
// else Options.Default, else every channel.
func (d *Deliverer) Route(a alert.Alert) []string {
	for _, r := range d.routes {
		if r.matches(a) {
			return slices.Clone(r.Channels)
		}
	}
	if d.dflt != nil {
		// An empty but set default sends unrouted alerts nowhere.
		return slices.Clone(d.dflt)
	}
	return d.allNames()
}

// Channels describes the configured channels, webhooks first, without
// URL, secret or password.
func (d *Deliverer) Channels() []ChannelInfo {
	out := make([]ChannelInfo, 0, len(d.channels))
	for _, c := range d.channels {
		out = append(out, ChannelInfo{Name: c.name, Kind: c.kind, Signed: c.signed})
	}
	return out
}

// channelsOf are the channels of entry e: its own, or the route's.
func (d *Deliverer) channelsOf(e alert.Entry) []string {
	if len(e.Channels) > 0 {
		return e.Channels
	}
	return d.Route(e.Alert)
}

func (d *Deliverer) allNames() []string {
	out := make([]string, 0, len(d.channels))
	for _, c := range d.channels {
		out = append(out, c.name)
	}
	return out
}

// matches reports whether r takes alert a.
func (r Route) matches(a alert.Alert) bool {
	if len(r.Projects) > 0 && !slices.Contains(r.Projects, a.Scope.Project) {
		return false
	}
	if len(r.Types) == 0 {
		return true
	}
	for _, t := range r.Types {
		if typeMatches(t, a.Type) {
			return true
		}
	}
	return false
}

// typeMatches reports whether pattern, a type or a prefix ending in "*",
// matches t.
func typeMatches(pattern string, t alert.Type) bool {
	if prefix, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(string(t), prefix)
	}
	return pattern == string(t)
}

// checkRoutes checks that routes and the default name known channels and
// that every type pattern matches some alert type: a misspelt type would
// otherwise send its alerts to the default without a word.
func checkRoutes(routes []Route, dflt []string, known map[string]*channel) error {
	names := func(where string, cs []string) error {
		if len(cs) == 0 {
			return fmt.Errorf("%w: %s names no channel", ErrRoute, where)
		}
		for _, c := range cs {
			if known[c] == nil {
				return fmt.Errorf("%w: %s names channel %q, which is not configured", ErrRoute, where, c)
			}
		}
		return nil
	}
	for i, r := range routes {
		where := fmt.Sprintf("route %d", i+1)
		if err := names(where, r.Channels); err != nil {
			return err
		}
		for _, p := range r.Types {
			if !slices.ContainsFunc(alert.Types, func(t alert.Type) bool { return typeMatches(p, t) }) {
				return fmt.Errorf("%w: %s: type %q matches no alert type", ErrRoute, where, p)
			}
		}
	}
	if len(dflt) > 0 {
		return names("the default", dflt)
	}
	return nil
}
