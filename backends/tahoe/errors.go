package tahoe

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/cloudmount/cloudmount/backends"
)

// NodeError is a reply of the node with a status the call did not expect.
// It unwraps to the backends sentinel that fits (nil for an unknown
// failure, such as most tracebacks).
type NodeError struct {
	Op      string // what the call did: "list", "upload", "link", …
	Path    string // relative to the root
	Code    int    // HTTP status
	Message string // the node's words: one line, caps redacted, escaped
	Err     error  // the backends sentinel, nil if none fits

	grid          bool // the grid failed: too few servers or shares
	uncoordinated bool // UncoordinatedWriteError: another writer collided
}

// Error reads "link /a b.txt: file exists (HTTP 409: There was already a
// child by that name, …)".
func (e *NodeError) Error() string {
	words := fmt.Sprintf("HTTP %d", e.Code)
	if e.Message != "" {
		words += ": " + e.Message
	}
	switch {
	case e.grid:
		return fmt.Sprintf("%s %s: not enough storage servers: the Tahoe grid could not store or retrieve the data (%s)",
			e.Op, display(e.Path), words)
	case e.uncoordinated:
		return fmt.Sprintf("%s %s: another client changed the directory at the same time (%s)", e.Op, display(e.Path), words)
	case e.Err == nil:
		return fmt.Sprintf("%s %s: the Tahoe node failed (%s)", e.Op, display(e.Path), words)
	}
	return fmt.Sprintf("%s %s: %v (%s)", e.Op, display(e.Path), e.Err, words)
}

// Unwrap returns the backends sentinel.
func (e *NodeError) Unwrap() error { return e.Err }

// gridMarkers name the exceptions of a grid that cannot store or retrieve
// enough shares (too few servers connected, shares lost).
var gridMarkers = []string{
	"NotEnoughSharesError", "NoSharesError", "UploadUnhappinessError", "NoServersError",
	"UnrecoverableFileError", "NotEnoughServersError",
}

// replyError reads the body of a failed reply (bounded) and maps it.
func replyError(r *request, resp *http.Response) error {
	body, _ := readSmall(resp)
	return classify(r.op, r.shown, resp.StatusCode, string(body))
}

// classify maps a failed reply: the exception named in the body where
// there is one (Tahoe answers 500 with a traceback for those it does not
// map), else the status.
func classify(op, p string, code int, body string) *NodeError {
	e := &NodeError{Op: op, Path: p, Code: code, Message: nodeMessage(body)}
	has := func(words ...string) bool {
		for _, w := range words {
			if strings.Contains(body, w) {
				return true
			}
		}
		return false
	}
	switch {
	case has("UncoordinatedWriteError"):
		e.Err, e.uncoordinated = backends.ErrPrecondition, true
	case has(gridMarkers...) || code == http.StatusGone:
		e.Err, e.grid = backends.ErrUnavailable, true
	case has("NotWriteableError"):
		e.Err = backends.ErrPermission
	case has("FileTooLargeError") || code == http.StatusRequestEntityTooLarge:
		e.Err = backends.ErrTooLarge
	case code == http.StatusNotFound || has("NoSuchChildError"):
		e.Err = backends.ErrNotFound
	case has("Files have no children", "a file was in the way", "its parent is a file"):
		e.Err = backends.ErrNotDir
	case code == http.StatusConflict || has("ExistingChildError"):
		e.Err = backends.ErrExist
	case has("PUT to a directory"):
		e.Err = backends.ErrIsDir
	case has("read-only cap"):
		e.Err = backends.ErrPermission
	case code == http.StatusForbidden:
		e.Err = backends.ErrPermission
	case code == http.StatusBadRequest:
		e.Err = backends.ErrProtocol // a request the node did not take
	case code == http.StatusNotImplemented:
		e.Err = backends.ErrUnsupported
	case code == http.StatusBadGateway, code == http.StatusServiceUnavailable, code == http.StatusGatewayTimeout:
		e.Err = backends.ErrUnavailable
	}
	return e
}

// maxMessage bounds the node's words quoted in an error.
const maxMessage = 300

