package webdav

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/internal/httpread"
)

var _ backends.SizedReader = (*Backend)(nil)

// Read streams length bytes of the file at p from off (GET with Range);
// length < 0 reads to the end. Reading past the end yields an empty stream.
// The stream ends with ctx, and fails when no data arrives for the timeout.
// A reply that contradicts itself or the range asked (a Content-Range that
// starts or ends elsewhere, a body longer or shorter than its headers say)
// fails with ErrProtocol.
func (b *Backend) Read(ctx context.Context, p string, off, length int64) (io.ReadCloser, error) {
	return b.read(ctx, p, off, length, -1)
}

// ReadSized is Read of a file the caller knows to have size bytes (from a
// listing): a reply that speaks of another size (the total of a
// Content-Range, the length of a whole-file reply) or whose body ends
// before or runs past it fails with ErrProtocol, so that data of another
// version is never taken for this one.
func (b *Backend) ReadSized(ctx context.Context, p string, off, length, size int64) (io.ReadCloser, error) {
	return b.read(ctx, p, off, length, size)
}

func (b *Backend) read(ctx context.Context, p string, off, length, size int64) (io.ReadCloser, error) {
	p = cleanPath(p)
	if off < 0 {
		return nil, fmt.Errorf("GET %s: negative offset %d", display(p), off)
	}
	if p == "" {
		return nil, fmt.Errorf("GET /: %w", backends.ErrIsDir)
	}
	if length == 0 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	rctx, cancel := context.WithCancel(ctx)
	guard := newStallGuard(b.timeout, cancel)
	req, err := b.newRequest(rctx, http.MethodGet, b.urlFor(p, false), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	asked := ""
	if off > 0 || length > 0 {
		asked = "bytes=" + strconv.FormatInt(off, 10) + "-"
		if length > 0 {
			asked += strconv.FormatInt(off+length-1, 10)
		}
		req.Header.Set("Range", asked)
	}
	resp, err := b.send(req, p)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &readStream{b: b, path: p, body: resp.Body, ctx: rctx, guard: guard, cancel: cancel}
	fail := func(err error) (io.ReadCloser, error) {
		_ = s.Close()
		return nil, err
	}
	bad := func(format string, args ...any) (io.ReadCloser, error) {
		return fail(b.badReply(p, asked, size, fmt.Sprintf(format, args...)))
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		first, last, total, ok := httpread.ParseContentRange(cr, true)
		if !ok {
			return bad("Content-Range %q does not read", cr)
		}
		if total < 0 {
			total = size
		}
		if size >= 0 && total != size {
			return bad("Content-Range %q gives the file %d bytes", cr, total)
		}
		wantLast := int64(-1) // unknown
		if length > 0 {
			wantLast = off + length - 1
		}
		if total >= 0 && (wantLast < 0 || wantLast > total-1) {
			wantLast = total - 1
		}
		if first != off || last < first || (wantLast >= 0 && last != wantLast) {
			return bad("Content-Range %q is not the range asked", cr)
		}
		n := last - first + 1
		if resp.ContentLength >= 0 && resp.ContentLength != n {
			return bad("Content-Length %d, but Content-Range %q", resp.ContentLength, cr)
		}
		s.r = httpread.NewExactReader(resp.Body, n, s.describe(asked, size))
	case http.StatusOK:
		// The server ignored Range (or none was sent): the body is the whole
		// file, of which the part asked is cut out here.
		total := resp.ContentLength
		if size >= 0 && total >= 0 && total != size {
			return bad("a whole-file reply of %d bytes", total)
		}
		if total < 0 {
			total = size
		}
		s.r = httpread.NewExactReader(resp.Body, total, s.describe(asked, size))
		if off > 0 {
			n, err := io.CopyN(io.Discard, s, off)
			if err != nil && err != io.EOF {
				return fail(err)
			}
			if n < off {
				_ = s.Close()
				return io.NopCloser(strings.NewReader("")), nil
			}
		}
		if length > 0 {
			s.r = io.LimitReader(s.r, length)
		}
	case http.StatusRequestedRangeNotSatisfiable:
		if size >= 0 && off < size {
			return bad("HTTP %s, %q", resp.Status, resp.Header.Get("Content-Range"))
		}
		drain(resp)
		cancel()
		return io.NopCloser(strings.NewReader("")), nil
	case http.StatusMovedPermanently, http.StatusPermanentRedirect:
		if b.isSlashRedirect(resp, p) {
			drain(resp)
			cancel()
			return nil, statusErrorAs("GET", p, resp, backends.ErrIsDir)
		}
		drain(resp)
		cancel()
		return nil, b.redirectError("GET", p, resp)
	default:
		drain(resp)
		cancel()
		if isRedirect(resp.StatusCode) {
			return nil, b.redirectError("GET", p, resp)
		}
		return nil, b.readRefused(ctx, p, statusError("GET", p, resp))
	}
	return s, nil
}

// badReply is the error of a GET reply that does not fit what was asked or
// the size the file is known to have.
func (b *Backend) badReply(p, asked string, size int64, words string) error {
	return backends.Describe(backends.ErrProtocol, "GET %s: the reply of %s does not fit %s: %s",
		display(p), b.hostPort, describeAsk(asked, size), words)
}

// describe is what a stream was asked for, for messages.
func (s *readStream) describe(asked string, size int64) string {
	return fmt.Sprintf("GET %s: the reply of %s does not fit %s", display(s.path), s.b.hostPort, describeAsk(asked, size))
}

func describeAsk(asked string, size int64) string {
	what := "the whole file"
	if asked != "" {
		what = "Range " + asked
	}
	if size >= 0 {
		what += fmt.Sprintf(" of a file of %d bytes", size)
	}
	return what
}
