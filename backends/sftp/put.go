package sftp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"

	"github.com/cloudmount/cloudmount/backends"
)

// Put stores the file at p from r: it writes a temporary file (tempName,
// in the same directory, never listed), sets its mode and mtime from
// opts.Meta (a replaced file keeps its mode when opts.Meta has none), then
// renames it over p: readers see the old content or the new one, never a
// part (atomically where the server has posix-rename@openssh.com). The
// temporary file is removed on every failure.
//
// Conditions are checked twice: before the upload, so that a refused one
// sends nothing (except for a small file with its mode, up to smallPut
// bytes, where the round trip costs more), and again right before the
// rename. SFTP has no
// conditional rename, so a change another client makes between that last
// check and the rename (one round trip) is not seen, and is replaced.
// IfNoneMatch renames with SSH_FXP_RENAME, which OpenSSH refuses for an
// existing target by itself (link(2)), closing that window there.
//
// With opts.InPlace an existing file is written over instead (truncated,
// then written), so that its other names see the new content; readers may
// see a partial file, and a failure leaves one.
func (b *Backend) Put(ctx context.Context, p string, r io.Reader, size int64, opts backends.PutOptions) (entry backends.Entry, err error) {
	p = cleanPath(p)
	if p == "" {
		return backends.Entry{}, &OpError{Op: "put", Path: p, Kind: backends.ErrIsDir}
	}
	if err := reserved("put", p); err != nil {
		return backends.Entry{}, err
	}
	s, err := b.session(ctx, weightStream)
	if err != nil {
		return backends.Entry{}, fmt.Errorf("put %s: %w", display(p), err)
	}
	start := time.Now()
	tmp := path.Join(path.Dir("/" + p)[1:], tempName(start))
	var (
		created atomic.Bool
		open    *sftp.File // the temporary file, written, to close
	)
	defer func() {
		if err == nil {
			s.end(nil)
			return
		}
		// After the session's calls are over: one the caller left may
		// still be creating the file.
		s.end(func() {
			if open != nil {
				_ = open.Close() // a transfer its caller left, which wrote all
			}
			if created.Load() {
				b.removeTemp(ctx, tmp)
			}
		})
	}()

	// A small new version with its mode skips the check before it: the
	// one right before the rename decides, and sending a file that is
	// then refused costs less than the round trip every upload would pay.
	var (
		old     backends.Entry
		existed bool
	)
	if size < 0 || size > smallPut || opts.Meta.Mode == nil || opts.InPlace {
		if old, existed, err = b.exists(s, p); err != nil {
			return backends.Entry{}, err
		}
		if err := checkPut(p, old, existed, opts); err != nil {
			return backends.Entry{}, err
		}
	}

	inPlace := opts.InPlace && existed && old.Meta.Type == ""
	mode := opts.Meta.Mode
	if mode == nil && existed && old.Meta.Type == "" && !inPlace {
		// A rewrite keeps the mode: a private file stays private.
		mode = old.Meta.Mode
	}
	var modeSet atomic.Bool
	target := tmp
	flags := os.O_WRONLY | os.O_CREATE | os.O_EXCL
	if inPlace {
		// Other names of the file (hard links) must see the new content:
		// write over it, as a local filesystem does. Readers may see a
		// part of it meanwhile, and a failure leaves a part.
		target, flags = p, os.O_WRONLY|os.O_TRUNC
	}
	src := &source{r: r, ctx: ctx, size: size}
	err = s.transfer(func(c *sftp.Client) error {
		f, err := c.OpenFile(b.remote(target), flags)
		if err != nil {
			return err
		}
		if !inPlace {
			created.Store(true)
		}
		if mode != nil {
			// Before the data: a private file is never readable by
			// others on the server, not even while it uploads.
			modeSet.Store(f.Chmod(*mode&0o7777) == nil)
		}
		err = b.write(f, src, size)
		if err != nil || inPlace {
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			return err
		}
		open = f
		return nil
	}, src.reading.Load)
	if serr := src.failure(); serr != nil {
		return backends.Entry{}, fmt.Errorf("put %s: reading the data to upload: %w", display(p), serr)
	}
	if err != nil {
		err = opError("put", p, err)
		if isFailure(err) {
			if b.full(s) {
				return backends.Entry{}, &OpError{Op: "put", Path: p, Kind: backends.ErrNoSpace, Err: err}
			}
			if !created.Load() {
				if perr := b.parentProblem(s, "put", p); perr != nil {
					return backends.Entry{}, perr
				}
			}
		}
		return backends.Entry{}, err
	}

	if modeSet.Load() {
		mode = nil
	}
	if inPlace {
		return b.putResult(s, p, b.setMeta(s, p, p, mode, opts.Meta.MTime))
	}
	// An upload older than half the leftover age sets its mtime after
	// the rename: an old mtime on a temporary file that old would make it
	// a leftover to other mounts (isLeftover).
	late := time.Since(start) > b.leftoverAge/2
	// Closing the file, setting its metadata and the second check of the
	// conditions, as late as SFTP allows, are independent: one round trip
	// for the three.
	var (
		wg                 sync.WaitGroup
		closeErr, checkErr error
		metaErr            error
		check              = opts.IfMatch != "" || opts.IfNoneMatch
	)
	wg.Go(func() { closeErr = s.do(func(*sftp.Client) error { return open.Close() }) })
	if !late {
		wg.Go(func() { metaErr = b.setMeta(s, tmp, p, mode, opts.Meta.MTime) })
	}
	if check {
		wg.Go(func() { old, existed, checkErr = b.exists(s, p) })
	}
	wg.Wait()
	if closeErr != nil {
		return backends.Entry{}, opError("put", p, closeErr)
	}
	if check {
		if checkErr != nil {
			return backends.Entry{}, checkErr
		}
		if err := checkPut(p, old, existed, opts); err != nil {
			return backends.Entry{}, err
		}
	}
	if opts.IfNoneMatch {
		err = s.do(func(c *sftp.Client) error { return c.Rename(b.remote(tmp), b.remote(p)) })
	} else {
		err = b.rename(s, tmp, p, true)
	}
	if err != nil {
		err = opError("put", p, err)
		if e, ok, serr := b.exists(s, p); serr == nil && ok {
			switch {
			case opts.IfNoneMatch:
				return backends.Entry{}, existError(p)
			case e.IsDir:
				return backends.Entry{}, &OpError{Op: "put", Path: p, Kind: backends.ErrIsDir}
			}
		}
		return backends.Entry{}, err
	}
	if late {
		metaErr = b.setMeta(s, p, p, mode, opts.Meta.MTime)
	}
	return b.putResult(s, p, metaErr)
}

