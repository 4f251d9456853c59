package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/quotedprintable"
	"net"
	"net/smtp"
	"net/textproto"
	"strings"
	"time"

	"github.com/hardcap/hardcap/alert"
)

// smtpTimeout bounds one SMTP delivery, dial to QUIT.
const smtpTimeout = 10 * time.Second

// headerText is a header value with line breaks taken out: a CR or LF
// from an alert would start a header of its own.
func headerText(s string) string {
	s = strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' {
			return ' '
		}
		return r
	}, s)
	return mime.QEncoding.Encode("utf-8", s)
}

// messageID is the Message-ID of alert id: the same on every redelivery,
// so that mail clients thread or drop repeats. Characters a Message-ID
// cannot hold become "_".
func messageID(id string) string {
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune(".-_+", r) {
			return r
		}
		return '_'
	}, id)
	return "<" + safe + "@hardcap>"
}

// mailMessage is the text/plain message of a sent at time at.
func mailMessage(c *smtpChannel, a alert.Alert, at time.Time) []byte {
	var b bytes.Buffer
	hdr := func(k, v string) { b.WriteString(k + ": " + v + "\r\n") }
	hdr("From", c.fromHeader)
	hdr("To", c.toHeader)
	hdr("Subject", headerText("hardcap: "+title(a)))
	hdr("Date", at.Format(time.RFC1123Z))
	hdr("Message-ID", messageID(a.ID))
	hdr("MIME-Version", "1.0")
	hdr("Content-Type", "text/plain; charset=utf-8")
	hdr("Content-Transfer-Encoding", "quoted-printable")
	b.WriteString("\r\n")
	// Quoted-printable keeps lines under SMTP's 998 bytes whatever the
	// message holds.
	q := quotedprintable.NewWriter(&b)
	var text strings.Builder
	text.WriteString(a.Message + "\n\n")
	for _, f := range fields(a) {
		text.WriteString(f.name + ": " + f.value + "\n")
	}
	text.WriteString("Alert: " + a.ID + "\n")
	text.WriteString("Time: " + a.Time.UTC().Format(time.RFC3339) + "\n")
	_, _ = q.Write([]byte(text.String()))
	_ = q.Close()
	return b.Bytes()
}

// sendMail delivers a by c's server to every To address in one message.
// Its error names the step and the server's answer, never the password.
func sendMail(ctx context.Context, c *smtpChannel, a alert.Alert, at time.Time) error {
	ctx, cancel := context.WithTimeout(ctx, smtpTimeout)
	defer cancel()
	err := converse(ctx, c, mailMessage(c, a, at))
	if err == nil {
		return nil
	}
	if ctx.Err() != nil && !errors.Is(err, ErrNoStartTLS) {
		return fmt.Errorf("%w: timeout", ErrSMTP)
	}
	if c.cfg.Password != "" && strings.Contains(err.Error(), c.cfg.Password) {
		// A server may quote what it was sent.
		return fmt.Errorf("%w: %s", ErrSMTP, strings.ReplaceAll(err.Error(), c.cfg.Password, "[password]"))
	}
	return fmt.Errorf("%w: %w", ErrSMTP, err)
}

// step names the SMTP step an error came from and what went wrong: the
// server's answer, or the network cause in a few words.
func step(name string, err error) error {
	if te, ok := errors.AsType[*textproto.Error](err); ok {
		return fmt.Errorf("%s: %s", name, te.Error())
	}
	why := cause(err)
	if _, isNet := errors.AsType[net.Error](err); why == "connection failed" && !isNet {
		// net/smtp's own refusals ("unencrypted connection") say more.
		why = err.Error()
	}
	return fmt.Errorf("%s: %s", name, why)
}

// converse speaks SMTP with c's server: EHLO, STARTTLS unless off, AUTH
// PLAIN with a username, and one message to every To address.
func converse(ctx context.Context, c *smtpChannel, msg []byte) error {
	var dialer net.Dialer
	conn, err := dialer.DialContext(ctx, "tcp", c.addr)
	if err != nil {
		return step("dial", err)
	}
	defer conn.Close()
	// The deadline bounds every read and write; closing on ctx's end
	// stops an attempt whose caller gave up.
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.Close() })
	defer stop()
	cl, err := smtp.NewClient(conn, c.cfg.Host)
	if err != nil {
		return step("greeting", err)
	}
	defer cl.Close()
	if err := cl.Hello("localhost"); err != nil {
		return step("EHLO", err)
	}
	if c.cfg.StartTLS != "off" {
		if ok, _ := cl.Extension("STARTTLS"); !ok {
			return ErrNoStartTLS
		}
		cfg := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.cfg.TLS != nil {
			cfg = c.cfg.TLS.Clone()
		}
		if cfg.ServerName == "" {
			cfg.ServerName = c.cfg.Host
		}
		if err := cl.StartTLS(cfg); err != nil {
			return step("STARTTLS", err)
		}
	}
	if c.cfg.Username != "" {
		// PlainAuth refuses to send over a connection without TLS; New
		// refused a username without STARTTLS already.
		auth := smtp.PlainAuth("", c.cfg.Username, c.cfg.Password, c.cfg.Host)
		if err := cl.Auth(auth); err != nil {
			return step("AUTH", err)
		}
	}
	if err := cl.Mail(c.from); err != nil {
		return step("MAIL FROM", err)
	}
	for _, to := range c.to {
		if err := cl.Rcpt(to); err != nil {
			return step("RCPT TO", err)
		}
	}
	w, err := cl.Data()
	if err != nil {
		return step("DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return step("DATA", err)
	}
	if err := w.Close(); err != nil {
		return step("DATA", err)
	}
	// The message is accepted once DATA ends; a failed QUIT loses nothing.
	_ = cl.Quit()
	return nil
}
