package fs

import (
	"context"
	"os"
	"path"
	"sort"
	"syscall"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/cache"
	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Lookup implements fusefs.NodeLookuper. A fresh listing of the directory
// answers without a round trip, also for names that do not exist. The
// first name looked up in a directory without one costs a Stat; from the
// second on, the directory is listed instead, so that a tool that visits
// names one by one (rsync, cp -r onto the mount) pays one listing per
// directory rather than one per file.
func (n *Node) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if len(name) > nameMax {
		return nil, syscall.ENAMETOOLONG
	}
	if n.fs.reserved(name) {
		return nil, syscall.ENOENT
	}
	dir := n.path()
	p := n.childPath(name)
	ln := n.fs.live.get(p)
	if ch := n.GetChild(name); ch != nil {
		if cn, ok := ch.Operations().(*Node); ok && (cn.isLocal() || cn == ln) {
			return ch, cn.entryOut(out)
		}
	}
	if ln != nil {
		// Queued for upload: the local content is the truth.
		cn := n.fs.adopt(p, ln)
		ch := n.NewInode(ctx, cn, fusefs.StableAttr{Mode: kind(cn.snapshot()), Ino: n.fs.inos.get(p)})
		return ch, cn.entryOut(out)
	}
	e, found, known, at := n.fs.dirs.lookupAt(dir, name, n.fs.opts.DirCacheTime)
	// A listing being read answers too: waiting for it costs no request.
	// A directory entered from one whose listing the mount has is listed
	// at once: a walk (rsync, find) asks for its other names next.
	if !known && (n.fs.dirs.probed(dir) || n.fs.lists.busy(dir) || n.fs.dirs.walkedInto(dir)) &&
		n.fs.lists.failure(dir, n.fs.opts.DirCacheTime) == nil {
		if _, errno := n.list(ctx); errno == 0 {
			e, found, known, at = n.fs.dirs.lookupAt(dir, name, n.fs.opts.DirCacheTime)
		}
	}
	if !known && n.fs.pending(p) {
		// The server's entry is older than a queued change here.
		e, found, known = n.fs.dirs.lookupStale(dir, name)
	}
	if !known && n.fs.stalled() {
		// The server is not answering: what the mount knows answers,
		// the rest fails at once (see stalled).
		if e, found, known = n.fs.dirs.lookupStale(dir, name); !known {
			return nil, syscall.EIO
		}
	}
	if !known {
		at = time.Now()
		cctx, cancel := n.fs.call(ctx)
		var err error
		e, err = n.fs.be.Stat(cctx, p)
		cancel()
		switch {
		case err == nil:
			n.fs.answered()
			found = true
			e.Name = name
			n.fs.dirs.found(dir, name, e)
		case toErrno(err) == syscall.ENOENT:
			n.fs.dirs.absent(dir, name)
		case n.fs.Offline(err):
			n.fs.noteErr(err)
			// Offline: answer from the last listing, however old.
			if e, found, known = n.fs.dirs.lookupStale(dir, name); !known {
				n.fs.log.Warn("lookup failed", "path", p, "err", err)
				return nil, toErrno(err)
			}
		default:
			n.fs.log.Warn("lookup failed", "path", p, "err", err)
			return nil, toErrno(err)
		}
	}
	if !found {
		out.SetEntryTimeout(n.fs.opts.DirCacheTime)
		return nil, syscall.ENOENT
	}
	e.Name = name
	ch := n.newChild(ctx, name, n.fs.resolve(p, e), at)
	return ch, ch.Operations().(*Node).entryOut(out)
}

// isLocal reports whether the node exists only here so far (being written).
func (n *Node) isLocal() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.local
}

// entryOut fills a lookup reply.
func (n *Node) entryOut(out *fuse.EntryOut) syscall.Errno {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fill(&out.Attr)
	out.SetEntryTimeout(n.fs.opts.AttrTimeout)
	out.SetAttrTimeout(n.fs.opts.AttrTimeout)
	return 0
}

