package storage

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/hardcap/hardcap/alert"
	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
)

// The detectors run inside the writer's operations: a reservation checks
// its client address, model and route against the token's history, a
// settlement its budgets' thresholds, the token's spend rate and its own
// overshoot. What they read is in memory (the state's address lists, the
// rates below), so none costs a disk access per request; an alert they
// raise, and a freeze it causes, is written in the operation's own
// transaction.

// bucketTokenSeen holds the models and routes each token has used: token
// id, 0x00, 'm' (model) or 'r' (route), name -> first use (Unix ns).
var bucketTokenSeen = []byte("token_seen")

// maxSeenPerToken bounds the models and routes remembered per token; past
// it, a new one is not remembered and alerts at most once per cooldown.
const maxSeenPerToken = 256

// overshootCooldown is the least time between two overshoot alerts of one
// token: a price error would otherwise raise one per request.
const overshootCooldown = 10 * time.Minute

// fullCooldown is the least time between two alerts of a token whose
// address or model list is full.
const fullCooldown = time.Hour

// rateFillMax bounds the index entries read to fill a token's rate from
// the disk (its last day of records).
const rateFillMax = 200_000

// detectState is what the detectors remember, in the writer's state.
type detectState struct {
	// seen are each token's models ("m"+name) and routes ("r"+name).
	seen map[string]map[string]struct{}
	// rates are the recent spend of every scope that spent since the
	// start (filled from the disk when first used).
	rates map[budget.Scope]*alert.Rate
	// high is, per budget window key, the largest threshold amount
	// already fired: a settlement below it needs no mark lookup.
	high map[string]highMark
	// cool is when an alert under a cooldown last fired, by kind and
	// target.
	cool map[coolKey]time.Time
	// bursts count the alerts under maxBurst.
	bursts map[coolKey]burst
	// adds are the batch's additions to rates, and born the rates the
	// batch created, so that a rollback takes them back.
	adds []rateAdd
	born []budget.Scope
	// buf is scratch for map keys.
	buf []byte
}

// coolKey names a cooldown: a kind and its token or provider. A struct of
// two strings, not their concatenation, so that a lookup allocates
// nothing.
type coolKey struct{ kind, target string }

type rateAdd struct {
	r  *alert.Rate
	at time.Time
	m  budget.Money
}

func newDetectState() detectState {
	return detectState{
		seen:   map[string]map[string]struct{}{},
		rates:  map[budget.Scope]*alert.Rate{},
		high:   map[string]highMark{},
		cool:   map[coolKey]time.Time{},
		bursts: map[coolKey]burst{},
	}
}

// rollbackDetect takes back the batch's rate additions.
func (st *state) rollbackDetect() {
	d := &st.detect
	for i := len(d.adds) - 1; i >= 0; i-- {
		a := d.adds[i]
		a.r.Add(a.at, -a.m)
	}
	for _, s := range d.born {
		delete(d.rates, s)
	}
}

func (st *state) forgetDetect() {
	clear(st.detect.adds)
	st.detect.adds = st.detect.adds[:0]
	st.detect.born = st.detect.born[:0]
	st.raised = 0
	st.freezes = st.freezes[:0]
}

// loadSeen reads every token's models and routes.
func (st *state) loadSeen(tx *bolt.Tx) error {
	return tx.Bucket(bucketTokenSeen).ForEach(func(k, _ []byte) error {
		id, name, ok := bytes.Cut(k, []byte{0})
		if !ok || len(name) < 2 {
			return nil
		}
		m := st.detect.seen[string(id)]
		if m == nil {
			m = map[string]struct{}{}
			st.detect.seen[string(id)] = m
		}
		m[string(name)] = struct{}{}
		return nil
	})
}

// maxBurst and burstSpan bound the new-address and new-model alerts of
// one token with action alert: a leaked token used from many addresses
// must not flood the channels. A freeze is never held back.
const (
	maxBurst  = 5
	burstSpan = time.Hour
)

// burst counts the alerts of a kind for a token since from.
type burst struct {
	from time.Time
	n    int
}

