package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path"
	"strings"
	"syscall"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/cache"
	fusefs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// Open implements fusefs.NodeOpener. O_TRUNC empties the staged content;
// the upload waits for close like any other write.
func (n *Node) Open(ctx context.Context, flags uint32) (fusefs.FileHandle, uint32, syscall.Errno) {
	write := flags&syscall.O_ACCMODE != syscall.O_RDONLY
	if write && n.fs.opts.ReadOnly {
		return nil, 0, syscall.EROFS
	}
	if write && n.denies(backends.DenyWrite) {
		return nil, 0, syscall.EACCES
	}
	if errno := n.revalidate(ctx, n.fs.opts.AttrTimeout); errno != 0 {
		return nil, 0, errno
	}
	n.mu.Lock()
	n.opens++
	n.mu.Unlock()
	if write && flags&syscall.O_TRUNC != 0 {
		if errno := n.truncate(ctx, 0, backends.Meta{}); errno != 0 {
			n.mu.Lock()
			n.opens--
			n.mu.Unlock()
			return nil, 0, errno
		}
	}
	var fuseFlags uint32
	n.mu.Lock()
	if v := contentVersion(n.entry); n.staged == nil && v != "" {
		if v == n.cached {
			fuseFlags |= fuse.FOPEN_KEEP_CACHE
		}
		n.cached = v
	}
	n.mu.Unlock()
	return &handle{n: n, write: write}, fuseFlags, 0
}

// ensureStaged gives the node a staging file holding its current content,
// downloading it unless keep is 0 (the caller is about to truncate). n.upMu
// must be held.
func (n *Node) ensureStaged(ctx context.Context, keep int64) error {
	n.mu.Lock()
	if n.staged != nil {
		n.mu.Unlock()
		return nil
	}
	base, size := n.entry.Version, n.entry.Size
	n.mu.Unlock()

	st, err := newStaging(n.fs.store.Journal, base)
	if err != nil {
		return err
	}
	if keep != 0 && size > 0 {
		if err := n.download(ctx, st, base, size); err != nil {
			st.discard()
			return err
		}
	}
	n.mu.Lock()
	n.staged = st
	n.mu.Unlock()
	return nil
}

// download copies the server's content of the node, its version base of
// size bytes as its entry says, into st. A reply of another length is an
// error: the edit would otherwise start from bytes of another version.
func (n *Node) download(ctx context.Context, st *staging, base string, size int64) error {
	p := n.path()
	rc, err := n.fs.openStream(ctx, cache.Key{Path: p, Version: base, Size: size}, 0, -1)
	if err != nil {
		return err
	}
	defer rc.Close()
	written, err := io.Copy(io.MultiWriter(st.file, st.h), rc)
	if err != nil {
		return fmt.Errorf("download %s: %w", p, err)
	}
	if written != size {
		return fmt.Errorf("download %s: %w: %d bytes arrived, the listing says %d", p, backends.ErrProtocol, written, size)
	}
	st.size, st.hashed = written, written
	return nil
}

// truncate sets the file's size. Without an open writer the change is
// uploaded at once, as truncate(1) expects.
func (n *Node) truncate(ctx context.Context, size int64, m backends.Meta) syscall.Errno {
	n.upMu.Lock()
	defer n.upMu.Unlock()
	if err := n.ensureStaged(ctx, size); err != nil {
		return toErrno(err)
	}
	n.mu.Lock()
	if err := n.staged.truncate(size); err != nil {
		n.mu.Unlock()
		return toErrno(err)
	}
	now := time.Now()
	n.pending.MTime = &now
	n.pending.Merge(m)
	open := n.opens > 0
	n.mu.Unlock()
	if open {
		return 0
	}
	return n.commitLocked(n.currentPath())
}

// dropStagingLocked removes a staging file that no handle needs and that
// holds nothing the server lacks (or belongs to an unlinked file).
// n.upMu must be held.
func (n *Node) dropStagingLocked() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.staged != nil && (!n.staged.dirty || n.unlinked) && n.opens == 0 {
		n.staged.discard()
		n.staged = nil
	}
}

