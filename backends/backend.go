// Package backends defines the small interface every remote store implements,
// the metadata it carries, and the sentinel errors it reports.
//
// A concrete backend lives in a subpackage (webdav, memory, …) and imports this
// package for the interface; the table that maps a URL scheme to a constructor
// lives above them, in cmd.
//
// The contract in full, the page a new backend is written from, and the
// conformance suite every backend passes are package backendtest.
package backends

import (
	"context"
	"io"
	"os"
	"strconv"
	"time"
)

// Backend is a remote tree addressed by slash-separated paths relative to the
// mount root ("" or "/" is the root, "a/b.txt" a file in it). Every call takes
// a context and must honour its deadline. Implementations are safe for
// concurrent use. String never reveals a password or a capability.
type Backend interface {
	// Stat returns the entry at path, or an error matching ErrNotFound.
	Stat(ctx context.Context, path string) (Entry, error)
	// List returns the children of the directory at path (not the directory
	// itself), in no particular order.
	List(ctx context.Context, path string) ([]Entry, error)
	// Read streams length bytes of the file at path starting at off; length < 0
	// reads to the end. The caller closes the reader; closing it early is fine.
	Read(ctx context.Context, path string, off, length int64) (io.ReadCloser, error)
	// Put stores the whole content of the file at path from r (size bytes, or
	// -1 if unknown) and returns the entry as the server now has it. It
	// stores the fields of opts.Meta that the server keeps (Capabilities)
	// and ignores the others. If the content is stored but that metadata is
	// not (a second request failed), it returns the new entry and an error
	// matching ErrMetaNotStored.
	Put(ctx context.Context, path string, r io.Reader, size int64, opts PutOptions) (Entry, error)
	// Mkdir creates one directory; ErrExist if something is there already.
	Mkdir(ctx context.Context, path string) error
	// Remove deletes a file or an empty directory (ErrNotEmpty otherwise).
	Remove(ctx context.Context, path string) error
	// Rename moves from to to. When overwrite is false and to exists, it fails
	// with ErrExist; when true an existing file at to is replaced.
	Rename(ctx context.Context, from, to string, overwrite bool) error
	// Capabilities reports what the server can do, probing it where needed.
	// It is called once when the mount starts.
	Capabilities(ctx context.Context) (Capabilities, error)
	// Close releases connections.
	Close() error
	// String names the backend for logs: scheme, user and host, no secrets.
	String() string
}

// MetaSetter is implemented by backends that can store metadata (mtime, mode,
// owner, hash) with a file or directory after it was written.
type MetaSetter interface {
	// SetMeta stores the fields of m that are set and that the server keeps
	// (Capabilities), leaving the others alone, and returns the entry as the server now has it. If ifVersion is not
	// empty, it fails with ErrPrecondition unless the server's version is
	// ifVersion: metadata that describes a content (its hash) must not be
	// stored on another.
	SetMeta(ctx context.Context, path string, m Meta, ifVersion string) (Entry, error)
}

// SizedReader is implemented by backends that can check a read against the
// size the caller knows the file has (from a listing): a reply that speaks
// of another size (a range total, a whole-file length), or a stream that
// ends before or runs past it, fails with ErrProtocol, so that data of
// another version is never taken for the one the caller has in mind.
type SizedReader interface {
	// ReadSized is Backend.Read of a file of size bytes.
	ReadSized(ctx context.Context, path string, off, length, size int64) (io.ReadCloser, error)
}

// VersionReader is implemented by backends that can read a file's content
// by its Version (a content address, such as a Tahoe capability), so that
// a read never serves the bytes of another version, whatever happens at the
// path meanwhile (a rename, another client's upload).
type VersionReader interface {
	// ReadVersion is SizedReader.ReadSized of the version of the file at
	// path that Entry.Version named. If the backend can no longer find
	// that version, it fails with ErrPrecondition.
	ReadVersion(ctx context.Context, path, version string, off, length, size int64) (io.ReadCloser, error)
}

// QuotaReader is implemented by backends that can tell free and used space.
type QuotaReader interface {
	// Quota returns the space available to the mount's user.
	Quota(ctx context.Context) (Quota, error)
}