// allowBurst reports whether one more alert of kind under key may fire at
// now, counting it, and whether it is the last one allowed in its span.
func (db *DB) allowBurst(key coolKey, project string, kind alert.Kind, now time.Time) (allowed, last bool) {
	if db.policy.Rule(kind, project).Action == alert.ActionFreeze {
		return true, false
	}
	st := db.st
	b, had := st.detect.bursts[key]
	if !had || now.Sub(b.from) >= burstSpan {
		b = burst{from: now}
	}
	if b.n >= maxBurst {
		return false, false
	}
	b.n++
	setUndone(st, st.detect.bursts, key, b)
	return true, b.n == maxBurst
}

func ordinal(n int) string {
	switch n % 10 {
	case 1:
		return "st"
	case 2:
		return "nd"
	case 3:
		return "rd"
	}
	return "th"
}

// setUndone sets m[k] to v, with the undo log entry that puts back what
// m held before: the detectors' memory rolls back with its transaction.
func setUndone[K comparable, V any](st *state, m map[K]V, k K, v V) {
	old, had := m[k]
	st.undo = append(st.undo, undo{kind: undoFunc, fn: func() {
		if had {
			m[k] = old
		} else {
			delete(m, k)
		}
	}})
	m[k] = v
}

// setCool notes an alert under a cooldown, in the undo log.
func (st *state) setCool(key coolKey, at time.Time) { setUndone(st, st.detect.cool, key, at) }

// cooling reports whether key fired less than d ago.
func (st *state) cooling(key coolKey, now time.Time, d time.Duration) bool {
	last, ok := st.detect.cool[key]
	return ok && now.Sub(last) < d
}

// tokenLabel names a token in a message: its id, its name, its project.
func tokenLabel(t tokens.Token) string {
	if t.Name != "" {
		return fmt.Sprintf("token %s (%s, project %s)", t.ID, t.Name, t.Project)
	}
	return fmt.Sprintf("token %s (project %s)", t.ID, t.Project)
}

func tokenScope(t tokens.Token) alert.Scope {
	return alert.Scope{Kind: "token", Project: t.Project, TokenID: t.ID}
}

// anomaly raises an anomaly of kind about token t and, when its rule says
// freeze, turns the token's (or its project's) kill switch on in the same
// transaction and raises token.frozen. It returns whether it froze.
func (db *DB) anomaly(tx *bolt.Tx, t tokens.Token, kind alert.Kind, spent budget.Money, message string, details map[string]string) (bool, error) {
	rule := db.policy.Rule(kind, t.Project)
	if rule.Action != alert.ActionAlert && rule.Action != alert.ActionFreeze {
		return false, nil
	}
	freeze := rule.Action == alert.ActionFreeze && kind.CanFreeze()
	if details == nil {
		details = map[string]string{}
	}
	message = capital(message)
	a := alert.Alert{Type: kind.Type(), Scope: tokenScope(t), Spent: spent, Message: message, Action: alert.ActionAlert, Details: details}
	if !freeze {
		_, _, err := db.raise(tx, a, RaiseOptions{})
		return false, err
	}
	target, what, resume := KillTarget{Token: t.ID}, "token "+t.ID, "hardcap resume --token "+t.ID
	if rule.FreezeProject {
		target, what, resume = KillTarget{Project: t.Project}, "project "+t.Project, "hardcap resume --project "+t.Project
	}
	froze, err := db.freeze(tx, target, string(kind.Type()))
	if err != nil {
		return false, err
	}
	if !froze {
		// Frozen already (an earlier anomaly of the batch, or a kill):
		// the anomaly is told, the freeze is not claimed again.
		_, _, err := db.raise(tx, a, RaiseOptions{})
		return true, err
	}
	a.Action = alert.ActionFreeze
	a.Message = message + " hardcap froze " + what + " (its kill switch is on, its requests in flight are cut); when it is safe, run `" + resume + "`."
	details["resume"] = resume
	if _, _, err := db.raise(tx, a, RaiseOptions{}); err != nil {
		return false, err
	}
	f := a
	f.Type = alert.TypeFrozen
	f.Message = "hardcap froze " + what + " after " + string(kind.Type()) + ": " + message + " Run `" + resume + "` to let it spend again."
	f.Details = map[string]string{"cause": string(kind.Type()), "resume": resume}
	if rule.FreezeProject {
		f.Scope = alert.Scope{Kind: "project", Project: t.Project}
	}
	_, _, err = db.raise(tx, f, RaiseOptions{})
	return true, err
}

