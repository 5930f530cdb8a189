package fs

import (
	"context"
	"errors"
	"io"
	"sync"
)

// skipLimit is how far ahead a sequential stream is read and discarded
// rather than reopened at the new offset.
const skipLimit = 1 << 20

// remoteReader streams a file from the server for one handle: sequential
// reads continue one ranged GET; a seek opens a new one.
type remoteReader struct {
	mu  sync.Mutex // protects the fields below
	rc  io.ReadCloser
	wd  *watchdog
	pos int64
}

// readAt fills dest with the bytes at off, reopening the stream when off is
// not where it stands. A broken stream is reopened once.
func (r *remoteReader) readAt(ctx context.Context, n *Node, dest []byte, off int64) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for attempt := 0; ; attempt++ {
		if r.rc != nil && off > r.pos && off-r.pos <= skipLimit {
			if _, err := io.CopyN(io.Discard, kickReader{r.rc, r.wd}, off-r.pos); err != nil {
				r.closeLocked()
			} else {
				r.pos = off
			}
		}
		if r.rc == nil || off != r.pos {
			r.closeLocked()
			wctx, wd := newWatchdog(ctx, n.fs.opts.Timeout)
			rc, err := n.fs.be.Read(wctx, n.path(), off, -1)
			if err != nil {
				wd.stop()
				return 0, err
			}
			r.rc, r.wd, r.pos = rc, wd, off
		}
		r.wd.kick()
		k, err := io.ReadFull(kickReader{r.rc, r.wd}, dest)
		r.pos += int64(k)
		if err == nil || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) {
			return k, nil
		}
		r.closeLocked()
		if k > 0 {
			return k, nil
		}
		if attempt > 0 {
			return 0, err
		}
	}
}

func (r *remoteReader) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.closeLocked()
}

func (r *remoteReader) closeLocked() {
	if r.rc != nil {
		r.rc.Close()
		r.rc = nil
	}
	if r.wd != nil {
		r.wd.stop()
		r.wd = nil
	}
}
