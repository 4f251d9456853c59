package admin

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/proxy"
	"github.com/hardcap/hardcap/storage"
)

// KeysView is the answer of GET /admin/v1/keys.
type KeysView struct {
	Keys []KeyView `json:"keys"`
}

// KeyView is one provider's real key as the API shows it: where it is read
// from and the first digits of its fingerprint, never the key.
type KeyView struct {
	// Provider is the provider's name; Configured says the running config
	// has it (a provider removed from the config keeps its ledger entry).
	Provider   string `json:"provider"`
	Configured bool   `json:"configured"`
	// SourceKind is env, file, cmd or static; Source the source without
	// its value (env:NAME, file:PATH, cmd:PROGRAM ...).
	SourceKind string `json:"source_kind"`
	Source     string `json:"source"`
	// Fingerprint is the first 8 hex digits of the key's keyed hash; ""
	// before the first read.
	Fingerprint string `json:"fingerprint"`
	// FirstSeen and LastSeen are the first and last read that gave this
	// key; AgeDays counts whole days since FirstSeen.
	FirstSeen time.Time `json:"first_seen,omitzero"`
	LastSeen  time.Time `json:"last_seen,omitzero"`
	AgeDays   int       `json:"age_days"`
	// RotateEvery is the rotation interval ("90d"); RotateBy is when this
	// key is due (FirstSeen + RotateEvery) and Overdue whether that is
	// past.
	RotateEvery string    `json:"rotate_every"`
	RotateBy    time.Time `json:"rotate_by,omitzero"`
	Overdue     bool      `json:"overdue"`
	// State sums the key up, most urgent first: KeyNotRead before the
	// first read, KeyRejected when the provider answered 401 to this key
	// since it was first seen, KeyOverdue past RotateBy, KeyDueSoon within
	// DueSoon of it, else KeyOK.
	State string `json:"state"`
	// Unauthorized counts the upstream 401 answers to requests that carried
	// this key, LastUnauthorized the latest.
	Unauthorized     uint64    `json:"unauthorized"`
	LastUnauthorized time.Time `json:"last_unauthorized,omitzero"`
	// ReusedAt is when this key, one the provider had before, came back
	// into use (Reused); it keeps its first-seen time and due date.
	Reused   bool      `json:"reused"`
	ReusedAt time.Time `json:"reused_at,omitzero"`
	// ReadError says why the last read of the source failed (the key read
	// before is still served); absent after a read that worked.
	ReadError string `json:"read_error,omitempty"`
	// History lists the keys this one replaced, oldest first.
	History []KeyHistoryView `json:"history"`
}

// KeyHistoryView is a key a provider had before, in KeyView.History.
type KeyHistoryView struct {
	Fingerprint      string    `json:"fingerprint"`
	Source           string    `json:"source,omitempty"`
	FirstSeen        time.Time `json:"first_seen"`
	LastSeen         time.Time `json:"last_seen"`
	Unauthorized     uint64    `json:"unauthorized"`
	LastUnauthorized time.Time `json:"last_unauthorized,omitzero"`
}

// KeysReloadRequest is the optional body of POST /admin/v1/keys/reload:
// one provider, or every provider when Provider is empty.
type KeysReloadRequest struct {
	Provider string `json:"provider"`
}

// KeysReloadView is the answer of POST /admin/v1/keys/reload.
type KeysReloadView struct {
	Reloaded []KeyReloadView `json:"reloaded"`
}

// KeyReloadView is what a reload found for one provider.
type KeyReloadView struct {
	Provider string `json:"provider"`
	Source   string `json:"source"`
	// Fingerprint is the first digits of the key's fingerprint now;
	// Previous those of the key it replaced, when Changed.
	Fingerprint string `json:"fingerprint,omitempty"`
	Previous    string `json:"previous,omitempty"`
	// First says this is the first key of the provider in the ledger;
	// Changed that the key differs from the one before (a rotation);
	// Reused that the new key is one replaced before, in use again.
	First   bool `json:"first"`
	Changed bool `json:"changed"`
	Reused  bool `json:"reused"`
	// Error says why the source could not be read (the old key is kept)
	// or the read not recorded; it never holds a key.
	Error string `json:"error,omitempty"`
}

