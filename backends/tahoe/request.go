package tahoe

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/internal/httpread"
)

// request is one call to the node's web API.
type request struct {
	method string
	op     string // what the call does, for logs and messages: "list", "link", …
	// cap is the capability the URL starts from (the root, or a
	// directory's own write cap), "" for /uri itself. A secret: it is
	// put in the URL and nowhere else.
	cap   string
	sub   string     // path below cap (cleaned, relative), "" for none
	query url.Values // nil for none
	body  []byte     // nil for none
	ctype string     // Content-Type of body
	shown string     // the relative path the call is about, for messages (never a cap)
}

// cleanPath turns "", "/", "a/b/", "/a//b" into the canonical relative form
// ("" for the root, "a/b").
func cleanPath(p string) string {
	return strings.TrimPrefix(path.Clean("/"+p), "/")
}

// splitPath divides a clean relative path into its directory and last name.
func splitPath(p string) (dir, name string) {
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// display renders a relative path for messages: "/" for the root, control
// characters escaped (backends.Escape), since names come from the server.
func display(p string) string {
	return "/" + backends.Escape(p)
}

// urlOf is the URL of r. It holds a cap: it must go nowhere but the
// request (not in a log line, not in an error).
func (b *Backend) urlOf(r *request) string {
	var u strings.Builder
	u.WriteString(b.base)
	u.WriteString("uri")
	if r.cap != "" {
		u.WriteByte('/')
		u.WriteString(httpread.EscapeSegment(r.cap))
		if r.sub != "" {
			for _, seg := range strings.Split(r.sub, "/") {
				u.WriteByte('/')
				u.WriteString(httpread.EscapeSegment(seg))
			}
		}
	}
	if len(r.query) > 0 {
		u.WriteByte('?')
		u.WriteString(r.query.Encode())
	}
	return u.String()
}

// newRequest builds the HTTP request of r with body.
func (b *Backend) newRequest(ctx context.Context, r *request, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, r.method, b.urlOf(r), body)
	if err != nil {
		// The error of NewRequest quotes the URL.
		return nil, backends.Describe(backends.ErrProtocol, "%s %s: cannot build the request", r.op, display(r.shown))
	}
	// Without it, failures that Tahoe does not map come back as HTML
	// tracebacks.
	req.Header.Set("Accept", "text/plain")
	req.Header.Set("User-Agent", "cloudmount")
	if r.ctype != "" {
		req.Header.Set("Content-Type", r.ctype)
	}
	return req, nil
}

// do sends a request with a small body (or none). The caller closes the
// reply's body.
func (b *Backend) do(ctx context.Context, r *request) (*http.Response, error) {
	var body io.Reader
	if r.body != nil {
		body = bytes.NewReader(r.body)
	}
	req, err := b.newRequest(ctx, r, body)
	if err != nil {
		return nil, err
	}
	return b.send(req, r)
}

// send runs req and turns transport failures into backend errors.
func (b *Backend) send(req *http.Request, r *request) (*http.Response, error) {
	start := time.Now()
	resp, err := b.client.Do(req)
	if err != nil {
		nerr := b.netError(r, err)
		b.log.Debug("tahoe request failed", "method", req.Method, "op", r.op,
			slog.String("path", display(r.shown)), "err", nerr)
		return nil, nerr
	}
	b.log.Debug("tahoe request", "method", req.Method, "op", r.op,
		slog.String("path", display(r.shown)), "status", resp.StatusCode, "elapsed", time.Since(start))
	return resp, nil
}

// maxSmallReply bounds the replies read whole: a cap, a short message, a
// traceback.
const maxSmallReply = 256 << 10

// readSmall reads a small reply whole (at most maxSmallReply bytes, the
// rest is dropped) and closes it.
func readSmall(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxSmallReply))
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10) // so the connection can be reused
	return data, err
}

// drain reads what is left of a small reply and closes it.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	_ = resp.Body.Close()
}