// smallPut is the largest upload that skips the check before it (Put).
const smallPut = 1 << 20

// write copies size bytes of src (-1: all of it) into f.
func (b *Backend) write(f *sftp.File, src *source, size int64) error {
	var (
		n   int64
		err error
	)
	if size >= 0 {
		// A LimitedReader tells pkg/sftp the size, which makes it send
		// the writes concurrently.
		n, err = f.ReadFrom(&io.LimitedReader{R: src, N: size})
	} else {
		n, err = f.ReadFrom(src)
	}
	if err == nil && size >= 0 && src.failure() == nil {
		if n < size {
			src.fail(fmt.Errorf("the source ended %d bytes short of the declared size %d", size-n, size))
		} else if extra, _ := src.Read(make([]byte, 1)); extra > 0 {
			src.fail(fmt.Errorf("the source holds more than the declared size %d", size))
		}
	}
	return err
}

// putResult is the entry of a stored file, with ErrMetaNotStored if its
// metadata could not be set.
func (b *Backend) putResult(s *session, p string, metaErr error) (backends.Entry, error) {
	entry, err := b.stat(s, p)
	if err != nil {
		return backends.Entry{}, err
	}
	if metaErr != nil {
		return entry, fmt.Errorf("put %s: %w: %w", display(p), backends.ErrMetaNotStored, metaErr)
	}
	return entry, nil
}

// checkPut applies the conditions of opts to what is at p.
func checkPut(p string, old backends.Entry, existed bool, opts backends.PutOptions) error {
	switch {
	case existed && old.IsDir:
		return &OpError{Op: "put", Path: p, Kind: backends.ErrIsDir}
	case opts.IfNoneMatch && existed:
		return existError(p)
	case opts.IfMatch != "" && !existed:
		return &OpError{Op: "put", Path: p, Kind: backends.ErrPrecondition, Err: errors.New("the file no longer exists")}
	case opts.IfMatch != "" && old.Version != opts.IfMatch:
		return &OpError{Op: "put", Path: p, Kind: backends.ErrPrecondition,
			Err: fmt.Errorf("the server has version %s, not %s", old.Version, opts.IfMatch)}
	}
	return nil
}

// existError is the failure of a create (IfNoneMatch) where something is:
// both an O_EXCL create (ErrExist) and a failed condition (ErrPrecondition).
func existError(p string) error {
	return &OpError{Op: "put", Path: p, Kind: backends.ErrExist,
		Err: backends.Describe(backends.ErrPrecondition, "asked to create it, and something is there")}
}

