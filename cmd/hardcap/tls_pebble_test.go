package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"io/fs"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hardcap/hardcap/internal/testlog"
	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// pebbleCA is Pebble, the ACME test server, in this process on a loopback
// port: its directory served over HTTPS with a certificate from a test CA
// (which hardcap trusts through ca_root), its CA issuing from a root of its
// own (which the test's clients trust, and nothing else).
type pebbleCA struct {
	t *testing.T
	// dir is the ACME directory URL; rootFile is ca_root for hardcap.
	dir      string
	rootFile string
	// https trusts the test CA that signed Pebble's HTTPS certificate.
	https *http.Client
	// validity is the lifetime of the certificates it issues, in seconds;
	// 0 is Pebble's default (90 days).
	validity uint64
	// orders counts new-order requests.
	orders atomic.Int64
	logs   testlog.Buffer
	// api is Pebble's handler once serve has built it.
	api atomic.Pointer[http.Handler]
}

// startPebble serves Pebble's HTTPS port; the ACME side answers once
// serve knows hardcap's ports.
func startPebble(t *testing.T, validity uint64) *pebbleCA {
	t.Helper()
	// No random wait before a validation, no good nonce refused as bad:
	// the tests stay short.
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	tca := newTestCA(t, "pebble https test CA")
	certPEM, keyPEM := tca.leaf(1)
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	p := &pebbleCA{t: t, validity: validity, https: httpsClient(tca.pool)}
	p.rootFile = filepath.Join(t.TempDir(), "pebble-https-root.pem")
	if err := os.WriteFile(p.rootFile, tca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h := p.api.Load()
			if h == nil {
				http.Error(w, "pebble is not serving yet", http.StatusServiceUnavailable)
				return
			}
			(*h).ServeHTTP(w, r)
		}),
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 5 * time.Second,
		ErrorLog:          log.New(io.Discard, "", 0),
	}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close() })
	p.dir = "https://" + ln.Addr().String() + wfe.DirectoryPath
	return p
}

// serve builds Pebble's database, CA, VA and WFE, the VA validating
// http-01 on httpPort and tls-alpn-01 on tlsPort of the names it is asked
// for (localhost: 127.0.0.1).
func (p *pebbleCA) serve(httpPort, tlsPort int) {
	logger := log.New(&p.logs, "pebble ", 0)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {ValidityPeriod: p.validity}})
	validator := va.New(logger, httpPort, tlsPort, false, "", store)
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)
	mux := http.NewServeMux()
	mux.Handle(wfe.RootCertPath, front.ManagementHandler())
	api := front.Handler()
	mux.Handle("/", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && r.URL.Path == "/order-plz" {
			p.orders.Add(1)
		}
		api.ServeHTTP(w, r)
	}))
	var h http.Handler = mux
	p.api.Store(&h)
}

