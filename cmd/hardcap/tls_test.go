package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hardcap/hardcap/internal/testlog"
	"github.com/rs/zerolog"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// testCA is a certificate authority made for one test.
type testCA struct {
	t    *testing.T
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
	pool *x509.CertPool
}

func newTestCA(t *testing.T, name string) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &testCA{t: t, cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pool: pool}
}

// leaf issues a server certificate for localhost and 127.0.0.1 with the
// given serial, as PEM certificate and PEM key.
func (ca *testCA) leaf(serial int64) (certPEM, keyPEM []byte) {
	ca.t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		ca.t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "localhost"},
		DNSNames: []string{"localhost"}, IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		ca.t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		ca.t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
}

// writeLeaf writes a new leaf to certFile and keyFile, stamped a little
// later each time so a change shows whatever the file system's clock
// resolution.
func (ca *testCA) writeLeaf(serial int64, certFile, keyFile string) (keyPEM []byte) {
	ca.t.Helper()
	c, k := ca.leaf(serial)
	for _, f := range []struct {
		path string
		b    []byte
	}{{certFile, c}, {keyFile, k}} {
		if err := os.WriteFile(f.path, f.b, 0o600); err != nil {
			ca.t.Fatal(err)
		}
		stamp := time.Now().Add(time.Duration(serial) * time.Second)
		if err := os.Chtimes(f.path, stamp, stamp); err != nil {
			ca.t.Fatal(err)
		}
	}
	return k
}

// httpsClient trusts only pool.
func httpsClient(pool *x509.CertPool) *http.Client {
	return &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: true,
		},
		// The redirect's answer is what the tests look at.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// servedCert is the leaf hardcap presents at addr to a client asking for
// localhost, verified against pool.
func servedCert(addr string, pool *x509.CertPool) (*x509.Certificate, error) {
	d := &net.Dialer{Timeout: 5 * time.Second}
	c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: "localhost", RootCAs: pool, MinVersion: tls.VersionTLS12})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0], nil
}

// tlsServer is a hardcap Main with tls:, serving the demo providers.
type tlsServer struct {
	t       *testing.T
	main    *Main
	dataDir string
	logs    *testlog.Buffer
	cancel  context.CancelFunc
	done    chan error
}

