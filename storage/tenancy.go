package storage

import (
	"context"
	"encoding/hex"
	"fmt"
	"sort"
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
		b := tx.Bucket(bucketProjects)
		if b.Get([]byte(name)) != nil {
			return fmt.Errorf("%w: %s", tokens.ErrProjectExists, name)
		}
		if err := putJSON(b, []byte(name), p); err != nil {
			return err
		}
		return putLimit(tx, budget.ProjectScope(name), limit)
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

// TokenSpec is what a new token should be.
type TokenSpec struct {
	Project string
	Name    string
	Limit   budget.Limit
	Models  []string
	Expires time.Time
	RPM     int
}

// CreateToken issues a token for an existing project. It returns the record
// and the secret; the secret is not stored and cannot be shown again.
func (db *DB) CreateToken(ctx context.Context, spec TokenSpec) (tokens.Token, string, error) {
	secret, err := tokens.NewSecret()
	if err != nil {
		return tokens.Token{}, "", err
	}
	id, err := tokens.NewID()
	if err != nil {
		return tokens.Token{}, "", err
	}
	hash := tokens.HashOf(secret)
	tok := tokens.Token{
		ID:      id,
		Name:    spec.Name,
		Project: spec.Project,
		Hash:    hash.String(),
		Models:  spec.Models,
		Expires: spec.Expires,
		RPM:     spec.RPM,
		Created: db.now().UTC(),
	}
	err = db.update(ctx, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketProjects).Get([]byte(spec.Project)) == nil {
			return fmt.Errorf("%w: %s", tokens.ErrProjectNotFound, spec.Project)
		}
		if err := putJSON(tx.Bucket(bucketTokens), []byte(id), tok); err != nil {
			return err
		}
		if err := fatal(tx.Bucket(bucketTokenHashes).Put(hash[:], []byte(id))); err != nil {
			return err
		}
		return putLimit(tx, budget.TokenScope(id), spec.Limit)
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
			err = fmt.Errorf("%w: %s", tokens.ErrTokenNotFound, id)
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
		b := tx.Bucket(bucketTokens)
		ok, err := getJSON(b, []byte(id), &t)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: %s", tokens.ErrTokenNotFound, id)
		}
		if !t.Revoked.IsZero() {
			return nil
		}
		t.Revoked = db.now().UTC()
		return putJSON(b, []byte(id), t)
	})
	return t, err
}

// Authenticate finds the live token whose secret is presented. The secret
// is checked for form first, then looked up by its SHA-256, so the stored
// hash is compared, never the secret. It returns tokens.ErrMalformed,
// ErrUnknown, ErrRevoked, ErrExpired or ErrKilled (token, project or global
// kill switch).
func (db *DB) Authenticate(secret string) (tokens.Token, error) {
	if err := tokens.Parse(secret); err != nil {
		return tokens.Token{}, err
	}
	hash := tokens.HashOf(secret)
	var tok tokens.Token
	err := db.view(func(tx *bolt.Tx) error {
		id := tx.Bucket(bucketTokenHashes).Get(hash[:])
		if id == nil {
			return tokens.ErrUnknown
		}
		var proj tokens.Project
		var err error
		tok, proj, err = loadTokenAndProject(tx, string(id))
		if err != nil {
			return err
		}
		stored, err := parseHash(tok.Hash)
		if err != nil || !stored.Equal(hash) {
			return tokens.ErrUnknown
		}
		return checkUsable(tx, tok, proj, db.now())
	})
	if err != nil {
		return tokens.Token{}, err
	}
	return tok, nil
}

func loadTokenAndProject(tx *bolt.Tx, id string) (tokens.Token, tokens.Project, error) {
	var tok tokens.Token
	var proj tokens.Project
	ok, err := getJSON(tx.Bucket(bucketTokens), []byte(id), &tok)
	if err != nil {
		return tok, proj, err
	}
	if !ok {
		return tok, proj, tokens.ErrUnknown
	}
	ok, err = getJSON(tx.Bucket(bucketProjects), []byte(tok.Project), &proj)
	if err != nil {
		return tok, proj, err
	}
	if !ok {
		return tok, proj, fmt.Errorf("%w: %s", tokens.ErrProjectNotFound, tok.Project)
	}
	return tok, proj, nil
}

// checkUsable applies the token's own state and the project's and global
// kill switches.
func checkUsable(tx *bolt.Tx, tok tokens.Token, proj tokens.Project, now time.Time) error {
	if err := tok.Usable(now); err != nil {
		return err
	}
	if proj.Killed {
		return fmt.Errorf("%w for project %s", tokens.ErrKilled, proj.Name)
	}
	if killedAll(tx) {
		return fmt.Errorf("%w for everything", tokens.ErrKilled)
	}
	return nil
}

func killedAll(tx *bolt.Tx) bool {
	return string(tx.Bucket(bucketMeta).Get(metaKillAll)) == "1"
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
	return db.update(ctx, func(tx *bolt.Tx) error {
		switch {
		case target.Token != "":
			b := tx.Bucket(bucketTokens)
			var t tokens.Token
			ok, err := getJSON(b, []byte(target.Token), &t)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: %s", tokens.ErrTokenNotFound, target.Token)
			}
			t.Killed = on
			return putJSON(b, []byte(target.Token), t)
		case target.Project != "":
			b := tx.Bucket(bucketProjects)
			var p tokens.Project
			ok, err := getJSON(b, []byte(target.Project), &p)
			if err != nil {
				return err
			}
			if !ok {
				return fmt.Errorf("%w: %s", tokens.ErrProjectNotFound, target.Project)
			}
			p.Killed = on
			return putJSON(b, []byte(target.Project), p)
		default:
			v := []byte("0")
			if on {
				v = []byte("1")
			}
			return fatal(tx.Bucket(bucketMeta).Put(metaKillAll, v))
		}
	})
}

var _ tokens.Authenticator = (*DB)(nil)