// freeze turns target's kill switch on in tx, with an audit entry by
// "system"; the proxy cuts the target's requests in flight once the
// commit is on disk (Options.OnFreeze).
func (db *DB) freeze(tx *bolt.Tx, target KillTarget, cause string) (bool, error) {
	e := AuditEntry{Actor: "system", Action: "freeze", Detail: cause}
	switch {
	case target.Token != "":
		t := db.st.tokens[target.Token]
		if t.Killed {
			return false, nil
		}
		t.Killed = true
		if err := db.putToken(tx, t); err != nil {
			return false, err
		}
		e.Kind, e.Target = "token", t.ID
	default:
		p, ok := db.st.projects[target.Project]
		if !ok || p.Killed {
			return false, nil
		}
		p.Killed = true
		if err := db.putProject(tx, p); err != nil {
			return false, err
		}
		e.Kind, e.Target = "project", p.Name
	}
	if err := fatal(db.appendAudit(tx, e)); err != nil {
		return false, err
	}
	db.st.freezes = append(db.st.freezes, target)
	return true, nil
}

// detectUse runs a reservation's detectors: a client address the token was
// never used from (or not for NewIPAfter), a model or route it never used.
// It runs after the reservation's checks passed and before its writes; a
// freeze refuses the request (frozen true), with the address and model
// remembered so that a resume does not freeze the token again at once.
func (db *DB) detectUse(tx *bolt.Tx, t tokens.Token, req budget.Request, now time.Time) (frozen bool, err error) {
	st := db.st
	if req.ClientIP != "" && db.policy.On(alert.NewIP, t.Project) {
		ips := st.ips[t.ID]
		e, had := ips[req.ClientIP]
		stale := had && db.policy.NewIPAfter > 0 && now.Sub(e.Last) >= db.policy.NewIPAfter
		// A token's first address is its baseline, not an anomaly.
		if len(ips) > 0 && (!had || stale) {
			ipKey := coolKey{"ip", t.ID}
			full := !had && len(ips) >= tokens.MaxClientIPs
			allowed, last := db.allowBurst(coolKey{"ipburst", t.ID}, t.Project, alert.NewIP, now)
			if allowed && (!full || !st.cooling(ipKey, now, fullCooldown)) {
				if full {
					st.setCool(ipKey, now)
				}
				msg := fmt.Sprintf("%s was used from %s, an address it was never used from", tokenLabel(t), req.ClientIP)
				if stale {
					msg = fmt.Sprintf("%s was used from %s, an address not seen for it since %s", tokenLabel(t), req.ClientIP, e.Last.UTC().Format("2006-01-02"))
				}
				msg += " (user agent " + quoteOrNone(req.UserAgent) + "). If nobody you know moved the app, the token has leaked: revoke or rotate it."
				if last {
					msg += fmt.Sprintf(" This is its %d%s new address within %s: more in that time are recorded (hardcap token show) but not alerted.", maxBurst, ordinal(maxBurst), spanWords(burstSpan))
				}
				f, err := db.anomaly(tx, t, alert.NewIP, 0, msg, map[string]string{"ip": req.ClientIP, "user_agent": req.UserAgent, "model": req.Model, "route": req.Route})
				if err != nil {
					return false, err
				}
				frozen = frozen || f
			}
		}
	}
	// Remembered even while new_model is off, so that turning it on later
	// does not call everything used meanwhile new.
	on := db.policy.On(alert.NewModel, t.Project)
	seen := st.detect.seen[t.ID]
	baseline := len(seen) == 0
	for _, n := range [...]struct {
		kind byte
		name string
		what string
	}{{'m', req.Model, "model"}, {'r', req.Route, "route"}} {
		if n.name == "" {
			continue
		}
		// The lookup of a []byte key converted in place allocates
		// nothing: this runs for every request.
		st.detect.buf = append(append(st.detect.buf[:0], n.kind), n.name...)
		if _, ok := seen[string(st.detect.buf)]; ok {
			continue
		}
		remembered, err := db.rememberSeen(tx, t.ID, string(st.detect.buf), now)
		if err != nil {
			return false, err
		}
		if baseline || !on {
			continue
		}
		if !remembered {
			fullKey := coolKey{"seen", t.ID}
			if st.cooling(fullKey, now, fullCooldown) {
				continue
			}
			st.setCool(fullKey, now)
		}
		allowed, last := db.allowBurst(coolKey{"seenburst", t.ID}, t.Project, alert.NewModel, now)
		if !allowed {
			continue
		}
		msg := fmt.Sprintf("%s was used for the %s %s, which it never used before (from %s).", tokenLabel(t), n.what, budget.Clip(n.name), req.ClientIP)
		if last {
			msg += fmt.Sprintf(" This is its %d%s new model or route within %s: more in that time are remembered but not alerted.", maxBurst, ordinal(maxBurst), spanWords(burstSpan))
		}
		f, err := db.anomaly(tx, t, alert.NewModel, 0, msg, map[string]string{n.what: n.name, "ip": req.ClientIP})
		if err != nil {
			return false, err
		}
		frozen = frozen || f
		seen = st.detect.seen[t.ID]
	}
	return frozen, nil
}

