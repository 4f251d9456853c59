package storage

import (
	"testing"

	"github.com/hardcap/hardcap/budget"
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
)

func TestTokensByHash(t *testing.T) {
	db := openTest(t, Options{NoSync: true})
	live := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	gone := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	if _, err := db.RevokeToken(ctx, gone.ID); err != nil {
		t.Fatal(err)
	}
	// A rotated token, as the rotation leaves it: a new hash, the old one
	// kept in PrevHash and not in the index.
	rotated := newToken(t, db, "web", budget.Limit{}, budget.Limit{})
	oldHash := mustHash(t, rotated.Hash)
	newHash := tokens.HashOf("hc_the-new-secret")
	err := db.update(ctx, func(tx *bolt.Tx) error {
		tok := db.st.tokens[rotated.ID]
		tok.PrevHash, tok.Hash = tok.Hash, newHash.String()
		if err := tx.Bucket(bucketTokenHashes).Delete(oldHash[:]); err != nil {
			return err
		}
		if err := tx.Bucket(bucketTokenHashes).Put(newHash[:], []byte(tok.ID)); err != nil {
			return err
		}
		return db.putToken(tx, tok)
	})
	if err != nil {
		t.Fatal(err)
	}
	unknown := tokens.HashOf("hc_nobody")

	got, err := db.TokensByHash([]tokens.Hash{mustHash(t, live.Hash), mustHash(t, gone.Hash), oldHash, newHash, unknown})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		hash     tokens.Hash
		id       string
		previous bool
		revoked  bool
	}{
		{"live", mustHash(t, live.Hash), live.ID, false, false},
		{"revoked", mustHash(t, gone.Hash), gone.ID, false, true},
		{"replaced secret", oldHash, rotated.ID, true, false},
		{"new secret", newHash, rotated.ID, false, false},
	}
	for _, tt := range tests {
		m, ok := got[tt.hash]
		if !ok || m.Token.ID != tt.id || m.Previous != tt.previous || m.Token.Revoked.IsZero() == tt.revoked {
			t.Errorf("%s: got %+v (found %v), want %s previous=%v revoked=%v", tt.name, m, ok, tt.id, tt.previous, tt.revoked)
		}
	}
	if _, ok := got[unknown]; ok || len(got) != 4 {
		t.Errorf("got %d matches (unknown found: %v), want 4", len(got), ok)
	}
}

func mustHash(t *testing.T, s string) tokens.Hash {
	t.Helper()
	h, err := parseHash(s)
	if err != nil {
		t.Fatal(err)
	}
	return h
}