// Capabilities is what a backend can do, worked out once when the mount starts
// and logged. The fs and the upload queue decide from these fields only, never
// from the kind of backend. A field is false (zero) where unknown.
type Capabilities struct {
	// Metadata, one field each: whether the server keeps it with the file.
	// What the server does not keep, the mount keeps in its local index,
	// tied to the file's Version.
	MTime MetaField
	Mode  MetaField
	Owner MetaField // uid and gid
	Hash  MetaField // the SHA-256 of the content
	// Type: the file type of special files (Meta.Type) is stored with the
	// small regular file that stands for them.
	Type MetaField

	// Symlinks: native symbolic links; the backend implements Symlinker, and
	// its entries of links carry Meta.Type "symlink" and LinkTarget.
	Symlinks bool
	// HardLinks: the backend implements Linker.
	HardLinks bool
	// Hashes: the backend implements Hasher and its server computes the
	// SHA-256 of a file without sending it.
	Hashes bool
	// ConditionalPut: the server itself honours PutOptions.IfMatch and
	// IfNoneMatch, atomically. Without it the backend checks the version
	// just before the upload replaces the file, and a change made by another
	// client in that window is not seen (Put still honours the options as
	// well as it can).
	ConditionalPut bool
	// AtomicPut: readers of the server never see a partly uploaded file.
	AtomicPut bool
	// AtomicRename: Rename is one step on the server (no copy and delete).
	AtomicRename bool
	// ReadOnly: the server refuses every change; the mount is read-only.
	ReadOnly bool
	// Quota: the backend implements QuotaReader and it returns real figures.
	Quota bool
	// UnlistedDotNames: List leaves out names that start with a dot
	// (nginx's dav-ext); Stat still finds them.
	UnlistedDotNames bool
	// MetaFile, when not empty, is the name of the file in each directory
	// that holds the kinds of metadata marked Stored (package sidecar),
	// rather than the server keeping them with each file.
	MetaFile string
	// Notes are human-readable findings of the probe, for the start-up log.
	Notes []string
}

// MetaField says how a server keeps one kind of metadata.
type MetaField struct {
	// Stored: the value is kept with the file on the server (a dead
	// property, an attribute of the file system, Tahoe metadata) and
	// SetMeta can change it at any time.
	Stored bool
	// OnPut: Put stores it with the content (X-OC-Mtime), without a second
	// request. It does not need Stored: a server may take an mtime only
	// with an upload, and then the mount keeps the exact value in its
	// local index as for a kind that is not stored.
	OnPut bool
	// Precision is the granularity of a stored time (a second, 2 s, …); zero
	// is a nanosecond.
	Precision time.Duration
}

// Split divides m into the fields the server keeps (onServer) and the fields
// it does not (local, for the local index).
func (c Capabilities) Split(m Meta) (onServer, local Meta) {
	put := func(f MetaField, set func(*Meta)) {
		if f.Stored {
			set(&onServer)
		} else {
			set(&local)
		}
	}
	if m.MTime != nil {
		put(c.MTime, func(x *Meta) { x.MTime = m.MTime })
	}
	if m.Mode != nil {
		put(c.Mode, func(x *Meta) { x.Mode = m.Mode })
	}
	if m.UID != nil || m.GID != nil {
		put(c.Owner, func(x *Meta) { x.UID, x.GID = m.UID, m.GID })
	}
	if m.SHA256 != "" {
		put(c.Hash, func(x *Meta) { x.SHA256 = m.SHA256 })
	}
	if m.Type != "" && !(m.Type == "symlink" && c.Symlinks) {
		put(c.Type, func(x *Meta) { x.Type = m.Type })
	}
	return onServer, local
}

// StoresAll reports whether the server keeps every kind of metadata, so that
// the local index is never needed.
func (c Capabilities) StoresAll() bool {
	return c.MTime.Stored && c.Mode.Stored && c.Owner.Stored && c.Hash.Stored && c.Type.Stored
}

// Symlinker is implemented by backends with native symbolic links.
type Symlinker interface {
	// Symlink creates a symbolic link at path pointing to target (stored as
	// it is, never followed) and returns its entry. ErrExist if something is
	// there already.
	Symlink(ctx context.Context, target, path string) (Entry, error)
}

// Linker is implemented by backends with hard links.
type Linker interface {
	// Link makes newPath another name of the file at oldPath and returns
	// the entry of newPath. ErrExist if something is there already.
	Link(ctx context.Context, oldPath, newPath string) (Entry, error)
}

