package admin

import (
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/hardcap/hardcap/storage"
	"github.com/hardcap/hardcap/tokens"
)

// LookupRequest is the body of POST /admin/v1/tokens/lookup: the SHA-256
// of each token secret to identify, in hex. `hardcap scan` sends it for
// the tokens it finds in files; the secrets themselves never leave the
// machine they were found on.
type LookupRequest struct {
	Hashes []string `json:"hashes"`
}

// MaxLookupHashes is the most hashes one lookup takes.
const MaxLookupHashes = 1000

// LookupMatch is what the server knows of one hash.
type LookupMatch struct {
	// Hash is the hash asked about, in lowercase hex.
	Hash string `json:"hash"`
	// Found is false for a hash of no token of this server; the other
	// fields are then empty.
	Found   bool   `json:"found"`
	ID      string `json:"id,omitempty"`
	Project string `json:"project,omitempty"`
	Name    string `json:"name,omitempty"`
	// State is what presenting the secret does now: active, revoked,
	// expired or killed, as the token's state; rotated for a secret a
	// rotation replaced whose grace is over (refused; the token itself
	// lives on with its new secret).
	State string `json:"state,omitempty"`
	// PreviousSecret is set when the hash is of a secret a rotation
	// replaced rather than the token's current one; ValidUntil is then
	// when its grace ends (zero once over).
	PreviousSecret bool      `json:"previous_secret,omitempty"`
	ValidUntil     time.Time `json:"valid_until,omitzero"`
}

// LookupResponse answers a LookupRequest: one match per hash, in the
// order asked.
type LookupResponse struct {
	Tokens []LookupMatch `json:"tokens"`
}

// lookupTokens serves POST /admin/v1/tokens/lookup. It reads only, and
// answers what a hash names, never a hash the caller did not send.
func (h *Handler) lookupTokens(w http.ResponseWriter, r *http.Request) {
	var req LookupRequest
	if !decode(w, r, &req) {
		return
	}
	if len(req.Hashes) == 0 || len(req.Hashes) > MaxLookupHashes {
		writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("hashes must list 1 to %d SHA-256 hashes of token secrets, in hex; got %d", MaxLookupHashes, len(req.Hashes)))
		return
	}
	hashes := make([]tokens.Hash, len(req.Hashes))
	for i, s := range req.Hashes {
		b, err := hex.DecodeString(strings.TrimSpace(s))
		if err != nil || len(b) != len(hashes[i]) {
			writeError(w, http.StatusBadRequest, "invalid_request", fmt.Sprintf("hashes[%d] is not a SHA-256 in hex (64 hex digits); send the hash of a token, never the token", i))
			return
		}
		copy(hashes[i][:], b)
	}
	found, err := h.opts.DB.TokensByHash(hashes)
	if err != nil {
		h.writeDomainError(w, err)
		return
	}
	now := h.opts.Now()
	out := LookupResponse{Tokens: make([]LookupMatch, len(hashes))}
	for i, hash := range hashes {
		f, ok := found[hash]
		out.Tokens[i] = lookupMatch(hash, f, ok, now)
	}
	writeJSON(w, http.StatusOK, out)
}

// lookupMatch says what presenting the secret of hash does at now, given
// the token it belongs to (ok false: none).
func lookupMatch(hash tokens.Hash, f storage.HashMatch, ok bool, now time.Time) LookupMatch {
	m := LookupMatch{Hash: hash.String()}
	if !ok {
		return m
	}
	t := f.Token
	m.Found, m.ID, m.Project, m.Name, m.State = true, t.ID, t.Project, t.Name, tokenState(t, now)
	if f.Previous {
		m.PreviousSecret = true
		switch {
		case m.State != "active" && m.State != "killed":
			// Revoked or expired: no secret of it is accepted.
		case t.PrevHash == m.Hash && now.Before(t.RotatingUntil):
			m.ValidUntil = t.RotatingUntil
		default:
			// The token lives on; this secret of it is refused.
			m.State = "rotated"
		}
	}
	return m
}

// tokenState is a token's state as the API names it (token views and
// lookups alike).
func tokenState(t tokens.Token, now time.Time) string {
	err := t.Usable(now)
	switch {
	case err == nil:
		return "active"
	case errors.Is(err, tokens.ErrRevoked):
		return "revoked"
	case errors.Is(err, tokens.ErrExpired):
		return "expired"
	}
	return "killed"
}
