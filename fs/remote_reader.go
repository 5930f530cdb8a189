package fs

import (
	"context"
	"io"
	"sync"

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

// openStream opens a ranged stream of the file at p for the block cache. The
// stream fails when no data arrives for the mount's timeout (its deadline
// is one of progress, not of length) and ends when ctx does. A backend that
// can check the reply against the size of the file's entry does
// (backends.SizedReader).
func (f *fsys) openStream(ctx context.Context, p string, off, length, size int64) (io.ReadCloser, error) {
	wctx, wd := newWatchdog(ctx, f.opts.Timeout)
	stop := context.AfterFunc(ctx, wd.stop)
	var rc io.ReadCloser
	var err error
	if sr, ok := f.be.(backends.SizedReader); ok {
		rc, err = sr.ReadSized(wctx, p, off, length, size)
	} else {
		rc, err = f.be.Read(wctx, p, off, length)
	}
	if err != nil {
		stop()
		wd.stop()
		return nil, err
	}
	return &watchedStream{r: kickReader{rc, wd}, rc: rc, wd: wd, stop: stop}, nil
}

// watchedStream is a stream with its watchdog.
type watchedStream struct {
	r    io.Reader
	rc   io.ReadCloser
	wd   *watchdog
	stop func() bool
}

func (s *watchedStream) Read(p []byte) (int, error) { return s.r.Read(p) }

// Close ends the stream. The watchdog goes first: it cancels the request,
// which a Close of a response body in the middle of a Read would wait for.
func (s *watchedStream) Close() error {
	s.stop()
	s.wd.stop()
	return s.rc.Close()
}
