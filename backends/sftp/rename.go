package sftp

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/pkg/sftp"

	"github.com/cloudmount/cloudmount/backends"
)

// Rename moves from to to. Without overwrite an existing target is an
// error (ErrExist): it is looked for first, then SSH_FXP_RENAME, which
// OpenSSH refuses for an existing target itself (for files atomically,
// with link(2)); a target created between the look and the rename on a
// server that replaces targets is replaced. With overwrite the rename is
// posix-rename@openssh.com (one step, like rename(2)); where the server
// lacks it the target is removed first, and the window between is not
// atomic.
func (b *Backend) Rename(ctx context.Context, from, to string, overwrite bool) error {
	from, to = cleanPath(from), cleanPath(to)
	if from == "" || to == "" {
		return backends.Describe(backends.ErrPermission, "rename %s to %s: cannot move the root of the mount", display(from), display(to))
	}
	if err := reserved("rename", to); err != nil {
		return err
	}
	s, err := b.session(ctx, weightCall)
	if err != nil {
		return fmt.Errorf("rename %s: %w", display(from), err)
	}
	defer s.end(nil)
	if from == to {
		_, err := b.stat(s, from)
		return err
	}
	if !overwrite {
		if _, ok, err := b.exists(s, to); err != nil {
			return err
		} else if ok {
			return &OpError{Op: "rename", Path: from, Kind: backends.ErrExist, Err: fmt.Errorf("%s exists", display(to))}
		}
	}
	err = b.rename(s, from, to, overwrite)
	if err == nil {
		return nil
	}
	return b.renameError(s, from, to, overwrite, err)
}

// rename sends the rename request: posix-rename for overwrite where the
// server has it, else SSH_FXP_RENAME (after removing a file in the way,
// for overwrite).
func (b *Backend) rename(s *session, from, to string, overwrite bool) error {
	if overwrite && b.posixRename {
		err := s.do(func(c *sftp.Client) error { return c.PosixRename(b.remote(from), b.remote(to)) })
		if err != nil && isFailure(err) {
			// Some servers (Go's os.Rename, so pkg/sftp's) refuse a
			// directory over an empty one, which rename(2) allows.
			if d, ok, serr := b.exists(s, to); serr == nil && ok && d.IsDir {
				return b.renameOver(s, from, to, err)
			}
		}
		return err
	}
	err := s.do(func(c *sftp.Client) error { return c.Rename(b.remote(from), b.remote(to)) })
	if err == nil || !overwrite || !isFailure(err) {
		return err
	}
	return b.renameOver(s, from, to, err)
}

// renameOver replaces to by from in two steps, for servers that refuse to
// rename over an existing target: a file by a file, a directory by an
// empty directory (as rename(2) does). Between the two steps nothing is
// at to. err is the refusal, returned when the types do not allow it.
func (b *Backend) renameOver(s *session, from, to string, err error) error {
	dst, ok, serr := b.exists(s, to)
	if serr != nil || !ok {
		return err
	}
	src, ok, serr := b.exists(s, from)
	if serr != nil || !ok || src.IsDir != dst.IsDir {
		return err
	}
	if dst.IsDir {
		if empty, _, lerr := b.isEmptyDir(s, to); lerr != nil || !empty {
			return err
		}
		if rerr := s.do(func(c *sftp.Client) error { return c.RemoveDirectory(b.remote(to)) }); rerr != nil {
			return err
		}
	} else if rerr := s.do(func(c *sftp.Client) error { return c.Remove(b.remote(to)) }); rerr != nil {
		return rerr
	}
	return s.do(func(c *sftp.Client) error { return c.Rename(b.remote(from), b.remote(to)) })
}

// renameError explains a failed rename, looking at both paths where the
// server said only "failure", as OpenSSH does for most errors.
func (b *Backend) renameError(s *session, from, to string, overwrite bool, err error) error {
	oe := opError("rename", from, err)
	if !isFailure(oe) && !errors.Is(oe, backends.ErrNotFound) {
		return oe
	}
	src, srcOK, serr := b.exists(s, from)
	if serr != nil {
		return oe
	}
	if !srcOK {
		return &OpError{Op: "rename", Path: from, Kind: backends.ErrNotFound, Err: err}
	}
	dst, dstOK, derr := b.exists(s, to)
	if derr != nil {
		return oe
	}
	switch {
	case !dstOK:
		if _, ok, _ := b.exists(s, path.Dir("/" + to)[1:]); !ok {
			return &OpError{Op: "rename", Path: from, Kind: backends.ErrNotFound, Err: fmt.Errorf("the parent of %s does not exist", display(to))}
		}
		if src.IsDir && strings.HasPrefix(to+"/", from+"/") {
			return &OpError{Op: "rename", Path: from, Kind: backends.ErrPermission, Err: fmt.Errorf("cannot move a directory into itself (%s)", display(to))}
		}
	case !overwrite:
		return &OpError{Op: "rename", Path: from, Kind: backends.ErrExist, Err: fmt.Errorf("%s exists", display(to))}
	case dst.IsDir && !src.IsDir:
		return &OpError{Op: "rename", Path: from, Kind: backends.ErrIsDir, Err: fmt.Errorf("%s is a directory", display(to))}
	case !dst.IsDir && src.IsDir:
		return &OpError{Op: "rename", Path: from, Kind: backends.ErrNotDir, Err: fmt.Errorf("%s is not a directory", display(to))}
	case dst.IsDir:
		if empty, _, lerr := b.isEmptyDir(s, to); lerr == nil && !empty {
			return &OpError{Op: "rename", Path: from, Kind: backends.ErrNotEmpty, Err: fmt.Errorf("%s is not empty", display(to))}
		}
	}
	return oe
}