// Readdir implements fusefs.NodeReaddirer: the server's listing, merged with
// files created here that are not on the server yet.
func (n *Node) Readdir(ctx context.Context) (fusefs.DirStream, syscall.Errno) {
	dir := n.path()
	// What is local or queued is taken before the server's listing: a file
	// whose upload ends meanwhile is then in one or the other.
	queued := n.fs.q.List(dir)
	var local []fuse.DirEntry
	for name, ch := range n.Children() {
		if cn, ok := ch.Operations().(*Node); ok && cn.isLocal() {
			local = append(local, fuse.DirEntry{Name: name, Mode: ch.StableAttr().Mode, Ino: ch.StableAttr().Ino})
		}
	}
	entries, errno := n.list(ctx)
	if errno != 0 {
		return nil, errno
	}
	seen := make(map[string]bool, len(entries))
	list := make([]fuse.DirEntry, 0, len(entries))
	for _, e := range entries {
		p := n.childPath(e.Name)
		e = n.fs.resolve(p, e)
		seen[e.Name] = true
		list = append(list, fuse.DirEntry{Name: e.Name, Mode: kind(e), Ino: n.fs.inos.get(p)})
	}
	for _, de := range local {
		if !seen[de.Name] {
			seen[de.Name] = true
			list = append(list, de)
		}
	}
	for _, rec := range queued {
		name := path.Base(rec.Path)
		if !seen[name] {
			e := backends.Entry{Meta: rec.Meta}
			list = append(list, fuse.DirEntry{Name: name, Mode: kind(e), Ino: n.fs.inos.get(rec.Path)})
		}
	}
	sort.Slice(list, func(i, j int) bool { return list[i].Name < list[j].Name })
	return fusefs.NewListDirStream(list), 0
}

// list returns the directory's listing: the last one read if it is younger
// than the directory cache time, else the server's, or while the server
// cannot be reached, the last one seen. One listing of a directory is read
// at a time (listFlights); one that failed answers for the directory cache
// time.
func (n *Node) list(ctx context.Context) ([]backends.Entry, syscall.Errno) {
	return n.fs.listDir(ctx, n.path())
}

// listDir returns the listing of dir: from the cache while it is fresh (or
// while a change queued here is newer than the server's), else from the
// server, joining a listing of it already in flight.
func (f *fsys) listDir(ctx context.Context, dir string) ([]backends.Entry, syscall.Errno) {
	if entries, ok := f.dirs.fresh(dir); ok {
		return entries, 0
	}
	if f.pending(dir) || f.stalled() {
		// The server's listing is older than a queued change here, or
		// the server is not answering (see stalled).
		if entries, ok := f.dirs.stale(dir); ok {
			return entries, 0
		}
	}
	if f.stalled() {
		return nil, syscall.EIO
	}
	if err := f.lists.failure(dir, f.opts.DirCacheTime); err != nil {
		return nil, toErrno(err)
	}
	entries, err := f.lists.do(ctx, dir, func() ([]backends.Entry, error) {
		cctx, cancel := f.call(ctx)
		defer cancel()
		asked := time.Now()
		entries, err := f.be.List(cctx, dir)
		switch {
		case err == nil:
			f.answered()
			f.dirs.put(dir, entries, asked)
			f.lists.forget(dir)
			f.descended(dir)
		case f.Offline(err):
			f.noteErr(err)
		default:
			f.lists.fail(dir, err)
		}
		return entries, err
	})
	if err != nil {
		if f.Offline(err) {
			if old, ok := f.dirs.stale(dir); ok {
				f.log.Debug("server unreachable: listing from cache", "path", dir, "err", err)
				return old, 0
			}
		}
		f.log.Warn("listing failed", "path", dir, "err", err)
		return nil, toErrno(err)
	}
	return entries, 0
}