// The states of a provider key (KeyView.State).
const (
	KeyOK       = "ok"
	KeyNotRead  = "not_read"
	KeyRejected = "rejected"
	KeyOverdue  = "overdue"
	KeyDueSoon  = "due_soon"
)

// DueSoon is how long before its due date a key is KeyDueSoon.
const DueSoon = 14 * 24 * time.Hour

// keyState is v's State at now.
func keyState(v KeyView, now time.Time) string {
	switch {
	case v.Fingerprint == "":
		return KeyNotRead
	case v.Unauthorized > 0:
		// The ledger's count of the current key, which a rotation starts
		// at zero, and those counted since its last write.
		return KeyRejected
	case v.Overdue:
		return KeyOverdue
	case !v.RotateBy.IsZero() && v.RotateBy.Sub(now) < DueSoon:
		return KeyDueSoon
	}
	return KeyOK
}

// FormatDays writes d as whole days ("90d") when it is some, else as Go
// writes durations.
func FormatDays(d time.Duration) string {
	day := 24 * time.Hour
	if d > 0 && d%day == 0 {
		return fmt.Sprintf("%dd", d/day)
	}
	return d.String()
}

func (h *Handler) listKeys(w http.ResponseWriter, r *http.Request) {
	views, err := h.keyViews()
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	want := r.URL.Query().Get("provider")
	out := KeysView{Keys: []KeyView{}}
	for _, v := range views {
		if want == "" || want == v.Provider {
			out.Keys = append(out.Keys, v)
		}
	}
	if want != "" && len(out.Keys) == 0 {
		h.writeDomainError(w, fmt.Errorf("%w: %q (see hardcap keys)", proxy.ErrProviderNotFound, budget.Clip(want)))
		return
	}
	writeJSON(w, http.StatusOK, out)
}

// keyViews is every provider key as hardcap keys shows it: the ledger's
// record joined with the configured source and the 401s counted since the
// last ledger write, sorted.
func (h *Handler) keyViews() ([]KeyView, error) {
	var ledger []storage.ProviderKeyInfo
	var states []proxy.KeyState
	var err error
	if h.opts.Keys != nil {
		err = h.opts.Keys.Counted(func(s []proxy.KeyState) error {
			states = s
			ledger, err = h.opts.DB.ProviderKeys()
			return err
		})
	} else {
		ledger, err = h.opts.DB.ProviderKeys()
	}
	if err != nil {
		return nil, err
	}
	now := h.opts.Now()
	every := map[string]time.Duration{}
	byName := map[string]*KeyView{}
	var order []string
	view := func(name string) *KeyView {
		if v, ok := byName[name]; ok {
			return v
		}
		v := &KeyView{Provider: name, History: []KeyHistoryView{}}
		byName[name] = v
		order = append(order, name)
		return v
	}
	for _, st := range states {
		v := view(st.Provider)
		v.Configured, v.SourceKind, v.Source = true, st.Kind, st.Source
		every[st.Provider] = st.RotateEvery
		v.Fingerprint, v.RotateEvery, v.ReadError = st.Fingerprint, FormatDays(st.RotateEvery), st.ReadError
		// Counted in memory since the last ledger write.
		v.Unauthorized, v.LastUnauthorized = st.Pending, st.LastRejected
	}
	for _, k := range ledger {
		v := view(k.Provider)
		if !v.Configured {
			v.SourceKind, v.Source, v.RotateEvery = k.SourceKind, k.Source, FormatDays(k.RotateEvery)
		}
		v.Fingerprint = storage.ShortFingerprint(k.Fingerprint)
		v.FirstSeen, v.LastSeen, v.RotateBy = k.FirstSeen, k.LastSeen, k.RotateBy
		v.Reused, v.ReusedAt = !k.ReusedAt.IsZero(), k.ReusedAt
		if d := every[k.Provider]; d > 0 {
			// The config's interval now, which the next read records.
			v.RotateBy = k.FirstSeen.Add(d)
		}
		v.Overdue = !v.RotateBy.IsZero() && !now.Before(v.RotateBy)
		v.AgeDays = int(now.Sub(k.FirstSeen) / (24 * time.Hour))
		v.Unauthorized += k.Unauthorized
		if k.LastUnauthorized.After(v.LastUnauthorized) {
			v.LastUnauthorized = k.LastUnauthorized
		}
		for _, s := range k.History {
			v.History = append(v.History, KeyHistoryView{
				Fingerprint: storage.ShortFingerprint(s.Fingerprint), Source: s.Source, FirstSeen: s.FirstSeen, LastSeen: s.LastSeen,
				Unauthorized: s.Unauthorized, LastUnauthorized: s.LastUnauthorized,
			})
		}
	}
	out := make([]KeyView, 0, len(order))
	for _, name := range order {
		v := byName[name]
		v.State = keyState(*v, now)
		out = append(out, *v)
	}
	sortKeyViews(out)
	return out, nil
}