// commit makes changed content durable in the journal and queues its
// upload.
func (n *Node) commit() syscall.Errno {
	n.upMu.Lock()
	defer n.upMu.Unlock()
	return n.commitLocked(n.currentPath())
}

// uploadTo sends staged content to p, the node's path; n.upMu must be
// held. The upload carries all of the file's metadata. A server version that
// changed since the content was read sends the content to a conflict copy
// beside the file, so that neither version is lost; its path is returned.
func (n *Node) uploadTo(ctx context.Context, p string) (string, error) {
	n.mu.Lock()
	st := n.staged
	if st == nil || n.unlinked || (!st.dirty && !n.local) {
		n.mu.Unlock()
		return "", nil
	}
	meta := n.entry.Meta
	meta.Merge(n.pending)
	sent := n.pending
	local, size := n.local, st.size
	n.mu.Unlock()
	// Writes wait on upMu, which is held: the content cannot change.
	sum, err := st.sum()
	if err != nil {
		return "", fmt.Errorf("%w: %w", errLocalData, err)
	}
	meta.SHA256 = sum
	if !local {
		if done, err := n.skipUnchanged(ctx, p, st, size, &meta, sent); done {
			return "", err
		}
	}

	n.mu.Lock()
	linked := n.links > 0
	n.mu.Unlock()
	opts := backends.PutOptions{Meta: meta, IfNoneMatch: local, IfMatch: st.base, InPlace: linked}
	e, err := n.put(ctx, p, st, size, opts)
	if errors.Is(err, errSentOther) {
		// The server has exactly the staged bytes, under a hash that is
		// not theirs: take its version as the base and send them again
		// with their own hash.
		n.fs.log.Error("the hash recorded for a staged file differs from its bytes; uploading it again", "path", p)
		n.settle(p, st, n.fs.resolve(p, e), backends.Meta{})
		n.mu.Lock()
		st.dirty = true
		n.mu.Unlock()
		return "", err
	}
	if errors.Is(err, backends.ErrPrecondition) || (local && errors.Is(err, backends.ErrExist)) {
		if pe, ok := n.ownPartial(ctx, p, st, size); ok {
			// An earlier attempt of this upload, cut off (a crash, a reset)
			// on a server that writes a PUT in place: finish it.
			n.fs.log.Info("the server holds the start of this file from an interrupted upload; uploading it again", "path", p, "bytes_there", pe.Size, "size", size)
			opts.IfMatch, opts.IfNoneMatch = pe.Version, false
			e, err = n.put(ctx, p, st, size, opts)
		}
	}
	if errors.Is(err, backends.ErrPrecondition) || (local && errors.Is(err, backends.ErrExist)) {
		if done, aerr := n.adoptIdentical(ctx, p, st, size, meta, sent); done {
			return "", aerr
		}
		cp := conflictName(p, time.Now())
		n.fs.log.Warn("the server's copy changed while it was edited here; keeping both", "path", p, "conflict_copy", cp)
		opts.IfMatch, opts.IfNoneMatch = "", true
		if _, cerr := n.put(ctx, cp, st, size, opts); cerr != nil && !errors.Is(cerr, backends.ErrMetaNotStored) {
			return "", fmt.Errorf("upload conflict copy %s: %w", cp, cerr)
		}
		cctx, cancel := n.fs.call(ctx)
		e, err = n.fs.be.Stat(cctx, p)
		cancel()
		if err != nil {
			e = backends.Entry{Name: path.Base(p)}
		}
		dir, name := splitPath(cp)
		n.fs.dirs.update(dir, name, nil)
		n.fs.dirs.forgetTree(dir)
		n.mu.Lock()
		st.dirty, n.local, n.pending = false, false, backends.Meta{}
		st.discard()
		n.staged = nil
		if e := n.fs.resolve(p, e); n.fits(e) {
			n.entry, n.fetched = e, time.Now()
		}
		n.mu.Unlock()
		return cp, nil
	}
	if errors.Is(err, backends.ErrMetaNotStored) {
		// The content is stored but its metadata is not (a second
		// request failed): keep all of it pending, and fail this attempt
		// so that the queue retries, which then sends only it.
		n.settle(p, st, n.fs.resolve(p, e), backends.Meta{})
		return "", fmt.Errorf("upload %s: %w; retrying", p, err)
	}
	if err != nil {
		return "", err
	}
	if _, local := n.fs.split(meta); !local.IsZero() {
		if ierr := n.fs.store.Index.Set(p, e, local); ierr != nil {
			n.fs.log.Warn("metadata index write failed", "path", p, "err", ierr)
		}
	}
	n.settle(p, st, n.fs.resolve(p, e), sent)
	return "", nil
}

