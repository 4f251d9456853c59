// Package incident builds the evidence report of one token after a leak:
// who used it, from where, for what and at what cost, hour by hour, what
// the admins did about it, and the provider's own ids of the requests, in a
// form good enough to send to a provider's support with a refund claim.
//
// A Builder aggregates usage records as they are read (Add), so a token
// with a million records costs the memory of its distinct hours, clients,
// models and routes, never of its records; every table but the hours is
// bounded (MaxRows, MaxRequestIDs), and what a bound leaves out is counted.
// The package imports only the standard library and the domain packages.
package incident

import (
	"cmp"
	"fmt"
	"slices"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
)

// MaxRows is the most rows a report's client, model, route and error
// tables each hold. Rows are kept in the order they are first seen, so a
// table that reaches the bound keeps the earliest (for a leak, the clients
// that were there before it and the first ones after); the records of the
// rest are counted in the table's Omitted row.
const MaxRows = 1000

// MaxRequestIDs is the most provider request ids a report lists: the
// oldest ones of the window, so that the first requests of a leak are
// there. RequestIDsOmitted counts the newer ones left out; a report since
// the last one listed lists them.
const MaxRequestIDs = 1000

// NotSeen is the report's statement of what hardcap cannot see.
const NotSeen = "hardcap sees only requests made through it: anything spent with the real provider key directly (outside hardcap), or with other keys of the same provider account, is not in this report; the provider's own usage export for the same window shows it."

// NotRecorded says which refusals the Errors table cannot hold, and where
// they are instead.
const NotRecorded = "Requests refused before any money was reserved (a revoked, rotated or expired token, a kill switch, a spent budget, a scope or rate limit) leave no usage record, so they are not in the errors table; the refusals table counts them by code (the token's whole history, with the last client address), and the server log has each of them, with client address and user agent (a line \"refused\"). A request with an unknown secret names no token and is only in the log."

// Report is the evidence about one token. Its JSON field names are stable;
// money is a decimal USD string, times are RFC 3339 in UTC.
type Report struct {
	// Generated is when the report was made; it is the end of the window.
	Generated time.Time `json:"generated"`
	// Since is the start of the window; the zero time is the token's whole
	// history. Always present.
	Since   time.Time `json:"since"`
	Token   Token     `json:"token"`
	Summary Summary   `json:"summary"`
	// Hours are the requests and spend per UTC hour, oldest first; only
	// hours with requests.
	Hours []Hour `json:"hours"`
	// Clients are the client address and user agent pairs, in the order
	// they were first seen.
	Clients        []Client `json:"clients"`
	ClientsOmitted *Omitted `json:"clients_omitted,omitempty"`
	// Models are the models used, most spent first.
	Models        []Model  `json:"models"`
	ModelsOmitted *Omitted `json:"models_omitted,omitempty"`
	// Routes are the routes called, most requests first.
	Routes        []Route  `json:"routes"`
	RoutesOmitted *Omitted `json:"routes_omitted,omitempty"`
	// Errors are the refusals and error outcomes the records show: every
	// status of 400 or more and every outcome but complete, by status and
	// outcome.
	Errors        []Outcome `json:"errors"`
	ErrorsOmitted *Omitted  `json:"errors_omitted,omitempty"`
	// Refusals are the token's requests refused before any money was
	// reserved, by code, most recent first: counted over the token's whole
	// history, those last refused before the window left out.
	// RefusalIPs are the client addresses they came from.
	// RefusalsDropped counts refusals (of any token) the server could not
	// count since it started, its writer's queue being full; the log has
	// them.
	Refusals        []Refusal   `json:"refusals"`
	RefusalIPs      []RefusalIP `json:"refusal_ips"`
	RefusalsDropped uint64      `json:"refusals_dropped"`
	// ProviderKeys are the real provider keys' audit entries: for each
	// provider the last one before the window (the key in force when it
	// began) and every one in it, oldest first, so that the fingerprint of
	// the key that served each request, and a rotation of it, show.
	ProviderKeys []Action `json:"provider_keys"`
	// Actions are the admin actions on the token (all of them), on its
	// project and on everything (those in the window), oldest first.
	Actions []Action `json:"admin_actions"`
	// RequestIDs are the provider's ids of the first MaxRequestIDs requests
	// of the window that have one, oldest first; RequestIDsOmitted counts the
	// newer ones left out.
	RequestIDs        []RequestID `json:"request_ids"`
	RequestIDsOmitted int64       `json:"request_ids_omitted"`
	// NotSeen says what hardcap cannot see (NotSeen), and NotRecorded which
	// refusals the Errors table cannot hold (NotRecorded).
	NotSeen     string `json:"not_seen"`
	NotRecorded string `json:"not_recorded"`
}

