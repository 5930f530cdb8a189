package fs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/cache"
)

// remoteReader reads a file that has no staging file for one handle,
// through the block cache (cache.Reader): blocks on local disk are read from
// there, even while the server cannot be reached; missing ones are fetched
// with ranged reads, one fetch per block however many handles want it, and
// a handle that reads sequentially keeps one stream open ahead of it.
type remoteReader struct {
	mu sync.Mutex // protects rd
	rd *cache.Reader
}

// readAt fills dest with the bytes at off of the server's current version
// of the file (the node's entry), as far as the file goes.
func (r *remoteReader) readAt(ctx context.Context, n *Node, dest []byte, off int64) (int, error) {
	n.mu.Lock()
	k := cache.Key{Path: n.path(), Version: contentVersion(n.entry), Size: n.entry.Size}
	n.mu.Unlock()
	r.mu.Lock()
	if r.rd == nil {
		r.rd = n.fs.store.Blocks.NewReader(n.fs.openStream)
	}
	rd := r.rd
	r.mu.Unlock()
	return rd.ReadAt(ctx, k, dest, off)
}

func (r *remoteReader) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.rd != nil {
		r.rd.Close()
		r.rd = nil
	}
}

// contentVersion names the server's version of a file's content for the
// block cache: the backend's Version. "" (a backend that breaks its
// contract) reads without caching.
func contentVersion(e backends.Entry) string { return e.Version }

// openStream opens a ranged stream of the version k names of the file at
// k.Path, for the block cache. The stream fails when no data arrives for
// the mount's timeout (its deadline is one of progress, not of length) and
// ends when ctx does. A backend that can read a version by its name does
// (backends.VersionReader); else one that can check the reply against the
// size of the file's entry does (backends.SizedReader).
// While the server is stalled (see stalled), it fails at once.
func (f *fsys) openStream(ctx context.Context, k cache.Key, off, length int64) (io.ReadCloser, error) {
	p, size := k.Path, k.Size
	if f.stalled() {
		return nil, backends.Describe(backends.ErrUnavailable, "read %s: the server let a call wait %s moments ago; not asking again yet", p, f.opts.Timeout)
	}
	wctx, wd := newWatchdog(ctx, f.opts.Timeout)
	stop := context.AfterFunc(ctx, wd.stop)
	var rc io.ReadCloser
	var err error
	if vr, ok := f.be.(backends.VersionReader); ok && k.Version != "" {
		rc, err = vr.ReadVersion(wctx, p, k.Version, off, length, size)
	} else if sr, ok := f.be.(backends.SizedReader); ok {
		rc, err = sr.ReadSized(wctx, p, off, length, size)
	} else {
		rc, err = f.be.Read(wctx, p, off, length)
	}
	if err != nil {
		stop()
		f.noteStall(wd, err)
		wd.stop()
		return nil, err
	}
	f.answered()
	return &watchedStream{f: f, r: kickReader{rc, wd}, rc: rc, wd: wd, stop: stop}, nil
}

// noteStall records a read that ended for want of an answer: the
// watchdog's, or the backend's own deadline.
func (f *fsys) noteStall(wd *watchdog, err error) {
	if wd.fired.Load() {
		err = fmt.Errorf("no data for %s: %w", f.opts.Timeout, context.DeadlineExceeded)
	}
	f.noteErr(err)
}

// stalled reports whether a call met a server that let it wait out the
// timeout or could not be reached, and nothing has been answered since.
// Calls that need the server then fail at once (reads of data not in the
// cache, lookups and listings the mount has no answer for) and the rest
// answer from what is known, so that an ls -l, a cat (whose kernel sends
// several reads after an open) or a file manager's look into a folder
// waits one timeout at most, not one per entry. A probe in the background
// (watchServer) and any answer end it.
func (f *fsys) stalled() bool {
	return f.stall.Load() != 0
}

// noteErr records a call that got no answer in time or no connection.
func (f *fsys) noteErr(err error) {
	if !errors.Is(err, backends.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded) {
		return
	}
	if f.stall.CompareAndSwap(0, time.Now().UnixNano()) {
		f.log.Warn("the server does not answer: the mount answers from its cache until it does", "err", err)
	}
	if f.q != nil {
		f.q.ReportOffline(err)
	}
	f.watchServer()
}

// answered records that the server answered.
func (f *fsys) answered() {
	if f.stall.Swap(0) != 0 {
		f.log.Info("the server answers again")
		if f.q != nil {
			f.q.ReportOnline()
		}
	}
}

// Waits between the probes of a server that stopped answering.
const (
	probeFirst = 500 * time.Millisecond
	probeMax   = 5 * time.Second
)

// watchServer starts, unless one runs, a probe of the server in the
// background: a stat of the root, soon after the stall and then at
// growing intervals, each within the mount's timeout, until the server
// answers (anything, an error too) or the mount ends.
func (f *fsys) watchServer() {
	if f.pre == nil || !f.probing.CompareAndSwap(false, true) {
		return
	}
	go func() {
		defer func() {
			f.probing.Store(false)
			// A stall noted as this probe ended needs a probe of its own.
			if f.pre.ctx.Err() == nil && f.stalled() {
				f.watchServer()
			}
		}()
		wait := probeFirst
		for f.stalled() {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-f.pre.ctx.Done():
				t.Stop()
				return
			}
			ctx, cancel := context.WithTimeout(f.pre.ctx, f.opts.Timeout)
			_, err := f.be.Stat(ctx, "")
			cancel()
			if f.pre.ctx.Err() != nil {
				return
			}
			if err == nil || !f.Offline(err) {
				f.answered()
				return
			}
			wait = min(2*wait, probeMax)
		}
	}()
}

// watchedStream is a stream with its watchdog.
type watchedStream struct {
	f    *fsys
	r    io.Reader
	rc   io.ReadCloser
	wd   *watchdog
	stop func() bool
}

func (s *watchedStream) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		s.f.noteStall(s.wd, err)
	}
	return n, err
}

// Close ends the stream. The watchdog goes first: it cancels the request,
// which a Close of a response body in the middle of a Read would wait for.
func (s *watchedStream) Close() error {
	s.stop()
	s.wd.stop()
	return s.rc.Close()
}
