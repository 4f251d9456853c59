package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"

	"github.com/caddyserver/certmagic"
)

// TLSConfig is the tls: section: HTTPS on the listen address, with
// certificates from an ACME CA (acme) or files the operator manages
// (cert_file and key_file), exactly one of the two. With either, listen may
// be a non-loopback address without allow_insecure_listen.
type TLSConfig struct {
	// ACME obtains and renews the certificates automatically.
	ACME *ACMEConfig `yaml:"acme"`
	// CertFile and KeyFile are a PEM certificate chain (leaf first) and its
	// private key, re-read when either file changes (checked at most every
	// few seconds) and at SIGHUP.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// HTTPRedirect is a second, plain-HTTP listen address (usually :80)
	// that answers ACME http-01 challenges and redirects every other
	// request to https on the listen address's port; default none.
	HTTPRedirect string `yaml:"http_redirect"`
}

// ACMEConfig is tls.acme: which names to get certificates for, and from
// which ACME CA.
type ACMEConfig struct {
	// Domains are the DNS names (or IP addresses) the certificates cover,
	// one certificate each; required.
	Domains []string `yaml:"domains"`
	// Email is the ACME account's contact address, where the CA sends
	// expiry warnings; default none.
	Email string `yaml:"email"`
	// CA is the ACME directory URL; default Let's Encrypt's production
	// directory. Any ACME server works.
	CA string `yaml:"ca"`
	// CARoot is a PEM file of the root certificate(s) that sign the ACME
	// server's own HTTPS certificate, for a private ACME server; default
	// the system's roots.
	CARoot string `yaml:"ca_root"`
	// Challenges are the ACME challenges hardcap answers: tls-alpn-01 (on
	// the listen address, which the CA reaches on port 443) and http-01
	// (on http_redirect, which the CA reaches on port 80); default
	// tls-alpn-01, plus http-01 when http_redirect is set.
	Challenges []string `yaml:"challenges"`
}

// The ACME challenges hardcap can answer.
const (
	challengeHTTP01    = "http-01"
	challengeTLSALPN01 = "tls-alpn-01"
)

// maxACMEDomains bounds tls.acme.domains: each is an order at the CA, and
// CAs limit orders per account.
const maxACMEDomains = 100

// tlsSettings are the checked values of tls:. The zero value is TLS off.
type tlsSettings struct {
	// acme is set when the certificates come from an ACME CA.
	acme *acmeSettings
	// certFile and keyFile are set when they come from files; pair is
	// what they held at the check.
	certFile, keyFile string
	pair              *tls.Certificate
	// redirect is http_redirect, "" for none.
	redirect string
}

// acmeSettings are the checked values of tls.acme.
type acmeSettings struct {
	domains []string
	email   string
	ca      string
	// roots are ca_root's certificates; nil for the system's roots.
	roots             *x509.CertPool
	http01, tlsALPN01 bool
}

// enabled reports whether hardcap serves HTTPS.
func (s tlsSettings) enabled() bool { return s.acme != nil || s.certFile != "" }

// configured reports whether tls: asks for HTTPS at all, checked or not:
// what checkListen needs to know.
func (c TLSConfig) configured() bool {
	return c.ACME != nil || c.CertFile != "" || c.KeyFile != ""
}

// check validates tls: and converts it. Errors name the key at fault; they
// quote no file's contents.
func (c TLSConfig) check(listen string) (tlsSettings, error) {
	var s tlsSettings
	files := c.CertFile != "" || c.KeyFile != ""
	switch {
	case c.ACME != nil && files:
		return s, errors.New("config: tls: set either tls.acme or tls.cert_file and tls.key_file, not both")
	case !c.configured():
		if c.HTTPRedirect != "" {
			return s, errors.New("config: tls.http_redirect needs tls.acme or tls.cert_file and tls.key_file: it redirects to HTTPS")
		}
		return s, nil
	}
	if c.HTTPRedirect != "" {
		if err := checkRedirect(c.HTTPRedirect, listen); err != nil {
			return s, err
		}
		s.redirect = c.HTTPRedirect
	}
	if files {
		if c.CertFile == "" || c.KeyFile == "" {
			return s, errors.New("config: tls.cert_file and tls.key_file go together: set both")
		}
		pair, err := loadKeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return s, fmt.Errorf("config: tls.cert_file and tls.key_file: %w", err)
		}
		s.certFile, s.keyFile, s.pair = c.CertFile, c.KeyFile, pair
		return s, nil
	}
	a, err := c.ACME.check(s.redirect != "")
	if err != nil {
		return s, err
	}
	s.acme = a
	return s, nil
}