// Token is the token's ledger entry and state as the report shows it:
// never its secret nor its hash.
type Token struct {
	ID        string    `json:"id"`
	Project   string    `json:"project"`
	Name      string    `json:"name,omitempty"`
	Owner     string    `json:"owner,omitempty"`
	Purpose   string    `json:"purpose,omitempty"`
	Created   time.Time `json:"created"`
	CreatedBy string    `json:"created_by,omitempty"`
	// State is active, killed, revoked or expired (the token's own), as
	// token list shows it; ProjectKilled and AllKilled are the other kill
	// switches that stop it.
	State         string    `json:"state"`
	ProjectKilled bool      `json:"project_killed"`
	AllKilled     bool      `json:"all_killed"`
	Expires       time.Time `json:"expires,omitzero"`
	Revoked       time.Time `json:"revoked,omitzero"`
	Rotated       time.Time `json:"rotated,omitzero"`
	RotatingUntil time.Time `json:"rotating_until,omitzero"`
	// LastUsed and Requests are the ledger's: the newest request ever
	// reserved and how many the token has made in all.
	LastUsed tokens.Use `json:"last_used,omitzero"`
	Requests int64      `json:"requests"`
	// Limit is the token's budget ceiling in USD, null when unlimited, per
	// Period.
	Limit  *budget.Money `json:"limit_usd"`
	Period string        `json:"period"`
	Models []string      `json:"models,omitempty"`
	Routes []string      `json:"routes,omitempty"`
	IPs    []string      `json:"ips,omitempty"`
	// RPM, MaxConcurrent and MaxRequest are the token's rate, in-flight
	// and per-request limits; 0 and null are none.
	RPM           int           `json:"rpm"`
	MaxConcurrent int           `json:"max_concurrent"`
	MaxRequest    *budget.Money `json:"max_request_usd"`
	// RotateEvery is the rotation period ("90d", "never"), RotateBy when
	// the secret is next due.
	RotateEvery string    `json:"rotate_every"`
	RotateBy    time.Time `json:"rotate_by,omitzero"`
}

// Refusal is one refusal code of the token's requests refused before any
// money was reserved.
type Refusal struct {
	Code   string    `json:"code"`
	Count  int64     `json:"count"`
	First  time.Time `json:"first_seen"`
	Last   time.Time `json:"last_seen"`
	LastIP string    `json:"last_ip"`
}

// RefusalIP is one client address refused requests came from.
type RefusalIP struct {
	IP       string    `json:"ip"`
	First    time.Time `json:"first_seen"`
	Last     time.Time `json:"last_seen"`
	Refusals int64     `json:"refusals"`
}

// Summary is the window at a glance.
type Summary struct {
	// FirstUse and LastUse are the ends of the first and the last request
	// of the window that hardcap still holds one by one.
	FirstUse time.Time `json:"first_use,omitzero"`
	LastUse  time.Time `json:"last_use,omitzero"`
	// Requests and Spent count every request of the window, those rolled up
	// by usage retention included; Detailed is how many of them the tables
	// show one by one (the rest are older than the retention).
	Requests int64        `json:"requests"`
	Spent    budget.Money `json:"spent_usd"`
	Detailed int64        `json:"detailed_requests"`
	// Reserved is what the token's requests in flight hold now.
	Reserved budget.Money `json:"reserved_usd"`
	// ErrorRequests counts the requests the Errors table covers.
	ErrorRequests int64 `json:"error_requests"`
	// RefusedRequests counts the refusals the Refusals table covers.
	RefusedRequests int64 `json:"refused_requests"`
	// OldSecretRequests counts requests made with a secret replaced by a
	// rotation, during its grace.
	OldSecretRequests int64 `json:"old_secret_requests"`
	// WithRequestID counts requests the provider gave an id to.
	WithRequestID int64 `json:"requests_with_provider_id"`
}

// Hour is one UTC hour's requests and spend.
type Hour struct {
	Hour     time.Time    `json:"hour"`
	Requests int64        `json:"requests"`
	Spent    budget.Money `json:"spent_usd"`
}

// Client is one client address and user agent pair.
type Client struct {
	IP        string       `json:"ip"`
	UserAgent string       `json:"user_agent"`
	First     time.Time    `json:"first_seen"`
	Last      time.Time    `json:"last_seen"`
	Requests  int64        `json:"requests"`
	Spent     budget.Money `json:"spent_usd"`
	// OldSecret counts its requests made with a rotated secret in grace:
	// an app that still needs the new one.
	OldSecret int64 `json:"old_secret_requests"`
}

