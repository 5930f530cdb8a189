// Package sidecar keeps the metadata a server cannot keep with its files
// (mtime to the nanosecond, mode, owner, SHA-256, file type) in one small
// file per directory on that server, backends.MetaFileName, so that a
// second machine (a fresh cache) sees it too: `rsync -a` of an unchanged
// tree then sends nothing from any machine.
//
// Wrap puts it around any backend. Where the backend's server keeps every
// kind itself it only passes calls through. Otherwise it keeps the kinds the
// server does not, and its Capabilities call them Stored (with MetaFile
// set), so that the layers above need no special case.
//
// The file holds, for each child name, the metadata and the child's Version
// as the server gave it when the metadata was written. An entry counts only
// while the child's Version is still that one (a directory's, while it is a
// directory): a change by a client that does not know the file makes the
// entry stale, and the server's own values show. The file itself is never
// listed, and Stat, Read, Put, Rename and Remove of its name are refused.
//
// Reading: a listing gives the file's version (or, on servers whose
// listings leave out names starting with a dot, a Stat sent alongside the
// listing does), and the file is read only when that version changed since
// the copy held: one GET per directory on a fresh cache, none on later
// listings of unchanged directories. A missing, oversized or malformed
// file is ignored with a log line; it never fails a listing.
//
// Writing: Put, SetMeta, Rename and Remove change the entries of the
// directories concerned. The writes of one directory are grouped: while
// one is on its way, later changes gather and go together in the next
// one, so that many uploads into a directory cost about one write of its
// file per batch. Put and SetMeta return only once the file that holds
// their metadata is on the server. A write reads the server's copy first
// where it changed, merges, and is sent with If-Match where the server
// honours it (Capabilities.ConditionalPut) and retried on a conflict;
// elsewhere it is checked just before the upload, which leaves a window
// of one round trip in which another machine's write to the same file is
// replaced. An entry lost that way costs a re-send of that file by rsync
// (its mtime shows as the server's), never data.
package sidecar

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path"
	"strings"
	"sync"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// Options configure Wrap.
type Options struct {
	// Logger gets what is ignored (a malformed file) and why; nil is
	// slog.Default().
	Logger *slog.Logger
	// Timeout bounds one write of a metadata file (a check, the upload and
	// the stat that follows); 0 is 30 s.
	Timeout time.Duration
	// Fresh is how long a copy of a directory's file is taken as the
	// server's for a Stat without asking again; a listing always asks.
	// 0 is a minute.
	Fresh time.Duration
	// MaxDirs bounds the number of directories whose files are held in
	// memory; 0 is 4096.
	MaxDirs int
}

func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.Fresh <= 0 {
		o.Fresh = time.Minute
	}
	if o.MaxDirs <= 0 {
		o.MaxDirs = 4096
	}
	return o
}

// Backend is a backend whose metadata the server cannot keep is kept in
// per-directory metadata files.
type Backend struct {
	inner backends.Backend
	opts  Options
	log   *slog.Logger

	capsMu sync.Mutex // protects caps
	caps   *setup

	// treeMu: writes of metadata files hold it for reading; renames and
	// removals of directories for writing, so that no write goes to a
	// directory that moves meanwhile.
	treeMu sync.RWMutex

	mu    sync.Mutex // protects dirs and tick
	dirs  map[string]*dir
	tick  uint64
	warns warnOnce
}

var (
	_ backends.Backend     = (*Backend)(nil)
	_ backends.MetaSetter  = (*Backend)(nil)
	_ backends.SizedReader = (*Backend)(nil)
	_ backends.QuotaReader = (*Backend)(nil)
)

// setup is what Capabilities found: the inner backend's capabilities,
// the wrapper's, and which kinds the metadata files keep.
type setup struct {
	inner, outer backends.Capabilities
	// kinds the files keep; none: the wrapper passes everything through.
	kinds kinds
}

// kinds is a set of kinds of metadata.
type kinds struct{ mtime, mode, owner, hash, typ bool }

func (k kinds) any() bool { return k.mtime || k.mode || k.owner || k.hash || k.typ }

