package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"syscall"

	"github.com/pkg/sftp"

	"github.com/cloudmount/cloudmount/backends"
)

// sentinels are the backend errors an error may already carry; mapError
// leaves those alone.
var sentinels = []error{
	backends.ErrNotFound, backends.ErrExist, backends.ErrNotDir, backends.ErrIsDir,
	backends.ErrNotEmpty, backends.ErrPermission, backends.ErrAuth, backends.ErrPrecondition,
	backends.ErrNoSpace, backends.ErrReadOnly, backends.ErrUnsupported, backends.ErrUnavailable,
	backends.ErrProtocol, backends.ErrTooLarge, backends.ErrMetaNotStored,
}

// OpError is a failed SFTP request. It unwraps to the backend sentinel that
// fits (nil for a bare "failure" the server does not explain) and to the
// error pkg/sftp returned.
type OpError struct {
	Op   string // "rename"
	Path string // relative to the root
	Kind error  // the backends sentinel, nil if none fits
	Err  error  // what the server or the connection said
}

// Error reads "rename /a.txt: permission denied by the server (sftp: "Permission denied" (SSH_FX_PERMISSION_DENIED))".
func (e *OpError) Error() string {
	switch {
	case e.Kind == nil:
		return fmt.Sprintf("%s %s: %v", e.Op, display(e.Path), e.Err)
	case e.Err == nil || e.Err == e.Kind:
		return fmt.Sprintf("%s %s: %v", e.Op, display(e.Path), e.Kind)
	}
	return fmt.Sprintf("%s %s: %v (%v)", e.Op, display(e.Path), e.Kind, e.Err)
}

// Unwrap returns the sentinel and the cause.
func (e *OpError) Unwrap() []error {
	if e.Kind == nil {
		return []error{e.Err}
	}
	return []error{e.Kind, e.Err}
}

// opError builds the error of op on p from an error of pkg/sftp, the SSH
// connection or the call wrapper. It is the one table from SFTP status codes
// to backend errors.
func opError(op, p string, err error) error {
	if err == nil {
		return nil
	}
	for _, s := range sentinels {
		if errors.Is(err, s) {
			var oe *OpError
			if errors.As(err, &oe) {
				return err // already says op and path
			}
			return fmt.Errorf("%s %s: %w", op, display(p), err)
		}
	}
	return &OpError{Op: op, Path: p, Kind: classify(err), Err: err}
}

// SFTP status codes (draft-ietf-secsh-filexfer-02, version 3).
const (
	fxEOF              = 1
	fxNoSuchFile       = 2
	fxPermissionDenied = 3
	fxFailure          = 4
	fxBadMessage       = 5
	fxNoConnection     = 6
	fxConnectionLost   = 7
	fxOpUnsupported    = 8
)

// statusCode returns the SFTP status code in err's chain.
func statusCode(err error) (uint32, bool) {
	var se *sftp.StatusError
	if errors.As(err, &se) {
		return se.Code, true
	}
	for code, e := range map[uint32]error{
		fxEOF: sftp.ErrSSHFxEOF, fxNoSuchFile: sftp.ErrSSHFxNoSuchFile,
		fxPermissionDenied: sftp.ErrSSHFxPermissionDenied, fxFailure: sftp.ErrSSHFxFailure,
		fxBadMessage: sftp.ErrSSHFxBadMessage, fxNoConnection: sftp.ErrSSHFxNoConnection,
		fxConnectionLost: sftp.ErrSSHFxConnectionLost, fxOpUnsupported: sftp.ErrSSHFxOpUnsupported,
	} {
		if errors.Is(err, e) {
			return code, true
		}
	}
	return 0, false
}

// classify picks the backend sentinel for an error of pkg/sftp or of the
// connection; nil when none fits (SSH_FX_FAILURE, which OpenSSH sends for
// every errno it has no code for: the caller looks closer where it can).
func classify(err error) error {
	if code, ok := statusCode(err); ok {
		switch code {
		case fxNoSuchFile:
			return backends.ErrNotFound
		case fxPermissionDenied:
			return backends.ErrPermission
		case fxOpUnsupported:
			return backends.ErrUnsupported
		case fxNoConnection, fxConnectionLost:
			return backends.ErrUnavailable
		case fxBadMessage:
			// OpenSSH's code for EINVAL and ENAMETOOLONG: the request
			// was fine as far as the protocol goes.
			return nil
		}
		return nil
	}
	switch {
	case errors.Is(err, os.ErrNotExist):
		return backends.ErrNotFound
	case errors.Is(err, os.ErrPermission):
		return backends.ErrPermission
	case errors.Is(err, os.ErrExist):
		return backends.ErrExist
	case isConnError(err):
		return backends.ErrUnavailable
	}
	return nil
}

// isConnError reports whether err is the connection failing rather than
// the server refusing a request.
func isConnError(err error) bool {
	var netErr net.Error
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.ErrClosedPipe),
		errors.Is(err, net.ErrClosed), errors.Is(err, os.ErrClosed),
		errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE),
		errors.Is(err, syscall.ECONNREFUSED), errors.Is(err, syscall.EHOSTUNREACH),
		errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.ETIMEDOUT),
		errors.As(err, &netErr):
		return true
	}
	return false
}

// isFailure reports whether err is a bare SSH_FX_FAILURE: OpenSSH's answer
// for EEXIST, ENOTEMPTY, EISDIR, ENOSPC and the like, which callers tell
// apart by looking at the tree.
func isFailure(err error) bool {
	code, ok := statusCode(err)
	return ok && code == fxFailure
}

// timeoutError is a call the server did not answer in time, or that the
// caller gave up on. It matches backends.ErrUnavailable and the context's
// error.
type timeoutError struct {
	server string
	what   string // "did not answer within 30s"
	ctxErr error
}

func (e *timeoutError) Error() string { return fmt.Sprintf("%s %s", e.server, e.what) }

func (e *timeoutError) Unwrap() []error {
	return []error{backends.ErrUnavailable, e.ctxErr}
}

// deadlineError is the timeoutError of a call that overran its limit;
// what says how ("did not answer within 30s").
func (b *Backend) deadlineError(what string) error {
	return &timeoutError{server: b.hostPort, what: what, ctxErr: context.DeadlineExceeded}
}

// canceledError is the timeoutError of a call whose caller gave up.
func (b *Backend) canceledError(ctxErr error) error {
	if errors.Is(ctxErr, context.DeadlineExceeded) {
		return &timeoutError{server: b.hostPort, what: "did not answer before the caller's deadline", ctxErr: ctxErr}
	}
	return &timeoutError{server: b.hostPort, what: "call cancelled", ctxErr: ctxErr}
}

// display renders a relative path for messages: "/" for the root, control
// characters escaped (backends.Escape), since names come from the server.
func display(p string) string {
	return "/" + backends.Escape(p)
}