// Model is one provider's model.
type Model struct {
	Provider string       `json:"provider"`
	Model    string       `json:"model"`
	Requests int64        `json:"requests"`
	Spent    budget.Money `json:"spent_usd"`
}

// Route is one route of the data plane.
type Route struct {
	Route    string       `json:"route"`
	Requests int64        `json:"requests"`
	Spent    budget.Money `json:"spent_usd"`
}

// Outcome is one status and outcome pair of the Errors table.
type Outcome struct {
	Status   int          `json:"status"`
	Outcome  string       `json:"outcome"`
	First    time.Time    `json:"first_seen"`
	Last     time.Time    `json:"last_seen"`
	Requests int64        `json:"requests"`
	Spent    budget.Money `json:"spent_usd"`
}

// Omitted counts the records of the rows a table's bound (MaxRows) left
// out.
type Omitted struct {
	// Rows is how many distinct rows were left out, counted up to MaxRows
	// (a lower bound when it is MaxRows).
	Rows     int64        `json:"rows"`
	Requests int64        `json:"requests"`
	Spent    budget.Money `json:"spent_usd"`
	First    time.Time    `json:"first_seen"`
	Last     time.Time    `json:"last_seen"`
}

// Action is one admin action of the audit log.
type Action struct {
	Time time.Time `json:"time"`
	// Actor is the admin credential that acted; "system" for hardcap
	// itself.
	Actor  string `json:"actor"`
	Action string `json:"action"`
	// Kind and Target name what was acted on: token and its id, project and
	// its name, or all.
	Kind   string `json:"kind"`
	Target string `json:"target,omitempty"`
	Detail string `json:"detail,omitempty"`
}

// RequestID is one request the provider gave an id to.
type RequestID struct {
	Time      time.Time    `json:"time"`
	RequestID string       `json:"request_id"`
	Provider  string       `json:"provider"`
	Model     string       `json:"model"`
	Status    int          `json:"status"`
	Charged   budget.Money `json:"charged_usd"`
}

// stats is what every table row counts.
type stats struct {
	first, last time.Time
	n           int64
	spent       budget.Money
	old         int64
}

func (s *stats) add(r budget.Record) error {
	if s.n == 0 || r.Time.Before(s.first) {
		s.first = r.Time
	}
	if r.Time.After(s.last) {
		s.last = r.Time
	}
	s.n++
	if r.OldSecret {
		s.old++
	}
	var err error
	s.spent, err = s.spent.Add(r.Charged)
	return err
}

// table is a bounded table of rows keyed by K, in the order first seen;
// records of keys past the bound are counted in over.
type table[K comparable] struct {
	rows  map[K]*stats
	order []K
	over  stats
	// dropped remembers up to MaxRows keys left out, so Omitted.Rows counts
	// them exactly while it can (and is a lower bound after).
	dropped map[K]struct{}
}

func newTable[K comparable]() *table[K] {
	return &table[K]{rows: map[K]*stats{}, dropped: map[K]struct{}{}}
}

func (t *table[K]) add(k K, r budget.Record) error {
	s, ok := t.rows[k]
	if !ok {
		if len(t.order) == MaxRows {
			if len(t.dropped) < MaxRows {
				t.dropped[k] = struct{}{}
			}
			return t.over.add(r)
		}
		s = &stats{}
		t.rows[k] = s
		t.order = append(t.order, k)
	}
	return s.add(r)
}

func (t *table[K]) omitted() *Omitted {
	if t.over.n == 0 {
		return nil
	}
	return &Omitted{Rows: int64(len(t.dropped)), Requests: t.over.n, Spent: t.over.spent, First: t.over.first, Last: t.over.last}
}

type clientKey struct{ ip, ua string }
type modelKey struct{ provider, model string }
type outcomeKey struct {
	status  int
	outcome budget.Outcome
}

// Builder aggregates a token's usage records into a Report as they are
// read. The zero value is not usable; use New.
type Builder struct {
	rep      Report
	hours    map[int64]*stats
	clients  *table[clientKey]
	models   *table[modelKey]
	routes   *table[string]
	errs     *table[outcomeKey]
	ids      []RequestID // the first MaxRequestIDs
	detailed stats
	err      error
	since    time.Time
}

