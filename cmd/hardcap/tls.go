package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/hardcap/hardcap/internal/connguard"
	"github.com/mholt/acmez/v3"
	"github.com/rs/zerolog"
)

// errCertFiles is a cert_file/key_file pair that could not be read or
// used; the certificate served before is kept.
var errCertFiles = errors.New("tls: cert_file and key_file cannot be used, so the certificate read before is still served")

// certFileCheckEvery is how often, at most, a handshake looks whether
// cert_file or key_file changed: one stat of each, not one per handshake.
const certFileCheckEvery = 5 * time.Second

// tlsTuning are the TLS timings tests shorten; each zero value is the
// production default.
type tlsTuning struct {
	// renewCheck is how often certmagic looks for certificates to renew;
	// 0 is certmagic's default (10 minutes).
	renewCheck time.Duration
	// renewRatio is the share of a certificate's lifetime, at its end, in
	// which certmagic renews it; 0 is certmagic's default (1/3).
	renewRatio float64
	// fileCheck is how often, at most, cert_file and key_file are looked
	// at; 0 is certFileCheckEvery.
	fileCheck time.Duration
}

// tlsServing is HTTPS on the listen address, with its certificates, and
// the optional plain-HTTP redirect listener.
type tlsServing struct {
	config *tls.Config
	// acme is set for tls.acme; files for cert_file and key_file.
	acme  *acmeServing
	files *certFiles
	// redirect serves http_redirect; nil without one.
	redirect   *http.Server
	redirectLn net.Listener
}

// acmeServing is certmagic managing the tls.acme certificates.
type acmeServing struct {
	magic   *certmagic.Config
	cache   *certmagic.Cache
	issuer  *certmagic.ACMEIssuer
	domains []string
	// ctx is the background obtaining's; stop cancels it and its
	// retries.
	ctx  context.Context
	stop context.CancelFunc
}

// openTLS puts TLS on ln (the connection guard stays below it, counting
// TCP connections), prepares the certificates and binds http_redirect.
// Without tls: it returns ln as it is. On error ln is closed.
func (m *Main) openTLS(set tlsSettings, ln net.Listener) (net.Listener, error) {
	if !set.enabled() {
		return ln, nil
	}
	t := &tlsServing{}
	ok := false
	defer func() {
		if !ok {
			_ = ln.Close()
			t.close()
		}
	}()
	_, mainPort, err := net.SplitHostPort(ln.Addr().String())
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	redirectPort := ""
	if set.redirect != "" {
		inner, err := net.Listen("tcp", set.redirect)
		if err != nil {
			return nil, fmt.Errorf("tls.http_redirect: %w", err)
		}
		t.redirectLn = &connguard.Listener{Listener: inner, Max: m.Config.MaxConnections, PerIP: m.Config.MaxConnectionsPerIP}
		_, redirectPort, _ = net.SplitHostPort(inner.Addr().String())
	}
	protos := []string{"h2", "http/1.1"}
	var getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)
	if set.acme != nil {
		if t.acme, err = m.newACME(set.acme, mainPort, redirectPort); err != nil {
			return nil, err
		}
		getCert = t.acme.magic.GetCertificate
		if set.acme.tlsALPN01 {
			protos = append(protos, acmez.ACMETLS1Protocol)
		}
	} else {
		every := m.tlsTuning.fileCheck
		if every <= 0 {
			every = certFileCheckEvery
		}
		t.files = newCertFiles(set.certFile, set.keyFile, set.pair, every, m.log)
		getCert = t.files.getCertificate
	}
	t.config = &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: getCert, NextProtos: protos}
	if t.redirectLn != nil {
		t.redirect = &http.Server{
			Handler:           t.redirectHandler(mainPort),
			ReadHeaderTimeout: 10 * time.Second,
			ReadTimeout:       10 * time.Second,
			WriteTimeout:      10 * time.Second,
			IdleTimeout:       time.Minute,
			MaxHeaderBytes:    16 << 10,
			ErrorLog:          log.New(logWriter{m.log}, "", 0),
		}
	}
	// net/http offers HTTP/2 on a TLS listener when its TLSConfig lists h2.
	m.server.TLSConfig = t.config
	m.tls = t
	ok = true
	return tls.NewListener(ln, t.config), nil
}

