package fs

import (
	"context"
	"syscall"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/cache"
	fusefs "github.com/hanwen/go-fuse/v2/fs"
)

// Rename flags of renameat2(2).
const (
	renameNoReplace = 0x1
	renameExchange  = 0x2
)

// Rename implements fusefs.NodeRenamer. The local rules of rename(2) are
// checked first (a directory is only replaced by a directory, and only when
// empty); a file not yet on the server moves without a remote call.
func (n *Node) Rename(ctx context.Context, name string, newParent fusefs.InodeEmbedder, newName string, flags uint32) (errno syscall.Errno) {
	if len(newName) > nameMax {
		return syscall.ENAMETOOLONG
	}
	if n.fs.opts.ReadOnly {
		return syscall.EROFS
	}
	if flags&renameExchange != 0 {
		return syscall.EINVAL
	}
	if n.fs.reserved(name) {
		return syscall.ENOENT
	}
	if n.fs.reserved(newName) {
		return syscall.EACCES
	}
	np, ok := newParent.(*Node)
	if !ok {
		return syscall.EXDEV
	}
	from, to := n.childPath(name), np.childPath(newName)
	if from == to {
		return 0
	}
	resumeFrom := n.fs.q.Pause(from)
	defer resumeFrom()
	resumeTo := n.fs.q.Pause(to)
	defer resumeTo()
	src := n.childNode(name)
	if src == nil {
		return syscall.ENOENT
	}
	if errno := n.denyRename(src, np, np.childNode(newName)); errno != 0 {
		return errno
	}
	srcDir := src.StableAttr().Mode == syscall.S_IFDIR
	// A commit of the file (an asynchronous RELEASE, a close on another
	// thread) waits until the rename is done and then uses the new path.
	// The queue's Commit never waits for a Pause, so this cannot deadlock.
	src.upMu.Lock()
	defer src.upMu.Unlock()
	defer func() {
		if errno == 0 {
			src.changed()
		}
	}()

	dst, dstExists, errno := np.probeChild(ctx, newName)
	if errno != 0 {
		return errno
	}
	if dstExists {
		if flags&renameNoReplace != 0 {
			return syscall.EEXIST
		}
		if errno := np.checkReplace(ctx, to, srcDir, dst); errno != 0 {
			return errno
		}
	}

	local, queued := src.isLocal(), false
	if !local {
		queued = n.fs.deferTree()
		if !queued {
			cctx, cancel := n.fs.call(ctx)
			err := n.fs.be.Rename(cctx, from, to, dstExists)
			cancel()
			switch {
			case err != nil && n.fs.unreachable(err):
				queued = true
			case err != nil:
				n.fs.log.Warn("rename failed", "from", from, "to", to, "err", err)
				return toErrno(err)
			default:
				src.rebase(ctx, to)
			}
		}
		if queued {
			if errno := n.queueRename(src, from, to, srcDir, dst, dstExists); errno != 0 {
				return errno
			}
		}
	} else if dstExists && (dst == nil || !dst.isLocal()) {
		// The local file replaces a remote one (rsync, editors: write a
		// temporary file, rename it over the original): its upload becomes
		// an edit of that file, which it skips if the content is the same.
		src.replaceRemote(ctx, to, dst)
	}
	n.fs.dropQueued(to)
	if dst != nil {
		dst.discard()
	}
	if _, err := n.fs.q.Rename(from, to); err != nil {
		n.fs.log.Warn("journal update failed", "from", from, "to", to, "err", err)
	}
	n.fs.live.rename(from, to)
	n.fs.inos.rename(from, to, srcDir)
	// Cached blocks belong to a path: they go with the old names.
	if srcDir {
		n.fs.store.Blocks.DropTree(from)
		n.fs.store.Blocks.DropTree(to)
	} else {
		n.fs.store.Blocks.Drop(from)
		n.fs.store.Blocks.Drop(to)
	}
	if n.fs.store != nil {
		n.fs.store.Index.Rename(from, to)
	}
	n.fs.dirs.rename(from, to, local, queued)
	src.mu.Lock()
	src.renamed = [2]string{from, to}
	src.mu.Unlock()
	return 0
}

// queueRename queues the server's half of a rename while it cannot be
// reached, with what the mount needs to show the result meanwhile and what
// the server must still have for the rename to go as made.
func (n *Node) queueRename(src *Node, from, to string, srcDir bool, dst *Node, dstExists bool) syscall.Errno {
	e := src.snapshot()
	rec := cache.Record{Change: cache.ChangeRename, Path: from, To: to, Dir: srcDir, Base: e.Version, Size: e.Size, Meta: e.Meta}
	if dstExists {
		if dst != nil {
			rec.ToBase = dst.snapshot().Version
		} else {
			dir, name := splitPath(to)
			de, _, _ := n.fs.dirs.lookupStale(dir, name)
			rec.ToBase = de.Version
		}
		if rec.ToBase == "" {
			// What the server has there is unknown: the rename must not
			// replace it, whatever it is.
			rec.ToBase = "unknown"
		}
	}
	return n.fs.queueChange(rec)
}

// childNode returns the node of a child the kernel knows, or nil.
func (n *Node) childNode(name string) *Node {
	if ch := n.GetChild(name); ch != nil {
		cn, _ := ch.Operations().(*Node)
		return cn
	}
	return nil
}

