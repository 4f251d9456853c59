package webhook

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

	"github.com/hardcap/hardcap/alert"
)

// Limits of a webhook request.
const (
	// clientTimeout bounds one attempt of the default client.
	clientTimeout = 10 * time.Second
	// responseMax is how much of a receiver's answer is read (and
	// dropped) so that the connection can be reused.
	responseMax = 4 << 10
)

// defaultClient is a client that gives up after clientTimeout and follows
// no redirect: a redirect would send the alert, and for a signed webhook
// its headers, somewhere the operator never configured.
func defaultClient() *http.Client {
	return &http.Client{
		Timeout: clientTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// post sends a to the webhook of c at time at and returns the receiver's
// status. Its error never holds the URL.
func (d *Deliverer) post(ctx context.Context, c *webhookChannel, a alert.Alert, at time.Time) (int, error) {
	b, err := body(c.format, a)
	if err != nil {
		return 0, fmt.Errorf("%w: encoding the body: %w", ErrRequest, err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(b))
	if err != nil {
		// Not wrapped: the error of a URL that does not parse quotes it.
		return 0, fmt.Errorf("%w: the URL does not make a request", ErrRequest)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "hardcap")
	if c.format == FormatJSON {
		setStandardHeaders(req.Header, c.key, a.ID, at, b)
	}
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, requestError(err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, responseMax))
	_ = resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("%w %d", ErrStatus, resp.StatusCode)
	}
	return resp.StatusCode, nil
}

// requestError says why a request got no answer with the operation and
// the cause only: net/http's *url.Error quotes the URL, and the errors
// under it can name the host.
func requestError(err error) error {
	op := "request"
	if ue, ok := errors.AsType[*url.Error](err); ok {
		op = ue.Op
	}
	return fmt.Errorf("%w: %s: %s", ErrRequest, op, cause(err))
}

// cause names the network failure under err in a few words.
func cause(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, context.Canceled):
		return "canceled"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE):
		return "connection reset"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH):
		return "host unreachable"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "connection closed before an answer"
	}
	if de, ok := errors.AsType[*net.DNSError](err); ok {
		if de.IsNotFound {
			return "host not found"
		}
		return "name lookup failed"
	}
	if _, ok := errors.AsType[*tls.CertificateVerificationError](err); ok {
		return "TLS certificate not valid"
	}
	if _, ok := errors.AsType[x509.HostnameError](err); ok {
		return "TLS certificate not valid"
	}
	if _, ok := errors.AsType[x509.UnknownAuthorityError](err); ok {
		return "TLS certificate not valid"
	}
	if _, ok := errors.AsType[tls.RecordHeaderError](err); ok {
		return "TLS handshake failed"
	}
	if _, ok := errors.AsType[tls.AlertError](err); ok {
		return "TLS handshake failed"
	}
	return "connection failed"
}