// newACME sets up certmagic: file storage under <data_dir>/tls, the ACME
// issuer with the challenges enabled, and the challenge ports pointed at
// hardcap's own listeners, so certmagic never binds one of its own.
func (m *Main) newACME(a *acmeSettings, mainPort, redirectPort string) (*acmeServing, error) {
	// Named: every certmagic line says it is one ("certmagic.obtain").
	zl := newZapLogger(m.log).Named("certmagic")
	host, _, err := net.SplitHostPort(m.Config.Listen)
	if err != nil {
		return nil, fmt.Errorf("tls: %w", err)
	}
	tlsPort, _ := strconv.Atoi(mainPort)
	httpPort, _ := strconv.Atoi(redirectPort)
	var magic *certmagic.Config
	cache := certmagic.NewCache(certmagic.CacheOptions{
		GetConfigForCert:   func(certmagic.Certificate) (*certmagic.Config, error) { return magic, nil },
		RenewCheckInterval: m.tlsTuning.renewCheck,
		Logger:             zl,
	})
	magic = certmagic.New(cache, certmagic.Config{
		Storage:            newTLSStorage(filepath.Join(m.DataDir, "tls")),
		RenewalWindowRatio: m.tlsTuning.renewRatio,
		// A client that sends no server name (one that dials an IP
		// address) gets the first domain's certificate.
		DefaultServerName: a.domains[0],
		Logger:            zl,
	})
	issuer := certmagic.NewACMEIssuer(magic, certmagic.ACMEIssuer{
		CA:                      a.ca,
		Email:                   a.email,
		Agreed:                  true,
		DisableHTTPChallenge:    !a.http01,
		DisableTLSALPNChallenge: !a.tlsALPN01,
		ListenHost:              host,
		AltTLSALPNPort:          tlsPort,
		AltHTTPPort:             httpPort,
		TrustedRoots:            a.roots,
		Logger:                  zl,
	})
	magic.Issuers = []certmagic.Issuer{issuer}
	ctx, stop := context.WithCancel(context.Background())
	return &acmeServing{magic: magic, cache: cache, issuer: issuer, domains: a.domains, ctx: ctx, stop: stop}, nil
}

// startTLS starts the redirect listener and, for ACME, the certificates'
// management. Certificates are loaded from storage or obtained in the
// background, not before serving: the CA's challenges reach hardcap on
// the listeners that Run is about to serve, and a CA that is down must not
// keep the server from starting. Handshakes for a name fail until its
// certificate is there; the log says when it is.
func (m *Main) startTLS() {
	t := m.tls
	if t == nil {
		return
	}
	if t.redirect != nil {
		srv, ln := t.redirect, t.redirectLn
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				m.log.Error().Err(err).Msg("tls.http_redirect stopped serving")
			}
		}()
		m.log.Info().Str("listen", "http://"+ln.Addr().String()).Msg("tls: http_redirect answers ACME http-01 challenges and redirects the rest to https")
	}
	if a := t.acme; a != nil {
		if err := a.magic.ManageAsync(a.ctx, a.domains); err != nil {
			m.log.Error().Err(err).Msg("tls: managing the ACME certificates")
		}
		m.log.Info().Strs("domains", a.domains).Str("ca", a.issuer.CA).Str("storage", filepath.Join(m.DataDir, "tls")).
			Msg("tls: loading or obtaining the ACME certificates in the background; handshakes for a domain fail until its certificate is ready")
		return
	}
	leaf := t.files.pair.Load().Leaf
	m.log.Info().Str("cert_file", t.files.certFile).Strs("names", leaf.DNSNames).Time("not_after", leaf.NotAfter).
		Msg("tls: serving cert_file; it is re-read when it changes")
}

// closeTLS stops the redirect listener and certmagic's maintenance. Close
// calls it once the main server is shut down.
func (m *Main) closeTLS() {
	if m.tls != nil {
		m.tls.close()
	}
}

func (t *tlsServing) close() {
	if t.redirect != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		if err := t.redirect.Shutdown(ctx); err != nil {
			_ = t.redirect.Close()
		}
		cancel()
	}
	if t.redirectLn != nil {
		// Shutdown closes only the listeners Serve was given.
		_ = t.redirectLn.Close()
	}
	if t.acme != nil {
		t.acme.stop()
		t.acme.cache.Stop()
	}
}

// reloadTLS re-reads cert_file and key_file now (SIGHUP), keeping the
// certificate served before when they cannot be used. ACME certificates
// renew themselves, so it does nothing for them.
func (m *Main) reloadTLS() error {
	if m.tls == nil || m.tls.files == nil {
		return nil
	}
	return m.tls.files.reload()
}

// listenURL is the listen address as a URL: https:// with TLS.
func (m *Main) listenURL() string {
	if m.tls != nil {
		return "https://" + m.Addr()
	}
	return "http://" + m.Addr()
}

// challengePrefix is where ACME http-01 challenges are asked.
const challengePrefix = "/.well-known/acme-challenge/"

// redirectHandler answers ACME http-01 challenges and sends every other
// request to the same host and path over https, on the listen address's
// port, with 308 (the method and body are kept).
func (t *tlsServing) redirectHandler(httpsPort string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if t.acme != nil && t.acme.issuer.HandleHTTPChallenge(w, r) {
			return
		}
		if strings.HasPrefix(r.URL.Path, challengePrefix) {
			http.Error(w, "no such ACME challenge", http.StatusNotFound)
			return
		}
		host := r.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
		if host == "" {
			http.Error(w, "use https", http.StatusBadRequest)
			return
		}
		target := net.JoinHostPort(host, httpsPort)
		if httpsPort == "443" {
			target = host
			if strings.Contains(host, ":") {
				target = "[" + host + "]"
			}
		}
		http.Redirect(w, r, "https://"+target+r.URL.RequestURI(), http.StatusPermanentRedirect)
	})
}