// startTLSServer opens a Main with the config text in dataDir, calls
// beforeRun (which may start what the server's listeners are needed for)
// and runs it.
func startTLSServer(t *testing.T, config, dataDir string, tune tlsTuning, beforeRun func(*Main)) *tlsServer {
	t.Helper()
	t.Setenv("HARDCAP_ADMIN_TOKEN", "")
	t.Setenv("OPENAI_API_KEY", "")
	t.Setenv("ANTHROPIC_API_KEY", "")
	cfg, err := parseConfig([]byte(config), defaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	s := &tlsServer{t: t, dataDir: dataDir, logs: &testlog.Buffer{}}
	s.main = &Main{Config: cfg, DataDir: dataDir, LogOutput: s.logs, Demo: true, tlsTuning: tune}
	if err := s.main.Open(); err != nil {
		t.Fatal(err)
	}
	if beforeRun != nil {
		beforeRun(s.main)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() { s.done <- s.main.Run(ctx) }()
	t.Cleanup(s.stop)
	return s
}

func (s *tlsServer) stop() {
	if s.cancel == nil {
		return
	}
	s.cancel()
	if err := <-s.done; err != nil {
		s.t.Errorf("Run: %v", err)
	}
	s.cancel = nil
}

// url is the server's https URL by name.
func (s *tlsServer) url() string {
	_, port, _ := net.SplitHostPort(s.main.Addr())
	return "https://localhost:" + port
}

// redirectAddr is the http_redirect listener's address.
func (s *tlsServer) redirectAddr() string { return s.main.tls.redirectLn.Addr().String() }

// token creates a project and a token through the admin API over HTTPS
// and returns the token.
func (s *tlsServer) token(c *http.Client) string {
	s.t.Helper()
	b, err := os.ReadFile(filepath.Join(s.dataDir, "admin.token"))
	if err != nil {
		s.t.Fatal(err)
	}
	admin := strings.TrimSpace(string(b))
	post := func(path, body string) []byte {
		req, _ := http.NewRequest("POST", s.url()+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+admin)
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.Do(req)
		if err != nil {
			s.t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusCreated {
			s.t.Fatalf("POST %s: %s %s", path, resp.Status, out)
		}
		return out
	}
	post("/admin/v1/projects", `{"name":"tls","budget_usd":"5"}`)
	var tok struct {
		Token string `json:"token"`
	}
	decodeJSON(s.t, string(post("/admin/v1/tokens", `{"project":"tls"}`)), &tok)
	return tok.Token
}

// checkHTTPS sends /healthz and a demo chat completion with a token over
// HTTPS through c, and checks the answers and that HTTP/2 was spoken.
func (s *tlsServer) checkHTTPS(c *http.Client) {
	s.t.Helper()
	resp, err := c.Get(s.url() + "/healthz")
	if err != nil {
		s.t.Fatalf("GET /healthz over https: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "ok\n" || resp.ProtoMajor != 2 {
		s.t.Fatalf("GET /healthz: %s %s %q, want 200 HTTP/2 ok", resp.Status, resp.Proto, body)
	}
	token := s.token(c)
	req, _ := http.NewRequest("POST", s.url()+"/v1/chat/completions", strings.NewReader(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}`))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err = c.Do(req)
	if err != nil {
		s.t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"object":"chat.completion"`) {
		s.t.Fatalf("chat over https: %s %s", resp.Status, body)
	}
}

// checkNoKeys fails if the logs hold a private key: its PEM armour or the
// base64 of any of the given PEM keys' bytes.
func checkNoKeys(t *testing.T, logs string, keys ...[]byte) {
	t.Helper()
	if strings.Contains(logs, "PRIVATE KEY") {
		t.Fatal("a private key's PEM header is in the logs")
	}
	for _, k := range keys {
		block, _ := pem.Decode(k)
		if block == nil {
			t.Fatal("checkNoKeys: not a PEM key")
		}
		b64 := base64.StdEncoding.EncodeToString(block.Bytes)
		// Any 24 characters of it would be a leak; look for a few.
		for i := 0; i+24 <= len(b64); i += len(b64) / 4 {
			if strings.Contains(logs, b64[i:i+24]) {
				t.Fatal("private key bytes are in the logs")
			}
		}
	}
}

// TestTLS_CertFiles: a certificate from cert_file/key_file is served; a
// replacement on disk is served after the next look; a broken
// replacement, or a key that does not match, keeps the old one and is
// logged; reloadTLS re-reads at once; the logs hold no key.
func TestTLS_CertFiles(t *testing.T) {
	ca := newTestCA(t, "hardcap test CA")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	keys := [][]byte{ca.writeLeaf(1, certFile, keyFile)}
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\nlog: {level: debug, format: json}\ntls:\n  cert_file: %s\n  key_file: %s\n", certFile, keyFile)
	s := startTLSServer(t, cfg, t.TempDir(), tlsTuning{fileCheck: 50 * time.Millisecond}, nil)
	c := httpsClient(ca.pool)
	s.checkHTTPS(c)
	serial := func() int64 {
		t.Helper()
		leaf, err := servedCert(s.main.Addr(), ca.pool)
		if err != nil {
			t.Fatal(err)
		}
		return leaf.SerialNumber.Int64()
	}
	if got := serial(); got != 1 {
		t.Fatalf("served serial %d, want 1", got)
	}

	// Replaced on disk: served once a handshake has looked again.
	keys = append(keys, ca.writeLeaf(2, certFile, keyFile))
	waitFor(t, "the replaced certificate", func() bool { return serial() == 2 })

	// A broken replacement keeps the old one, and says so once.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	future := time.Now().Add(time.Hour)
	_ = os.Chtimes(certFile, future, future)
	waitFor(t, "the warning about the broken file", func() bool {
		_ = serial()
		return strings.Contains(s.logs.String(), "changed but cannot be used")
	})
	if got := serial(); got != 2 {
		t.Fatalf("after a broken cert_file: serial %d, want 2 kept", got)
	}
	// Later looks at the unchanged broken file stay quiet.
	time.Sleep(100 * time.Millisecond)
	_ = serial()
	if n := strings.Count(s.logs.String(), "changed but cannot be used"); n != 1 {
		t.Fatalf("the broken file was reported %d times, want once", n)
	}
	if err := s.main.reloadTLS(); !errors.Is(err, errCertFiles) {
		t.Fatalf("reloadTLS with a broken cert_file: %v, want errCertFiles", err)
	}

	// A certificate with another certificate's key: refused as well.
	c3, _ := ca.leaf(3)
	_, k4 := ca.leaf(4)
	keys = append(keys, k4)
	if err := os.WriteFile(certFile, c3, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, k4, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := s.main.reloadTLS(); !errors.Is(err, errCertFiles) {
		t.Fatalf("reloadTLS with a key of another certificate: %v, want errCertFiles", err)
	}
	if got := serial(); got != 2 {
		t.Fatalf("after a mismatched key: serial %d, want 2 kept", got)
	}

	// reloadTLS reads a good pair at once, with no look due (the files'
	// stamps are not even changed).
	s.main.tls.files.next.Store(time.Now().Add(time.Hour).UnixNano())
	c5, k5 := ca.leaf(5)
	keys = append(keys, k5)
	_ = os.WriteFile(certFile, c5, 0o600)
	_ = os.WriteFile(keyFile, k5, 0o600)
	if err := s.main.reloadTLS(); err != nil {
		t.Fatalf("reloadTLS: %v", err)
	}
	if got := serial(); got != 5 {
		t.Fatalf("after reloadTLS: serial %d, want 5", got)
	}
	s.stop()
	logs := s.logs.String()
	if !strings.Contains(logs, `"listen":"https://127.0.0.1:`) {
		t.Fatalf("the serving line does not say https: %s", logs)
	}
	checkNoKeys(t, logs, keys...)
}

// TestTLS_Redirect: http_redirect answers a plain request with 308 to the
// same path on https at the listen port, a challenge path it knows nothing
// about with 404, and the https side serves.
func TestTLS_Redirect(t *testing.T) {
	ca := newTestCA(t, "hardcap test CA")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.writeLeaf(1, certFile, keyFile)
	cfg := fmt.Sprintf("listen: 127.0.0.1:0\ntls:\n  cert_file: %s\n  key_file: %s\n  http_redirect: 127.0.0.1:0\n", certFile, keyFile)
	s := startTLSServer(t, cfg, t.TempDir(), tlsTuning{}, nil)
	_, port, _ := net.SplitHostPort(s.main.Addr())
	_, rport, _ := net.SplitHostPort(s.redirectAddr())
	plain := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	tests := []struct {
		method, path string
		status       int
		location     string
	}{
		{"GET", "/healthz", http.StatusPermanentRedirect, "https://localhost:" + port + "/healthz"},
		{"POST", "/v1/chat/completions?x=1", http.StatusPermanentRedirect, "https://localhost:" + port + "/v1/chat/completions?x=1"},
		{"GET", "/.well-known/acme-challenge/unknown-token", http.StatusNotFound, ""},
	}
	for _, tt := range tests {
		req, _ := http.NewRequest(tt.method, "http://localhost:"+rport+tt.path, nil)
		resp, err := plain.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tt.status || resp.Header.Get("Location") != tt.location {
			t.Errorf("%s %s: %d Location %q, want %d %q", tt.method, tt.path, resp.StatusCode, resp.Header.Get("Location"), tt.status, tt.location)
		}
	}
	// Following the redirect lands on the https side.
	follow := httpsClient(ca.pool)
	follow.CheckRedirect = nil
	resp, err := follow.Get("http://localhost:" + rport + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil {
		t.Fatalf("followed redirect: %s, TLS %v", resp.Status, resp.TLS != nil)
	}
	// Plain HTTP on the TLS port is refused by the handshake.
	if code, err := httpGet("http://" + s.main.Addr() + "/healthz"); err == nil && code == 200 {
		t.Fatal("plain HTTP on the TLS listener was served")
	}
	// Close stops the redirect listener too.
	s.stop()
	if _, err := net.DialTimeout("tcp", s.redirectAddr(), time.Second); err == nil {
		t.Fatal("http_redirect still accepts connections after Close")
	}
}

// TestTLS_MinVersion: a client that offers only TLS 1.1 is refused.
func TestTLS_MinVersion(t *testing.T) {
	ca := newTestCA(t, "hardcap test CA")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.writeLeaf(1, certFile, keyFile)
	s := startTLSServer(t, fmt.Sprintf("listen: 127.0.0.1:0\ntls: {cert_file: %s, key_file: %s}\n", certFile, keyFile), t.TempDir(), tlsTuning{}, nil)
	c, err := tls.Dial("tcp", s.main.Addr(), &tls.Config{ServerName: "localhost", RootCAs: ca.pool, MinVersion: tls.VersionTLS10, MaxVersion: tls.VersionTLS11})
	if err == nil {
		c.Close()
		t.Fatal("a TLS 1.1 handshake succeeded")
	}
}

// TestTLS_ConfigErrors: each bad tls: value is refused with an error that
// names the key, never a file's contents.
func TestTLS_ConfigErrors(t *testing.T) {
	ca := newTestCA(t, "hardcap test CA")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	keyPEM := ca.writeLeaf(1, certFile, keyFile)
	rootFile := filepath.Join(dir, "root.pem")
	if err := os.WriteFile(rootFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	junk := filepath.Join(dir, "junk.pem")
	if err := os.WriteFile(junk, []byte("SECRET-LOOKING-CONTENT"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, otherKey := ca.leaf(2)
	otherKeyFile := filepath.Join(dir, "other.key")
	if err := os.WriteFile(otherKeyFile, otherKey, 0o600); err != nil {
		t.Fatal(err)
	}
	acme := func(s string) string { return "tls:\n  acme:\n" + s }
	tests := []struct {
		name, yaml, want string
	}{
		{"both", fmt.Sprintf("tls: {acme: {domains: [a.example.com]}, cert_file: %s, key_file: %s}", certFile, keyFile), "either tls.acme or tls.cert_file"},
		{"cert without key", fmt.Sprintf("tls: {cert_file: %s}", certFile), "go together"},
		{"key without cert", fmt.Sprintf("tls: {key_file: %s}", keyFile), "go together"},
		{"missing cert file", fmt.Sprintf("tls: {cert_file: %s, key_file: %s}", filepath.Join(dir, "nope.pem"), keyFile), "tls.cert_file and tls.key_file"},
		{"junk cert file", fmt.Sprintf("tls: {cert_file: %s, key_file: %s}", junk, keyFile), "tls.cert_file and tls.key_file"},
		{"key of another cert", fmt.Sprintf("tls: {cert_file: %s, key_file: %s}", certFile, otherKeyFile), "does not match"},
		{"redirect alone", "tls: {http_redirect: ':80'}", "needs tls.acme or tls.cert_file"},
		{"redirect no port", fmt.Sprintf("tls: {cert_file: %s, key_file: %s, http_redirect: 'example'}", certFile, keyFile), "tls.http_redirect"},
		{"redirect is listen", fmt.Sprintf("listen: 127.0.0.1:8443\ntls: {cert_file: %s, key_file: %s, http_redirect: '127.0.0.1:8443'}", certFile, keyFile), "port of its own"},
		{"no domains", acme("    email: ops@example.com\n"), "tls.acme.domains"},
		{"wildcard", acme("    domains: ['*.example.com']\n"), "wildcard"},
		{"bad domain", acme("    domains: ['exa mple.com']\n"), "not a DNS name"},
		{"label dash", acme("    domains: ['-a.example.com']\n"), "not a DNS name"},
		{"twice", acme("    domains: [a.example.com, A.example.com]\n"), "listed twice"},
		{"bad email", acme("    domains: [a.example.com]\n    email: ops\n"), "tls.acme.email"},
		{"http ca", acme("    domains: [a.example.com]\n    ca: http://acme.example.com/dir\n"), "tls.acme.ca must be the https URL"},
		{"ca no host", acme("    domains: [a.example.com]\n    ca: 'https://'\n"), "tls.acme.ca"},
		{"missing ca_root", acme("    domains: [a.example.com]\n    ca_root: " + filepath.Join(dir, "nope.pem") + "\n"), "tls.acme.ca_root"},
		{"junk ca_root", acme("    domains: [a.example.com]\n    ca_root: " + junk + "\n"), "holds no PEM certificate"},
		{"key as ca_root", acme("    domains: [a.example.com]\n    ca_root: " + keyFile + "\n"), "holds no PEM certificate"},
		{"unknown challenge", acme("    domains: [a.example.com]\n    challenges: [smoke-signals]\n"), `unknown challenge "smoke-signals"`},
		{"dns-01", acme("    domains: [a.example.com]\n    challenges: [dns-01]\n"), "dns-01 is not offered"},
		{"http-01 without redirect", acme("    domains: [a.example.com]\n    challenges: [http-01]\n"), "http-01 is answered on tls.http_redirect"},
		{"unknown key", acme("    domains: [a.example.com]\n    colour: blue\n"), `unknown key "colour"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig([]byte(tt.yaml+"\n"), defaultConfig())
			if err == nil {
				_, err = cfg.check()
			}
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got %v, want an error with %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "SECRET-LOOKING") || strings.Contains(err.Error(), string(keyPEM[40:80])) {
				t.Fatalf("the error quotes a file: %v", err)
			}
		})
	}
}

// TestTLS_ConfigDefaults: what a valid tls: section turns into.
func TestTLS_ConfigDefaults(t *testing.T) {
	ca := newTestCA(t, "hardcap test CA")
	rootFile := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(rootFile, ca.pem, 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, yaml        string
		ca                string
		http01, tlsALPN01 bool
		roots             bool
	}{
		{"defaults", "tls: {acme: {domains: [Hardcap.Example.com]}}", "https://acme-v02.api.letsencrypt.org/directory", false, true, false},
		{"with redirect", "tls: {acme: {domains: [hardcap.example.com]}, http_redirect: ':80'}", "https://acme-v02.api.letsencrypt.org/directory", true, true, false},
		{"http-01 only", "tls: {acme: {domains: [hardcap.example.com], challenges: [http-01]}, http_redirect: ':80'}", "https://acme-v02.api.letsencrypt.org/directory", true, false, false},
		{"private CA", "tls: {acme: {domains: [hardcap.internal, 10.0.0.5], email: ops@example.com, ca: 'https://ca.internal/acme/directory', ca_root: " + rootFile + ", challenges: [tls-alpn-01]}}", "https://ca.internal/acme/directory", false, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig([]byte(tt.yaml+"\n"), defaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			set, err := cfg.check()
			if err != nil {
				t.Fatal(err)
			}
			a := set.tls.acme
			if a == nil || a.ca != tt.ca || a.http01 != tt.http01 || a.tlsALPN01 != tt.tlsALPN01 || (a.roots != nil) != tt.roots {
				t.Fatalf("got %+v, want ca %s http-01 %v tls-alpn-01 %v roots %v", a, tt.ca, tt.http01, tt.tlsALPN01, tt.roots)
			}
			if a.domains[0] != strings.ToLower(a.domains[0]) {
				t.Fatalf("domain %q not lower-cased", a.domains[0])
			}
		})
	}
	cfg, _ := parseConfig([]byte(""), defaultConfig())
	if set, err := cfg.check(); err != nil || set.tls.enabled() {
		t.Fatalf("no tls: got %+v, %v; want TLS off", set.tls, err)
	}
}

// TestTLS_NonLoopbackListen: a non-loopback listen is allowed with tls:
// and refused without it (unless allow_insecure_listen).
func TestTLS_NonLoopbackListen(t *testing.T) {
	ca := newTestCA(t, "hardcap test CA")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.writeLeaf(1, certFile, keyFile)
	files := fmt.Sprintf("tls: {cert_file: %s, key_file: %s}\n", certFile, keyFile)
	tests := []struct {
		name, yaml string
		ok         bool
	}{
		{"cert files", "listen: 0.0.0.0:8443\n" + files, true},
		{"acme", "listen: ':443'\ntls: {acme: {domains: [hardcap.example.com]}}\n", true},
		{"no tls", "listen: 0.0.0.0:8443\n", false},
		{"no tls, allowed", "listen: 0.0.0.0:8443\nallow_insecure_listen: true\n", true},
		{"redirect only", "listen: 0.0.0.0:8443\ntls: {http_redirect: ':80'}\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := parseConfig([]byte(tt.yaml), defaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			_, err = cfg.check()
			if (err == nil) != tt.ok {
				t.Fatalf("got %v, want ok=%v", err, tt.ok)
			}
			if !tt.ok && !strings.Contains(err.Error(), "listen") && !strings.Contains(err.Error(), "tls") {
				t.Fatalf("error %v names neither listen nor tls", err)
			}
		})
	}
	// And a server really listens on every address with TLS.
	s := startTLSServer(t, "listen: 0.0.0.0:0\n"+files, t.TempDir(), tlsTuning{}, nil)
	_, port, _ := net.SplitHostPort(s.main.Addr())
	if _, err := servedCert("127.0.0.1:"+port, ca.pool); err != nil {
		t.Fatalf("handshake on 0.0.0.0: %v", err)
	}
}

// TestZapCore: certmagic's zap entries come out as zerolog lines at the
// matching level, with their fields and logger name, below the level set
// dropped.
func TestZapCore(t *testing.T) {
	var buf bytes.Buffer
	zl := zerolog.New(&buf).Level(zerolog.InfoLevel)
	log := newZapLogger(zl).Named("tls.obtain").With(zap.String("identifier", "a.example.com"))
	log.Debug("dropped", zap.Int("n", 1))
	log.Info("certificate obtained", zap.Strings("names", []string{"a.example.com"}), zap.Duration("took", 1500*time.Millisecond),
		zap.Bool("renewal", false), zap.Int64("attempt", 2), zap.Time("at", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)))
	log.Warn("retrying", zap.Error(errors.New("rate limited")), zap.Float64("ratio", 0.5))
	log.Error("failed", zap.Uint64("code", 7))
	log.DPanic("odd")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 4 {
		t.Fatalf("got %d lines, want 4 (debug dropped): %s", len(lines), buf.String())
	}
	var got []map[string]any
	for _, l := range lines {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("not one JSON line: %q", l)
		}
		got = append(got, m)
	}
	want := []map[string]any{
		{"level": "info", "message": "certificate obtained", "logger": "tls.obtain", "identifier": "a.example.com", "names": []any{"a.example.com"}, "took": 1500.0, "renewal": false, "attempt": 2.0, "at": "2026-01-02T03:04:05Z"},
		{"level": "warn", "message": "retrying", "error": "rate limited", "ratio": 0.5},
		{"level": "error", "message": "failed", "code": 7.0},
		{"level": "error", "message": "odd"},
	}
	for i, w := range want {
		for k, v := range w {
			if fmt.Sprint(got[i][k]) != fmt.Sprint(v) {
				t.Errorf("line %d: %s = %v, want %v (%s)", i, k, got[i][k], v, lines[i])
			}
		}
	}
	// Enabled follows the zerolog level.
	c := zerologCore{log: zl}
	if c.Enabled(zapcore.DebugLevel) || !c.Enabled(zapcore.InfoLevel) || !c.Enabled(zapcore.FatalLevel) {
		t.Fatal("Enabled does not follow the zerolog level")
	}
}

// TestTLSStorage_Locks: certmagic's locks are held in memory: Lock waits
// for Unlock or its context, TryLock does not wait, and no lock file is
// written.
func TestTLSStorage_Locks(t *testing.T) {
	dir := t.TempDir()
	s := newTLSStorage(dir)
	ctx := context.Background()
	if err := s.Lock(ctx, "issue_cert_a"); err != nil {
		t.Fatal(err)
	}
	if ok, _ := s.TryLock(ctx, "issue_cert_a"); ok {
		t.Fatal("TryLock took a held lock")
	}
	if ok, _ := s.TryLock(ctx, "issue_cert_b"); !ok {
		t.Fatal("TryLock did not take a free lock")
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if err := s.Lock(short, "issue_cert_a"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Lock on a held lock: %v, want the context's deadline", err)
	}
	got := make(chan error, 1)
	go func() { got <- s.Lock(ctx, "issue_cert_a") }()
	select {
	case err := <-got:
		t.Fatalf("Lock returned %v while the lock was held", err)
	case <-time.After(50 * time.Millisecond):
	}
	if err := s.Unlock(ctx, "issue_cert_a"); err != nil {
		t.Fatal(err)
	}
	if err := <-got; err != nil {
		t.Fatalf("Lock after Unlock: %v", err)
	}
	if err := s.Unlock(ctx, "never_locked"); err == nil {
		t.Fatal("Unlock of a free lock succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Fatalf("locking wrote %d files to the storage dir", len(entries))
	}
}

// TestTLS_ConnectionCaps: the connection caps count TCP connections below
// TLS, so they hold with TLS on: a connection over max_connections_per_ip
// gets no handshake, and its slot comes back when the first one closes.
func TestTLS_ConnectionCaps(t *testing.T) {
	ca := newTestCA(t, "hardcap test CA")
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	ca.writeLeaf(1, certFile, keyFile)
	s := startTLSServer(t, fmt.Sprintf("listen: 127.0.0.1:0\nmax_connections_per_ip: 1\ntls: {cert_file: %s, key_file: %s}\n", certFile, keyFile), t.TempDir(), tlsTuning{}, nil)
	cfg := &tls.Config{ServerName: "localhost", RootCAs: ca.pool, MinVersion: tls.VersionTLS12}
	first, err := tls.Dial("tcp", s.main.Addr(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if second, err := tls.Dial("tcp", s.main.Addr(), cfg); err == nil {
		second.Close()
		first.Close()
		t.Fatal("a second connection from the same IP got a TLS session over max_connections_per_ip: 1")
	}
	first.Close()
	waitFor(t, "the slot to come back", func() bool {
		c, err := tls.Dial("tcp", s.main.Addr(), cfg)
		if err != nil {
			return false
		}
		c.Close()
		return true
	})
}
