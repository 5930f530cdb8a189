package sftp

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/pkg/sftp"

	"github.com/cloudmount/cloudmount/backends"
)

// Symlink creates a symbolic link at p pointing to target, stored as it is.
func (b *Backend) Symlink(ctx context.Context, target, p string) (backends.Entry, error) {
	p = cleanPath(p)
	if p == "" {
		return backends.Entry{}, &OpError{Op: "symlink", Path: p, Kind: backends.ErrExist}
	}
	if err := reserved("symlink", p); err != nil {
		return backends.Entry{}, err
	}
	if target == "" || strings.IndexByte(target, 0) >= 0 {
		return backends.Entry{}, fmt.Errorf("symlink %s: the target %q cannot be stored", display(p), target)
	}
	s, err := b.session(ctx, weightCall)
	if err != nil {
		return backends.Entry{}, fmt.Errorf("symlink %s: %w", display(p), err)
	}
	defer s.end(nil)
	err = s.do(func(c *sftp.Client) error { return c.Symlink(target, b.remote(p)) })
	if err != nil {
		err = opError("symlink", p, err)
		if isFailure(err) || errors.Is(err, backends.ErrPermission) {
			if _, ok, _ := b.exists(s, p); ok {
				return backends.Entry{}, &OpError{Op: "symlink", Path: p, Kind: backends.ErrExist, Err: err}
			}
			if perr := b.parentProblem(s, "symlink", p); perr != nil {
				return backends.Entry{}, perr
			}
		}
		return backends.Entry{}, err
	}
	return b.stat(s, p)
}

// Link makes newPath another name of the file at oldPath
// (hardlink@openssh.com); ErrUnsupported where the server lacks it.
func (b *Backend) Link(ctx context.Context, oldPath, newPath string) (backends.Entry, error) {
	oldPath, newPath = cleanPath(oldPath), cleanPath(newPath)
	if err := reserved("link", newPath); err != nil {
		return backends.Entry{}, err
	}
	if !b.hardlink {
		return backends.Entry{}, backends.Describe(backends.ErrUnsupported, "link %s: %s has no hard links (no hardlink@openssh.com)", display(newPath), b.hostPort)
	}
	if oldPath == "" || newPath == "" {
		return backends.Entry{}, &OpError{Op: "link", Path: newPath, Kind: backends.ErrPermission}
	}
	s, err := b.session(ctx, weightCall)
	if err != nil {
		return backends.Entry{}, fmt.Errorf("link %s: %w", display(newPath), err)
	}
	defer s.end(nil)
	err = s.do(func(c *sftp.Client) error { return c.Link(b.remote(oldPath), b.remote(newPath)) })
	if err != nil {
		err = opError("link", newPath, err)
		if isFailure(err) || errors.Is(err, backends.ErrPermission) || errors.Is(err, backends.ErrNotFound) {
			if _, ok, _ := b.exists(s, newPath); ok {
				return backends.Entry{}, &OpError{Op: "link", Path: newPath, Kind: backends.ErrExist, Err: err}
			}
			src, ok, serr := b.exists(s, oldPath)
			if serr == nil && !ok {
				return backends.Entry{}, &OpError{Op: "link", Path: oldPath, Kind: backends.ErrNotFound}
			}
			if ok && src.IsDir {
				return backends.Entry{}, &OpError{Op: "link", Path: oldPath, Kind: backends.ErrIsDir, Err: err}
			}
			if perr := b.parentProblem(s, "link", newPath); perr != nil {
				return backends.Entry{}, perr
			}
		}
		return backends.Entry{}, err
	}
	return b.stat(s, newPath)
}
