package storage

import (
	"context"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
)

// CreateProject adds a project with an optional budget limit.
func (db *DB) CreateProject(ctx context.Context, name string, limit budget.Limit) (tokens.Project, error) {
	if err := tokens.CheckName(name); err != nil {
		return tokens.Project{}, err
	}
	p := tokens.Project{Name: name, Created: db.now().UTC()}
	err := db.update(ctx, func(tx *bolt.Tx) error {
		if _, ok := db.st.projects[name]; ok {
			return fmt.Errorf("%w: %s", tokens.ErrProjectExists, budget.Clip(name))
		}
		stored, err := putJSONState(tx.Bucket(bucketProjects), []byte(name), p)
		if err != nil {
			return err
		}
		db.st.setProject(stored)
		if err := db.setLimit(tx, budget.ProjectScope(name), limit); err != nil {
			return err
		}
		return db.appendAudit(tx, AuditEntry{Actor: ActorFrom(ctx), Action: "create", Kind: "project", Target: name, Detail: "budget " + describeLimit(limit)})
	})
	return p, err
}

// Projects lists every project, by name.
func (db *DB) Projects() ([]tokens.Project, error) {
	var out []tokens.Project
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketProjects).ForEach(func(k, v []byte) error {
			var p tokens.Project
			if _, err := getJSON(tx.Bucket(bucketProjects), k, &p); err != nil {
				return err
			}
			out = append(out, p)
			return nil
		})
	})
	return out, err
}

// TokenSpec is what a new token should be. The scopes mean what the
// tokens.Token fields of the same names do.
type TokenSpec struct {
	Project string
	Name    string
	// Owner and Purpose are the token's ledger entry: who answers for it
	// and what it is for (printable text, tokens.CheckText).
	Owner   string
	Purpose string
	Limit   budget.Limit
	Models  []string
	Routes  []string
	IPs     []string
	Expires time.Time
	RPM     int
	// MaxConcurrent is the most requests in flight; 0 is no limit.
	MaxConcurrent int
	// MaxRequest is the most one request's worst case may cost, in
	// nano-USD; 0 is no limit.
	MaxRequest budget.Money
	// RotateEvery sets RotateBy to the creation plus it; 0 means never due.
	RotateEvery time.Duration
	// AlertAt are the shares of the token's budget that fire a threshold
	// alert; empty uses the config's (Options.Alerts).
	AlertAt []budget.Fraction
}

// checkScopes refuses token scopes that cannot be used, before anything is
// written; it returns the address list in canonical form.
func checkScopes(routes, ips []string, rpm, maxConcurrent int, maxRequest budget.Money, rotateEvery time.Duration) ([]string, error) {
	if err := tokens.CheckRoutes(routes); err != nil {
		return nil, err
	}
	canon, err := tokens.ParseIPs(ips)
	if err != nil {
		return nil, err
	}
	switch {
	case rpm < 0:
		return nil, fmt.Errorf("%w: rpm must not be negative", tokens.ErrInvalidScope)
	case maxConcurrent < 0:
		return nil, fmt.Errorf("%w: max_concurrent must not be negative", tokens.ErrInvalidScope)
	case maxRequest < 0:
		return nil, fmt.Errorf("%w: max_request_usd must be positive", tokens.ErrInvalidScope)
	case rotateEvery < 0:
		return nil, fmt.Errorf("%w: rotate_every must not be negative", tokens.ErrInvalidRotation)
	}
	return canon, nil
}

// checkEntry refuses an owner or purpose that cannot be shown.
func checkEntry(owner, purpose *string) error {
	if owner != nil {
		if err := tokens.CheckText("owner", *owner, tokens.MaxOwner); err != nil {
			return err
		}
	}
	if purpose != nil {
		if err := tokens.CheckText("purpose", *purpose, tokens.MaxPurpose); err != nil {
			return err
		}
	}
	return nil
}

// describeLimit is a limit for an audit log entry.
func describeLimit(l budget.Limit) string {
	c, ok := l.Ceiling()
	if !ok {
		return budget.UnlimitedWord
	}
	p := l.Period
	if p == "" {
		p = budget.Total
	}
	return c.String() + " USD/" + string(p)
}