// split divides m into the fields of the kinds in k (file) and the others
// (rest).
func (k kinds) split(m backends.Meta) (file, rest backends.Meta) {
	pick := func(in bool, set func(*backends.Meta)) {
		if in {
			set(&file)
		} else {
			set(&rest)
		}
	}
	if m.MTime != nil {
		pick(k.mtime, func(x *backends.Meta) { x.MTime = m.MTime })
	}
	if m.Mode != nil {
		pick(k.mode, func(x *backends.Meta) { x.Mode = m.Mode })
	}
	if m.UID != nil || m.GID != nil {
		pick(k.owner, func(x *backends.Meta) { x.UID, x.GID = m.UID, m.GID })
	}
	if m.SHA256 != "" {
		pick(k.hash, func(x *backends.Meta) { x.SHA256 = m.SHA256 })
	}
	if m.Type != "" {
		pick(k.typ, func(x *backends.Meta) { x.Type = m.Type })
	}
	return file, rest
}

// Wrap returns inner with metadata files for what its server cannot keep.
// It takes over inner: Close closes it.
func Wrap(inner backends.Backend, opts Options) *Backend {
	opts = opts.withDefaults()
	return &Backend{inner: inner, opts: opts, log: opts.Logger, dirs: map[string]*dir{}}
}

// Capabilities reports inner's capabilities with the kinds the metadata
// files keep marked Stored (to the nanosecond) and MetaFile set.
func (b *Backend) Capabilities(ctx context.Context) (backends.Capabilities, error) {
	s, err := b.setup(ctx)
	if err != nil {
		return backends.Capabilities{}, err
	}
	c := s.outer
	c.Notes = append([]string(nil), c.Notes...)
	return c, nil
}

// setup probes inner once and works out what the files keep.
func (b *Backend) setup(ctx context.Context) (*setup, error) {
	b.capsMu.Lock()
	defer b.capsMu.Unlock()
	if b.caps != nil {
		return b.caps, nil
	}
	ic, err := b.inner.Capabilities(ctx)
	if err != nil {
		return nil, err
	}
	s := &setup{inner: ic, outer: ic}
	s.kinds = kinds{mtime: !ic.MTime.Stored, mode: !ic.Mode.Stored, owner: !ic.Owner.Stored, hash: !ic.Hash.Stored, typ: !ic.Type.Stored}
	if !s.kinds.any() {
		b.caps = s
		return s, nil
	}
	var kept []string
	for _, k := range []struct {
		in   bool
		name string
		f    *backends.MetaField
	}{{s.kinds.mtime, "mtime (ns)", &s.outer.MTime}, {s.kinds.mode, "mode", &s.outer.Mode},
		{s.kinds.owner, "owner", &s.outer.Owner}, {s.kinds.hash, "sha256", &s.outer.Hash}, {s.kinds.typ, "file type", &s.outer.Type}} {
		if k.in {
			*k.f = backends.MetaField{Stored: true, OnPut: k.f.OnPut}
			kept = append(kept, k.name)
		}
	}
	// Links would need entries of their own, and server hashes are for
	// the servers that keep metadata (SFTP): not passed through.
	s.outer.Symlinks, s.outer.HardLinks, s.outer.Hashes = false, false, false
	s.outer.MetaFile = backends.MetaFileName
	s.outer.Notes = append(append([]string(nil), ic.Notes...), fmt.Sprintf(
		"metadata file: %s kept in a per-directory metadata file, %s, hidden in the mount (--meta-file=false: in this machine's cache only)",
		strings.Join(kept, ", "), backends.MetaFileName))
	if ic.UnlistedDotNames {
		s.outer.Notes = append(s.outer.Notes, "the server's listings leave out names starting with a dot: "+
			"each listing asks for the metadata file beside it, in parallel")
	}
	if ic.ReadOnly {
		s.outer.Notes = append(s.outer.Notes, "metadata files: read, never written (the server refuses changes)")
	}
	b.caps = s
	return s, nil
}