// nodeMessage is the gist of a failed reply's body, fit for an error
// message: the "error" of a JSON reply, the text of an HTML error page,
// the last line of a traceback, else the text; on one line, caps
// redacted, control characters escaped, at most maxMessage bytes.
func nodeMessage(body string) string {
	s := strings.TrimSpace(body)
	switch {
	case strings.HasPrefix(s, "{"):
		var j struct {
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(s), &j) == nil && j.Error != "" {
			s = j.Error
		}
	case strings.Contains(s, "Traceback (most recent call last)"):
		lines := strings.Split(s, "\n")
		for i := len(lines) - 1; i >= 0; i-- {
			if l := strings.TrimSpace(lines[i]); l != "" {
				s = l
				break
			}
		}
	case strings.HasPrefix(s, "<"):
		if i := strings.Index(s, "<p>"); i >= 0 {
			s = s[i+3:]
			if j := strings.Index(s, "</p>"); j >= 0 {
				s = s[:j]
			}
		}
		s = html.UnescapeString(tagRE.ReplaceAllString(s, " "))
	}
	s = strings.Join(strings.Fields(scrubCaps(s)), " ")
	s = backends.Escape(s)
	if len(s) > maxMessage {
		cut := maxMessage
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return s
}

var tagRE = regexp.MustCompile(`<[^>]*>`)

// capRE finds capabilities in text, also percent-encoded (a URL quoted in
// a traceback) and with the ro./imm. marks of unknown kinds.
var capRE = regexp.MustCompile(`(?i)(?:ro\.|imm\.)?URI(?::|%3A)[A-Za-z0-9_\-:%]*`)

// scrubCaps replaces every capability in s by its Redact form. Text from
// the node (a message, a traceback) may quote the caps of a request.
func scrubCaps(s string) string {
	return capRE.ReplaceAllStringFunc(s, func(c string) string {
		if u, err := url.PathUnescape(c); err == nil {
			c = u
		}
		return Redact(c)
	})
}

// httpCode is the status of a NodeError in err's chain, or 0.
func httpCode(err error) int {
	var ne *NodeError
	if errors.As(err, &ne) {
		return ne.Code
	}
	return 0
}

// isGridError reports whether err is the grid failing (too few servers).
func isGridError(err error) bool {
	var ne *NodeError
	return errors.As(err, &ne) && ne.grid
}

// isUncoordinated reports whether err is an UncoordinatedWriteError.
func isUncoordinated(err error) bool {
	var ne *NodeError
	return errors.As(err, &ne) && ne.uncoordinated
}

// timeoutError is a call the node did not answer in time. It matches
// backends.ErrUnavailable and context.DeadlineExceeded.
type timeoutError struct {
	what string // "the Tahoe node at 127.0.0.1:3456 did not answer within 30s"
}

func (e *timeoutError) Error() string { return e.what }

func (e *timeoutError) Unwrap() []error {
	return []error{backends.ErrUnavailable, context.DeadlineExceeded}
}

// errStalled marks a transfer cancelled because no data moved for the
// timeout, errReplyWait one whose reply did not come in the time allowed.
var (
	errStalled   = errors.New("transfer stalled")
	errReplyWait = errors.New("no reply in the time allowed")
)

// netError turns a transport failure of r into a backend error a user can
// act on. net/http's *url.Error quotes the request URL, which holds a cap:
// it is dropped, and what is left is scrubbed all the same.
func (b *Backend) netError(r *request, err error) error {
	return fmt.Errorf("%s %s: %w", r.op, display(r.shown), b.describeNetError(err))
}

func (b *Backend) describeNetError(err error) error {
	hp := b.hostPort
	var (
		dnsErr *net.DNSError
		netErr net.Error
	)
	switch {
	case errors.Is(err, errStalled):
		return &timeoutError{what: fmt.Sprintf("the Tahoe node at %s stopped sending or receiving data for %s", hp, b.timeout)}
	case errors.Is(err, errReplyWait):
		return &timeoutError{what: fmt.Sprintf("the Tahoe node at %s took the upload but did not answer in the time allowed", hp)}
	case errors.Is(err, context.Canceled):
		return context.Canceled
	case errors.Is(err, context.DeadlineExceeded):
		return &timeoutError{what: fmt.Sprintf("the Tahoe node at %s did not answer within %s", hp, b.timeout)}
	case errors.Is(err, syscall.ECONNREFUSED):
		return backends.Describe(backends.ErrUnavailable, "the Tahoe node at %s is not answering (connection refused): "+
			"is the Tahoe node running? (tahoe run NODEDIR)", hp)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return backends.Describe(backends.ErrUnavailable, "the Tahoe node at %s is not answering: no route to host", hp)
	case errors.As(err, &dnsErr):
		return backends.Describe(backends.ErrUnavailable, "cannot resolve the host of the Tahoe node %s: %s",
			backends.Escape(dnsErr.Name), backends.Escape(dnsErr.Err))
	case errors.As(err, &netErr) && netErr.Timeout():
		return &timeoutError{what: fmt.Sprintf("the Tahoe node at %s did not answer within %s", hp, b.timeout)}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE), errors.Is(err, net.ErrClosed):
		return backends.Describe(backends.ErrUnavailable, "the connection to the Tahoe node at %s broke: %s",
			hp, scrubCaps(unwrapURL(err).Error()))
	}
	return backends.Describe(backends.ErrUnavailable, "the Tahoe node at %s: %s", hp, scrubCaps(unwrapURL(err).Error()))
}

// unwrapURL drops the *url.Error wrapper, whose text quotes method and URL.
func unwrapURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

// opError wraps a sentinel with the operation and path.
func opError(op, p string, kind error, format string, args ...any) error {
	msg := fmt.Sprintf("%s %s: ", op, display(p))
	if format != "" {
		msg += fmt.Sprintf(format, args...)
	} else {
		msg += kind.Error()
	}
	return backends.Describe(kind, "%s", msg)
}

// replyWait is how long an upload may wait for its reply once its body is
// sent: the node stores the whole body first, then encodes it and sends
// the shares to the grid before it answers. The timeout, plus the time of
// a slow grid (minGridRate) for the size.
func (b *Backend) replyWait(size int64) time.Duration {
	return b.timeout + time.Duration(size/minGridRate)*time.Second
}

// minGridRate is the slowest upload to the grid waited for, in bytes per
// second (encoding and pushing N shares of a file).
const minGridRate = 256 << 10

// kindsError is an error whose text is a message and which matches
// several sentinels (a create over a file: ErrExist and ErrPrecondition).
type kindsError struct {
	msg   string
	kinds []error
}

func (e *kindsError) Error() string   { return e.msg }
func (e *kindsError) Unwrap() []error { return e.kinds }

// opErrorAll is opError matching every one of kinds.
func opErrorAll(op, p string, kinds []error, format string, args ...any) error {
	return &kindsError{msg: fmt.Sprintf("%s %s: ", op, display(p)) + fmt.Sprintf(format, args...), kinds: kinds}
}
