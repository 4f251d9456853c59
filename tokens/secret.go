package tokens

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"math/big"
	"strings"
)

// Prefix starts every hardcap token, so secret scanners and people can
// recognise one.
const Prefix = "hc_"

const (
	base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	// randomLen base62 characters carry about 190 bits of entropy.
	randomLen = 32
	// checksumLen base62 characters hold a CRC-32 (62^6 > 2^32).
	checksumLen = 6
	// SecretLen is the length of a token string.
	SecretLen = len(Prefix) + randomLen + checksumLen
)

// Hash is the SHA-256 of a token string; only the hash is ever stored.
type Hash [sha256.Size]byte

// String returns h in hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Equal compares two hashes in constant time.
func (h Hash) Equal(o Hash) bool { return subtle.ConstantTimeCompare(h[:], o[:]) == 1 }

// HashOf returns the hash of a token string.
func HashOf(secret string) Hash { return sha256.Sum256([]byte(secret)) }

// NewSecret returns a fresh random token string: Prefix, 32 random base62
// characters and a 6-character base62 CRC-32 checksum of them.
func NewSecret() (string, error) {
	b := make([]byte, randomLen)
	max := big.NewInt(int64(len(base62)))
	for i := range b {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("tokens: reading randomness: %w", err)
		}
		b[i] = base62[n.Int64()]
	}
	return Prefix + string(b) + checksum(string(b)), nil
}

// Parse checks that s has the form of a hardcap token and that its checksum
// matches, so a typo is caught before any lookup. It returns ErrMalformed
// otherwise.
func Parse(s string) error {
	if len(s) != SecretLen || !strings.HasPrefix(s, Prefix) {
		return ErrMalformed
	}
	body := s[len(Prefix):]
	for i := 0; i < len(body); i++ {
		if strings.IndexByte(base62, body[i]) < 0 {
			return ErrMalformed
		}
	}
	random, sum := body[:randomLen], body[randomLen:]
	if subtle.ConstantTimeCompare([]byte(checksum(random)), []byte(sum)) != 1 {
		return ErrMalformed
	}
	return nil
}

func checksum(s string) string {
	v := crc32.ChecksumIEEE([]byte(s))
	out := make([]byte, checksumLen)
	for i := checksumLen - 1; i >= 0; i-- {
		out[i] = base62[v%62]
		v /= 62
	}
	return string(out)
}

// NewID returns a fresh public token id, "tok_" and 12 random base62
// characters. An id names a token in lists, logs and the admin API; it grants
// nothing.
func NewID() (string, error) {
	b := make([]byte, 12)
	max := big.NewInt(int64(len(base62)))
	for i := range b {
		n, err := rand.Int(rand.Reader, max)
		if err != nil {
			return "", fmt.Errorf("tokens: reading randomness: %w", err)
		}
		b[i] = base62[n.Int64()]
	}
	return "tok_" + string(b), nil
}