// creator returns the owner to store for a new file: the caller's, when the
// daemon is privileged.
func (n *Node) creator(ctx context.Context, mode uint32) backends.Meta {
	perm := os.FileMode(mode & 0o7777)
	m := backends.Meta{Mode: &perm}
	if c, ok := fuse.FromContext(ctx); ok && n.fs.opts.Privileged {
		uid, gid := c.Uid, c.Gid
		m.UID, m.GID = &uid, &gid
	}
	return m
}

// newLocal creates a node that exists only here until its first upload.
func (n *Node) newLocal(ctx context.Context, name string, mode uint32, m backends.Meta) (*Node, *fusefs.Inode, error) {
	st, err := newStaging(n.fs.store.Journal, "")
	if err != nil {
		return nil, nil, err
	}
	now := time.Now()
	m.MTime = &now
	cn := &Node{fs: n.fs, staged: st, local: true, pending: m, fetched: now,
		entry: backends.Entry{Name: name, ModTime: now, Meta: backends.Meta{Type: m.Type}}}
	p := n.childPath(name)
	n.fs.inos.forget(p)
	ch := n.NewInode(ctx, cn, fusefs.StableAttr{Mode: mode & syscall.S_IFMT, Ino: n.fs.inos.get(p)})
	return cn, ch, nil
}

// Create implements fusefs.NodeCreater. The file is uploaded when it is
// closed, so create, write, chmod and utimens become one upload.
func (n *Node) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, fusefs.FileHandle, uint32, syscall.Errno) {
	if len(name) > nameMax {
		return nil, nil, 0, syscall.ENAMETOOLONG
	}
	if n.fs.opts.ReadOnly {
		return nil, nil, 0, syscall.EROFS
	}
	if n.denies(backends.DenyCreateFile) {
		return nil, nil, 0, syscall.EACCES
	}
	if n.fs.reserved(name) {
		return nil, nil, 0, syscall.EACCES
	}
	cn, ch, err := n.newLocal(ctx, name, syscall.S_IFREG, n.creator(ctx, mode))
	if err != nil {
		return nil, nil, 0, toErrno(err)
	}
	cn.mu.Lock()
	cn.opens++
	cn.mu.Unlock()
	n.fs.dirs.update(n.path(), name, nil)
	cn.entryOut(out)
	return ch, &handle{n: cn, write: true}, 0, 0
}

// Mknod implements fusefs.NodeMknoder for FIFOs and sockets, stored as
// empty files marked with their type.
func (n *Node) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if len(name) > nameMax {
		return nil, syscall.ENAMETOOLONG
	}
	if n.fs.opts.ReadOnly {
		return nil, syscall.EROFS
	}
	if n.denies(backends.DenyCreateFile) {
		return nil, syscall.EACCES
	}
	if n.fs.reserved(name) {
		return nil, syscall.EACCES
	}
	m := n.creator(ctx, mode)
	switch mode & syscall.S_IFMT {
	case syscall.S_IFIFO:
		m.Type = "fifo"
	case syscall.S_IFSOCK:
		m.Type = "socket"
	case syscall.S_IFREG:
	default:
		return nil, syscall.EPERM
	}
	return n.createSpecial(ctx, name, mode&syscall.S_IFMT, nil, m, out)
}

// Symlink implements fusefs.NodeSymlinker: a small file holding the target,
// marked as a symlink.
func (n *Node) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if len(name) > nameMax {
		return nil, syscall.ENAMETOOLONG
	}
	if n.fs.opts.ReadOnly {
		return nil, syscall.EROFS
	}
	if n.denies(backends.DenyCreateFile) {
		return nil, syscall.EACCES
	}
	if n.fs.reserved(name) {
		return nil, syscall.EACCES
	}
	if n.fs.caps.Symlinks {
		return n.nativeSymlink(ctx, target, name, out)
	}
	m := n.creator(ctx, 0o777)
	m.Type = "symlink"
	ch, errno := n.createSpecial(ctx, name, syscall.S_IFLNK, []byte(target), m, out)
	if errno == 0 {
		cn := ch.Operations().(*Node)
		cn.mu.Lock()
		cn.target = target
		cn.mu.Unlock()
	}
	return ch, errno
}