// ownPartial reports whether the server's file at p holds a proper prefix
// of the staged content: what a server that writes uploads in place (rclone
// serve) keeps of an upload cut off by a crash or a reset. Replacing it
// loses nothing, as its bytes are the start of the content that replaces
// it. It returns the server's entry (its version to replace).
func (n *Node) ownPartial(ctx context.Context, p string, st *staging, size int64) (backends.Entry, bool) {
	cctx, cancel := n.fs.call(ctx)
	e, err := n.fs.be.Stat(cctx, p)
	cancel()
	if err != nil || e.IsDir || e.Size >= size || e.Version == "" {
		return e, false
	}
	return e, n.serverHasPrefix(ctx, p, st, e)
}

// serverHasPrefix reports whether the server's file at p, of entry e,
// holds the first e.Size bytes of the staged content, reading it.
func (n *Node) serverHasPrefix(ctx context.Context, p string, st *staging, e backends.Entry) bool {
	if e.Size == 0 {
		return true
	}
	rc, err := n.fs.openStream(ctx, cache.Key{Path: p, Version: e.Version, Size: e.Size}, 0, -1)
	if err != nil {
		return false
	}
	defer rc.Close()
	there := make([]byte, 1<<20)
	here := make([]byte, 1<<20)
	var off int64
	for off < e.Size {
		k, rerr := io.ReadFull(rc, there[:min(int64(len(there)), e.Size-off)])
		if k > 0 {
			if _, err := st.file.ReadAt(here[:k], off); err != nil || !bytes.Equal(here[:k], there[:k]) {
				return false
			}
			off += int64(k)
		}
		if rerr != nil {
			break
		}
	}
	return off == e.Size
}

// adoptIdentical settles a conflict that is none: the server's file at p
// changed since the staged content was read (or appeared, for a new file),
// but now holds exactly the staged bytes, as when a second machine copies
// the same tree. The server's version is taken with the local metadata
// (meta, whose SHA256 is that of the staged bytes), and no conflict copy
// is made. The decision is made from the bytes: the hash the server keeps
// for its version, the one its Hasher computes, or else its content read
// and compared. It reports whether it settled the upload.
func (n *Node) adoptIdentical(ctx context.Context, p string, st *staging, size int64, meta, sent backends.Meta) (bool, error) {
	cctx, cancel := n.fs.call(ctx)
	e, err := n.fs.be.Stat(cctx, p)
	cancel()
	e = n.fs.resolve(p, e)
	if err != nil || e.IsDir || e.Size != size || e.Version == "" || e.Meta.Type != meta.Type {
		return false, nil
	}
	// The hash stored with the adopted version must be that of the bytes
	// (as in skipUnchanged), not the running one.
	sum, err := st.resum()
	if err != nil {
		return true, fmt.Errorf("%w: %w", errLocalData, err)
	}
	meta.SHA256 = sum
	same := false
	switch h, ok := n.fs.be.(backends.Hasher); {
	case e.Meta.SHA256 != "":
		same = e.Meta.SHA256 == meta.SHA256
	case ok && n.fs.caps.Hashes:
		cctx, cancel := n.fs.call(ctx)
		sum, herr := h.SHA256(cctx, p)
		cancel()
		same = herr == nil && sum == meta.SHA256
	default:
		same = n.serverHasPrefix(ctx, p, st, e)
	}
	if !same {
		return false, nil
	}
	ne, err := n.fs.storeMeta(ctx, p, e, meta, e.Version)
	if errors.Is(err, backends.ErrPrecondition) {
		return false, nil // changed again meanwhile: a real conflict
	}
	if err != nil {
		return true, fmt.Errorf("store metadata of %s: %w", p, err)
	}
	n.fs.log.Info("the server's copy changed while it was edited here, to exactly this content: no conflict", "path", p)
	ne.Name = e.Name
	n.settle(p, st, ne, sent)
	return true, nil
}

