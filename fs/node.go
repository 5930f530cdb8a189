package fs

import (
	"context"
	"os"
	"path"
	"sync"
	"syscall"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Node is one file, directory, symlink or special file of the mount.
//
// Lock order: upMu before mu. upMu serialises changes to the file's content
// (staging, upload); mu protects the fields below it and is never held
// during a remote call.
type Node struct {
	fusefs.Inode
	fs *fsys

	upMu sync.Mutex

	mu sync.Mutex
	// entry is the server's view, completed from the local index.
	entry backends.Entry
	// fetched is when entry was last read from the server.
	fetched time.Time
	// staged holds the file's content while a writer has changed it or a
	// handle needs it; nil otherwise.
	staged *staging
	// pending is metadata set while staged data waits for its upload.
	pending backends.Meta
	// local: created here and not yet on the server.
	local bool
	// unlinked: removed while still open; never uploaded again.
	unlinked bool
	// opens counts open handles.
	opens int
	// target is a symlink's target, once known.
	target string
	// cached is the server version whose content the kernel's page cache
	// holds; an open of the same version keeps the page cache.
	cached string
	// detached: built from a journal record, not in the tree yet.
	detached bool
	// renamed is the last rename of the node, from and to, set by Rename
	// under upMu: go-fuse moves the inode only after Rename returns, and
	// until then the tree still gives the old path (currentPath).
	renamed [2]string
	// seq is the journal sequence number of the last commit.
	seq uint64
	// links counts the names the node has beyond its first (hard links
	// made in this mount, on a server that has them).
	links uint32
	// ctime is when this mount last changed the node's metadata or name
	// (chmod, chown, utimens, rename, link); servers keep no ctime, so
	// the shown ctime is the later of this and the mtime.
	ctime time.Time
}

// nameMax is the longest name, in bytes, the mount takes (NAME_MAX): the
// kernel lets FUSE names run to 1024.
const nameMax = 255

// changed records a change of the node's metadata or name now (ctime).
func (n *Node) changed() {
	n.mu.Lock()
	n.ctime = time.Now()
	n.mu.Unlock()
}

// currentPath is the node's path for a commit: the tree's, or the new path
// of a rename that returned before go-fuse moved the inode. n.upMu must be
// held (Rename holds it, so no rename of the node is half done).
func (n *Node) currentPath() string {
	p := n.path()
	n.mu.Lock()
	defer n.mu.Unlock()
	if from, to := n.renamed[0], n.renamed[1]; to != "" {
		if p == from {
			return to
		}
		n.renamed = [2]string{}
	}
	return p
}

// kind returns the file type bits of an entry.
func kind(e backends.Entry) uint32 {
	switch {
	case e.IsDir:
		return syscall.S_IFDIR
	case e.Meta.Type == "symlink":
		return syscall.S_IFLNK
	case e.Meta.Type == "fifo":
		return syscall.S_IFIFO
	case e.Meta.Type == "socket":
		return syscall.S_IFSOCK
	}
	return syscall.S_IFREG
}

// path returns the node's path relative to the mount root.
func (n *Node) path() string {
	return n.Path(n.Root())
}

// childPath joins the node's path and a child's name.
func (n *Node) childPath(name string) string {
	return path.Join(n.path(), name)
}

// newChild makes (or reuses) the inode for the entry e named name below n.
// at is when e was read from the server.
func (n *Node) newChild(ctx context.Context, name string, e backends.Entry, at time.Time) *fusefs.Inode {
	mode := kind(e)
	if ch := n.GetChild(name); ch != nil {
		if cn, ok := ch.Operations().(*Node); ok && ch.StableAttr().Mode == mode {
			cn.refresh(e, at)
			return ch
		}
	}
	cn := &Node{fs: n.fs, entry: e, fetched: at}
	ino := n.fs.inos.get(n.childPath(name))
	return n.NewInode(ctx, cn, fusefs.StableAttr{Mode: mode, Ino: ino})
}

// refresh takes an entry read from the server at the time at, unless
// local data is newer.
func (n *Node) refresh(e backends.Entry, at time.Time) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.staged != nil || n.local || at.Before(n.fetched) || !n.fits(e) {
		return // local data, what the node has is newer, or another file's
	}
	if e.Version != n.entry.Version {
		n.target = ""
	}
	n.entry, n.fetched = e, at
}