func quoteOrNone(s string) string {
	if s == "" {
		return "none"
	}
	return fmt.Sprintf("%q", budget.Clip(s))
}

// rememberSeen adds key to token id's models and routes, on disk and in
// memory; false when the list is full and key was not added.
func (db *DB) rememberSeen(tx *bolt.Tx, id, key string, now time.Time) (bool, error) {
	st := db.st
	m := st.detect.seen[id]
	if len(m) >= maxSeenPerToken || len(key) > maxInterned {
		return false, nil
	}
	k := make([]byte, 0, len(id)+1+len(key))
	k = append(append(append(k, id...), 0), key...)
	if err := fatal(tx.Bucket(bucketTokenSeen).Put(k, binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano())))); err != nil {
		return false, err
	}
	created := m == nil
	if created {
		m = map[string]struct{}{}
		st.detect.seen[id] = m
	}
	m[key] = struct{}{}
	st.undo = append(st.undo, undo{kind: undoFunc, fn: func() {
		delete(m, key)
		if created {
			delete(st.detect.seen, id)
		}
	}})
	return true, nil
}

// detectExhausted raises budget.exhausted for the first refusal of a
// window for want of budget, once per window and limit. A refusal only
// because of money reserved by requests in flight, which may come back,
// is not one: the request must not fit even in what committed spend
// leaves (on_low as configured, so clamping counts).
func (db *DB) detectExhausted(tx *bolt.Tx, b budget.Budget, key string, sp budget.Spend, q budget.Quote, t tokens.Token, now time.Time) error {
	if !db.policy.Exhausted || (b.Limit.Amount <= 0 && !b.Limit.Zero) {
		// Off, or no budget to name: a worst case past what money can
		// count.
		return nil
	}
	if _, _, err := q.Fit(budget.Spend{Committed: sp.Committed}.Headroom(b.Limit), db.onLow); !errors.Is(err, budget.ErrExhausted) {
		return nil
	}
	once := "x/" + key + "/" + b.Limit.Amount.String()
	if _, fired := db.st.fired[once]; fired {
		return nil
	}
	what := "the rest of the budget is below the least the request can cost"
	if db.onLow == budget.Reject {
		what = "its worst case does not fit what is left (budget.on_low: reject)"
	}
	a := alert.Alert{
		Type: alert.TypeExhausted, Scope: db.budgetScope(b.Scope, t), Window: windowLabel(b.Limit, now, db.loc),
		Spent: sp.Committed, Message: fmt.Sprintf("%s refused a request of %s: %s; %s committed of %s %s. Requests are refused until the window ends or the limit is raised.",
			db.budgetName(b.Scope, t), tokenLabel(t), what, usdText(sp.Committed), usdText(b.Limit.Amount), periodWords(b.Limit)),
	}
	lim := b.Limit.Amount
	a.Limit = &lim
	_, _, err := db.raise(tx, a, RaiseOptions{Once: once, OnceUntil: db.windowEnd(b.Limit, now)})
	return err
}