// nativeSymlink makes a symbolic link on a server that has them, at once.
func (n *Node) nativeSymlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	sl, ok := n.fs.be.(backends.Symlinker)
	if !ok {
		return nil, syscall.ENOTSUP
	}
	p := n.childPath(name)
	cctx, cancel := n.fs.call(ctx)
	defer cancel()
	e, err := sl.Symlink(cctx, target, p)
	if err != nil {
		return nil, toErrno(err)
	}
	e.Name, e.Meta.Type, e.LinkTarget = name, "symlink", target
	n.fs.inos.forget(p)
	n.fs.dirs.update(n.path(), name, &e)
	ch := n.newChild(ctx, name, n.fs.resolve(p, e), time.Now())
	return ch, ch.Operations().(*Node).entryOut(out)
}

// createSpecial uploads a small file of the given type at once.
func (n *Node) createSpecial(ctx context.Context, name string, typ uint32, content []byte, m backends.Meta, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	cn, ch, err := n.newLocal(ctx, name, typ, m)
	if err != nil {
		return nil, toErrno(err)
	}
	if len(content) > 0 {
		if _, err := cn.staged.file.WriteAt(content, 0); err != nil {
			cn.staged.discard()
			return nil, toErrno(err)
		}
		cn.staged.size = int64(len(content))
	}
	cn.upMu.Lock()
	defer cn.upMu.Unlock()
	if errno := cn.commitLocked(n.childPath(name)); errno != 0 {
		cn.staged.discard()
		cn.staged = nil
		return nil, errno
	}
	return ch, cn.entryOut(out)
}

// Readlink implements fusefs.NodeReadlinker.
func (n *Node) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	n.mu.Lock()
	target := n.target
	n.mu.Unlock()
	if target != "" {
		return []byte(target), 0
	}
	if n.fs.caps.Symlinks {
		n.mu.Lock()
		target = n.entry.LinkTarget
		n.mu.Unlock()
		if target == "" {
			return nil, syscall.EIO
		}
		return []byte(target), 0
	}
	h := &handle{n: n}
	defer h.rd.close()
	buf := make([]byte, 4096)
	r, errno := h.Read(ctx, buf, 0)
	if errno != 0 {
		return nil, errno
	}
	data, _ := r.Bytes(buf)
	n.mu.Lock()
	n.target = string(data)
	n.mu.Unlock()
	return data, 0
}

// Mkdir implements fusefs.NodeMkdirer.
func (n *Node) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if len(name) > nameMax {
		return nil, syscall.ENAMETOOLONG
	}
	if n.fs.opts.ReadOnly {
		return nil, syscall.EROFS
	}
	if n.denies(backends.DenyCreateDir) {
		return nil, syscall.EACCES
	}
	if n.fs.reserved(name) {
		return nil, syscall.EACCES
	}
	p := n.childPath(name)
	m := n.creator(ctx, mode)
	if *m.Mode == n.fs.opts.DirMode && m.UID == nil {
		m = backends.Meta{} // what a directory without a stored mode shows
	}
	cctx, cancel := n.fs.call(ctx)
	defer cancel()
	var e backends.Entry
	queued := n.fs.deferTree()
	if !queued {
		err := n.fs.be.Mkdir(cctx, p)
		switch {
		case err != nil && n.fs.unreachable(err):
			queued = true
		case err != nil:
			return nil, toErrno(err)
		default:
			if e, err = n.fs.be.Stat(cctx, p); err != nil {
				e = backends.Entry{Name: name, IsDir: true, ModTime: time.Now()}
			}
			if e, err = n.fs.storeMeta(ctx, p, e, m, ""); err != nil {
				n.fs.log.Warn("storing directory metadata failed", "path", p, "err", err)
			}
		}
	}
	if queued {
		if errno := n.fs.queueChange(cache.Record{Change: cache.ChangeMkdir, Path: p, Dir: true, Meta: m}); errno != 0 {
			return nil, errno
		}
		e = backends.Entry{IsDir: true, ModTime: time.Now(), Meta: m}
	}
	e.Name = name
	n.fs.inos.forget(p)
	n.fs.dirs.update(n.path(), name, &e)
	n.fs.dirs.put(p, nil, time.Now()) // new and empty: lookups inside need no round trip
	ch := n.newChild(ctx, name, e, time.Now())
	return ch, ch.Operations().(*Node).entryOut(out)
}