// CreateToken issues a token for an existing project. It returns the record
// and the secret; the secret is not stored and cannot be shown again.
func (db *DB) CreateToken(ctx context.Context, spec TokenSpec) (tokens.Token, string, error) {
	if err := tokens.CheckLabel(spec.Name); err != nil {
		return tokens.Token{}, "", err
	}
	if err := checkEntry(&spec.Owner, &spec.Purpose); err != nil {
		return tokens.Token{}, "", err
	}
	ips, err := checkScopes(spec.Routes, spec.IPs, spec.RPM, spec.MaxConcurrent, spec.MaxRequest, spec.RotateEvery)
	if err != nil {
		return tokens.Token{}, "", err
	}
	secret, err := tokens.NewSecret()
	if err != nil {
		return tokens.Token{}, "", err
	}
	id, err := tokens.NewID()
	if err != nil {
		return tokens.Token{}, "", err
	}
	hash := tokens.HashOf(secret)
	now := db.now().UTC()
	tok := tokens.Token{
		ID:            id,
		Name:          spec.Name,
		Project:       spec.Project,
		Owner:         spec.Owner,
		Purpose:       spec.Purpose,
		Hash:          hash.String(),
		Models:        spec.Models,
		Routes:        spec.Routes,
		IPs:           ips,
		Expires:       spec.Expires,
		RPM:           spec.RPM,
		MaxConcurrent: spec.MaxConcurrent,
		MaxRequest:    int64(spec.MaxRequest),
		Created:       now,
		CreatedBy:     ActorFrom(ctx),
		RotateEvery:   spec.RotateEvery,
		AlertAt:       ppm(spec.AlertAt),
	}
	if spec.RotateEvery > 0 {
		tok.RotateBy = now.Add(spec.RotateEvery)
	}
	err = db.update(ctx, func(tx *bolt.Tx) error {
		if _, ok := db.st.projects[spec.Project]; !ok {
			return fmt.Errorf("%w: %s", tokens.ErrProjectNotFound, budget.Clip(spec.Project))
		}
		stored, err := putJSONState(tx.Bucket(bucketTokens), []byte(id), tok)
		if err != nil {
			return err
		}
		db.st.setToken(stored)
		if err := fatal(tx.Bucket(bucketTokenHashes).Put(hash[:], []byte(id))); err != nil {
			return err
		}
		db.st.setHash(hash, id)
		if err := db.setLimit(tx, budget.TokenScope(id), spec.Limit); err != nil {
			return err
		}
		tok = stored
		return db.appendAudit(tx, AuditEntry{Actor: tok.CreatedBy, Action: "create", Kind: "token", Target: id,
			Detail: "project " + tok.Project + ", budget " + describeLimit(spec.Limit)})
	})
	if err != nil {
		return tokens.Token{}, "", err
	}
	return tok, secret, nil
}

