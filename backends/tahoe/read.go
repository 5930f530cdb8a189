package tahoe

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/internal/httpread"
)

// rangeEnd is the last byte asked for by a read to the end of a file. The
// Range always names a last byte: Tahoe ignores "bytes=N-" when N is at or
// past the end (and answers with the whole file), but answers a range
// whose first byte is past the end with 416.
const rangeEnd = 1 << 62

// Read streams length bytes of the file at p from off; length < 0 reads to
// the end, and at or past the end the stream is empty. See ReadSized.
func (b *Backend) Read(ctx context.Context, p string, off, length int64) (io.ReadCloser, error) {
	p = cleanPath(p)
	return b.read(ctx, p, "", off, length, -1)
}

// ReadSized is Read of a file the caller knows to have size bytes: a reply
// that speaks of another size (the total of the Content-Range) or a body
// that ends before or runs past what it announced fails with ErrProtocol,
// so that data of another version is never taken for this one.
//
// It is one GET of the path with a single Range (Tahoe walks the path
// itself and fetches only the segments that hold the range); a file
// answers 206 with a Content-Range, or 416 when the range starts past its
// end. A 200 is not a file's answer to a Range: it is a directory's HTML
// page (ErrIsDir), or a node that ignored the Range (ErrProtocol).
func (b *Backend) ReadSized(ctx context.Context, p string, off, length, size int64) (io.ReadCloser, error) {
	p = cleanPath(p)
	return b.read(ctx, p, "", off, length, size)
}

// ReadVersion is ReadSized of the version of the file at p that
// Entry.Version named: a file's Version is the hash of its cap, and the
// read goes to that cap (GET /uri/$FILECAP), not through the path, so that
// a relink at p meanwhile (a rename, another upload) can never serve
// another file's bytes. The cap comes from the listings the backend made
// lately (capMemo), else from a listing of the parent made now, which must
// show that version at p; if it does not, the read fails with
// ErrPrecondition. A mutable file keeps its cap when rewritten: its
// content is checked against the size only, as ReadSized does.
func (b *Backend) ReadVersion(ctx context.Context, p, version string, off, length, size int64) (io.ReadCloser, error) {
	p = cleanPath(p)
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", display(p), err)
	}
	if p == "" {
		return nil, opError("read", p, backends.ErrIsDir, "")
	}
	mc, ok := b.caps.lookup(version)
	if !ok {
		lk, err := b.lookup(ctx, "read", p)
		if err != nil {
			return nil, err
		}
		c := lk.child
		switch {
		case c == nil:
			return nil, opError("read", p, backends.ErrPrecondition, "version %s is gone: nothing is at that name now", version)
		case c.kind == "dirnode":
			return nil, opError("read", p, backends.ErrIsDir, "")
		case c.kind != "filenode":
			return nil, opError("read", p, backends.ErrUnsupported, "%v is at that name", errUnknownNode)
		}
		if err := b.fillSize(ctx, "read", p, &c.node); err != nil {
			return nil, err
		}
		b.caps.remember(&c.node)
		if v := fileVersion(&c.node); v != version {
			return nil, opError("read", p, backends.ErrPrecondition, "version %s is now %s", version, v)
		}
		if mc, ok = b.caps.lookup(version); !ok {
			return nil, opError("read", p, backends.ErrProtocol, "the node lists the file without a capability")
		}
	}
	return b.read(ctx, p, mc.cap, off, length, size)
}

