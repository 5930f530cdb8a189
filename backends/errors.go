package backends

import (
	"errors"
	"fmt"
)

// Sentinel errors. Backends wrap them with context (fmt.Errorf("put %s: %w",
// p, ErrNotFound)); callers test with errors.Is. The fs package turns them into
// errno values in one table.
var (
	ErrNotFound   = errors.New("no such file or directory")
	ErrExist      = errors.New("file exists")
	ErrNotDir     = errors.New("not a directory")
	ErrIsDir      = errors.New("is a directory")
	ErrNotEmpty   = errors.New("directory not empty")
	ErrPermission = errors.New("permission denied by the server")
	// ErrLocked: another client holds a lock on the file (WebDAV 423). It
	// passes: a write-back upload is retried with a backoff.
	ErrLocked       = errors.New("locked by another client on the server")
	ErrAuth         = errors.New("authentication failed")
	ErrPrecondition = errors.New("the server's version changed")
	ErrNoSpace      = errors.New("no space left on the server")
	ErrReadOnly     = errors.New("read-only")
	ErrUnsupported  = errors.New("not supported by this server")
	ErrUnavailable  = errors.New("server unreachable")
	ErrProtocol     = errors.New("malformed server reply")
	ErrTooLarge     = errors.New("file too large for the server")
	// ErrMetaNotStored: Put stored the content but not the metadata that
	// goes with it; the caller sends the metadata again (SetMeta).
	ErrMetaNotStored = errors.New("the server stored the content but not its metadata")
)

// Describe returns an error whose whole text is the formatted message and
// which still matches kind with errors.Is. It is for messages shown to a
// user, where the sentinel's own words would only be noise.
func Describe(kind error, format string, args ...any) error {
	return &described{kind: kind, msg: fmt.Sprintf(format, args...)}
}

type described struct {
	kind error
	msg  string
}

func (d *described) Error() string { return d.msg }
func (d *described) Unwrap() error { return d.kind }
