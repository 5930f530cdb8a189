// Package fs is the FUSE adapter: one go-fuse node per path, backed by a
// backends.Backend and a cache.Store. It maps backend errors to errno in one
// table (errno.go) and keeps inode numbers stable for the life of the mount.
package fs

import (
	"log/slog"
	"os"
	"time"
)

// Options configure a mount.
type Options struct {
	// UID and GID own every file that has no stored owner.
	UID, GID uint32
	// Privileged: the daemon runs as root, so chown is accepted and the owner
	// is stored with the file's metadata. Otherwise only a chown to UID/GID is
	// accepted (as on a local filesystem) and EPERM is answered.
	Privileged bool
	// FileMode and DirMode are the permission bits shown for files and
	// directories whose mode is stored nowhere (neither on the server nor in
	// the local index), as bits 0o7777 like backends.Meta.Mode; FileMode
	// counts for every file that is not a directory or a symbolic link.
	// Zero means 0644 and 0755.
	FileMode, DirMode os.FileMode
	// Umask is cleared from the permission bits of every file shown, its
	// mode stored or not (symbolic links excepted). What chmod stores is
	// not masked: a mount without the umask shows it whole.
	Umask os.FileMode
	// ReadOnly refuses every change with EROFS.
	ReadOnly bool
	// Timeout is the deadline of each remote call (default 30s).
	Timeout time.Duration
	// AttrTimeout is how long the kernel and the directory cache may trust
	// attributes and listings (default 1s).
	AttrTimeout time.Duration
	// DirCacheTime is how long listings, and lookups of names that do not
	// exist, are trusted (default 1m). Opening a file still checks its
	// version once the attribute timeout has passed (close-to-open).
	DirCacheTime time.Duration
	// Transfers is the number of parallel uploads (default 4).
	Transfers int
	// WritebackDelay is how long a closed file waits before its upload, so
	// that create, write, utimens, chmod and rename become one upload.
	WritebackDelay time.Duration
	// CommitInterval is the longest a closed file waits to be durable on
	// local disk (group commit; default 1s).
	CommitInterval time.Duration
	// FsyncServer: fsync returns once the file is on the server, not
	// once it is durable on local disk.
	FsyncServer bool
	// AllowOther and DefaultPermissions are the FUSE mount options.
	AllowOther, DefaultPermissions bool
	// FSName is the source shown in /proc/mounts and df (no secrets).
	FSName string
	// Debug logs every FUSE request.
	Debug bool
	// Logger receives the mount's log; nil means slog.Default().
	Logger *slog.Logger
}

// Default permission bits of files and directories with no stored mode.
const (
	DefaultFileMode os.FileMode = 0o644
	DefaultDirMode  os.FileMode = 0o755
)

// withDefaults fills the zero fields that have defaults.
func (o Options) withDefaults() Options {
	if o.Timeout <= 0 {
		o.Timeout = 30 * time.Second
	}
	if o.AttrTimeout <= 0 {
		o.AttrTimeout = time.Second
	}
	if o.DirCacheTime <= 0 {
		o.DirCacheTime = time.Minute
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.FileMode == 0 {
		o.FileMode = DefaultFileMode
	}
	if o.DirMode == 0 {
		o.DirMode = DefaultDirMode
	}
	o.FileMode &= 0o7777
	o.DirMode &= 0o7777
	o.Umask &= 0o777
	return o
}