// Link implements fusefs.NodeLinker on servers with hard links: what was
// written to the file is uploaded first (the server links what it has),
// then the server makes the new name. Both names are one inode here, as
// they are there. Elsewhere link(2) fails with ENOTSUP.
func (n *Node) Link(ctx context.Context, target fusefs.InodeEmbedder, name string, out *fuse.EntryOut) (*fusefs.Inode, syscall.Errno) {
	if len(name) > nameMax {
		return nil, syscall.ENAMETOOLONG
	}
	if n.fs.opts.ReadOnly {
		return nil, syscall.EROFS
	}
	if n.denies(backends.DenyCreateFile) {
		return nil, syscall.EACCES
	}
	if n.fs.reserved(name) {
		return nil, syscall.EACCES
	}
	lk, ok := n.fs.be.(backends.Linker)
	tn, isNode := target.(*Node)
	if !ok || !n.fs.caps.HardLinks || !isNode {
		return nil, syscall.ENOTSUP
	}
	if tn.IsDir() {
		return nil, syscall.EPERM
	}
	if errno := tn.commit(); errno != 0 {
		return nil, errno
	}
	if err := n.fs.q.Flush(); err != nil {
		return nil, toErrno(err)
	}
	if errno := tn.waitUploaded(ctx, "link"); errno != 0 {
		return nil, errno
	}
	p := n.childPath(name)
	cctx, cancel := n.fs.call(ctx)
	defer cancel()
	e, err := lk.Link(cctx, tn.path(), p)
	if err != nil {
		return nil, toErrno(err)
	}
	e.Name = name
	n.fs.dirs.update(n.path(), name, &e)
	tn.mu.Lock()
	tn.links++
	tn.mu.Unlock()
	return tn.EmbeddedInode(), tn.entryOut(out)
}

// unlinkName removes one name of a node that has others: the server
// forgets that name, the node lives on under the others.
func (n *Node) unlinkName(ctx context.Context, cn *Node, p string) syscall.Errno {
	if errno := n.removeRemote(ctx, p, false, ""); errno != 0 {
		return errno
	}
	cn.mu.Lock()
	cn.links--
	cn.mu.Unlock()
	dir, name := splitPath(p)
	n.fs.dirs.update(dir, name, nil)
	n.fs.store.Blocks.Drop(p)
	return 0
}

// Unlink implements fusefs.NodeUnlinker. An open file stays readable and
// writable through its handles: its content is kept locally first. A queued
// upload of the file is dropped.
func (n *Node) Unlink(ctx context.Context, name string) syscall.Errno {
	if n.fs.opts.ReadOnly {
		return syscall.EROFS
	}
	if n.childNode(name).denies(backends.DenyDelete) {
		return syscall.EACCES
	}
	p := n.childPath(name)
	resume := n.fs.q.Pause(p)
	defer resume()
	cn := n.childNode(name)
	if cn == nil {
		cn = n.fs.live.get(p) // queued, its inode forgotten
	}
	if cn != nil {
		cn.mu.Lock()
		more := cn.links > 0
		cn.mu.Unlock()
		if more {
			return n.unlinkName(ctx, cn, p)
		}
		cn.upMu.Lock()
		cn.mu.Lock()
		local, open := cn.local, cn.opens > 0
		queued := cn.staged != nil && cn.staged.dirty
		cn.mu.Unlock()
		if open && !local {
			if err := cn.ensureStaged(ctx, -1); err != nil {
				cn.upMu.Unlock()
				return toErrno(err)
			}
		}
		if !local {
			if errno := n.removeRemote(ctx, p, false, cn.snapshot().Version); errno != 0 && !(queued && errno == syscall.ENOENT) {
				cn.upMu.Unlock()
				return errno
			}
		}
		cn.upMu.Unlock()
	} else {
		e, _, _ := n.fs.dirs.lookupStale(n.path(), name)
		if errno := n.removeRemote(ctx, p, false, e.Version); errno != 0 {
			return errno
		}
	}
	n.fs.dropQueued(p)
	if cn != nil {
		cn.discard()
	}
	n.forgetPath(p)
	n.fs.store.Blocks.Drop(p)
	return 0
}