// settle records that the server now has the staged content as version e:
// the staging file is clean, and e is the node's entry and its listing's.
// sent is the pending metadata the upload carried; what was set during the
// upload stays pending.
func (n *Node) settle(p string, st *staging, e backends.Entry, sent backends.Meta) {
	n.mu.Lock()
	st.dirty, st.committed, st.base, n.local = st.changed, false, e.Version, false
	n.pending = unsent(n.pending, sent)
	if n.fits(e) {
		n.cached = contentVersion(e)
		n.entry, n.fetched = e, time.Now()
	}
	n.mu.Unlock()
	dir, name := splitPath(p)
	n.fs.dirs.update(dir, name, &e)
}

// unsent returns the fields of pending that changed since sent was taken
// from it (Merge replaces pointers, so a changed field is another pointer).
func unsent(pending, sent backends.Meta) backends.Meta {
	var m backends.Meta
	if pending.MTime != sent.MTime {
		m.MTime = pending.MTime
	}
	if pending.Mode != sent.Mode {
		m.Mode = pending.Mode
	}
	if pending.UID != sent.UID {
		m.UID = pending.UID
	}
	if pending.GID != sent.GID {
		m.GID = pending.GID
	}
	return m
}

// skipUnchanged stores only the metadata when the server's current version
// already has the staged content: cp over an identical file, an editor
// saving an unchanged file. The decision is made from a hash of the bytes
// about to be sent, read from the staging file now, never from the running
// hash. It reports whether it skipped.
func (n *Node) skipUnchanged(ctx context.Context, p string, st *staging, size int64, meta *backends.Meta, sent backends.Meta) (bool, error) {
	n.mu.Lock()
	e := n.entry
	n.mu.Unlock()
	if e.Meta.SHA256 == "" || e.Size != size {
		return false, nil
	}
	sum, err := st.resum()
	if err != nil {
		return true, fmt.Errorf("%w: %w", errLocalData, err)
	}
	if sum != meta.SHA256 {
		n.fs.log.Error("the running hash of a staged file was wrong; using the hash of its bytes", "path", p)
		meta.SHA256 = sum
	}
	if e.Meta.SHA256 != sum {
		return false, nil
	}
	ne, err := n.fs.storeMeta(ctx, p, e, *meta, e.Version)
	if errors.Is(err, backends.ErrPrecondition) {
		// Another client replaced the version this content equals: upload
		// it, which keeps a conflict copy rather than stamp this hash on
		// the other version.
		return false, nil
	}
	if err != nil {
		return true, fmt.Errorf("store metadata of %s: %w", p, err)
	}
	n.fs.log.Debug("content unchanged: upload skipped, metadata stored", "path", p)
	ne.Name = e.Name
	n.settle(p, st, ne, sent)
	return true, nil
}

// errSentOther: the server took an upload whose bytes do not have the
// hash sent with them as metadata.
var errSentOther = errors.New("the uploaded bytes do not have the hash sent with them")