// probeChild tells whether name exists below n, with its node if it has one.
func (n *Node) probeChild(ctx context.Context, name string) (*Node, bool, syscall.Errno) {
	if cn := n.childNode(name); cn != nil {
		return cn, true, 0
	}
	if _, found, known := n.fs.dirs.lookup(n.path(), name); known {
		return nil, found, 0
	}
	p := n.childPath(name)
	if n.fs.deferTree() || n.fs.pending(p) {
		if _, found, known := n.fs.dirs.lookupStale(n.path(), name); known {
			return nil, found, 0
		}
	}
	cctx, cancel := n.fs.call(ctx)
	defer cancel()
	_, err := n.fs.be.Stat(cctx, p)
	switch errno := toErrno(err); {
	case errno == 0:
		return nil, true, 0
	case errno == syscall.ENOENT:
		return nil, false, 0
	case n.fs.unreachable(err):
		if _, found, known := n.fs.dirs.lookupStale(n.path(), name); known {
			return nil, found, 0
		}
		return nil, false, errno
	default:
		return nil, false, errno
	}
}

// checkReplace applies rename(2)'s rules for replacing the existing to.
func (n *Node) checkReplace(ctx context.Context, to string, srcDir bool, dst *Node) syscall.Errno {
	var dstDir bool
	if dst != nil {
		dstDir = dst.StableAttr().Mode == syscall.S_IFDIR
	} else if e, found, _ := n.fs.dirs.lookupStale(splitPath(to)); found && (n.fs.deferTree() || n.fs.pending(to)) {
		dstDir = e.IsDir
	} else {
		cctx, cancel := n.fs.call(ctx)
		e, err := n.fs.be.Stat(cctx, to)
		cancel()
		if err != nil {
			return toErrno(err)
		}
		dstDir = e.IsDir
	}
	switch {
	case srcDir && !dstDir:
		return syscall.ENOTDIR
	case !srcDir && dstDir:
		return syscall.EISDIR
	case dstDir && n.fs.q.Has(to):
		return syscall.ENOTEMPTY
	case dstDir && (n.fs.deferTree() || n.fs.pending(to)):
		entries, known := n.fs.dirs.stale(to)
		if !known {
			n.fs.log.Warn("rename over a directory while the server cannot be reached: it was never listed, so whether it is empty is unknown", "path", to)
			return syscall.EIO
		}
		if len(entries) > 0 {
			return syscall.ENOTEMPTY
		}
	case dstDir:
		cctx, cancel := n.fs.call(ctx)
		entries, err := n.fs.be.List(cctx, to)
		cancel()
		if err != nil {
			return toErrno(err)
		}
		if len(entries) > 0 {
			return syscall.ENOTEMPTY
		}
	}
	return 0
}

// rebase follows a queued edit of a file the server has just moved to to:
// the upload must replace the moved version, whatever version name the
// server gave it.
func (n *Node) rebase(ctx context.Context, to string) {
	n.mu.Lock()
	st := n.staged
	queued := st != nil && st.dirty && st.base != "" && !n.local
	n.mu.Unlock()
	if !queued {
		return
	}
	cctx, cancel := n.fs.call(ctx)
	e, err := n.fs.be.Stat(cctx, to)
	cancel()
	if err != nil || e.Version == "" {
		return
	}
	n.mu.Lock()
	st.base = e.Version
	n.mu.Unlock()
	if _, err := n.fs.q.SetMeta(n.path(), func(r *cache.Record) { r.Base = e.Version }); err != nil {
		n.fs.log.Warn("journal update failed", "path", to, "err", err)
	}
}

// replaceRemote makes a local file that is renamed over the server's file
// to an edit of that file: based on its version, with its entry, so the
// upload replaces it only if nobody changed it meanwhile, and only sends
// metadata if the content is the same.
func (n *Node) replaceRemote(ctx context.Context, to string, dst *Node) {
	var e backends.Entry
	found := false
	if dst != nil {
		e, found = dst.snapshot(), true
	} else {
		// The version the mount showed within the directory cache time is
		// the one the writer decided to replace (rsync compares with what
		// it listed): a newer one, from another client, must not be
		// replaced unseen, so a fresh Stat would be wrong as well as slow.
		dir, name := splitPath(to)
		if e, found, _ = n.fs.dirs.lookupWithin(dir, name, n.fs.opts.DirCacheTime); !found {
			cctx, cancel := n.fs.call(ctx)
			se, err := n.fs.be.Stat(cctx, to)
			cancel()
			if err != nil {
				e, found, _ = n.fs.dirs.lookupStale(dir, name)
			} else {
				e, found = se, true
			}
		}
		e = n.fs.resolve(to, e)
	}
	if !found || e.IsDir || e.Version == "" {
		// Unknown: the upload is a create, which keeps a conflict copy
		// rather than replace what it cannot see.
		return
	}
	n.mu.Lock()
	st := n.staged
	if st == nil {
		n.mu.Unlock()
		return
	}
	_, e.Name = splitPath(to)
	// The file keeps its own type and size: a regular file renamed over
	// a symlink is a regular file, and its upload says so.
	e.Meta.Type, e.Size = n.entry.Meta.Type, st.size
	n.local, st.base, n.entry = false, e.Version, e
	committed := st.committed
	n.mu.Unlock()
	if committed {
		if _, err := n.fs.q.SetMeta(n.path(), func(r *cache.Record) { r.Create, r.Base = false, e.Version }); err != nil {
			n.fs.log.Warn("journal update failed", "path", to, "err", err)
		}
	}
}