// discard marks a removed or replaced node: never uploaded again, its
// staging file gone once no handle needs it.
func (n *Node) discard() {
	n.upMu.Lock()
	defer n.upMu.Unlock()
	n.mu.Lock()
	n.unlinked, n.local = true, false
	n.mu.Unlock()
	n.dropStagingLocked()
}

// dropQueued drops the queued uploads at and below p (removed or replaced
// here) and discards their nodes. The caller holds a Pause of p.
func (f *fsys) dropQueued(p string) {
	recs, err := f.q.Remove(p)
	if err != nil {
		f.log.Warn("journal update failed", "path", p, "err", err)
	}
	held := map[string]bool{}
	for _, ln := range f.live.take(p) {
		ln.mu.Lock()
		if ln.staged != nil {
			held[ln.staged.file.Name()] = true
		}
		ln.mu.Unlock()
		ln.discard()
	}
	for _, r := range recs {
		if name := f.store.StagedFile(r); !held[name] {
			os.Remove(name)
		}
	}
}

// Rmdir implements fusefs.NodeRmdirer.
func (n *Node) Rmdir(ctx context.Context, name string) syscall.Errno {
	if n.fs.opts.ReadOnly {
		return syscall.EROFS
	}
	if n.childNode(name).denies(backends.DenyDelete) {
		return syscall.EACCES
	}
	p := n.childPath(name)
	if n.fs.q.Has(p) {
		return syscall.ENOTEMPTY
	}
	if errno := n.removeRemote(ctx, p, true, ""); errno != 0 {
		return errno
	}
	n.forgetPath(p)
	n.fs.store.Blocks.DropTree(p)
	return 0
}

// removeRemote removes p on the server or, while the server cannot be
// reached, queues its removal. base is the version of the file removed
// ("" if unknown): a file changed on the server meanwhile is kept. A
// directory's removal is queued only if its last listing, with this
// mount's changes, is empty.
func (n *Node) removeRemote(ctx context.Context, p string, dir bool, base string) syscall.Errno {
	if !n.fs.deferTree() {
		cctx, cancel := n.fs.call(ctx)
		err := n.fs.be.Remove(cctx, p)
		cancel()
		if err == nil {
			return 0
		}
		if !n.fs.unreachable(err) {
			if errno := toErrno(err); errno != syscall.ENOTEMPTY {
				n.fs.log.Warn("remove failed", "path", p, "err", err)
			}
			return toErrno(err)
		}
	}
	if dir {
		entries, known := n.fs.dirs.stale(p)
		switch {
		case !known:
			n.fs.log.Warn("rmdir while the server cannot be reached: the directory was never listed, so whether it is empty is unknown", "path", p)
			return syscall.EIO
		case len(entries) > 0:
			return syscall.ENOTEMPTY
		}
	}
	return n.fs.queueChange(cache.Record{Change: cache.ChangeRemove, Path: p, Dir: dir, Base: base})
}

// forgetPath drops everything remembered about a removed path.
func (n *Node) forgetPath(p string) {
	dir, name := splitPath(p)
	n.fs.dirs.update(dir, name, nil)
	n.fs.dirs.forgetTree(p)
	n.fs.inos.forget(p)
	if n.fs.store != nil {
		n.fs.store.Index.Remove(p)
	}
}
