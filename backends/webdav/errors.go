package webdav

import (
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

	"github.com/cloudmount/cloudmount/backends"
)

// statusErrors is the one table from HTTP status to backend error. Calls with
// a status that means something else for them (405 on MKCOL, 412 on MOVE)
// decide before consulting it.
var statusErrors = map[int]error{
	http.StatusUnauthorized:          backends.ErrAuth,
	http.StatusForbidden:             backends.ErrPermission,
	http.StatusNotFound:              backends.ErrNotFound,
	http.StatusMethodNotAllowed:      backends.ErrUnsupported,
	http.StatusRequestTimeout:        backends.ErrUnavailable,
	http.StatusConflict:              backends.ErrNotFound, // missing parent collection
	http.StatusPreconditionFailed:    backends.ErrPrecondition,
	http.StatusRequestEntityTooLarge: backends.ErrTooLarge,
	http.StatusLocked:                backends.ErrPermission,
	http.StatusTooManyRequests:       backends.ErrUnavailable,
	http.StatusNotImplemented:        backends.ErrUnsupported,
	http.StatusBadGateway:            backends.ErrUnavailable,
	http.StatusServiceUnavailable:    backends.ErrUnavailable,
	http.StatusGatewayTimeout:        backends.ErrUnavailable,
	http.StatusInsufficientStorage:   backends.ErrNoSpace,
}

// HTTPError is a reply with an unexpected status. It unwraps to the backend
// sentinel of statusErrors (nil for statuses not in it, such as 500).
type HTTPError struct {
	Method string // "PUT"
	Path   string // relative to the root
	Code   int    // 404
	Status string // "404 Not Found"
	Err    error  // the backends sentinel, nil if none fits
}

// Error reads "PUT /a b.txt: no such file or directory (HTTP 404 Not Found)".
func (e *HTTPError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("%s %s: the server answered HTTP %s", e.Method, display(e.Path), e.Status)
	}
	return fmt.Sprintf("%s %s: %v (HTTP %s)", e.Method, display(e.Path), e.Err, e.Status)
}

// Unwrap returns the backend sentinel.
func (e *HTTPError) Unwrap() error { return e.Err }

// statusError builds the error for an unexpected reply.
func statusError(method, p string, resp *http.Response) error {
	return statusErrorAs(method, p, resp, statusErrors[resp.StatusCode])
}

// statusErrorAs is statusError with the sentinel chosen by the caller.
func statusErrorAs(method, p string, resp *http.Response, sentinel error) error {
	status := resp.Status
	if status == "" {
		status = fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	return &HTTPError{Method: method, Path: p, Code: resp.StatusCode, Status: status, Err: sentinel}
}

// httpCode is the status of an HTTPError in err's chain, or 0.
func httpCode(err error) int {
	var he *HTTPError
	if errors.As(err, &he) {
		return he.Code
	}
	return 0
}

// netError turns a transport failure into a backend error with a message a
// user can act on. The request URL (which never holds credentials) is left
// out: the host and port say enough.
func (b *Backend) netError(method, p string, err error) error {
	return fmt.Errorf("%s %s: %w", method, display(p), b.describeNetError(err))
}

func (b *Backend) describeNetError(err error) error {
	hp := b.hostPort
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		recHdr    tls.RecordHeaderError
		dnsErr    *net.DNSError
		netErr    net.Error
	)
	switch {
	case errors.Is(err, errStalled):
		return backends.Describe(backends.ErrUnavailable, "%s stopped sending or receiving data for %s", hp, b.timeout)
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: %s did not answer in time: %w", backends.ErrUnavailable, hp, context.DeadlineExceeded)
	case errors.As(err, &unknownCA):
		issuer := "an unknown authority"
		if unknownCA.Cert != nil {
			issuer = fmt.Sprintf("%q, an unknown authority", unknownCA.Cert.Issuer.String())
		}
		return backends.Describe(backends.ErrAuth, "the TLS certificate of %s is not trusted (signed by %s); "+
			"pass --ca-file with the server's CA certificate, or install it in the system store", hp, issuer)
	case errors.As(err, &hostname):
		return backends.Describe(backends.ErrAuth, "the TLS certificate of %s does not name that host (%v)", hp, hostname)
	case errors.As(err, &invalid):
		return backends.Describe(backends.ErrAuth, "the TLS certificate of %s is not valid (%v)", hp, invalid)
	case errors.As(err, &recHdr):
		return backends.Describe(backends.ErrProtocol, "%s does not speak TLS (try http:// instead of https://)", hp)
	case errors.Is(err, syscall.ECONNREFUSED):
		return backends.Describe(backends.ErrUnavailable, "cannot reach %s: connection refused", hp)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return backends.Describe(backends.ErrUnavailable, "cannot reach %s: no route to host", hp)
	case errors.As(err, &dnsErr):
		return backends.Describe(backends.ErrUnavailable, "cannot resolve host %s: %s", dnsErr.Name, dnsErr.Err)
	case errors.As(err, &netErr) && netErr.Timeout():
		return backends.Describe(backends.ErrUnavailable, "%s did not answer within %s", hp, b.timeout)
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE):
		return backends.Describe(backends.ErrUnavailable, "connection to %s broke: %v", hp, unwrapURL(err))
	}
	return backends.Describe(backends.ErrUnavailable, "%s: %v", hp, unwrapURL(err))
}

// unwrapURL drops the *url.Error wrapper, whose text repeats method and URL.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// errStalled marks a transfer cancelled because no data moved for the
// configured timeout.
var errStalled = errors.New("transfer stalled")