// put streams the staging file to p with a progress deadline. The bytes are
// hashed as they go: a successful upload of fewer bytes than size, or of
// bytes whose hash is not opts.Meta.SHA256, is errSentOther, so that no
// hash is ever trusted for other bytes than its own.
func (n *Node) put(ctx context.Context, p string, st *staging, size int64, opts backends.PutOptions) (backends.Entry, error) {
	wctx, wd := newWatchdog(ctx, n.fs.opts.Timeout)
	defer wd.stop()
	sent := &hashingReader{r: kickReader{io.NewSectionReader(st.file, 0, size), wd}, h: sha256.New()}
	var body io.Reader = sent
	if fn, ok := ctx.Value(progressKey{}).(func(int64)); ok && fn != nil {
		body = &progressReader{r: body, fn: fn}
	}
	e, err := n.fs.be.Put(wctx, p, body, size, opts)
	if err != nil {
		return e, err
	}
	if sent.n != size {
		st.inOrder = false
		return e, fmt.Errorf("upload %s: %w: the server answered after %d of %d bytes", p, errSentOther, sent.n, size)
	}
	if got := hex.EncodeToString(sent.h.Sum(nil)); opts.Meta.SHA256 != "" && got != opts.Meta.SHA256 {
		st.inOrder = false // the next attempt hashes the bytes anew
		return e, fmt.Errorf("upload %s: %w (sent %s, recorded %s)", p, errSentOther, got, opts.Meta.SHA256)
	}
	return e, nil
}

// hashingReader hashes and counts what is read through it.
type hashingReader struct {
	r io.Reader
	h hash.Hash
	n int64
}

func (r *hashingReader) Read(b []byte) (int, error) {
	k, err := r.r.Read(b)
	r.h.Write(b[:k])
	r.n += int64(k)
	return k, err
}

// conflictName is where a conflicting local version goes:
// "name (conflicted copy 2006-01-02 150405 host).ext" beside the original.
func conflictName(p string, t time.Time) string {
	dir, name := path.Split(p)
	ext := path.Ext(name)
	if ext == name {
		ext = ""
	}
	host, _ := os.Hostname()
	stem := strings.TrimSuffix(name, ext)
	return dir + fmt.Sprintf("%s (conflicted copy %s %s)%s", stem, t.Format("2006-01-02 150405"), host, ext)
}

// splitPath splits p into its directory ("" for the root) and its name.
func splitPath(p string) (dir, name string) {
	dir, name = path.Split(p)
	return strings.TrimSuffix(dir, "/"), name
}

// handle is one open file.
type handle struct {
	n     *Node
	write bool
	rd    remoteReader
}

var (
	_ fusefs.FileReader   = (*handle)(nil)
	_ fusefs.FileWriter   = (*handle)(nil)
	_ fusefs.FileFlusher  = (*handle)(nil)
	_ fusefs.FileFsyncer  = (*handle)(nil)
	_ fusefs.FileReleaser = (*handle)(nil)
)

// Read implements fusefs.FileReader: from the staging file when there is
// one, else streamed from the server.
func (h *handle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n := h.n
	n.mu.Lock()
	st := n.staged
	size := n.entry.Size
	n.mu.Unlock()
	if st != nil {
		k, err := st.file.ReadAt(dest, off)
		if err != nil && err != io.EOF {
			return nil, toErrno(err)
		}
		return fuse.ReadResultData(dest[:k]), 0
	}
	if off >= size {
		return fuse.ReadResultData(nil), 0
	}
	if rest := size - off; int64(len(dest)) > rest {
		dest = dest[:rest]
	}
	k, err := h.rd.readAt(ctx, n, dest, off)
	if err != nil {
		n.fs.log.Warn("read failed", "path", n.path(), "err", err)
		return nil, toErrno(err)
	}
	return fuse.ReadResultData(dest[:k]), 0
}