// Tokens lists the tokens of a project, or of every project when project is
// empty, oldest first.
func (db *DB) Tokens(project string) ([]tokens.Token, error) {
	var out []tokens.Token
	err := db.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketTokens).ForEach(func(k, v []byte) error {
			var t tokens.Token
			if _, err := getJSON(tx.Bucket(bucketTokens), k, &t); err != nil {
				return err
			}
			if project == "" || t.Project == project {
				out = append(out, t)
			}
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// Token returns one token by id.
func (db *DB) Token(id string) (tokens.Token, error) {
	var t tokens.Token
	err := db.view(func(tx *bolt.Tx) error {
		ok, err := getJSON(tx.Bucket(bucketTokens), []byte(id), &t)
		if err == nil && !ok {
			err = fmt.Errorf("%w: %s", tokens.ErrTokenNotFound, shownID(id))
		}
		return err
	})
	return t, err
}

// Limit returns the budget limit of a scope.
func (db *DB) Limit(scope budget.Scope) (budget.Limit, error) {
	var l budget.Limit
	err := db.view(func(tx *bolt.Tx) error {
		var err error
		l, err = db.limitOf(tx, scope)
		return err
	})
	return l, err
}

// RevokeToken revokes a token; its next request is refused. Revoking a
// revoked token changes nothing.
func (db *DB) RevokeToken(ctx context.Context, id string) (tokens.Token, error) {
	var t tokens.Token
	err := db.update(ctx, func(tx *bolt.Tx) error {
		var ok bool
		if t, ok = db.st.tokens[id]; !ok {
			return fmt.Errorf("%w: %s", tokens.ErrTokenNotFound, shownID(id))
		}
		if !t.Revoked.IsZero() {
			return nil
		}
		t.Revoked = db.now().UTC()
		if err := db.putToken(tx, t); err != nil {
			return err
		}
		return db.appendAudit(tx, AuditEntry{Time: t.Revoked, Actor: ActorFrom(ctx), Action: "revoke", Kind: "token", Target: id, Detail: "project " + t.Project})
	})
	return t, err
}

// Authenticate finds the live token whose secret is presented. The secret
// is checked for form first, then looked up by its SHA-256 in the view the
// writer keeps in memory (see authView), so the stored hash is compared,
// never the secret, and a request costs no read of the file. A secret a
// rotation replaced is accepted until the rotation's grace ends, on a token
// marked OldSecret; after, and for any older secret, it is refused with a
// *tokens.RotatedError (tokens.ErrRotated) that says when. It returns
// tokens.ErrMalformed, ErrUnknown, ErrRevoked, ErrExpired or ErrKilled
// (token, project or global kill switch); ErrClosed once Close has begun
// and the error of a broken database, as every other call does. With
// ErrRevoked, ErrExpired, ErrKilled, ErrRotated (and ErrProjectNotFound) it
// returns the token the secret belongs to as well, so that the refusal can
// be logged and counted against it; a caller that only checks the error
// must not use the token. An unknown or malformed secret returns none.
func (db *DB) Authenticate(secret string) (tokens.Token, error) {
	if err := tokens.Parse(secret); err != nil {
		return tokens.Token{}, err
	}
	hash := tokens.HashOf(secret)
	db.closeMu.RLock()
	closed := db.closed
	db.closeMu.RUnlock()
	if closed {
		return tokens.Token{}, ErrClosed
	}
	if err := db.broken.Load(); err != nil {
		return tokens.Token{}, *err
	}
	a := db.auth
	a.mu.RLock()
	id, ok := a.byHash[hash]
	at, known := a.tokens[id]
	ok = ok && known
	tok := at.tok
	proj, pok := a.projects[tok.Project]
	killAll := a.killAll
	a.mu.RUnlock()
	now := db.now()
	switch {
	case !ok:
		return tokens.Token{}, tokens.ErrUnknown
	case !tok.Revoked.IsZero():
		return tok, tokens.ErrRevoked
	case hash == at.hash:
		tok.Presented = hash
	case at.hasPrev && hash == at.prev && now.Before(tok.RotatingUntil):
		tok.OldSecret, tok.Presented = true, hash
	case at.hasPrev && hash == at.prev:
		return tok, &tokens.RotatedError{ID: tok.ID, Rotated: tok.Rotated, GraceEnded: tok.RotatingUntil}
	default:
		// A secret from before the last rotation.
		return tok, &tokens.RotatedError{ID: tok.ID}
	}
	if !pok {
		return tok, fmt.Errorf("%w: %s", tokens.ErrProjectNotFound, budget.Clip(tok.Project))
	}
	if err := checkUsable(tok, proj, now, killAll); err != nil {
		return tok, err
	}
	return tok, nil
}

// checkUsable applies the token's own state and the project's and global
// kill switches.
func checkUsable(tok tokens.Token, proj tokens.Project, now time.Time, killAll bool) error {
	if err := tok.Usable(now); err != nil {
		return err
	}
	if proj.Killed {
		return fmt.Errorf("%w for project %s", tokens.ErrKilled, proj.Name)
	}
	if killAll {
		return fmt.Errorf("%w for everything", tokens.ErrKilled)
	}
	return nil
}

func killedAll(tx *bolt.Tx) bool {
	return string(tx.Bucket(bucketMeta).Get(metaKillAll)) == "1"
}

// putToken writes a token to tx and to the writer's state.
func (db *DB) putToken(tx *bolt.Tx, t tokens.Token) error {
	stored, err := putJSONState(tx.Bucket(bucketTokens), []byte(t.ID), t)
	if err != nil {
		return err
	}
	db.st.setToken(stored)
	return nil
}

// putProject writes a project to tx and to the writer's state.
func (db *DB) putProject(tx *bolt.Tx, p tokens.Project) error {
	stored, err := putJSONState(tx.Bucket(bucketProjects), []byte(p.Name), p)
	if err != nil {
		return err
	}
	db.st.setProject(stored)
	return nil
}

func parseHash(s string) (tokens.Hash, error) {
	var h tokens.Hash
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != len(h) {
		return h, tokens.ErrUnknown
	}
	copy(h[:], b)
	return h, nil
}

// KillTarget names what a kill switch applies to: everything when both
// fields are empty, else one project or one token.
type KillTarget struct {
	Project string `json:"project,omitempty"`
	Token   string `json:"token,omitempty"`
}

// SetKill turns a kill switch on or off. Reservations taken after it
// commits check it, so requests still waiting for their reservation are
// refused too; cutting the streams already running is the proxy's part.
func (db *DB) SetKill(ctx context.Context, target KillTarget, on bool) error {
	if target.Project != "" && target.Token != "" {
		return fmt.Errorf("storage: kill one project or one token, not both")
	}
	e := AuditEntry{Actor: ActorFrom(ctx), Action: "resume", Kind: "all"}
	if on {
		e.Action = "kill"
	}
	return db.update(ctx, func(tx *bolt.Tx) error {
		switch {
		case target.Token != "":
			t, ok := db.st.tokens[target.Token]
			if !ok {
				return fmt.Errorf("%w: %s", tokens.ErrTokenNotFound, shownID(target.Token))
			}
			t.Killed = on
			if err := db.putToken(tx, t); err != nil {
				return err
			}
			e.Kind, e.Target = "token", t.ID
		case target.Project != "":
			p, ok := db.st.projects[target.Project]
			if !ok {
				return fmt.Errorf("%w: %s", tokens.ErrProjectNotFound, budget.Clip(target.Project))
			}
			p.Killed = on
			if err := db.putProject(tx, p); err != nil {
				return err
			}
			e.Kind, e.Target = "project", p.Name
		default:
			v := []byte("0")
			if on {
				v = []byte("1")
			}
			if err := fatal(tx.Bucket(bucketMeta).Put(metaKillAll, v)); err != nil {
				return err
			}
			db.st.setKillAll(on)
		}
		return db.appendAudit(tx, e)
	})
}

var _ tokens.Authenticator = (*DB)(nil)

// LimitChange changes a budget limit; what it leaves nil or empty keeps its
// value.
type LimitChange struct {
	// Amount, when not nil, replaces the ceiling with its Amount and Zero
	// (budget.Ceiling or budget.NoLimit); its Period is not used.
	Amount *budget.Limit
	// Period, when not empty, replaces the period. The new period's current
	// window counts every charge recorded in it and every open reservation
	// of the scope (see carrySpend).
	Period budget.Period
	// AlertAt, when not nil, replaces the project's or token's alert
	// thresholds (the shares of its budget that fire budget.threshold);
	// an empty list goes back to the config's. Not used for the global
	// budget.
	AlertAt *[]budget.Fraction
}

func (c LimitChange) apply(l budget.Limit) budget.Limit {
	if c.Amount != nil {
		l.Amount, l.Zero = c.Amount.Amount, c.Amount.Zero
	}
	if c.Period != "" {
		l.Period = c.Period
	}
	return l
}

// UpdateProject changes a project's budget in one transaction and returns
// the project and its new limit. Lowering a limit below what is already
// committed and reserved is allowed: reservations already taken stay, and
// every later request is refused until spend is back under the limit (or
// the window turns).
func (db *DB) UpdateProject(ctx context.Context, name string, change LimitChange) (tokens.Project, budget.Limit, error) {
	var p tokens.Project
	var l budget.Limit
	err := db.update(ctx, func(tx *bolt.Tx) error {
		var ok bool
		if p, ok = db.st.projects[name]; !ok {
			return fmt.Errorf("%w: %s", tokens.ErrProjectNotFound, budget.Clip(name))
		}
		scope := budget.ProjectScope(name)
		l = db.st.limits[scope]
		nl := change.apply(l)
		if err := db.carrySpend(tx, scope, l, nl); err != nil {
			return err
		}
		l = nl
		if err := db.setLimit(tx, scope, l); err != nil {
			return err
		}
		detail := "budget " + describeLimit(l)
		if change.AlertAt != nil {
			p.AlertAt = ppm(*change.AlertAt)
			if err := db.putProject(tx, p); err != nil {
				return err
			}
			detail += ", alert thresholds " + describeFractions(p.AlertAt)
		}
		return db.appendAudit(tx, AuditEntry{Actor: ActorFrom(ctx), Action: "change", Kind: "project", Target: name, Detail: detail})
	})
	return p, l, err
}

// TokenChange changes a token; what it leaves nil keeps its value.
type TokenChange struct {
	// Limit changes the token's own budget.
	Limit LimitChange
	// Name replaces the label.
	Name *string
	// Models replaces the model list; an empty list allows every priced
	// model.
	Models *[]string
	// RPM replaces the requests-per-minute limit; 0 is no limit.
	RPM *int
	// Expires replaces the expiry; the zero time is never.
	Expires *time.Time
	// Owner and Purpose replace the ledger entry's text.
	Owner   *string
	Purpose *string
	// Routes and IPs replace the route and address scopes; an empty list
	// allows every route or address.
	Routes *[]string
	IPs    *[]string
	// MaxConcurrent replaces the in-flight limit; 0 is no limit.
	MaxConcurrent *int
	// MaxRequest replaces the per-request cost limit, in nano-USD; 0 is no
	// limit.
	MaxRequest *budget.Money
	// RotateEvery replaces the rotation period, and RotateBy with the last
	// rotation (or the creation) plus it; 0 is never due.
	RotateEvery *time.Duration
}

// fields lists what c changes, for the audit log.
func (c TokenChange) fields() string {
	var f []string
	add := func(set bool, name string) {
		if set {
			f = append(f, name)
		}
	}
	add(c.Limit.Amount != nil || c.Limit.Period != "", "budget")
	add(c.Limit.AlertAt != nil, "alert_at")
	add(c.Name != nil, "name")
	add(c.Owner != nil, "owner")
	add(c.Purpose != nil, "purpose")
	add(c.Models != nil, "models")
	add(c.Routes != nil, "routes")
	add(c.IPs != nil, "ips")
	add(c.RPM != nil, "rpm")
	add(c.MaxConcurrent != nil, "max_concurrent")
	add(c.MaxRequest != nil, "max_request_usd")
	add(c.Expires != nil, "expires")
	add(c.RotateEvery != nil, "rotate_every")
	return strings.Join(f, ", ")
}

// UpdateToken changes a token in one transaction and returns it. A revoked
// token cannot be changed: revocation is final.
func (db *DB) UpdateToken(ctx context.Context, id string, change TokenChange) (tokens.Token, error) {
	if change.Name != nil {
		if err := tokens.CheckLabel(*change.Name); err != nil {
			return tokens.Token{}, err
		}
	}
	if err := checkEntry(change.Owner, change.Purpose); err != nil {
		return tokens.Token{}, err
	}
	var routes, ips []string
	rpm, maxConc, maxReq, every := 0, 0, budget.Money(0), time.Duration(0)
	if change.Routes != nil {
		routes = *change.Routes
	}
	if change.IPs != nil {
		ips = *change.IPs
	}
	if change.RPM != nil {
		rpm = *change.RPM
	}
	if change.MaxConcurrent != nil {
		maxConc = *change.MaxConcurrent
	}
	if change.MaxRequest != nil {
		maxReq = *change.MaxRequest
	}
	if change.RotateEvery != nil {
		every = *change.RotateEvery
	}
	ips, err := checkScopes(routes, ips, rpm, maxConc, maxReq, every)
	if err != nil {
		return tokens.Token{}, err
	}
	var t tokens.Token
	err = db.update(ctx, func(tx *bolt.Tx) error {
		var ok bool
		if t, ok = db.st.tokens[id]; !ok {
			return fmt.Errorf("%w: %s", tokens.ErrTokenNotFound, shownID(id))
		}
		if !t.Revoked.IsZero() {
			return fmt.Errorf("%w: %s is revoked, and a revocation is final; create a new token with `hardcap token create`", tokens.ErrTokenFinal, t.ID)
		}
		scope := budget.TokenScope(id)
		l := db.st.limits[scope]
		if change.Name != nil {
			t.Name = *change.Name
		}
		if change.Models != nil {
			t.Models = *change.Models
		}
		if change.RPM != nil {
			t.RPM = *change.RPM
		}
		if change.Expires != nil {
			t.Expires = change.Expires.UTC()
		}
		if change.Owner != nil {
			t.Owner = *change.Owner
		}
		if change.Purpose != nil {
			t.Purpose = *change.Purpose
		}
		if change.Routes != nil {
			t.Routes = slices.Clone(*change.Routes)
		}
		if change.IPs != nil {
			t.IPs = ips
		}
		if change.MaxConcurrent != nil {
			t.MaxConcurrent = *change.MaxConcurrent
		}
		if change.MaxRequest != nil {
			t.MaxRequest = int64(*change.MaxRequest)
		}
		if change.Limit.AlertAt != nil {
			t.AlertAt = ppm(*change.Limit.AlertAt)
		}
		if change.RotateEvery != nil {
			t.RotateEvery = *change.RotateEvery
			t.RotateBy = time.Time{}
			if t.RotateEvery > 0 {
				from := t.Created
				if !t.Rotated.IsZero() {
					from = t.Rotated
				}
				t.RotateBy = from.Add(t.RotateEvery).UTC()
			}
		}
		nl := change.Limit.apply(l)
		if err := db.carrySpend(tx, scope, l, nl); err != nil {
			return err
		}
		if err := db.putToken(tx, t); err != nil {
			return err
		}
		if err := db.setLimit(tx, scope, nl); err != nil {
			return err
		}
		return db.appendAudit(tx, AuditEntry{Actor: ActorFrom(ctx), Action: "change", Kind: "token", Target: id, Detail: change.fields()})
	})
	return t, err
}

// DeleteProject removes a project and its budget limit in one transaction.
// While the project has live tokens (neither revoked nor expired) it is
// refused with tokens.ErrProjectHasTokens, unless revokeTokens is set, which
// revokes them in the same transaction. Every token of the project is
// revoked by the deletion (expired ones too), so a project created again
// under the same name does not bring old secrets back. Usage records and
// spend counters stay: they are the evidence of what was spent. It returns
// the ids of the tokens it revoked.
func (db *DB) DeleteProject(ctx context.Context, name string, revokeTokens bool) ([]string, error) {
	var revoked []string
	err := db.update(ctx, func(tx *bolt.Tx) error {
		revoked = revoked[:0]
		pb := tx.Bucket(bucketProjects)
		if _, ok := db.st.projects[name]; !ok {
			return fmt.Errorf("%w: %s", tokens.ErrProjectNotFound, budget.Clip(name))
		}
		now := db.now()
		var open []tokens.Token
		live := 0
		for _, t := range db.st.tokens {
			if t.Project != name || !t.Revoked.IsZero() {
				continue
			}
			if t.Expires.IsZero() || now.Before(t.Expires) {
				live++
			}
			open = append(open, t)
		}
		// In id order, as the bucket lists them.
		slices.SortFunc(open, func(a, b tokens.Token) int { return strings.Compare(a.ID, b.ID) })
		if live > 0 && !revokeTokens {
			return fmt.Errorf("%w: project %s has %d; revoke them first or delete with --revoke-tokens", tokens.ErrProjectHasTokens, name, live)
		}
		// Every check has passed; from here on only writes.
		actor := ActorFrom(ctx)
		for _, t := range open {
			t.Revoked = now.UTC()
			if err := db.putToken(tx, t); err != nil {
				return err
			}
			// Each token's own entry, so its history (hardcap log --token,
			// an incident report) says when and by whom it was revoked.
			if err := db.appendAudit(tx, AuditEntry{Time: t.Revoked, Actor: actor, Action: "revoke", Kind: "token", Target: t.ID, Detail: "project " + name + " deleted"}); err != nil {
				return err
			}
			revoked = append(revoked, t.ID)
		}
		scope := budget.ProjectScope(name)
		if err := fatal(tx.Bucket(bucketLimits).Delete([]byte(scope))); err != nil {
			return err
		}
		db.st.setLimit(scope, budget.Limit{}, false)
		if err := fatal(pb.Delete([]byte(name))); err != nil {
			return err
		}
		db.st.deleteProject(name)
		detail := ""
		if len(revoked) > 0 {
			detail = fmt.Sprintf("%d token(s) revoked", len(revoked))
		}
		return db.appendAudit(tx, AuditEntry{Time: now.UTC(), Actor: actor, Action: "delete", Kind: "project", Target: name, Detail: detail})
	})
	if err != nil {
		return nil, err
	}
	return revoked, nil
}

// carrySpend keeps a period change from forgetting spend. A new period
// means a new window key whose counter may be fresh; left alone it would
// let the scope take its whole limit again beside the reservations still
// open under the old key and the charges already made in the new window.
// So, in the same transaction as the change, the new window's committed
// becomes at least the sum of the scope's charges recorded since the window
// began (by end time, which can only count more), and every open
// reservation of the scope is added to the new window's reserved and to its
// own keys, so that its settlement moves it out of the new window too.
// Reading the records is linear in the window's records; edits are rare.
func (db *DB) carrySpend(tx *bolt.Tx, scope budget.Scope, old, nu budget.Limit) error {
	now := db.now()
	oldKey := budget.Budget{Scope: scope, Limit: old}.Key(now, db.loc)
	newKey := budget.Budget{Scope: scope, Limit: nu}.Key(now, db.loc)
	if oldKey == newKey {
		return nil
	}
	mine := func(r budget.Request) bool {
		return budget.ProjectScope(r.Project) == scope || budget.TokenScope(r.TokenID) == scope
	}
	charged, err := chargedSince(tx, nu.Period.Start(now, db.loc), mine)
	if err != nil {
		return err
	}
	sp := db.st.spend[newKey]
	sp.Committed = max(sp.Committed, charged)
	var open []budget.Reservation
	for _, res := range db.st.res {
		if mine(res.Request) && !slices.Contains(res.Keys, newKey) {
			open = append(open, res)
		}
	}
	slices.SortFunc(open, func(a, b budget.Reservation) int { return strings.Compare(a.ID, b.ID) })
	for _, res := range open {
		if sp.Reserved, err = sp.Reserved.Add(res.Amount); err != nil {
			return err
		}
	}
	// Every check has passed; from here on only writes.
	for _, res := range open {
		// A new slice: the old one is the state's until the commit.
		res.Keys = append(slices.Clip(res.Keys), newKey)
		if err := db.setReservation(tx, res); err != nil {
			return err
		}
	}
	return db.setSpend(newKey, sp)
}

// shownID is id as an error may show it: clipped, and never a token's
// secret passed where its id belongs (a leaked token pasted into a
// command), which would otherwise come back in the answer and any log of
// it.
func shownID(id string) string {
	if tokens.Parse(id) == nil || strings.HasPrefix(id, tokens.Prefix) {
		return "(a token's secret, not its id)"
	}
	return budget.Clip(id)
}

// ppm is fractions as a token or project stores them, ascending, without
// repeats; nil for none.
func ppm(fs []budget.Fraction) []uint32 {
	if len(fs) == 0 {
		return nil
	}
	sorted := budget.SortFractions(slices.Clone(fs))
	out := make([]uint32, len(sorted))
	for i, f := range sorted {
		out[i] = uint32(f)
	}
	return out
}

// describeFractions says stored thresholds in the audit log's words.
func describeFractions(v []uint32) string {
	if len(v) == 0 {
		return "from the config"
	}
	parts := make([]string, len(v))
	for i, f := range v {
		parts[i] = budget.Fraction(f).String()
	}
	return strings.Join(parts, ",")
}
