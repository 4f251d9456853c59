package webhook

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"errors"
	"io"
	"math/big"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hardcap/hardcap/alert"
)

// testCert is a self-signed certificate for 127.0.0.1 and the pool that
// trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test smtp"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, KeyUsage: x509.KeyUsageDigitalSignature,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool
}

// smtpServer is a submission server on loopback that speaks enough of
// SMTP for net/smtp: EHLO, STARTTLS, AUTH PLAIN, MAIL, RCPT, DATA, QUIT.
type smtpServer struct {
	t        *testing.T
	ln       net.Listener
	tls      *tls.Config // nil offers no STARTTLS
	user     string
	password string

	mu   sync.Mutex
	msgs []smtpMessage
	wg   sync.WaitGroup
}

type smtpMessage struct {
	from   string
	to     []string
	data   string
	authed bool
	tls    bool
}

func newSMTPServer(t *testing.T, cfg *tls.Config, user, password string) *smtpServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &smtpServer{t: t, ln: ln, tls: cfg, user: user, password: password}
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.serve(c) })
		}
	})
	t.Cleanup(func() {
		_ = ln.Close()
		s.wg.Wait()
	})
	return s
}

func (s *smtpServer) port() int { return s.ln.Addr().(*net.TCPAddr).Port }

func (s *smtpServer) messages() []smtpMessage {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]smtpMessage(nil), s.msgs...)
}

func (s *smtpServer) serve(c net.Conn) {
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	r, w := bufio.NewReader(c), bufio.NewWriter(c)
	say := func(lines ...string) {
		for _, l := range lines {
			_, _ = w.WriteString(l + "\r\n")
		}
		_ = w.Flush()
	}
	var m smtpMessage
	say("220 test ESMTP")
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		line = strings.TrimRight(line, "\r\n")
		verb, arg, _ := strings.Cut(line, " ")
		switch strings.ToUpper(verb) {
		case "EHLO":
			lines := []string{"250-test"}
			if s.tls != nil && !m.tls {
				lines = append(lines, "250-STARTTLS")
			}
			if m.tls {
				lines = append(lines, "250-AUTH PLAIN")
			}
			say(append(lines, "250 8BITMIME")...)
		case "STARTTLS":
			if s.tls == nil || m.tls {
				say("502 no")
				continue
			}
			say("220 go ahead")
			tc := tls.Server(c, s.tls)
			if err := tc.Handshake(); err != nil {
				return
			}
			c, m.tls = tc, true
			r, w = bufio.NewReader(tc), bufio.NewWriter(tc)
		case "AUTH":
			b64, _ := strings.CutPrefix(arg, "PLAIN ")
			raw, _ := base64.StdEncoding.DecodeString(b64)
			if !m.tls || string(raw) != "\x00"+s.user+"\x00"+s.password {
				say("535 5.7.8 authentication failed")
				continue
			}
			m.authed = true
			say("235 2.7.0 ok")
		case "MAIL":
			m.from = arg
			say("250 ok")
		case "RCPT":
			m.to = append(m.to, arg)
			say("250 ok")
		case "DATA":
			say("354 go ahead")
			var data strings.Builder
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return
				}
				if l == ".\r\n" {
					break
				}
				data.WriteString(strings.TrimPrefix(l, "."))
			}
			m.data = data.String()
			s.mu.Lock()
			s.msgs = append(s.msgs, m)
			s.mu.Unlock()
			say("250 queued")
		case "RSET", "NOOP":
			say("250 ok")
		case "QUIT":
			say("221 bye")
			return
		default:
			say("500 what")
		}
	}
}