// certFiles serves the certificate in cert_file and key_file, re-reading
// them when their size or modification time changes, looked at no more
// than once every `every`. A pair that does not parse or does not match is
// logged and the previous one kept, so a half-written replacement never
// breaks handshakes.
type certFiles struct {
	certFile, keyFile string
	every             time.Duration
	log               zerolog.Logger

	pair atomic.Pointer[tls.Certificate]
	// next is when a handshake looks at the files again, in Unix
	// nanoseconds.
	next atomic.Int64
	// mu serializes looking; seen is what the files looked like when last
	// read or tried, so a broken pair is logged once, not at every check.
	mu   sync.Mutex
	seen [2]fileStamp
}

// fileStamp is what a file looks like from outside: a changed one has a
// new size or modification time (or is missing).
type fileStamp struct {
	size    int64
	mod     time.Time
	missing bool
}

func newCertFiles(certFile, keyFile string, pair *tls.Certificate, every time.Duration, l zerolog.Logger) *certFiles {
	f := &certFiles{certFile: certFile, keyFile: keyFile, every: every, log: l}
	f.pair.Store(pair)
	f.seen = f.stamps()
	f.next.Store(time.Now().Add(every).UnixNano())
	return f
}

// getCertificate is the tls.Config's GetCertificate: the current pair,
// after a look at the files when one is due. A handshake never waits for
// another's look.
func (f *certFiles) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	if now := time.Now(); now.UnixNano() >= f.next.Load() && f.mu.TryLock() {
		f.next.Store(now.Add(f.every).UnixNano())
		_ = f.refreshLocked(false)
		f.mu.Unlock()
	}
	return f.pair.Load(), nil
}

// reload reads the files now, changed or not.
func (f *certFiles) reload() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.refreshLocked(true)
}

func (f *certFiles) stamps() [2]fileStamp {
	var st [2]fileStamp
	for i, name := range []string{f.certFile, f.keyFile} {
		fi, err := os.Stat(name)
		if err != nil {
			st[i] = fileStamp{missing: true}
			continue
		}
		st[i] = fileStamp{size: fi.Size(), mod: fi.ModTime()}
	}
	return st
}

// refreshLocked reads the pair when the files changed since last seen (or
// when forced) and serves it if it is usable.
func (f *certFiles) refreshLocked(force bool) error {
	st := f.stamps()
	if !force && st == f.seen {
		return nil
	}
	f.seen = st
	pair, err := loadKeyPair(f.certFile, f.keyFile)
	if err != nil {
		// Also a replacement caught halfway: the next change of either
		// file is read again.
		f.log.Warn().Err(err).Msg("tls: cert_file and key_file changed but cannot be used; the certificate read before is still served")
		return fmt.Errorf("%w: %w", errCertFiles, err)
	}
	f.pair.Store(pair)
	fp := sha256.Sum256(pair.Leaf.Raw)
	ev := f.log.Info()
	if time.Now().After(pair.Leaf.NotAfter) {
		ev = f.log.Warn()
	}
	ev.Strs("names", pair.Leaf.DNSNames).Time("not_after", pair.Leaf.NotAfter).Str("sha256", hex.EncodeToString(fp[:])).
		Msg("tls: cert_file and key_file read")
	return nil
}

// tlsStorage is certmagic's file storage with locks held in memory instead
// of lock files. The database's lock already keeps a second hardcap off the
// data dir, so no other process shares these files, and certmagic's lock
// files would only matter after a crash: then they are stale, delay the
// next obtain, and certmagic reports them on its own logger (zap's format on
// stderr, past hardcap's).
type tlsStorage struct {
	*certmagic.FileStorage
	mu    sync.Mutex
	locks map[string]chan struct{}
}

var (
	_ certmagic.Storage   = (*tlsStorage)(nil)
	_ certmagic.TryLocker = (*tlsStorage)(nil)
)

func newTLSStorage(path string) *tlsStorage {
	return &tlsStorage{FileStorage: &certmagic.FileStorage{Path: path}, locks: map[string]chan struct{}{}}
}

// Lock waits until name is free or ctx ends, then takes it.
func (s *tlsStorage) Lock(ctx context.Context, name string) error {
	for {
		ok, held := s.take(name)
		if ok {
			return nil
		}
		select {
		case <-held:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// TryLock takes name if it is free.
func (s *tlsStorage) TryLock(_ context.Context, name string) (bool, error) {
	ok, _ := s.take(name)
	return ok, nil
}

// take takes name, or returns the channel closed when its holder lets go.
func (s *tlsStorage) take(name string) (bool, chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if held, ok := s.locks[name]; ok {
		return false, held
	}
	s.locks[name] = make(chan struct{})
	return true, nil
}

// Unlock lets name go.
func (s *tlsStorage) Unlock(_ context.Context, name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	held, ok := s.locks[name]
	if !ok {
		return fmt.Errorf("tls storage: %s is not locked", name)
	}
	delete(s.locks, name)
	close(held)
	return nil
}