// roots is Pebble's issuing root, from its management endpoint /roots/0.
func (p *pebbleCA) roots() *x509.CertPool {
	p.t.Helper()
	resp, err := p.https.Get(strings.TrimSuffix(p.dir, wfe.DirectoryPath) + wfe.RootCertPath + "0")
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	block, _ := pem.Decode(b)
	if resp.StatusCode != 200 || block == nil {
		p.t.Fatalf("GET /roots/0: %s %q", resp.Status, b)
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		p.t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	return pool
}

// acmeConfig is a hardcap config getting a certificate for localhost
// from p with the given challenges.
func (p *pebbleCA) acmeConfig(challenges, redirect string) string {
	cfg := fmt.Sprintf(`listen: 127.0.0.1:0
log: {level: debug, format: json}
tls:
  acme:
    domains: [localhost]
    email: ops@example.com
    ca: %s
    ca_root: %s
    challenges: [%s]
`, p.dir, p.rootFile, challenges)
	if redirect != "" {
		cfg += "  http_redirect: " + redirect + "\n"
	}
	return cfg
}

// startACMEServer starts hardcap with cfg on dataDir and Pebble
// validating on its ports.
func (p *pebbleCA) startACMEServer(cfg, dataDir string, tune tlsTuning) *tlsServer {
	p.t.Helper()
	return startTLSServer(p.t, cfg, dataDir, tune, func(m *Main) {
		_, tlsPort, _ := net.SplitHostPort(m.Addr())
		httpPort := "0"
		if m.tls.redirectLn != nil {
			_, httpPort, _ = net.SplitHostPort(m.tls.redirectLn.Addr().String())
		}
		hp, _ := strconv.Atoi(httpPort)
		tp, _ := strconv.Atoi(tlsPort)
		p.serve(hp, tp)
	})
}

// waitServed waits until hardcap serves a certificate for localhost that
// verifies against roots and passes ok, and returns it.
func waitServed(t *testing.T, s *tlsServer, roots *x509.CertPool, what string, ok func(*x509.Certificate) bool) *x509.Certificate {
	t.Helper()
	var leaf *x509.Certificate
	var last error
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		c, err := servedCert(s.main.Addr(), roots)
		if err == nil && ok(c) {
			return c
		}
		if err == nil {
			leaf = c
		}
		last = err
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s (last handshake: %v, leaf %v)\nhardcap logs:\n%s", what, last, leaf != nil, s.logs.String())
	return nil
}

// captureStdLog sends the standard library's default logger to a buffer
// for the test: anything certmagic wrote there would be a second log
// format.
func captureStdLog(t *testing.T) *testlog.Buffer {
	t.Helper()
	var b testlog.Buffer
	prev, flags := log.Writer(), log.Flags()
	log.SetOutput(&b)
	t.Cleanup(func() { log.SetOutput(prev); log.SetFlags(flags) })
	return &b
}

// checkOneFormat fails unless every log line is one zerolog JSON object,
// and certmagic's lines are among them.
func checkOneFormat(t *testing.T, logs string, std *testlog.Buffer) {
	t.Helper()
	certmagic := false
	for line := range strings.SplitSeq(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("a log line is not zerolog JSON: %q", line)
		}
		if name, _ := m["logger"].(string); strings.HasPrefix(name, "certmagic") {
			certmagic = true
		}
	}
	if !certmagic {
		t.Fatalf("no certmagic line in the logs:\n%s", logs)
	}
	if s := std.String(); s != "" {
		t.Fatalf("the standard logger got lines: %s", s)
	}
}