func TestSMTP_Delivers(t *testing.T) {
	cert, pool := testCert(t)
	srv := newSMTPServer(t, &tls.Config{Certificates: []tls.Certificate{cert}}, "hardcap", "sekrit-pass")
	ob := newOutbox()
	d := mustNew(t, Options{Outbox: ob, SMTP: []SMTP{{Host: "127.0.0.1", Port: srv.port(), Username: "hardcap", Password: "sekrit-pass",
		From: "Hardcap <hardcap@example.org>", To: []string{"ops@example.org", "Ann <ann@example.org>"}, TLS: &tls.Config{RootCAs: pool}}}})
	a := hostileAlert()
	a.Message = "Token tok_1 was frozen: résumé with `hardcap tokens unfreeze tok_1`.\nA line that starts\n.with a dot"
	res := d.DeliverNow(context.Background(), alert.Entry{Alert: a})
	if len(res) != 1 || !res[0].OK {
		t.Fatalf("got %+v, want one delivered result", res)
	}
	msgs := srv.messages()
	if len(msgs) != 1 {
		t.Fatalf("server got %d messages, want 1", len(msgs))
	}
	m := msgs[0]
	if !m.tls || !m.authed || !strings.HasPrefix(m.from, "FROM:<hardcap@example.org>") || strings.Join(m.to, ",") != "TO:<ops@example.org>,TO:<ann@example.org>" {
		t.Errorf("got %+v, want one message over TLS, authenticated, to both", m)
	}
	msg, err := mail.ReadMessage(strings.NewReader(m.data))
	if err != nil {
		t.Fatalf("the message does not parse: %v\n%s", err, m.data)
	}
	for k, want := range map[string]string{
		"Subject":                   "hardcap: Spend above the limit (frozen)",
		"Message-Id":                "<al_x@hardcap>",
		"Content-Type":              "text/plain; charset=utf-8",
		"From":                      `"Hardcap" <hardcap@example.org>`,
		"To":                        `<ops@example.org>, "Ann" <ann@example.org>`,
		"Content-Transfer-Encoding": "quoted-printable",
	} {
		if got := msg.Header.Get(k); got != want {
			t.Errorf("%s: got %q, want %q", k, got, want)
		}
	}
	if _, err := msg.Header.Date(); err != nil {
		t.Errorf("Date: %v", err)
	}
	body, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{strings.ReplaceAll(a.Message, "\n", "\r\n"), "Scope: token tok_1 (project web)", "Spent: 6.000000 USD",
		"Limit: 5.000000 USD", "model: <b>gpt</b>", "Alert: al_x"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}
	if del, _ := ob.delivery("al_x", "email-1"); del.State != alert.Delivered {
		t.Errorf("recorded %+v, want delivered", del)
	}
}

func TestSMTP_Refused(t *testing.T) {
	cert, pool := testCert(t)
	withTLS := newSMTPServer(t, &tls.Config{Certificates: []tls.Certificate{cert}}, "hardcap", "right-pass")
	noTLS := newSMTPServer(t, nil, "", "")
	dead, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadPort := dead.Addr().(*net.TCPAddr).Port
	_ = dead.Close()
	base := func(port int) SMTP {
		return SMTP{Host: "127.0.0.1", Port: port, From: "hardcap@example.org", To: []string{"ops@example.org"}, TLS: &tls.Config{RootCAs: pool}}
	}
	wrongPass := base(withTLS.port())
	wrongPass.Username, wrongPass.Password = "hardcap", "sekrit-wrong-pass"
	untrusted := base(withTLS.port())
	untrusted.TLS = nil
	plain := base(noTLS.port())
	plain.StartTLS = "off"
	for _, tc := range []struct {
		name string
		cfg  SMTP
		want error
		text string
		sent bool
	}{
		{"no STARTTLS offered", base(noTLS.port()), ErrNoStartTLS, "does not offer STARTTLS", false},
		{"wrong password", wrongPass, ErrSMTP, "AUTH: 535", false},
		{"untrusted certificate", untrusted, ErrSMTP, "STARTTLS: TLS certificate not valid", false},
		{"nothing listens", base(deadPort), ErrSMTP, "dial: connection refused", false},
		{"starttls off", plain, nil, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(noTLS.messages()) + len(withTLS.messages())
			c, err := newSMTP(tc.cfg, "smtp 1")
			if err != nil {
				t.Fatal(err)
			}
			err = sendMail(context.Background(), c, testAlert("al_m", alert.TypeTest, time.Now()), time.Now())
			if !errors.Is(err, tc.want) || tc.want != nil && !strings.Contains(err.Error(), tc.text) {
				t.Fatalf("got %v, want %v saying %q", err, tc.want, tc.text)
			}
			if err != nil {
				checkNoCredentials(t, err.Error(), "sekrit", "right-pass")
			}
			if sent := len(noTLS.messages())+len(withTLS.messages()) > before; sent != tc.sent {
				t.Errorf("sent %v, want %v", sent, tc.sent)
			}
		})
	}
}

// TestSMTP_Deadline: a server that accepts and says nothing costs one
// attempt its context's deadline, not a hang.
func TestSMTP_Deadline(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		c, err := ln.Accept()
		if err == nil {
			defer c.Close()
			_, _ = io.Copy(io.Discard, c)
		}
	}()
	c, err := newSMTP(SMTP{Host: "127.0.0.1", Port: ln.Addr().(*net.TCPAddr).Port, From: "a@example.org", To: []string{"b@example.org"}}, "smtp 1")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := sendMail(ctx, c, testAlert("al_m", alert.TypeTest, time.Now()), time.Now()); !errors.Is(err, ErrSMTP) || !strings.Contains(err.Error(), "timeout") {
		t.Errorf("got %v, want a timeout", err)
	}
}