// Entry is one file or directory as the server describes it.
type Entry struct {
	// Name is the last path element ("" for the root).
	Name  string
	IsDir bool
	Size  int64
	// ModTime is the file's mtime: the one cloudmount stored (dead property,
	// X-OC-Mtime) when there is one, else the server's last-modified time.
	ModTime time.Time
	// Version names the content: two entries of a path with the same
	// Version hold the same bytes, and it changes whenever the content
	// does. The backend makes it from what its server has (an ETag; size,
	// mtime and inode; a capability's hash) and never leaves it empty for a
	// file; StatVersion is the fallback from size and mtime. Directories may
	// have none.
	Version string
	// LinkTarget is the target of a native symbolic link (Meta.Type
	// "symlink" on a backend with Capabilities.Symlinks).
	LinkTarget string
	// Deny is what the server says it refuses to do with the entry (a
	// read-only share); zero allows everything.
	Deny Deny
	// Meta holds what cloudmount stored with the file; unset fields are
	// unknown.
	Meta Meta
}

// Deny lists what a server refuses to do with an entry, as far as it tells
// (ownCloud's and Nextcloud's oc:permissions): the mount refuses the same at
// once, with EACCES, before anything is queued that the server would turn
// down. The zero value allows everything.
type Deny uint8

const (
	// DenyWrite: the file's content and metadata cannot be changed.
	DenyWrite Deny = 1 << iota
	// DenyCreateFile: no file can be made in the directory.
	DenyCreateFile
	// DenyCreateDir: no directory can be made in the directory.
	DenyCreateDir
	// DenyDelete: the entry cannot be removed.
	DenyDelete
	// DenyRename: the entry cannot take another name in its directory.
	DenyRename
	// DenyMove: the entry cannot be moved to another directory.
	DenyMove
)

// Meta is metadata stored alongside a file. A nil pointer means "not set" (on
// read: unknown; on write: leave alone).
type Meta struct {
	MTime  *time.Time
	Mode   *os.FileMode // permission bits only (0o7777)
	UID    *uint32
	GID    *uint32
	SHA256 string // lower-case hex, "" if unknown
	// Type marks special files stored as small regular files on servers
	// without them: "symlink" (content is the target), "fifo", "socket".
	// "" is a regular file or a directory.
	Type string
}

// IsZero reports whether no field of m is set.
func (m Meta) IsZero() bool {
	return m.MTime == nil && m.Mode == nil && m.UID == nil && m.GID == nil && m.SHA256 == "" && m.Type == ""
}

// Merge copies the set fields of src into m.
func (m *Meta) Merge(src Meta) {
	if src.MTime != nil {
		m.MTime = src.MTime
	}
	if src.Mode != nil {
		m.Mode = src.Mode
	}
	if src.UID != nil {
		m.UID = src.UID
	}
	if src.GID != nil {
		m.GID = src.GID
	}
	if src.SHA256 != "" {
		m.SHA256 = src.SHA256
	}
	if src.Type != "" {
		m.Type = src.Type
	}
}

// PutOptions qualify a Put.
type PutOptions struct {
	// IfMatch, when not empty, makes the Put fail with ErrPrecondition unless
	// the server's current version is this one.
	IfMatch string
	// IfNoneMatch makes the Put fail with ErrExist/ErrPrecondition if anything
	// exists at the path.
	IfNoneMatch bool
	// Meta is stored with the file as part of the upload where the backend
	// can, otherwise right after it.
	Meta Meta
	// InPlace asks the backend to write over the file's content rather than
	// replace the file: it has other names (hard links) that must see the
	// new content. Readers may then see a partial file. A backend that
	// always writes in place ignores it.
	InPlace bool
}

// Quota is the space figures of a server, in bytes. Available < 0: unknown.
type Quota struct {
	Used      int64
	Available int64
}

// StatVersion is the Version of a file whose server has no better name for
// its content than its size and mtime (and, where known, more: an inode
// number, a change time). A rewrite within the mtime's precision that keeps
// the size is not seen.
func StatVersion(size int64, mtime time.Time, more ...string) string {
	v := "~" + strconv.FormatInt(size, 10) + "/" + strconv.FormatInt(mtime.UnixNano(), 10)
	for _, m := range more {
		v += "/" + m
	}
	return v
}

// Hasher is implemented by backends whose server can compute the SHA-256 of
// a file it holds (sha256sum over SSH), so that the content need not be read
// to know it.
type Hasher interface {
	// SHA256 returns the lower-case hex SHA-256 of the file at path.
	SHA256(ctx context.Context, path string) (string, error)
}