// read reads the file at p: through the root's path, or by its own cap
// when fileCap is not "".
func (b *Backend) read(ctx context.Context, p, fileCap string, off, length, size int64) (io.ReadCloser, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("read %s: %w", display(p), err)
	}
	switch {
	case off < 0:
		return nil, fmt.Errorf("read %s: negative offset %d", display(p), off)
	case p == "":
		return nil, opError("read", p, backends.ErrIsDir, "")
	case length == 0, size >= 0 && off >= size:
		return io.NopCloser(strings.NewReader("")), nil
	}
	last := int64(rangeEnd)
	if length > 0 && off+length-1 < rangeEnd {
		last = off + length - 1
	}
	asked := "bytes=" + strconv.FormatInt(off, 10) + "-" + strconv.FormatInt(last, 10)
	rctx, cancel := context.WithCancel(ctx)
	guard := newStallGuard(b.timeout, cancel)
	r := &request{method: http.MethodGet, op: "read", cap: b.root, sub: p, shown: p}
	if fileCap != "" {
		r.cap, r.sub = fileCap, ""
	}
	req, err := b.newRequest(rctx, r, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	req.Header.Set("Range", asked)
	guard.arm()
	resp, err := b.send(req, r)
	guard.disarm()
	if err != nil {
		cancel()
		if guard.fired.Load() {
			return nil, b.netError(r, errStalled)
		}
		return nil, err
	}
	s := &readStream{b: b, r: r, body: resp.Body, ctx: rctx, guard: guard, cancel: cancel}
	bad := func(format string, args ...any) (io.ReadCloser, error) {
		_ = s.Close()
		return nil, opError("read", p, backends.ErrProtocol, "the reply to Range %s%s does not fit: %s",
			asked, sizeWords(size), fmt.Sprintf(format, args...))
	}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		cr := resp.Header.Get("Content-Range")
		// A total of "*" does not read: Tahoe always gives the file's size.
		first, lastGot, total, ok := httpread.ParseContentRange(cr, false)
		if !ok || lastGot < first || total <= lastGot {
			return bad("Content-Range %q does not read", cr)
		}
		if size >= 0 && total != size {
			return bad("Content-Range %q gives the file %d bytes", cr, total)
		}
		if first != off || lastGot != min(last, total-1) {
			return bad("Content-Range %q is not the range asked", cr)
		}
		n := lastGot - first + 1
		if resp.ContentLength >= 0 && resp.ContentLength != n {
			return bad("Content-Length %d, but Content-Range %q", resp.ContentLength, cr)
		}
		// Tahoe ends a body with "problem during download" when the grid
		// fails after it began.
		what := fmt.Sprintf("read %s: the reply to Range %s", display(p), asked)
		s.src = httpread.NewExactReader(resp.Body, n, what).BrokenOff(backends.ErrUnavailable, "the node or the grid failed")
		return s, nil
	case http.StatusRequestedRangeNotSatisfiable:
		_ = s.Close()
		if size >= 0 && off < size {
			return bad("HTTP 416, the file is shorter")
		}
		return io.NopCloser(strings.NewReader("")), nil
	case http.StatusOK:
		_ = s.Close()
		if fileCap != "" {
			return bad("HTTP 200: the node ignored the Range")
		}
		e, err := b.Stat(ctx, p)
		if err == nil && e.IsDir {
			return nil, opError("read", p, backends.ErrIsDir, "")
		}
		return bad("HTTP 200: the node ignored the Range")
	}
	err = replyError(r, resp)
	cancel()
	return nil, err
}

func sizeWords(size int64) string {
	if size < 0 {
		return ""
	}
	return fmt.Sprintf(" of a file of %d bytes", size)
}

// readStream is the body of a GET handed to the caller of Read.
type readStream struct {
	b      *Backend
	r      *request
	body   io.ReadCloser
	src    io.Reader       // body, checked against its announced length
	ctx    context.Context // the request's: ends with the caller's, the guard and Close
	guard  *stallGuard
	cancel context.CancelFunc
	closed atomic.Bool
}

// Read reads from the reply, failing if the network stalls or the context
// ends. The context is checked here, not left to the transport: until it
// tears the connection down, a reply already in the socket buffers would
// still be read.
func (s *readStream) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil && !s.closed.Load() {
		return 0, s.b.netError(s.r, s.explain(err))
	}
	s.guard.arm()
	n, err := s.src.Read(p)
	s.guard.disarm()
	if err != nil && err != io.EOF {
		if s.closed.Load() || errors.Is(err, backends.ErrProtocol) || errors.Is(err, backends.ErrUnavailable) {
			return n, err
		}
		return n, s.b.netError(s.r, s.explain(err))
	}
	return n, err
}

func (s *readStream) explain(err error) error {
	if s.guard.fired.Load() {
		return errStalled
	}
	return err
}

// Close releases the connection (closing early is fine).
func (s *readStream) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.guard.disarm()
	s.cancel()
	_ = s.body.Close()
	return nil
}
