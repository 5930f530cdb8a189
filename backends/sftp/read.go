package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sync"

	"github.com/pkg/sftp"

	"github.com/cloudmount/cloudmount/backends"
)

// Read sizes: the stream asks the server for up to readChunk bytes at a
// time, which pkg/sftp splits into concurrent 32 KiB requests; an
// open-ended read starts smaller, for callers that read little.
const (
	readChunk      = 1 << 20
	firstReadChunk = 64 << 10
)

// Read streams length bytes of the file at p from off; length < 0 reads to
// the end. Reading past the end yields fewer bytes, or none. The stream
// ends with ctx, and fails with ErrUnavailable when the server sends
// nothing for the timeout.
func (b *Backend) Read(ctx context.Context, p string, off, length int64) (io.ReadCloser, error) {
	return b.read(ctx, p, off, length, -1)
}

// ReadSized is Read of a file the caller knows to have size bytes: the
// open file's size is checked first (one more request), and a stream that
// ends before the bytes that size promises fails with ErrProtocol.
func (b *Backend) ReadSized(ctx context.Context, p string, off, length, size int64) (io.ReadCloser, error) {
	if size < 0 {
		return nil, fmt.Errorf("read %s: negative size %d", display(cleanPath(p)), size)
	}
	return b.read(ctx, p, off, length, size)
}

func (b *Backend) read(ctx context.Context, p string, off, length, size int64) (io.ReadCloser, error) {
	p = cleanPath(p)
	if off < 0 {
		return nil, fmt.Errorf("read %s: negative offset %d", display(p), off)
	}
	if p != "" && hidden(path.Base(p)) {
		return nil, &OpError{Op: "read", Path: p, Kind: backends.ErrNotFound}
	}
	if size >= 0 {
		// Never ask beyond what the caller believes is there.
		if off >= size {
			length = 0
		} else if length < 0 || off+length > size {
			length = size - off
		}
	}
	s, err := b.session(ctx, weightStream)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", display(p), err)
	}
	var f *sftp.File
	err = s.do(func(c *sftp.Client) error {
		var err error
		f, err = c.Open(b.remote(p))
		return err
	})
	if err != nil {
		s.end(nil)
		return nil, opError("read", p, err)
	}
	r := &reader{b: b, s: s, f: f, p: p, off: off, remaining: length, sized: size >= 0}
	if size >= 0 || p == "" {
		var fi os.FileInfo
		err := s.do(func(*sftp.Client) error {
			var err error
			fi, err = f.Stat()
			return err
		})
		switch {
		case err != nil:
			r.Close()
			return nil, opError("read", p, err)
		case fi.IsDir():
			r.Close()
			return nil, &OpError{Op: "read", Path: p, Kind: backends.ErrIsDir}
		case size >= 0 && fi.Size() != size:
			r.Close()
			return nil, backends.Describe(backends.ErrProtocol, "read %s: the file has %d bytes on the server, not %d", display(p), fi.Size(), size)
		}
	}
	return r, nil
}

// reader is the stream Read returns.
type reader struct {
	b         *Backend
	s         *session
	f         *sftp.File
	p         string
	off       int64
	remaining int64 // -1: to the end
	sized     bool  // ReadSized: ending early is an error
	buf       []byte
	data      []byte // unread part of buf
	err       error  // sticky

	mu     sync.Mutex // protects closed
	closed bool
}

// Read returns the next bytes, from a buffer filled with large concurrent
// reads.
func (r *reader) Read(p []byte) (int, error) {
	r.mu.Lock()
	closed := r.closed
	r.mu.Unlock()
	if closed {
		return 0, os.ErrClosed
	}
	if err := r.s.ctx.Err(); err != nil {
		return 0, fmt.Errorf("read %s: %w", display(r.p), r.b.canceledError(err))
	}
	if len(r.data) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		if r.remaining == 0 {
			return 0, io.EOF
		}
		r.fill()
		if len(r.data) == 0 {
			return 0, r.err
		}
	}
	n := copy(p, r.data)
	r.data = r.data[n:]
	return n, nil
}

// fill reads the next chunk into buf.
func (r *reader) fill() {
	want := int64(readChunk)
	if r.remaining > 0 {
		want = min(want, r.remaining)
	} else if len(r.buf) > 0 {
		want = min(int64(2*len(r.buf)), readChunk)
	} else {
		want = firstReadChunk
	}
	if int64(cap(r.buf)) < want {
		r.buf = make([]byte, want)
	}
	buf := r.buf[:want]
	// A call that overran its limit may still be running when transfer
	// returns: its results are read only after a success, and its buffer
	// is never used again after a failure.
	type result struct {
		n   int
		eof bool
	}
	res := new(result)
	off := r.off
	err := r.s.transfer(func(*sftp.Client) error {
		n, err := r.f.ReadAt(buf, off)
		if errors.Is(err, io.EOF) {
			// the end of the file, not of the connection
			err = nil
			res.eof = true
		}
		res.n = n
		return err
	}, nil)
	var n int
	eof := false
	if err == nil {
		n, eof = res.n, res.eof
	} else {
		r.buf = nil
	}
	r.data = buf[:n]
	r.off += int64(n)
	if r.remaining > 0 {
		r.remaining -= int64(n)
	}
	switch {
	case err != nil:
		r.err = r.b.readError(r.s, r.p, err)
	case eof:
		if r.sized && r.remaining > 0 {
			r.err = backends.Describe(backends.ErrProtocol, "read %s: the file ended %d bytes before its size", display(r.p), r.remaining)
		} else {
			r.err = io.EOF
		}
		r.remaining = 0
	}
}

// readError maps a failed read; a directory (opened, but not readable) is
// ErrIsDir.
func (b *Backend) readError(s *session, p string, err error) error {
	oe := opError("read", p, err)
	if isFailure(oe) {
		if e, ok, serr := b.exists(s, p); serr == nil && ok && e.IsDir {
			return &OpError{Op: "read", Path: p, Kind: backends.ErrIsDir}
		}
	}
	return oe
}

// Close closes the remote file in the background (it may be called early).
func (r *reader) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		return nil
	}
	r.closed = true
	go func() {
		_ = r.s.run(callSpec{fn: func(*sftp.Client) error { return r.f.Close() }, limit: r.b.timeout, detached: true})
		r.s.end(nil)
	}()
	return nil
}