// New starts the report on tok for the window from since (zero: the whole
// history) to now.
func New(tok Token, since, now time.Time) *Builder {
	if !since.IsZero() {
		since = since.UTC()
	}
	return &Builder{
		since:   since,
		rep:     Report{Generated: now.UTC(), Since: since, Token: tok, NotSeen: NotSeen, NotRecorded: NotRecorded},
		hours:   map[int64]*stats{},
		clients: newTable[clientKey](), models: newTable[modelKey](), routes: newTable[string](), errs: newTable[outcomeKey](),
	}
}

// SetTotals sets the window's totals as the ledger counts them: requests
// and spend with those rolled up by retention, and what the token's
// requests in flight hold now.
func (b *Builder) SetTotals(requests int64, spent, reserved budget.Money) {
	b.rep.Summary.Requests, b.rep.Summary.Spent, b.rep.Summary.Reserved = requests, spent, reserved
}

// SetRefusals sets the token's refusals (by code) and the client addresses
// they came from, counted over its whole history, and how many refusals the
// server dropped uncounted. Those last seen before the window are left
// out.
func (b *Builder) SetRefusals(codes []Refusal, ips []RefusalIP, dropped uint64) {
	b.rep.Refusals, b.rep.RefusalIPs = nil, nil
	for _, c := range codes {
		if !c.Last.Before(b.since) {
			c.First, c.Last = c.First.UTC(), c.Last.UTC()
			b.rep.Refusals = append(b.rep.Refusals, c)
		}
	}
	for _, e := range ips {
		if !e.Last.Before(b.since) {
			e.First, e.Last = e.First.UTC(), e.Last.UTC()
			b.rep.RefusalIPs = append(b.rep.RefusalIPs, e)
		}
	}
	b.rep.RefusalsDropped = dropped
}

// SetProviderKeys sets the provider keys' audit entries (in any order):
// for each provider the last one before the window and every one in it are
// kept.
func (b *Builder) SetProviderKeys(entries []Action) {
	before := map[string]Action{}
	var in []Action
	for _, e := range entries {
		e.Time = e.Time.UTC()
		if e.Time.Before(b.since) {
			if old, ok := before[e.Target]; !ok || !e.Time.Before(old.Time) {
				before[e.Target] = e
			}
			continue
		}
		in = append(in, e)
	}
	b.rep.ProviderKeys = nil
	for _, e := range before {
		b.rep.ProviderKeys = append(b.rep.ProviderKeys, e)
	}
	b.rep.ProviderKeys = append(b.rep.ProviderKeys, in...)
	slices.SortStableFunc(b.rep.ProviderKeys, func(x, y Action) int {
		return cmp.Or(x.Time.Compare(y.Time), cmp.Compare(x.Target, y.Target))
	})
}

// IsError reports whether a record belongs in the Errors table: a status
// of 400 or more, or an outcome other than complete.
func IsError(r budget.Record) bool {
	return r.Status >= 400 || r.Outcome != budget.Complete
}

// Add counts one record. It fails only when a sum overflows (more than
// 9.2 billion USD), and then keeps failing.
func (b *Builder) Add(r budget.Record) error {
	if b.err != nil {
		return b.err
	}
	b.err = b.add(r)
	return b.err
}

func (b *Builder) add(r budget.Record) error {
	if err := b.detailed.add(r); err != nil {
		return fmt.Errorf("summing the window: %w", err)
	}
	h := r.Time.UTC().Truncate(time.Hour).Unix()
	hs, ok := b.hours[h]
	if !ok {
		hs = &stats{}
		b.hours[h] = hs
	}
	for _, err := range []error{
		hs.add(r),
		b.clients.add(clientKey{r.ClientIP, r.UserAgent}, r),
		b.models.add(modelKey{r.Provider, r.Model}, r),
		b.routes.add(r.Route, r),
	} {
		if err != nil {
			return fmt.Errorf("summing the window: %w", err)
		}
	}
	if IsError(r) {
		b.rep.Summary.ErrorRequests++
		if err := b.errs.add(outcomeKey{r.Status, r.Outcome}, r); err != nil {
			return fmt.Errorf("summing the window: %w", err)
		}
	}
	if r.RequestID != "" {
		b.rep.Summary.WithRequestID++
		id := RequestID{Time: r.Time.UTC(), RequestID: r.RequestID, Provider: r.Provider, Model: r.Model, Status: r.Status, Charged: r.Charged}
		if len(b.ids) < MaxRequestIDs {
			b.ids = append(b.ids, id)
		}
	}
	return nil
}