// storedKeys are the PEM private keys certmagic keeps under <dataDir>/tls
// (the certificate's and the ACME account's).
func storedKeys(t *testing.T, dataDir string) [][]byte {
	t.Helper()
	var keys [][]byte
	err := filepath.WalkDir(filepath.Join(dataDir, "tls"), func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.HasSuffix(path, ".key") {
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			keys = append(keys, b)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) < 2 {
		t.Fatalf("found %d keys under the data dir's tls/, want the certificate's and the account's", len(keys))
	}
	return keys
}

// TestTLS_ACMEIssueAndRestart: hardcap obtains a certificate for
// localhost from Pebble with tls-alpn-01 on its own listener; a client
// that trusts only Pebble's root gets /healthz and a demo chat over
// HTTPS; the logs are all zerolog and hold no key; a restart on the same
// data dir serves the stored certificate without a new order.
func TestTLS_ACMEIssueAndRestart(t *testing.T) {
	std := captureStdLog(t)
	p := startPebble(t, 0)
	dataDir := t.TempDir()
	s := p.startACMEServer(p.acmeConfig("tls-alpn-01", ""), dataDir, tlsTuning{})
	roots := p.roots()
	first := waitServed(t, s, roots, "the certificate from Pebble", func(*x509.Certificate) bool { return true })
	if len(first.DNSNames) != 1 || first.DNSNames[0] != "localhost" {
		t.Fatalf("served names %v, want [localhost]", first.DNSNames)
	}
	s.checkHTTPS(httpsClient(roots))
	if n := p.orders.Load(); n != 1 {
		t.Fatalf("%d orders at Pebble, want 1", n)
	}
	s.stop()
	logs := s.logs.String()
	if !strings.Contains(logs, `"listen":"https://`) || !strings.Contains(logs, "in the background") {
		t.Fatalf("the serving lines do not say https and how certificates come: %s", logs)
	}
	checkOneFormat(t, logs, std)
	if _, err := os.Stat(filepath.Join(dataDir, "tls", "locks")); err == nil {
		t.Fatal("certmagic wrote lock files; hardcap's storage keeps its locks in memory")
	}
	keys := storedKeys(t, dataDir)
	checkNoKeys(t, logs, keys...)

	// A restart on the same data dir: the stored certificate, no order.
	s2 := p.startACMEServer(p.acmeConfig("tls-alpn-01", ""), dataDir, tlsTuning{})
	again := waitServed(t, s2, roots, "the stored certificate", func(*x509.Certificate) bool { return true })
	if again.SerialNumber.Cmp(first.SerialNumber) != 0 {
		t.Fatalf("after a restart: serial %s, want the stored %s", again.SerialNumber, first.SerialNumber)
	}
	s2.stop()
	if n := p.orders.Load(); n != 1 {
		t.Fatalf("%d orders at Pebble after the restart, want still 1", n)
	}
	checkNoKeys(t, s2.logs.String(), keys...)
}

// TestTLS_ACMERenewal: with a short certificate lifetime from Pebble, a
// short renewal check and a wide renewal window, certmagic's maintenance
// renews the certificate before it expires and hardcap serves the new one.
func TestTLS_ACMERenewal(t *testing.T) {
	// Eight seconds of validity, renewed once three quarters of it remain:
	// about two seconds after issuance.
	p := startPebble(t, 8)
	s := p.startACMEServer(p.acmeConfig("tls-alpn-01", ""), t.TempDir(), tlsTuning{renewCheck: 250 * time.Millisecond, renewRatio: 0.75})
	roots := p.roots()
	first := waitServed(t, s, roots, "the first certificate", func(*x509.Certificate) bool { return true })
	if life := first.NotAfter.Sub(first.NotBefore); life > 10*time.Second {
		t.Fatalf("certificate lifetime %s, want Pebble's injected 8s", life)
	}
	renewed := waitServed(t, s, roots, "a renewed certificate", func(c *x509.Certificate) bool {
		return c.SerialNumber.Cmp(first.SerialNumber) != 0
	})
	if !renewed.NotAfter.After(first.NotAfter) {
		t.Fatalf("renewed certificate expires %s, not after the first's %s", renewed.NotAfter, first.NotAfter)
	}
	// The point of renewing: the new certificate is served while the old
	// one is still valid (about six seconds to spare).
	if time.Now().After(first.NotAfter) {
		t.Fatalf("the renewal was served only after the first certificate expired at %s", first.NotAfter)
	}
	if n := p.orders.Load(); n < 2 {
		t.Fatalf("%d orders at Pebble, want a second one for the renewal", n)
	}
	s.stop()
	if !strings.Contains(s.logs.String(), "renew") {
		t.Fatalf("no renewal in the logs:\n%s", s.logs.String())
	}
}

// TestTLS_ACMEHTTP01: with http-01 only, Pebble validates through
// hardcap's http_redirect listener (the challenge path is answered there),
// and that listener redirects everything else to https.
func TestTLS_ACMEHTTP01(t *testing.T) {
	p := startPebble(t, 0)
	s := p.startACMEServer(p.acmeConfig("http-01", "127.0.0.1:0"), t.TempDir(), tlsTuning{})
	roots := p.roots()
	waitServed(t, s, roots, "the certificate from Pebble", func(*x509.Certificate) bool { return true })
	_, rport, _ := net.SplitHostPort(s.redirectAddr())
	if !strings.Contains(p.logs.String(), "Attempting to validate w/ HTTP: http://localhost:"+rport+"/.well-known/acme-challenge/") {
		t.Fatalf("Pebble did not validate over hardcap's http_redirect; its logs:\n%s", p.logs.String())
	}
	_, port, _ := net.SplitHostPort(s.main.Addr())
	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := plain.Get("http://localhost:" + rport + "/v1/models")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if want := "https://localhost:" + port + "/v1/models"; resp.StatusCode != http.StatusPermanentRedirect || resp.Header.Get("Location") != want {
		t.Fatalf("plain request: %d %q, want 308 %q", resp.StatusCode, resp.Header.Get("Location"), want)
	}
	s.checkHTTPS(httpsClient(roots))
	s.stop()
	if bytes.Contains([]byte(s.logs.String()), []byte("PRIVATE KEY")) {
		t.Fatal("a private key is in the logs")
	}
}