// setMeta sets the mode and mtime of the file at target (p in messages).
func (b *Backend) setMeta(s *session, target, p string, mode *os.FileMode, mtime *time.Time) error {
	var errs []error
	if mode != nil {
		perm := *mode & 0o7777
		if err := s.do(func(c *sftp.Client) error { return c.Chmod(b.remote(target), perm) }); err != nil {
			errs = append(errs, opError("chmod", p, err))
		}
	}
	if mtime != nil {
		mt := *mtime
		if err := s.do(func(c *sftp.Client) error { return c.Chtimes(b.remote(target), mt, mt) }); err != nil {
			errs = append(errs, opError("chtimes", p, err))
		}
	}
	return errors.Join(errs...)
}

// removeTemp deletes an upload's temporary file, whatever the caller's
// context says. One that cannot be removed now (the server is gone) is
// removed after the next connection is made (cleanOrphans).
func (b *Backend) removeTemp(ctx context.Context, tmp string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), b.timeout)
	defer cancel()
	s, err := b.session(ctx, weightCall)
	if err == nil {
		err = s.do(func(c *sftp.Client) error { return c.Remove(b.remote(tmp)) })
		s.end(nil)
	}
	if err == nil || errors.Is(classify(err), backends.ErrNotFound) {
		return
	}
	if errors.Is(err, backends.ErrUnavailable) {
		b.orphansMu.Lock()
		if b.orphans == nil {
			b.orphans = map[string]bool{}
		}
		b.orphans[tmp] = true
		b.orphansMu.Unlock()
		b.log.Debug("sftp: a temporary upload file stays until the server is back", "server", b.hostPort, backends.NameAttr("path", tmp))
		return
	}
	b.log.Warn("sftp: cannot remove a temporary upload file", "server", b.hostPort, backends.NameAttr("path", tmp), "error", err)
}

// cleanOrphans removes the temporary files of failed uploads that could
// not be removed while the server was unreachable.
func (b *Backend) cleanOrphans() {
	b.orphansMu.Lock()
	names := make([]string, 0, len(b.orphans))
	for n := range b.orphans {
		names = append(names, n)
	}
	b.orphans = nil
	b.orphansMu.Unlock()
	for _, n := range names {
		b.removeTemp(context.Background(), n)
	}
}

// source is the caller's data. It notes when an upload waits on it rather
// than on the server, stops at ctx, and keeps its own errors apart from the
// network's.
type source struct {
	r       io.Reader
	ctx     context.Context
	size    int64
	reading atomic.Bool
	err     atomic.Pointer[error]
}

// fail records an error of the source (the first one counts).
func (s *source) fail(err error) { s.err.CompareAndSwap(nil, &err) }

// failure is the error of the source, nil if none.
func (s *source) failure() error {
	if e := s.err.Load(); e != nil {
		return *e
	}
	return nil
}

func (s *source) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil {
		return 0, err
	}
	s.reading.Store(true)
	n, err := s.r.Read(p)
	s.reading.Store(false)
	if err != nil && err != io.EOF {
		s.fail(err)
	}
	return n, err
}

// randomName is 16 random hex digits.
func randomName() string {
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	return hex.EncodeToString(rnd[:])
}

// SetMeta stores the mode and mtime of m (Chmod, Chtimes; other fields
// are not kept by an SFTP server and are ignored). With ifVersion it fails
// with ErrPrecondition unless the file is at that version; a change made
// between that check and the change of metadata is not seen. A symbolic
// link keeps its own attributes: SFTP's setstat would follow it.
func (b *Backend) SetMeta(ctx context.Context, p string, m backends.Meta, ifVersion string) (backends.Entry, error) {
	p = cleanPath(p)
	s, err := b.session(ctx, weightCall)
	if err != nil {
		return backends.Entry{}, fmt.Errorf("setmeta %s: %w", display(p), err)
	}
	defer s.end(nil)
	e, err := b.stat(s, p)
	if err != nil {
		return backends.Entry{}, err
	}
	if ifVersion != "" && e.Version != ifVersion {
		return backends.Entry{}, &OpError{Op: "setmeta", Path: p, Kind: backends.ErrPrecondition,
			Err: fmt.Errorf("the server has version %s, not %s", e.Version, ifVersion)}
	}
	if e.Meta.Type == "symlink" || (m.Mode == nil && m.MTime == nil) {
		return e, nil
	}
	if m.Mode != nil {
		perm := *m.Mode & 0o7777
		if err := s.do(func(c *sftp.Client) error { return c.Chmod(b.remote(p), perm) }); err != nil {
			return backends.Entry{}, opError("chmod", p, err)
		}
	}
	if m.MTime != nil {
		mt := *m.MTime
		if err := s.do(func(c *sftp.Client) error { return c.Chtimes(b.remote(p), time.Now(), mt) }); err != nil {
			return backends.Entry{}, opError("chtimes", p, err)
		}
	}
	return b.stat(s, p)
}