// Report finishes the report with the admin actions (in any order). It
// returns Add's error, if any.
func (b *Builder) Report(actions []Action) (Report, error) {
	if b.err != nil {
		return Report{}, b.err
	}
	rep := b.rep
	s := &rep.Summary
	s.Detailed = b.detailed.n
	if b.detailed.n > 0 {
		s.FirstUse, s.LastUse = b.detailed.first.UTC(), b.detailed.last.UTC()
	}
	s.OldSecretRequests = b.detailed.old
	if s.Requests < s.Detailed {
		// A record settled while the stream ran, behind the totals' end:
		// the tables are the count that holds more.
		s.Requests, s.Spent = s.Detailed, b.detailed.spent
	}

	rep.Hours = make([]Hour, 0, len(b.hours))
	for h, st := range b.hours {
		rep.Hours = append(rep.Hours, Hour{Hour: time.Unix(h, 0).UTC(), Requests: st.n, Spent: st.spent})
	}
	slices.SortFunc(rep.Hours, func(a, b Hour) int { return a.Hour.Compare(b.Hour) })

	rep.Clients = make([]Client, 0, len(b.clients.order))
	for _, k := range b.clients.order {
		st := b.clients.rows[k]
		rep.Clients = append(rep.Clients, Client{IP: k.ip, UserAgent: k.ua, First: st.first.UTC(), Last: st.last.UTC(), Requests: st.n, Spent: st.spent, OldSecret: st.old})
	}
	rep.ClientsOmitted = b.clients.omitted()

	rep.Models = make([]Model, 0, len(b.models.order))
	for _, k := range b.models.order {
		st := b.models.rows[k]
		rep.Models = append(rep.Models, Model{Provider: k.provider, Model: k.model, Requests: st.n, Spent: st.spent})
	}
	slices.SortStableFunc(rep.Models, func(a, b Model) int {
		return cmp.Or(cmp.Compare(b.Spent, a.Spent), cmp.Compare(b.Requests, a.Requests))
	})
	rep.ModelsOmitted = b.models.omitted()

	rep.Routes = make([]Route, 0, len(b.routes.order))
	for _, k := range b.routes.order {
		st := b.routes.rows[k]
		rep.Routes = append(rep.Routes, Route{Route: k, Requests: st.n, Spent: st.spent})
	}
	slices.SortStableFunc(rep.Routes, func(a, b Route) int {
		return cmp.Or(cmp.Compare(b.Requests, a.Requests), cmp.Compare(b.Spent, a.Spent))
	})
	rep.RoutesOmitted = b.routes.omitted()

	rep.Errors = make([]Outcome, 0, len(b.errs.order))
	for _, k := range b.errs.order {
		st := b.errs.rows[k]
		rep.Errors = append(rep.Errors, Outcome{Status: k.status, Outcome: string(k.outcome), First: st.first.UTC(), Last: st.last.UTC(), Requests: st.n, Spent: st.spent})
	}
	slices.SortStableFunc(rep.Errors, func(a, b Outcome) int {
		return cmp.Or(cmp.Compare(a.Status, b.Status), cmp.Compare(a.Outcome, b.Outcome))
	})
	rep.ErrorsOmitted = b.errs.omitted()

	rep.RequestIDs = slices.Clone(b.ids)
	if rep.RequestIDs == nil {
		rep.RequestIDs = []RequestID{}
	}
	// Stream order is time order; a stable sort keeps it so and orders any
	// that were not.
	slices.SortStableFunc(rep.RequestIDs, func(a, b RequestID) int { return a.Time.Compare(b.Time) })
	rep.RequestIDsOmitted = s.WithRequestID - int64(len(rep.RequestIDs))

	if rep.Refusals == nil {
		rep.Refusals = []Refusal{}
	}
	s.RefusedRequests = 0
	for _, c := range rep.Refusals {
		s.RefusedRequests += c.Count
	}
	slices.SortStableFunc(rep.Refusals, func(a, b Refusal) int { return b.Last.Compare(a.Last) })
	if rep.RefusalIPs == nil {
		rep.RefusalIPs = []RefusalIP{}
	}
	slices.SortStableFunc(rep.RefusalIPs, func(a, b RefusalIP) int { return b.Last.Compare(a.Last) })
	rep.ProviderKeys = slices.Clone(rep.ProviderKeys)
	if rep.ProviderKeys == nil {
		rep.ProviderKeys = []Action{}
	}

	rep.Actions = slices.Clone(actions)
	if rep.Actions == nil {
		rep.Actions = []Action{}
	}
	for i := range rep.Actions {
		rep.Actions[i].Time = rep.Actions[i].Time.UTC()
	}
	slices.SortStableFunc(rep.Actions, func(a, b Action) int { return a.Time.Compare(b.Time) })
	return rep, nil
}