// active returns the setup when metadata files are in use, else nil.
func (b *Backend) active(ctx context.Context) (*setup, error) {
	s, err := b.setup(ctx)
	if err != nil || !s.kinds.any() {
		return nil, err
	}
	return s, nil
}

// Close closes the inner backend. Writes in flight end with their
// callers.
func (b *Backend) Close() error { return b.inner.Close() }

// String names the inner backend.
func (b *Backend) String() string { return b.inner.String() }

// Mkdir creates a directory; the metadata file's name is refused.
func (b *Backend) Mkdir(ctx context.Context, p string) error {
	if b.reserves(ctx, p) {
		return reservedErr("mkdir", p, backends.ErrPermission)
	}
	return b.inner.Mkdir(ctx, p)
}

// Read reads a file; the metadata file is not found.
func (b *Backend) Read(ctx context.Context, p string, off, length int64) (io.ReadCloser, error) {
	if b.reserves(ctx, p) {
		return nil, reservedErr("read", p, backends.ErrNotFound)
	}
	return b.inner.Read(ctx, p, off, length)
}

// ReadSized is Read of a file of size bytes (through inner's ReadSized
// where it has one).
func (b *Backend) ReadSized(ctx context.Context, p string, off, length, size int64) (io.ReadCloser, error) {
	if b.reserves(ctx, p) {
		return nil, reservedErr("read", p, backends.ErrNotFound)
	}
	if sr, ok := b.inner.(backends.SizedReader); ok {
		return sr.ReadSized(ctx, p, off, length, size)
	}
	return b.inner.Read(ctx, p, off, length)
}

// Quota passes inner's figures on.
func (b *Backend) Quota(ctx context.Context) (backends.Quota, error) {
	if q, ok := b.inner.(backends.QuotaReader); ok {
		return q.Quota(ctx)
	}
	return backends.Quota{}, fmt.Errorf("quota: %w", backends.ErrUnsupported)
}

// reserves reports whether p is the metadata file's name and metadata
// files are in use (a failed probe counts as in use: the call fails
// anyway).
func (b *Backend) reserves(ctx context.Context, p string) bool {
	if !isMetaFile(p) {
		return false
	}
	s, err := b.active(ctx)
	return err != nil || s != nil
}

// isMetaFile reports whether the last element of p is the metadata file's
// name.
func isMetaFile(p string) bool {
	p = strings.Trim(p, "/")
	return p == backends.MetaFileName || strings.HasSuffix(p, "/"+backends.MetaFileName)
}

// reservedErr is the error for an operation on the metadata file's name.
func reservedErr(op, p string, kind error) error {
	return backends.Describe(kind, "%s %s: the name %s is reserved for cloudmount's per-directory metadata file",
		op, backends.Escape(p), backends.MetaFileName)
}

// cleanPath is p without leading or trailing slashes ("" for the root).
func cleanPath(p string) string {
	p = strings.Trim(path.Clean("/"+p), "/")
	return p
}

// parentKey returns the directory whose file holds the metadata of p and
// the key it is under: the parent and p's name, or, for the root, the root
// itself and selfKey.
func parentKey(p string) (dir, key string) {
	p = cleanPath(p)
	if p == "" {
		return "", selfKey
	}
	i := strings.LastIndexByte(p, '/')
	if i < 0 {
		return "", p
	}
	return p[:i], p[i+1:]
}

// filePath is the path of the metadata file of directory d.
func filePath(d string) string {
	if d == "" {
		return backends.MetaFileName
	}
	return d + "/" + backends.MetaFileName
}

// warnOnce logs a finding about a directory's file once per version of
// the file, so that a malformed file does not fill the log at every
// listing.
type warnOnce struct {
	mu   sync.Mutex // protects seen
	seen map[string]bool
}

func (w *warnOnce) first(key string) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.seen == nil {
		w.seen = map[string]bool{}
	}
	if w.seen[key] {
		return false
	}
	if len(w.seen) > 10000 {
		w.seen = map[string]bool{}
	}
	w.seen[key] = true
	return true
}