func sortKeyViews(vs []KeyView) {
	for i := 1; i < len(vs); i++ {
		for j := i; j > 0 && vs[j].Provider < vs[j-1].Provider; j-- {
			vs[j], vs[j-1] = vs[j-1], vs[j]
		}
	}
}

func (h *Handler) reloadKeys(w http.ResponseWriter, r *http.Request) {
	var req KeysReloadRequest
	if r.ContentLength != 0 && !decode(w, r, &req) {
		return
	}
	if h.opts.Keys == nil {
		h.writeDomainError(w, proxy.ErrNoProviders)
		return
	}
	// The context carries the admin credential (ServeHTTP), so a rotation
	// a reload finds is logged as the admin's, not the timer's.
	got, err := h.opts.Keys.Reload(r.Context(), req.Provider)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	out := KeysReloadView{Reloaded: make([]KeyReloadView, 0, len(got))}
	changed, failed := 0, 0
	for _, k := range got {
		v := KeyReloadView{Provider: k.Provider, Source: k.Source, Fingerprint: k.Fingerprint, Previous: k.Previous, First: k.First, Changed: k.Changed, Reused: k.Reused}
		if k.Err != nil {
			v.Error = k.Err.Error()
			failed++
		}
		if k.Changed {
			changed++
		}
		out.Reloaded = append(out.Reloaded, v)
	}
	h.opts.Log.Info().Int("providers", len(got)).Int("changed", changed).Int("failed", failed).Msg("provider keys reloaded")
	writeJSON(w, http.StatusOK, out)
}

// KeyLedger is the database as the proxy's key ledger (proxy.KeyRecorder):
// proxy does not import storage, so the adapter lives here, beside the
// routes that read it.
type KeyLedger struct{ DB *storage.DB }

var _ proxy.KeyRecorder = KeyLedger{}

// SeeKey records a read of a provider's key (storage.DB.SeeProviderKey).
func (l KeyLedger) SeeKey(ctx context.Context, r proxy.KeyRead) (proxy.KeyChange, error) {
	ch, err := l.DB.SeeProviderKey(ctx, storage.ProviderKeySeen{
		Provider: r.Provider, Key: r.Key, SourceKind: r.Kind, Source: r.Source, RotateEvery: r.RotateEvery, Time: r.Time,
		Unauthorized: r.Unauthorized, LastUnauthorized: r.LastUnauthorized,
	})
	return proxy.KeyChange{Fingerprint: ch.Fingerprint, Previous: ch.Previous, First: ch.First, Rotated: ch.Rotated, Reused: ch.Reused}, err
}

// AddUnauthorized adds upstream 401s to the provider's current key
// (storage.DB.AddUnauthorized).
func (l KeyLedger) AddUnauthorized(ctx context.Context, provider string, n uint64, last time.Time) error {
	return l.DB.AddUnauthorized(ctx, provider, n, last)
}