// fits reports whether e can describe the node: an entry of another file
// type is of another file that took the node's path (a rename over it).
// A node that has no inode yet fits any entry.
func (n *Node) fits(e backends.Entry) bool {
	m := n.StableAttr().Mode
	return m == 0 || kind(e) == m
}

// snapshot returns the node's entry.
func (n *Node) snapshot() backends.Entry {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.entry
}

// fill writes the node's attributes into out. n.mu must be held.
func (n *Node) fill(out *fuse.Attr) {
	e := n.entry
	o := n.fs.opts
	out.Ino = n.StableAttr().Ino
	out.Mode = n.StableAttr().Mode
	out.Mode |= n.perm(out.Mode, e)
	out.Size = uint64(e.Size)
	if n.staged != nil {
		out.Size = uint64(n.staged.size)
	}
	if out.Mode&syscall.S_IFMT == syscall.S_IFLNK && n.target != "" {
		out.Size = uint64(len(n.target))
	}
	mtime := e.ModTime
	if e.Meta.MTime != nil {
		mtime = *e.Meta.MTime
	}
	if n.pending.MTime != nil {
		mtime = *n.pending.MTime
	}
	ctime := mtime
	if n.ctime.After(ctime) {
		ctime = n.ctime
	}
	out.SetTimes(&mtime, &mtime, &ctime)
	out.Uid, out.Gid = o.UID, o.GID
	if o.Privileged {
		if e.Meta.UID != nil {
			out.Uid = *e.Meta.UID
		}
		if e.Meta.GID != nil {
			out.Gid = *e.Meta.GID
		}
		if n.pending.UID != nil {
			out.Uid = *n.pending.UID
		}
		if n.pending.GID != nil {
			out.Gid = *n.pending.GID
		}
	}
	out.Nlink = 1 + n.links
	if out.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		// "." and the name in its parent, and ".." of each
		// subdirectory the mount knows of.
		out.Nlink = 2 + uint32(n.fs.dirs.subdirs(n.path()))
	}
	if n.unlinked {
		out.Nlink = 0
	}
	out.Blksize = 1 << 17
	out.Blocks = (out.Size + 511) / 512
}

// perm is the permission bits shown for a file of type mode with entry e:
// the stored mode, else the mount's default for its type, without the
// umask. Symbolic links default to 0777 and keep the umask's bits (the
// kernel ignores their mode). n.mu must be held.
func (n *Node) perm(mode uint32, e backends.Entry) uint32 {
	o := n.fs.opts
	perm, umask := o.FileMode, o.Umask
	switch mode {
	case syscall.S_IFDIR:
		perm = o.DirMode
	case syscall.S_IFLNK:
		perm, umask = 0o777, 0
	}
	if e.Meta.Mode != nil {
		perm = *e.Meta.Mode
	}
	if n.pending.Mode != nil {
		perm = *n.pending.Mode
	}
	return deniedPerm(mode, e, uint32(perm&^umask)&0o7777)
}

// Getattr implements fusefs.NodeGetattrer. Attributes older than the attribute
// timeout are read again from the server; if it cannot be reached, the last
// known ones are served.
func (n *Node) Getattr(ctx context.Context, f fusefs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	if errno := n.revalidate(ctx, n.fs.opts.DirCacheTime); errno != 0 {
		return errno
	}
	return n.attrOut(out)
}

// attrOut fills an attribute reply.
func (n *Node) attrOut(out *fuse.AttrOut) syscall.Errno {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.fill(&out.Attr)
	out.SetTimeout(n.fs.opts.AttrTimeout)
	return 0
}

