package webdav

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/cloudmount/cloudmount/backends"
)

// Read streams length bytes of the file at p from off (GET with Range);
// length < 0 reads to the end. Reading past the end yields an empty stream.
// The stream ends with ctx, and fails when no data arrives for the timeout.
func (b *Backend) Read(ctx context.Context, p string, off, length int64) (io.ReadCloser, error) {
	p = cleanPath(p)
	if off < 0 {
		return nil, fmt.Errorf("GET %s: negative offset %d", display(p), off)
	}
	if length == 0 {
		return io.NopCloser(strings.NewReader("")), nil
	}
	ctx, cancel := context.WithCancel(ctx)
	guard := newStallGuard(b.timeout, cancel)
	req, err := b.newRequest(ctx, http.MethodGet, b.urlFor(p, false), nil)
	if err != nil {
		cancel()
		return nil, err
	}
	if off > 0 || length > 0 {
		rng := "bytes=" + strconv.FormatInt(off, 10) + "-"
		if length > 0 {
			rng += strconv.FormatInt(off+length-1, 10)
		}
		req.Header.Set("Range", rng)
	}
	resp, err := b.send(req, p)
	if err != nil {
		cancel()
		return nil, err
	}
	s := &readStream{b: b, path: p, body: resp.Body, r: resp.Body, guard: guard, cancel: cancel}
	switch resp.StatusCode {
	case http.StatusPartialContent:
		if start, ok := contentRangeStart(resp.Header.Get("Content-Range")); !ok || start != off {
			_ = s.Close()
			return nil, fmt.Errorf("GET %s: %w: asked for bytes from %d, got Content-Range %q",
				display(p), backends.ErrProtocol, off, resp.Header.Get("Content-Range"))
		}
	case http.StatusOK:
		// The server ignored Range: skip to off ourselves.
		if off > 0 {
			n, err := io.CopyN(io.Discard, s, off)
			if err != nil && err != io.EOF {
				_ = s.Close()
				return nil, err
			}
			if n < off {
				_ = s.Close()
				return io.NopCloser(strings.NewReader("")), nil
			}
		}
	case http.StatusRequestedRangeNotSatisfiable:
		drain(resp)
		cancel()
		return io.NopCloser(strings.NewReader("")), nil
	case http.StatusMovedPermanently, http.StatusPermanentRedirect:
		drain(resp)
		cancel()
		return nil, statusErrorAs("GET", p, resp, backends.ErrIsDir)
	default:
		drain(resp)
		cancel()
		return nil, statusError("GET", p, resp)
	}
	if length > 0 {
		s.r = io.LimitReader(resp.Body, length)
	}
	return s, nil
}

// contentRangeStart parses the first byte of "bytes 10-19/100".
func contentRangeStart(h string) (int64, bool) {
	h = strings.TrimSpace(h)
	rest, ok := strings.CutPrefix(h, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseInt(strings.TrimSpace(first), 10, 64)
	return n, err == nil
}
