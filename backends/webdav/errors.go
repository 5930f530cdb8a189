package webdav

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"syscall"
	"time"

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
	http.StatusLocked:                backends.ErrLocked,
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

// statusError builds the error for an unexpected reply: a RedirectError
// for a redirect, else an HTTPError.
func statusError(method, p string, resp *http.Response) error {
	if isRedirect(resp.StatusCode) || resp.StatusCode == http.StatusSeeOther {
		return redirectError(method, p, resp)
	}
	return statusErrorAs(method, p, resp, statusErrors[resp.StatusCode])
}

// RedirectError is a redirect reply. cloudmount never follows one: the
// request carries the user's credentials, which must not go to an address
// the user did not give. It matches backends.ErrProtocol: neither "offline"
// (nothing is wrong with the network) nor a reason to give up an upload.
type RedirectError struct {
	Method   string // "PUT"
	Path     string // relative to the root
	Server   string // host:port that answered
	Status   string // "307 Temporary Redirect"
	Location string // the target, "" if the reply names none
}

// Error names the target and says what to do.
func (e *RedirectError) Error() string {
	target := e.Location
	if target == "" {
		target = "an address it does not name"
	}
	return fmt.Sprintf("%s %s: %s redirects to %s (HTTP %s); cloudmount does not follow redirects, "+
		"since that would send your credentials to another address: mount the final URL instead",
		e.Method, display(e.Path), e.Server, backends.Escape(target), e.Status)
}

// Unwrap makes a RedirectError match backends.ErrProtocol.
func (e *RedirectError) Unwrap() error { return backends.ErrProtocol }

// redirectError builds the RedirectError of resp.
func redirectError(method, p string, resp *http.Response) error {
	e := &RedirectError{Method: method, Path: p, Status: resp.Status, Location: resp.Header.Get("Location")}
	if e.Status == "" {
		e.Status = fmt.Sprintf("%d %s", resp.StatusCode, http.StatusText(resp.StatusCode))
	}
	if resp.Request != nil && resp.Request.URL != nil {
		e.Server = resp.Request.URL.Host
		if loc, err := resp.Location(); err == nil {
			e.Location = loc.Redacted()
		}
	}
	return e
}

// redirectError is redirectError for calls that know the server.
func (b *Backend) redirectError(method, p string, resp *http.Response) error {
	err := redirectError(method, p, resp)
	if re, ok := err.(*RedirectError); ok && re.Server == "" {
		re.Server = b.hostPort
	}
	return err
}

// refuseRedirects is the transport of uploads: it turns a redirect reply
// into a RedirectError before net/http's client sees it. The client would
// otherwise ask for the body again to resend it (before consulting
// CheckRedirect), and an upload body that was sent cannot be had again.
type refuseRedirects struct {
	rt http.RoundTripper
}

// RoundTrip implements http.RoundTripper.
func (r refuseRedirects) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.rt.RoundTrip(req)
	if err != nil || (!isRedirect(resp.StatusCode) && resp.StatusCode != http.StatusSeeOther) {
		return resp, err
	}
	resp.Request = req
	rerr := redirectError(req.Method, "", resp)
	drain(resp)
	return nil, rerr
}

// timeoutError is a call the server did not answer within the timeout. It
// matches backends.ErrUnavailable and context.DeadlineExceeded.
type timeoutError struct {
	server  string
	timeout time.Duration
}

func (e *timeoutError) Error() string {
	return fmt.Sprintf("the server %s did not answer within %s", e.server, e.timeout)
}

func (e *timeoutError) Unwrap() []error {
	return []error{backends.ErrUnavailable, context.DeadlineExceeded}
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
		recHdr tls.RecordHeaderError
		dnsErr *net.DNSError
		netErr net.Error
	)
	// Which check of the handshake failed, and what fixes it.
	if tlsErr := b.tls.Explain(err, hp); tlsErr != nil {
		return tlsErr
	}
	switch {
	case errors.Is(err, errStalled):
		return backends.Describe(backends.ErrUnavailable, "%s stopped sending or receiving data for %s", hp, b.timeout)
	case errors.Is(err, context.Canceled):
		return err
	case errors.Is(err, context.DeadlineExceeded):
		return &timeoutError{server: hp, timeout: b.timeout}
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
