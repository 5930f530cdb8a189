package webdav

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/internal/httpread"
)

// request describes one WebDAV call with a small (or no) body.
type request struct {
	method    string
	path      string // cleaned, relative to the root
	dir       bool   // address the collection URL (trailing slash)
	depth     string // Depth header, "" for none
	body      string
	dest      *string // MOVE destination (relative path), nil for none
	overwrite bool
	header    http.Header
}

// cleanPath turns "", "/", "a/b/", "/a//b" into the canonical relative form
// ("" for the root, "a/b").
func cleanPath(p string) string {
	p = path.Clean("/" + p)
	return strings.TrimPrefix(p, "/")
}

// display renders a relative path for messages: "/" for the root, control
// characters escaped (backends.Escape), since names come from the server.
func display(p string) string {
	return "/" + backends.Escape(p)
}

// escapePath percent-encodes each segment of a relative path.
func escapePath(p string) string {
	if p == "" {
		return ""
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		segs[i] = httpread.EscapeSegment(s)
	}
	return strings.Join(segs, "/")
}

// urlFor is the absolute URL of p, with a trailing slash when dir is set.
func (b *Backend) urlFor(p string, dir bool) string {
	u := b.origin + b.rootEscaped + escapePath(p)
	if dir && p != "" {
		u += "/"
	}
	return u
}

// urlPath is the decoded URL path of p as a server would report it in an
// href, without trailing slash (except for "/").
func (b *Backend) urlPath(p string) string {
	s := strings.TrimSuffix(b.rootPath+p, "/")
	if s == "" {
		return "/"
	}
	return s
}

// callContext bounds a short call by the configured timeout.
func (b *Backend) callContext(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, b.timeout)
}

// newRequest builds an authenticated request for url.
func (b *Backend) newRequest(ctx context.Context, method, u string, body io.Reader) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, method, u, body)
	if err != nil {
		return nil, err
	}
	if b.user != "" {
		req.SetBasicAuth(b.user, b.password)
	}
	req.Header.Set("User-Agent", userAgent)
	return req, nil
}

// call performs r. When a server redirects a collection addressed without
// its trailing slash to the same URL with one (Apache does), the call is
// repeated once with the slash. The caller closes the response body.
func (b *Backend) call(ctx context.Context, r *request) (*http.Response, error) {
	resp, err := b.callOnce(ctx, r)
	if err != nil || r.dir {
		return resp, err
	}
	if isRedirect(resp.StatusCode) && b.isSlashRedirect(resp, r.path) {
		drain(resp)
		r2 := *r
		r2.dir = true
		return b.callOnce(ctx, &r2)
	}
	return resp, nil
}

func (b *Backend) callOnce(ctx context.Context, r *request) (*http.Response, error) {
	var body io.Reader
	if r.body != "" {
		body = strings.NewReader(r.body)
	}
	req, err := b.newRequest(ctx, r.method, b.urlFor(r.path, r.dir), body)
	if err != nil {
		return nil, err
	}
	if r.body != "" && (r.method == "PROPFIND" || r.method == "PROPPATCH") {
		req.Header.Set("Content-Type", `application/xml; charset="utf-8"`)
	}
	if r.depth != "" {
		req.Header.Set("Depth", r.depth)
	}
	if r.dest != nil {
		req.Header.Set("Destination", b.urlFor(*r.dest, r.dir))
		if r.overwrite {
			req.Header.Set("Overwrite", "T")
		} else {
			req.Header.Set("Overwrite", "F")
		}
	}
	for k, v := range r.header {
		req.Header[k] = v
	}
	return b.send(req, r.path)
}

// send runs req and turns transport failures into backend errors.
func (b *Backend) send(req *http.Request, p string) (*http.Response, error) {
	start := time.Now()
	resp, err := b.client.Do(req)
	if err != nil {
		b.log.Debug("webdav request failed", "method", req.Method, "path", display(p), "err", err)
		return nil, b.netError(req.Method, p, err)
	}
	b.log.Debug("webdav request", "method", req.Method, "path", display(p),
		"status", resp.StatusCode, "elapsed", time.Since(start))
	return resp, nil
}

func isRedirect(code int) bool {
	return code == 301 || code == 302 || code == 307 || code == 308
}

// isSlashRedirect reports whether resp redirects p to p + "/".
func (b *Backend) isSlashRedirect(resp *http.Response, p string) bool {
	loc, err := resp.Location()
	if err != nil {
		return false
	}
	return b.isSlashTarget(loc, p)
}

// isSlashTarget reports whether loc is the URL of p as a collection.
func (b *Backend) isSlashTarget(loc *url.URL, p string) bool {
	want, err := url.Parse(b.urlFor(p, true))
	if err != nil {
		return false
	}
	return loc.Host == want.Host && loc.Path == want.Path
}

// drain reads what is left of a small reply and closes it, so that the
// connection can be reused.
func drain(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	_ = resp.Body.Close()
}
