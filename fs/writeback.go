package fs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/cache"
)

// liveNodes are the nodes whose content waits in the write-back queue, by
// path. The queue's records are the durable truth; these nodes are how the
// mount shows it (stat, read, listings) and what the uploads settle, also
// after the kernel has forgotten the inode.
type liveNodes struct {
	mu  sync.Mutex // protects byP
	byP map[string]*Node
}

func (l *liveNodes) get(p string) *Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.byP[p]
}

func (l *liveNodes) set(p string, n *Node) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.byP[p] = n
}

// drop forgets p if it is still n.
func (l *liveNodes) drop(p string, n *Node) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.byP[p] == n {
		delete(l.byP, p)
	}
}

// take removes and returns the nodes at and below p.
func (l *liveNodes) take(p string) []*Node {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []*Node
	for lp, n := range l.byP {
		if backends.InTree(lp, p) {
			out = append(out, n)
			delete(l.byP, lp)
		}
	}
	return out
}

// rename moves the nodes at and below from to to; nodes at and below to
// are dropped.
func (l *liveNodes) rename(from, to string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	moved := map[string]*Node{}
	for lp, n := range l.byP {
		if backends.InTree(lp, from) {
			moved[to+lp[len(from):]] = n
			delete(l.byP, lp)
		} else if backends.InTree(lp, to) {
			delete(l.byP, lp)
		}
	}
	for lp, n := range moved {
		l.byP[lp] = n
	}
}

// commitLocked makes the node's staged content durable in the journal and
// queues its upload: what close() and fsync() wait for. n.upMu must be held.
func (n *Node) commitLocked(p string) syscall.Errno {
	n.mu.Lock()
	st := n.staged
	if st == nil || n.unlinked || !st.changed && (st.committed || !st.dirty && !n.local) {
		n.mu.Unlock()
		return 0
	}
	meta := n.entry.Meta
	meta.Merge(n.pending)
	rec := cache.Record{Path: p, Data: filepath.Base(st.file.Name()), Size: st.size,
		Base: st.base, Create: n.local, Meta: meta}
	n.mu.Unlock()
	// Writes wait on upMu, which is held: the content cannot change.
	sum, err := st.sum()
	if err != nil {
		return toErrno(err)
	}
	rec.Meta.SHA256 = sum
	// The node is live before the record is queued: its upload can start
	// at once and goes through it.
	n.mu.Lock()
	st.changed, st.committed, st.dirty = false, true, true
	n.mu.Unlock()
	n.fs.live.set(p, n)
	seq, err := n.fs.q.Commit(rec)
	if err != nil {
		n.fs.log.Error("cannot record the file in the journal", "path", p, "err", err)
		n.mu.Lock()
		st.changed, st.committed = true, false
		n.mu.Unlock()
		return toErrno(err)
	}
	n.mu.Lock()
	n.seq = seq
	n.mu.Unlock()
	return 0
}

// queueMeta adds metadata set after close to the queued upload of p.
func (f *fsys) queueMeta(p string, m backends.Meta) {
	if _, err := f.q.SetMeta(p, func(r *cache.Record) { r.Meta.Merge(m) }); err != nil {
		f.log.Warn("journal update failed; the change is kept in memory and written at the next commit", "path", p, "err", err)
	}
}

// Upload implements cache.Uploader: it sends the queued content of
// rec.Path through the node that holds it.
func (f *fsys) Upload(ctx context.Context, rec cache.Record, progress func(int64)) (string, error) {
	var n *Node
	for {
		n = f.live.get(rec.Path)
		if n == nil && rec.Seq > f.replayed {
			// Settled by an earlier upload of the same record.
			return "", nil
		}
		if n == nil {
			// A record of an earlier mount whose node could not be made
			// at start-up: try again.
			var err error
			if n, err = f.detachedNode(rec); err != nil || n == nil {
				return "", err
			}
			f.live.set(rec.Path, n)
		}
		n.upMu.Lock()
		if f.live.get(rec.Path) == n {
			break
		}
		n.upMu.Unlock() // adopted by a new inode meanwhile
	}
	defer func() { n.upMu.Unlock() }() // n may change to an adopter below
	// The node's pending metadata is at least as new as the record's:
	// setMeta changes it first.
	n.mu.Lock()
	content := n.staged != nil && !n.unlinked && (n.staged.dirty || n.local)
	n.mu.Unlock()
	if !content {
		if err := n.storePending(ctx, rec.Path); err != nil {
			return "", err
		}
		// Settled: lookups go to the server's entry again.
		n.mu.Lock()
		clean := n.pending.IsZero()
		n.mu.Unlock()
		if clean {
			f.live.drop(rec.Path, n)
		}
		return "", nil
	}
	conflict, err := n.uploadTo(withProgress(ctx, progress), rec.Path)
	if cur := f.live.get(rec.Path); cur != nil && cur != n {
		// Adopted by a new inode during the upload.
		n.handOver(cur)
		n.upMu.Unlock()
		n = cur
		n.upMu.Lock()
	}
	if err != nil {
		return "", err
	}
	f.answered()
	n.mu.Lock()
	clean := (n.staged == nil || !n.staged.dirty) && n.pending.IsZero()
	n.mu.Unlock()
	if clean {
		f.live.drop(rec.Path, n)
	}
	n.dropStagingLocked()
	return conflict, nil
}