// detectSettle runs a settlement's detectors after its writes: the
// thresholds of the budgets it was charged to, the token's spend spike and
// the settlement's overshoot. res is the reservation settled.
func (db *DB) detectSettle(tx *bolt.Tx, res budget.Reservation, s budget.Settlement, rates [3]*alert.Rate, now time.Time) error {
	st := db.st
	t, ok := st.tokens[res.Request.TokenID]
	if !ok {
		return nil
	}
	for _, r := range rates {
		if r != nil && s.Charged > 0 {
			r.Add(now, s.Charged)
			st.detect.adds = append(st.detect.adds, rateAdd{r, now, s.Charged})
		}
	}
	if s.Charged > res.Amount && db.policy.On(alert.Overshoot, t.Project) {
		coolKey := coolKey{"over", t.ID}
		if !st.cooling(coolKey, now, overshootCooldown) {
			st.setCool(coolKey, now)
			msg := fmt.Sprintf("A request of %s (%s, %s) was charged %s, above the %s reserved for its worst case: the provider billed more than hardcap's price data allowed for. Its budgets may go past their limit by the difference. Check `hardcap prices` for the model and report it.",
				tokenLabel(t), budget.Clip(res.Request.Model), res.Request.Route, usdText(s.Charged), usdText(res.Amount))
			if _, err := db.anomaly(tx, t, alert.Overshoot, s.Charged, msg, map[string]string{"model": res.Request.Model, "route": res.Request.Route, "reservation": res.ID, "reserved_usd": res.Amount.String()}); err != nil {
				return err
			}
		}
	}
	if s.Charged > 0 && len(res.Keys) >= 3 {
		if err := db.detectThresholds(tx, res, s, rates, t, now); err != nil {
			return err
		}
	}
	if r := rates[2]; r != nil && s.Charged > 0 && db.policy.On(alert.SpendSpike, t.Project) && !t.Killed {
		coolKey := coolKey{"spike", t.ID}
		if !st.cooling(coolKey, now, db.policy.Spike.Cooldown) {
			c := r.CheckSpike(now, db.policy.Spike)
			if c.Spike {
				st.setCool(coolKey, now)
				sp := db.policy.Spike
				msg := fmt.Sprintf("%s spent %s in the last %s, more than %d times its usual %s per %s (the average of the last %s).",
					tokenLabel(t), usdText(c.Recent), spanWords(sp.Window), sp.Factor, usdText(c.Average), spanWords(sp.Window), spanWords(c.Span.Round(time.Minute)))
				if _, err := db.anomaly(tx, t, alert.SpendSpike, c.Recent, msg, map[string]string{"window": sp.Window.String(), "average_usd": c.Average.String(), "model": res.Request.Model}); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// detectThresholds fires the thresholds a settlement's charge reached in
// the current windows of its budgets (global, project, token). A charge
// that went to a window no longer current (it rolled over, or the period
// changed, while the request ran) fires nothing there.
func (db *DB) detectThresholds(tx *bolt.Tx, res budget.Reservation, s budget.Settlement, rates [3]*alert.Rate, t tokens.Token, now time.Time) error {
	st := db.st
	ps, ts := st.tokenScopes(t)
	scopes := [3]budget.Scope{budget.GlobalScope, ps, ts}
	for i, scope := range scopes {
		limit := db.global
		ths := thresholds{def: db.policy.Thresholds}
		switch i {
		case 1:
			limit = st.limits[scope]
			ths.own = st.projects[t.Project].AlertAt
		case 2:
			limit = st.limits[scope]
			ths.own = t.AlertAt
		}
		n := ths.len()
		if limit.Amount <= 0 || n == 0 {
			continue
		}
		key := st.windowKey(scope, limit, now, db.loc)
		if !slices.Contains(res.Keys, key) {
			continue
		}
		committed := st.spend[key].Committed + db.spentElsewhere(key)
		if committed < ths.at(0).Of(limit.Amount) {
			continue // the common case: below every threshold
		}
		high, hadHigh := st.detect.high[key]
		hadHigh = hadHigh && high.limit == limit.Amount
		for k := range n {
			f := ths.at(k)
			amount := f.Of(limit.Amount)
			if committed < amount {
				break
			}
			if hadHigh && amount <= high.amount {
				continue
			}
			// The mark holds the limit: a limit raised or lowered in the
			// window fires its shares again.
			once := "t/" + key + "/" + limit.Amount.String() + "/" + f.String()
			if _, fired := st.fired[once]; !fired {
				if err := db.raiseThreshold(tx, scope, limit, f, committed, rates[i], t, now, once); err != nil {
					return err
				}
			}
			st.setHigh(key, highMark{limit.Amount, amount})
			high, hadHigh = highMark{limit.Amount, amount}, true
		}
	}
	return nil
}

// thresholds are a budget's shares: its own, when it has them, else the
// config's; read in place, without a copy per settlement.
type thresholds struct {
	own []uint32
	def []budget.Fraction
}

func (t thresholds) len() int {
	if len(t.own) > 0 {
		return len(t.own)
	}
	return len(t.def)
}

func (t thresholds) at(i int) budget.Fraction {
	if len(t.own) > 0 {
		return budget.Fraction(t.own[i])
	}
	return t.def[i]
}

// highMark is the largest threshold amount fired in a window, and the
// limit it was fired under.
type highMark struct {
	limit, amount budget.Money
}

func (db *DB) raiseThreshold(tx *bolt.Tx, scope budget.Scope, limit budget.Limit, f budget.Fraction, committed budget.Money, r *alert.Rate, t tokens.Token, now time.Time, once string) error {
	var perHour budget.Money
	if r != nil {
		perHour = r.LastHour(now)
	}
	msg := fmt.Sprintf("%s has reached %s: %s spent of %s %s.", db.budgetName(scope, t), f.Percent(), usdText(committed), usdText(limit.Amount), periodWords(limit))
	details := map[string]string{}
	if proj, at := alert.Projection(now, committed, limit.Amount, perHour); proj != "" {
		msg += " " + strings.ToUpper(proj[:1]) + proj[1:] + "."
		details["projection"] = proj
		if !at.IsZero() {
			details["runs_out"] = at.Format(time.RFC3339)
		}
	} else if committed >= limit.Amount {
		msg += " New requests are refused until the window ends or the limit is raised."
	}
	details["last_hour_usd"] = perHour.String()
	lim := limit.Amount
	a := alert.Alert{Type: alert.TypeThreshold, Scope: db.budgetScope(scope, t), Window: windowLabel(limit, now, db.loc), Threshold: &f, Spent: committed, Limit: &lim, Message: msg, Details: details}
	_, _, err := db.raise(tx, a, RaiseOptions{Once: once, OnceUntil: db.windowEnd(limit, now)})
	return err
}

// setHigh notes the largest threshold amount fired in a window, in the
// undo log.
func (st *state) setHigh(key string, amount highMark) { setUndone(st, st.detect.high, key, amount) }

// budgetScope is the alert scope of a budget scope.
func (db *DB) budgetScope(scope budget.Scope, t tokens.Token) alert.Scope {
	switch {
	case scope == budget.GlobalScope:
		return alert.Scope{Kind: "global"}
	case strings.HasPrefix(string(scope), "project:"):
		return alert.Scope{Kind: "project", Project: strings.TrimPrefix(string(scope), "project:")}
	}
	return tokenScope(t)
}

// budgetName names a budget in a message.
func (db *DB) budgetName(scope budget.Scope, t tokens.Token) string {
	switch {
	case scope == budget.GlobalScope:
		return "The global budget"
	case strings.HasPrefix(string(scope), "project:"):
		return "The budget of project " + strings.TrimPrefix(string(scope), "project:")
	}
	return "The budget of " + tokenLabel(t)
}

// windowEnd is when the window of limit at now ends (zero: never, a total
// budget): when a once-mark about it stops holding.
func (db *DB) windowEnd(l budget.Limit, now time.Time) time.Time {
	if l.Period == "" || l.Period == budget.Total {
		return time.Time{}
	}
	return l.Period.End(now, db.loc)
}

func windowLabel(l budget.Limit, now time.Time, loc *time.Location) string {
	p := l.Period
	if p == "" {
		p = budget.Total
	}
	return p.Window(now, loc)
}

// periodWords says a limit's period in words.
func periodWords(l budget.Limit) string {
	switch l.Period {
	case budget.Day:
		return "today"
	case budget.Week:
		return "this week"
	case budget.Month:
		return "this month"
	}
	return "in total"
}

func usdText(m budget.Money) string { return m.String() + " USD" }

// settleRates returns the rates of a settlement's three budgets, making
// and filling from the disk those not yet in memory. It runs before the
// settlement writes its record, so that a rate filled from the disk does
// not hold the charge it is about to add.
func (db *DB) settleRates(tx *bolt.Tx, res budget.Reservation, now time.Time) [3]*alert.Rate {
	var out [3]*alert.Rate
	if !db.alerting {
		return out
	}
	req := res.Request
	var scopes [3]budget.Scope
	if t, ok := db.st.tokens[req.TokenID]; ok && t.Project == req.Project {
		// Formatted once per token, not per settlement.
		ps, ts := db.st.tokenScopes(t)
		scopes = [3]budget.Scope{budget.GlobalScope, ps, ts}
	} else {
		scopes = [3]budget.Scope{budget.GlobalScope, budget.ProjectScope(req.Project), budget.TokenScope(req.TokenID)}
	}
	for i, s := range scopes {
		if r, ok := db.st.detect.rates[s]; ok {
			out[i] = r
			continue
		}
		r := db.fillRate(tx, i, req, now)
		db.st.detect.rates[s] = r
		db.st.detect.born = append(db.st.detect.born, s)
		out[i] = r
	}
	return out
}

// fillRate makes the rate of a scope from what the disk holds of its last
// day: hour totals for the global and project budgets, index entries for
// a token.
func (db *DB) fillRate(tx *bolt.Tx, which int, req budget.Request, now time.Time) *alert.Rate {
	st := db.st
	var since time.Time
	if t, ok := st.tokens[req.TokenID]; ok && which == 2 {
		since = t.Created
	}
	r := alert.NewRate(since)
	from := now.Add(-26 * time.Hour)
	switch which {
	case 0, 1:
		kind, id := byte(scopeAll), uint32(0)
		if which == 1 {
			pid, ok := lookupID(tx, req.Project)
			if !ok {
				return r
			}
			kind, id = scopeProject, pid
		}
		b := tx.Bucket(bucketUsageHours)
		for h := hourOf(from.UnixNano()); h <= hourOf(now.UnixNano()); h++ {
			k := hourKey(kind, id, h)
			_, sum := hourTotal(b.Get(k[:]))
			sum += st.hours[k].charged // this batch's, not on disk yet
			if sum > 0 {
				r.AddHour(time.Unix(int64(h)*3600, 0), sum)
			}
		}
	case 2:
		tid, ok := lookupID(tx, req.TokenID)
		if !ok {
			return r
		}
		// Newest first, so that past rateFillMax the oldest hours are
		// the ones left out.
		prefix := idPrefix(tid)
		end := binary.BigEndian.AppendUint64(bytes.Clone(prefix), uint64(now.UnixNano())+1)
		c := tx.Bucket(bucketByToken).Cursor()
		k, v := c.Seek(end)
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for n := 0; k != nil && bytes.HasPrefix(k, prefix) && n < rateFillMax; k, v = c.Prev() {
			n++
			if len(k) < 12 {
				continue
			}
			ns := int64(binary.BigEndian.Uint64(k[4:12]))
			if ns < from.UnixNano() {
				break
			}
			ch, w := binary.Uvarint(v)
			if w <= 0 || ch == 0 {
				continue
			}
			r.AddHour(time.Unix(0, ns).Truncate(time.Hour), budget.Money(ch))
		}
	}
	return r
}

// detectKeyRejected raises key_rejected for a provider whose real key got
// upstream 401s, at most once per Policy.KeyRejectedEvery.
func (db *DB) detectKeyRejected(tx *bolt.Tx, provider string, k ProviderKeyInfo, n uint64, last time.Time) error {
	if !db.policy.On(alert.KeyRejected, "") {
		return nil
	}
	now := db.now()
	coolKey := coolKey{"key", provider}
	if db.st.cooling(coolKey, now, db.policy.KeyRejectedEvery) {
		return nil
	}
	db.st.setCool(coolKey, now)
	fp := ShortFingerprint(k.Fingerprint)
	msg := fmt.Sprintf("The provider %s refused hardcap's real key (fingerprint %s) with 401 Unauthorized, %d time(s), the last at %s: the key was revoked, expired, or rotated by the provider (which happens after a leak). Requests to %s fail until a valid key is in its source; then run `hardcap keys reload`.",
		provider, fp, n, last.UTC().Format(time.RFC3339), provider)
	a := alert.Alert{Type: alert.TypeKeyRejected, Scope: alert.Scope{Kind: "provider", Provider: provider}, Message: msg,
		Details: map[string]string{"provider": provider, "fingerprint": fp, "unauthorized": fmt.Sprint(n)}}
	_, _, err := db.raise(tx, a, RaiseOptions{})
	return err
}

// capital is s with its first letter upper case: messages begin with a
// token's label.
func capital(s string) string {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return s
	}
	return string(s[0]-'a'+'A') + s[1:]
}

// spanWords says a detector's span as people do: "10 min", "24 h".
func spanWords(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return fmt.Sprintf("%d h", d/time.Hour)
	case d >= time.Minute && d%time.Minute == 0:
		return fmt.Sprintf("%d min", d/time.Minute)
	}
	return d.String()
}
