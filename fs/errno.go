package fs

import (
	"context"
	"errors"
	"syscall"

	"github.com/cloudmount/cloudmount/backends"
)

// errnoTable is the one place where errors become errno values. Order
// matters: the first match wins.
var errnoTable = []struct {
	err   error
	errno syscall.Errno
}{
	{backends.ErrNotFound, syscall.ENOENT},
	{backends.ErrExist, syscall.EEXIST},
	{backends.ErrNotDir, syscall.ENOTDIR},
	{backends.ErrIsDir, syscall.EISDIR},
	{backends.ErrNotEmpty, syscall.ENOTEMPTY},
	{backends.ErrPermission, syscall.EACCES},
	{backends.ErrAuth, syscall.EACCES},
	{backends.ErrLocked, syscall.EBUSY},
	{backends.ErrNoSpace, syscall.ENOSPC},
	{backends.ErrReadOnly, syscall.EROFS},
	{backends.ErrUnsupported, syscall.ENOTSUP},
	{backends.ErrTooLarge, syscall.EFBIG},
	{backends.ErrPrecondition, syscall.EIO},
	{backends.ErrUnavailable, syscall.EIO},
	{backends.ErrProtocol, syscall.EIO},
	{context.DeadlineExceeded, syscall.ETIMEDOUT},
	{context.Canceled, syscall.EINTR},
}

// toErrno maps err (possibly wrapped) to an errno. nil is 0; an errno found
// anywhere in the chain (local disk errors such as ENOSPC) is kept; anything
// unknown is EIO.
func toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	for _, e := range errnoTable {
		if errors.Is(err, e.err) {
			return e.errno
		}
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return syscall.EIO
}