// revalidate reads the node's entry again from the server when it is older
// than the attribute timeout and no local data is newer; a listing of the
// parent younger than listingAge answers instead. It answers ENOENT if the
// file is gone; other errors keep the last known entry (offline).
func (n *Node) revalidate(ctx context.Context, listingAge time.Duration) syscall.Errno {
	n.mu.Lock()
	stale := n.staged == nil && !n.local && !n.unlinked && time.Since(n.fetched) > n.fs.opts.AttrTimeout
	n.mu.Unlock()
	if !stale {
		return 0
	}
	p := n.path()
	if p != "" {
		// A recent listing of the parent (ls -l, file managers, rsync:
		// readdir, then a stat of every entry) answers.
		dir, name := splitPath(p)
		if e, found, known, at := n.fs.dirs.lookupAt(dir, name, listingAge); known {
			if !found {
				return syscall.ENOENT
			}
			if kind(e) == n.StableAttr().Mode {
				e.Name = name
				n.refresh(n.fs.resolve(p, e), at)
				return 0
			}
		}
	}
	if n.fs.stalled() || n.fs.pending(p) {
		// The server lets calls wait, or its entry is older than a
		// queued change: what is known answers.
		return 0
	}
	cctx, cancel := n.fs.call(ctx)
	e, err := n.fs.be.Stat(cctx, p)
	cancel()
	if err == nil {
		n.fs.answered()
	} else {
		n.fs.noteErr(err)
	}
	switch {
	case err == nil && kind(e) == n.StableAttr().Mode:
		if p == "" {
			e.Name = ""
		} else {
			dir, name := splitPath(p)
			e.Name = name
			n.fs.dirs.found(dir, name, e)
		}
		n.refresh(n.fs.resolve(p, e), time.Now())
	case toErrno(err) == syscall.ENOENT:
		return syscall.ENOENT
	case err != nil:
		n.fs.log.Debug("stat failed, serving cached attributes", "path", p, "err", err)
	}
	return 0
}

// Setattr implements fusefs.NodeSetattrer: truncate, utimens, chmod, chown.
func (n *Node) Setattr(ctx context.Context, f fusefs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	if n.fs.opts.ReadOnly {
		return syscall.EROFS
	}
	if n.denies(backends.DenyWrite) {
		return syscall.EACCES
	}
	var m backends.Meta
	if mt, ok := in.GetMTime(); ok {
		m.MTime = &mt
	}
	if mode, ok := in.GetMode(); ok {
		perm := os.FileMode(mode & 0o7777)
		m.Mode = &perm
	}
	uid, uok := in.GetUID()
	gid, gok := in.GetGID()
	if errno := n.checkChown(ctx, uid, uok, gid, gok, &m); errno != 0 {
		return errno
	}
	if size, ok := in.GetSize(); ok {
		if errno := n.truncate(ctx, int64(size), m); errno != 0 {
			return errno
		}
		m = backends.Meta{}
	}
	if errno := n.setMeta(ctx, m); errno != 0 {
		return errno
	}
	if !m.IsZero() {
		n.changed()
	}
	return n.attrOut(out)
}

// checkChown applies local-filesystem rules to an ownership change: a
// privileged daemon stores any owner; otherwise only the mount's own owner is
// accepted (as a no-op) and anything else is EPERM.
func (n *Node) checkChown(ctx context.Context, uid uint32, uok bool, gid uint32, gok bool, m *backends.Meta) syscall.Errno {
	o := n.fs.opts
	if o.Privileged {
		if uok {
			m.UID = &uid
		}
		if gok {
			m.GID = &gid
		}
		return 0
	}
	if (uok && uid != o.UID) || (gok && gid != o.GID) {
		return syscall.EPERM
	}
	return 0
}

// setMeta stores metadata changes: with the upload if content is waiting for
// one, else on the server or in the local index right away.
func (n *Node) setMeta(ctx context.Context, m backends.Meta) syscall.Errno {
	if m.IsZero() {
		return 0
	}
	p := n.path()
	n.mu.Lock()
	if n.staged != nil && (n.staged.dirty || n.local) || n.unlinked {
		n.pending.Merge(m)
		queued := n.staged != nil && n.staged.committed && !n.unlinked
		n.mu.Unlock()
		if queued {
			n.fs.queueMeta(p, m)
		}
		return 0
	}
	e := n.entry
	n.mu.Unlock()

	ne, err := n.fs.storeMeta(ctx, p, e, m, "")
	if err != nil {
		n.fs.log.Warn("storing metadata failed", "path", p, "err", err)
		return toErrno(err)
	}
	if p == "" {
		ne.Name = ""
	}
	n.mu.Lock()
	if n.fits(ne) {
		n.entry, n.fetched = ne, time.Now()
	}
	n.mu.Unlock()
	dir, name := splitPath(p)
	n.fs.dirs.update(dir, name, &ne)
	return 0
}