func (a ACMEConfig) check(redirect bool) (*acmeSettings, error) {
	s := &acmeSettings{email: strings.TrimSpace(a.Email), ca: strings.TrimSpace(a.CA)}
	if len(a.Domains) == 0 {
		return nil, errors.New("config: tls.acme.domains: list the names hardcap is reached by (for example [hardcap.example.com])")
	}
	if len(a.Domains) > maxACMEDomains {
		return nil, fmt.Errorf("config: tls.acme.domains: more than %d names", maxACMEDomains)
	}
	seen := map[string]bool{}
	for _, d := range a.Domains {
		name := strings.ToLower(strings.TrimSpace(d))
		if err := checkDomain(name); err != nil {
			return nil, fmt.Errorf("config: tls.acme.domains: %w", err)
		}
		if seen[name] {
			return nil, fmt.Errorf("config: tls.acme.domains: %q is listed twice", name)
		}
		seen[name] = true
		s.domains = append(s.domains, name)
	}
	if s.email != "" && !plausibleEmail(s.email) {
		return nil, errors.New("config: tls.acme.email is not an email address (name@domain)")
	}
	if s.ca == "" {
		s.ca = certmagic.LetsEncryptProductionCA
	}
	if u, err := url.Parse(s.ca); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		return nil, errors.New("config: tls.acme.ca must be the https URL of an ACME directory (for example https://acme-v02.api.letsencrypt.org/directory)")
	}
	if a.CARoot != "" {
		pool, err := loadRoots(a.CARoot)
		if err != nil {
			return nil, fmt.Errorf("config: tls.acme.ca_root: %w", err)
		}
		s.roots = pool
	}
	if len(a.Challenges) == 0 {
		s.tlsALPN01, s.http01 = true, redirect
		return s, nil
	}
	for _, ch := range a.Challenges {
		switch strings.ToLower(strings.TrimSpace(ch)) {
		case challengeHTTP01:
			if !redirect {
				return nil, errors.New("config: tls.acme.challenges: http-01 is answered on tls.http_redirect: set it (the CA connects to port 80), or use tls-alpn-01 alone")
			}
			s.http01 = true
		case challengeTLSALPN01:
			s.tlsALPN01 = true
		case "dns-01":
			return nil, errors.New("config: tls.acme.challenges: dns-01 is not offered; use http-01 or tls-alpn-01")
		default:
			return nil, fmt.Errorf("config: tls.acme.challenges: unknown challenge %q (want http-01 or tls-alpn-01)", ch)
		}
	}
	return s, nil
}

// checkDomain accepts a DNS name or an IP address a CA can validate with
// http-01 or tls-alpn-01: no wildcard (that takes dns-01).
func checkDomain(name string) error {
	if name == "" {
		return errors.New("an empty name")
	}
	if net.ParseIP(name) != nil {
		return nil
	}
	if strings.HasPrefix(name, "*.") {
		return fmt.Errorf("%q: a wildcard name needs the dns-01 challenge, which hardcap does not offer; list the names", name)
	}
	if len(name) > 253 || strings.HasSuffix(name, ".") {
		return fmt.Errorf("%q is not a DNS name", name)
	}
	for label := range strings.SplitSeq(name, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return fmt.Errorf("%q is not a DNS name", name)
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Errorf("%q is not a DNS name (letters, digits, '-' and '.')", name)
			}
		}
	}
	return nil
}

// plausibleEmail is the check a CA makes first: one @ between a local part
// and a domain with a dot, no spaces.
func plausibleEmail(s string) bool {
	local, domain, ok := strings.Cut(s, "@")
	return ok && local != "" && strings.Contains(domain, ".") && !strings.ContainsAny(s, " \t\r\n<>,;") && !strings.Contains(domain, "@")
}

// checkRedirect checks http_redirect: an address to listen on, other than
// listen.
func checkRedirect(addr, listen string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("config: tls.http_redirect %q: %w", addr, err)
	}
	if port == "" {
		return fmt.Errorf("config: tls.http_redirect %q: no port (for example :80)", addr)
	}
	if addr == listen && port != "0" {
		return fmt.Errorf("config: tls.http_redirect %q is the listen address: the redirect needs a port of its own (usually :80)", addr)
	}
	return nil
}

// loadKeyPair reads and parses a certificate chain and its key, checking
// that they belong together. Errors name the files, never their contents.
func loadKeyPair(certFile, keyFile string) (*tls.Certificate, error) {
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, err
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		// crypto/tls's messages ("private key does not match public key",
		// "failed to find any PEM data") quote nothing of the input.
		return nil, fmt.Errorf("%s and %s: %w", certFile, keyFile, err)
	}
	return &pair, nil
}

// loadRoots reads a PEM file of CA certificates.
func loadRoots(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	n := 0
	for block, rest := pem.Decode(b); block != nil; block, rest = pem.Decode(rest) {
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("%s holds no PEM certificate", path)
	}
	return pool, nil
}
