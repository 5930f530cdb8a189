// Package backends defines the small interface every remote store implements,
// the metadata it carries, and the sentinel errors it reports.
//
// A concrete backend lives in a subpackage (webdav, memory, …) and imports this
// package for the interface; the table that maps a URL scheme to a constructor
// lives above them, in cmd.
package backends

import (
	"context"
	"io"
	"os"
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
	// -1 if unknown) and returns the entry as the server now has it.
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
	// SetMeta stores the fields of m that are set, leaving the others alone,
	// and returns the entry as the server now has it. If ifVersion is not
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

// QuotaReader is implemented by backends that can tell free and used space.
type QuotaReader interface {
	// Quota returns the space available to the mount's user.
	Quota(ctx context.Context) (Quota, error)
}

// Capabilities is what a backend can do, worked out once when the mount starts
// and logged. Fields are false where unknown.
type Capabilities struct {
	// MetaStore: mtime, mode, owner and hash survive with the file on the
	// server (WebDAV dead properties, Tahoe metadata).
	MetaStore bool
	// MTimeOnPut: the server keeps an mtime sent with the upload, with
	// MTimePrecision (e.g. X-OC-Mtime, one second).
	MTimeOnPut     bool
	MTimePrecision time.Duration
	// ConditionalPut: If-Match / If-None-Match are honoured.
	ConditionalPut bool
	// Quota: Quota returns real figures.
	Quota bool
	// Notes are human-readable findings of the probe, for the start-up log.
	Notes []string
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
	// Version changes whenever the content changes (an ETag). Empty if the
	// server has none.
	Version string
	// Meta holds what cloudmount stored with the file; unset fields are
	// unknown.
	Meta Meta
}

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
}

// Quota is the space figures of a server, in bytes. Available < 0: unknown.
type Quota struct {
	Used      int64
	Available int64
}
