package storage

import (
	"github.com/hardcap/hardcap/tokens"
	bolt "go.etcd.io/bbolt"
)

// HashMatch is the token a secret's hash belongs to.
type HashMatch struct {
	Token tokens.Token
	// Previous is set when the hash is not that of the token's current
	// secret but of one a rotation replaced (Token.PrevHash, accepted
	// until Token.RotatingUntil).
	Previous bool
}

// TokensByHash finds the token each hash belongs to, as its current secret
// or as the one its last rotation replaced; a hash of no token is absent
// from the answer. It is what `hardcap scan` asks about a token found in a
// file: the hash only, never the secret. It reads the token_hashes and
// tokens buckets in one read transaction and changes nothing.
func (db *DB) TokensByHash(hashes []tokens.Hash) (map[tokens.Hash]HashMatch, error) {
	out := make(map[tokens.Hash]HashMatch, len(hashes))
	err := db.view(func(tx *bolt.Tx) error {
		byHash, toks := tx.Bucket(bucketTokenHashes), tx.Bucket(bucketTokens)
		rest := map[string]tokens.Hash{}
		for _, h := range hashes {
			id := byHash.Get(h[:])
			if id == nil {
				rest[h.String()] = h
				continue
			}
			var t tokens.Token
			if ok, err := getJSON(toks, id, &t); err != nil || !ok {
				// An index entry without its token is a damaged
				// file; the token is not there to name.
				if err != nil {
					return err
				}
				rest[h.String()] = h
				continue
			}
			out[h] = HashMatch{Token: t, Previous: t.Hash != h.String()}
		}
		if len(rest) == 0 {
			return nil
		}
		// A replaced secret may have no index entry of its own; its
		// token keeps its hash.
		return toks.ForEach(func(k, v []byte) error {
			var t tokens.Token
			if _, err := getJSON(toks, k, &t); err != nil {
				return err
			}
			if h, ok := rest[t.PrevHash]; ok && t.PrevHash != "" {
				out[h] = HashMatch{Token: t, Previous: true}
			}
			return nil
		})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