// Write implements fusefs.FileWriter.
func (h *handle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	n := h.n
	n.upMu.Lock()
	defer n.upMu.Unlock()
	if err := n.ensureStaged(ctx, -1); err != nil {
		return 0, toErrno(err)
	}
	n.mu.Lock()
	st := n.staged
	n.mu.Unlock()
	k, err := st.file.WriteAt(data, off)
	n.mu.Lock()
	defer n.mu.Unlock()
	st.wrote(data[:k], off)
	if k > 0 {
		now := time.Now()
		n.pending.MTime = &now
	}
	if err != nil {
		return uint32(k), toErrno(err)
	}
	return uint32(k), 0
}

// Flush implements fusefs.FileFlusher: close() returns once the content
// and its journal record are durable on local disk; the upload follows.
func (h *handle) Flush(ctx context.Context) syscall.Errno {
	if !h.write {
		return 0
	}
	return h.n.commit()
}

// Fsync implements fusefs.FileFsyncer: it commits the file and returns
// once the journal, with the file's record and data, is durable on local
// disk; with --fsync server, once the file is on the server (EIO when an
// attempt to upload it fails: it stays queued).
func (h *handle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	n := h.n
	if h.write {
		if errno := n.commit(); errno != 0 {
			return errno
		}
	}
	if err := n.fs.q.Flush(); err != nil {
		n.fs.log.Error("fsync: the journal could not be made durable", "path", n.path(), "err", err)
		return toErrno(err)
	}
	if !n.fs.opts.FsyncServer {
		return 0
	}
	return n.waitUploaded(ctx, "fsync")
}

// waitUploaded waits until the last commit of the node is on the server
// (committed and flushed first by the caller); EIO if its upload failed.
func (n *Node) waitUploaded(ctx context.Context, what string) syscall.Errno {
	n.mu.Lock()
	seq := n.seq
	n.mu.Unlock()
	if seq == 0 {
		return 0
	}
	if err := n.fs.q.WaitUploaded(ctx, seq); err != nil {
		n.fs.log.Error(what+": the file is not on the server; it stays queued", "path", n.path(), "err", err)
		return syscall.EIO
	}
	return 0
}

// Release implements fusefs.FileReleaser.
func (h *handle) Release(ctx context.Context) syscall.Errno {
	h.rd.close()
	n := h.n
	n.upMu.Lock()
	defer n.upMu.Unlock()
	n.mu.Lock()
	n.opens--
	changed := n.staged != nil && n.staged.changed
	n.mu.Unlock()
	if changed {
		// Written after the last flush: pages of a shared mapping that
		// the kernel writes back when it is unmapped, after close().
		// RELEASE comes asynchronously, so a rename of the file may be
		// under way: currentPath names where it is going.
		p := n.currentPath()
		if errno := n.commitLocked(p); errno != 0 {
			n.fs.log.Error("cannot commit changes written after close", "path", p, "errno", errno)
		}
	}
	n.dropStagingLocked()
	return 0
}

// Allocate implements fusefs.NodeAllocater on the staging file.
func (n *Node) Allocate(ctx context.Context, f fusefs.FileHandle, off uint64, size uint64, mode uint32) syscall.Errno {
	n.upMu.Lock()
	defer n.upMu.Unlock()
	if err := n.ensureStaged(ctx, -1); err != nil {
		return toErrno(err)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	changed, err := n.staged.allocate(mode, int64(off), int64(size))
	if err != nil {
		return toErrno(err)
	}
	if changed {
		now := time.Now()
		n.pending.MTime = &now
	}
	return 0
}

// Fsync implements fusefs.NodeFsyncer for directories (fsync of a
// directory's descriptor, as editors and databases do after a rename): it
// returns once the journal, renames and removals included, is durable on
// local disk.
func (n *Node) Fsync(ctx context.Context, f fusefs.FileHandle, flags uint32) syscall.Errno {
	if h, ok := f.(*handle); ok {
		return h.Fsync(ctx, flags)
	}
	if err := n.fs.q.Flush(); err != nil {
		n.fs.log.Error("fsync: the journal could not be made durable", "path", n.path(), "err", err)
		return toErrno(err)
	}
	return 0
}