// storePending stores metadata that changed after the content's upload.
// n.upMu must be held.
func (n *Node) storePending(ctx context.Context, p string) error {
	n.mu.Lock()
	e, m := n.entry, n.pending
	n.mu.Unlock()
	if m.IsZero() || n.unlinked {
		return nil
	}
	ne, err := n.fs.storeMeta(ctx, p, e, m, "")
	if err != nil {
		return fmt.Errorf("store metadata of %s: %w", p, err)
	}
	ne.Name = e.Name
	n.mu.Lock()
	if n.fits(ne) {
		n.entry, n.fetched = ne, time.Now()
	}
	n.pending = backends.Meta{}
	n.mu.Unlock()
	dir, name := splitPath(p)
	n.fs.dirs.update(dir, name, &ne)
	return nil
}

// detachedNode rebuilds the node of a record from an earlier mount (or
// whose node is gone): it has no inode until a lookup adopts it. nil means
// the record's data is gone, which happens only when the upload had
// finished and the daemon stopped before the record was removed.
func (f *fsys) detachedNode(rec cache.Record) (*Node, error) {
	file, err := f.store.OpenStaged(rec)
	if errors.Is(err, os.ErrNotExist) {
		f.log.Warn("journal record without data: its upload had finished", "path", rec.Path)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open staged data of %s: %w", rec.Path, err)
	}
	st := newStagingFile(file, rec.Base)
	if fi, err := file.Stat(); err == nil {
		st.size = fi.Size()
	}
	st.dirty, st.committed = true, true
	mtime := rec.Committed
	if rec.Meta.MTime != nil {
		mtime = *rec.Meta.MTime
	}
	n := &Node{fs: f, staged: st, local: rec.Create, pending: rec.Meta, detached: true, fetched: time.Now(),
		entry: backends.Entry{Name: path.Base(rec.Path), Size: st.size, ModTime: mtime, Meta: backends.Meta{Type: rec.Meta.Type}}}
	return n, nil
}

// adopt gives a live node whose inode the kernel forgot (or never had) a
// node that can be put in the tree: the node itself if it never had an
// inode, else a copy that takes over its state.
//
// It does not wait for an upload of the node in flight: that upload hands
// its outcome to the adopter when it ends (handOver).
func (f *fsys) adopt(p string, ln *Node) *Node {
	ln.mu.Lock()
	defer ln.mu.Unlock()
	if ln.detached {
		ln.detached = false
		return ln
	}
	cn := &Node{fs: f, entry: ln.entry, fetched: ln.fetched, staged: ln.staged, pending: ln.pending,
		local: ln.local, target: ln.target, cached: ln.cached}
	f.live.set(p, cn)
	return cn
}

// handOver gives the node that adopted n the state n's upload left.
func (n *Node) handOver(to *Node) {
	n.mu.Lock()
	local, entry, fetched, pending, cached, staged := n.local, n.entry, n.fetched, n.pending, n.cached, n.staged
	n.mu.Unlock()
	to.mu.Lock()
	to.local, to.entry, to.fetched, to.pending, to.cached, to.staged = local, entry, fetched, pending, cached, staged
	to.mu.Unlock()
}

// Probe implements cache.Uploader.
func (f *fsys) Probe(ctx context.Context) error {
	_, err := f.be.Stat(ctx, "")
	return err
}

// Permanent implements cache.Uploader: errors that another attempt in this
// mount would only repeat. Refused credentials are not among them (see
// Unauthorized): they may work again, and the queue retries them.
func (f *fsys) Permanent(err error) bool {
	for _, e := range []error{backends.ErrPermission, backends.ErrTooLarge,
		backends.ErrReadOnly, backends.ErrUnsupported, backends.ErrNotDir, backends.ErrIsDir, errLocalData} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// Offline implements cache.Uploader.
func (f *fsys) Offline(err error) bool {
	return errors.Is(err, backends.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// errLocalData marks a failure to read the staged data itself.
var errLocalData = errors.New("cannot read the staged data")

// progressKey carries an upload's progress callback in its context.
type progressKey struct{}

func withProgress(ctx context.Context, fn func(int64)) context.Context {
	return context.WithValue(ctx, progressKey{}, fn)
}

// progressReader reports the bytes read so far.
type progressReader struct {
	r    interface{ Read([]byte) (int, error) }
	done int64
	fn   func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	k, err := p.r.Read(b)
	p.done += int64(k)
	p.fn(p.done)
	return k, err
}
