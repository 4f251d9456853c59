package metrics

import (
	"crypto/sha256"
	"crypto/subtle"
	"io"
	"net/http"
	"strings"
)

// RequireToken serves h only to GET and HEAD requests that carry one of
// tokens as `Authorization: Bearer <token>`; others get 401 (405 for other
// methods) with a short plain-text body. The tokens are compared by their
// SHA-256 in constant time, so neither their content nor their length
// leaks through timing; empty tokens are ignored, and with none every
// request is refused.
func RequireToken(h http.Handler, tokens ...string) http.Handler {
	var sums [][sha256.Size]byte
	for _, t := range tokens {
		if t = strings.TrimSpace(t); t != "" {
			sums = append(sums, sha256.Sum256([]byte(t)))
		}
	}
	return GetOnly(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !authorized(r.Header.Get("Authorization"), sums) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="hardcap metrics"`)
			plain(w, http.StatusUnauthorized, "Unauthorized: /metrics needs `Authorization: Bearer <token>` with the admin token or the metrics_token.\n")
			return
		}
		h.ServeHTTP(w, r)
	}))
}

// GetOnly serves h to GET and HEAD requests and answers any other method
// 405 with a short plain-text body: a scrape reads, never writes.
func GetOnly(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			plain(w, http.StatusMethodNotAllowed, "GET /metrics only.\n")
			return
		}
		h.ServeHTTP(w, r)
	})
}

// authorized reports whether header is a bearer token among sums. Every
// sum is compared, matched or not, so the time taken does not say which.
func authorized(header string, sums [][sha256.Size]byte) bool {
	scheme, got, ok := strings.Cut(header, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return false
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(got)))
	match := 0
	for _, s := range sums {
		match |= subtle.ConstantTimeCompare(sum[:], s[:])
	}
	return match == 1
}

func plain(w http.ResponseWriter, status int, msg string) {
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = io.WriteString(w, msg)
}
