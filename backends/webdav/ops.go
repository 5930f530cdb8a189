package webdav

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"

	"github.com/cloudmount/cloudmount/backends"
)

// Mkdir creates one collection (MKCOL).
func (b *Backend) Mkdir(ctx context.Context, p string) error {
	p = cleanPath(p)
	if p == "" {
		return fmt.Errorf("MKCOL /: %w", backends.ErrExist)
	}
	if b.laxMkcol() {
		// This server answers MKCOL on an existing collection with success.
		if _, err := b.Stat(ctx, p); err == nil {
			return fmt.Errorf("MKCOL %s: %w", display(p), backends.ErrExist)
		} else if !errors.Is(err, backends.ErrNotFound) {
			return err
		}
	}
	status, err := b.mkcol(ctx, p)
	if err != nil {
		return err
	}
	if status == http.StatusBadRequest {
		// Apache, for "file/" when a file is there
		if _, serr := b.Stat(ctx, p); serr == nil {
			return fmt.Errorf("MKCOL %s: %w", display(p), backends.ErrExist)
		}
	}
	if err := mkcolError(p, status); err != nil {
		return b.mkcolRefused(ctx, p, err)
	}
	return nil
}

// mkcol sends one MKCOL and returns its status.
func (b *Backend) mkcol(ctx context.Context, p string) (int, error) {
	ctx, cancel := b.callContext(ctx)
	defer cancel()
	resp, err := b.call(ctx, &request{method: "MKCOL", path: p, dir: true})
	if err != nil {
		return 0, err
	}
	drain(resp)
	return resp.StatusCode, nil
}

// mkcolError maps the status of a MKCOL (nil for success).
func mkcolError(p string, status int) error {
	resp := &http.Response{StatusCode: status}
	switch status {
	case http.StatusCreated, http.StatusOK, http.StatusNoContent:
		return nil
	case http.StatusMethodNotAllowed:
		return statusErrorAs("MKCOL", p, resp, backends.ErrExist)
	case http.StatusConflict:
		return statusErrorAs("MKCOL", p, resp, backends.ErrNotFound)
	}
	return statusError("MKCOL", p, resp)
}

// Remove deletes a file or an empty collection. WebDAV's DELETE is
// recursive, so a collection is listed first and refused with ErrNotEmpty if
// it has children. A child created between the listing and the DELETE is
// deleted with it: the server offers no way to close that window.
func (b *Backend) Remove(ctx context.Context, p string) error {
	p = cleanPath(p)
	if p == "" {
		return fmt.Errorf("DELETE /: %w: refusing to remove the root", backends.ErrPermission)
	}
	isDir, empty, err := b.probeDir(ctx, p)
	if err != nil {
		return err
	}
	if isDir && !empty {
		return fmt.Errorf("DELETE %s: %w", display(p), backends.ErrNotEmpty)
	}
	ctx, cancel := b.callContext(ctx)
	defer cancel()
	resp, err := b.call(ctx, &request{method: "DELETE", path: p, dir: isDir})
	if err != nil {
		return err
	}
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK, http.StatusNoContent, http.StatusAccepted:
		return nil
	case http.StatusMultiStatus:
		// some member could not be deleted
		return statusErrorAs("DELETE", p, resp, backends.ErrPermission)
	}
	return statusError("DELETE", p, resp)
}

// probeDir tells whether p is a collection and whether it has children
// (PROPFIND Depth 1 asking only for the resource type).
func (b *Backend) probeDir(ctx context.Context, p string) (isDir, empty bool, err error) {
	res, err := b.propfind(ctx, p, false, "1", propfindTypeBody)
	if err != nil {
		return false, false, err
	}
	self, ok := b.pickSelf(res, p)
	if !ok {
		return false, false, fmt.Errorf("PROPFIND %s: %w", display(p), backends.ErrNotFound)
	}
	if !self.isDir {
		return false, true, nil
	}
	for _, r := range res {
		if r.found && r.path != self.path {
			return true, false, nil
		}
	}
	return true, true, nil
}

// Rename moves from to to (MOVE). With overwrite, what is at to is checked
// first so that a MOVE never deletes a non-empty directory (the server would,
// recursively) and types clash the way rename(2) says: a file cannot replace
// a directory, nor a directory a file.
func (b *Backend) Rename(ctx context.Context, from, to string, overwrite bool) error {
	from, to = cleanPath(from), cleanPath(to)
	if from == "" || to == "" {
		return fmt.Errorf("MOVE %s: %w: cannot move the root", display(from), backends.ErrPermission)
	}
	if from == to {
		_, err := b.Stat(ctx, from)
		return err
	}
	srcDir := false
	if overwrite {
		dstDir, dstEmpty, err := b.probeDir(ctx, to)
		switch {
		case errors.Is(err, backends.ErrNotFound):
		case err != nil:
			return err
		default:
			src, err := b.Stat(ctx, from)
			if err != nil {
				return err
			}
			srcDir = src.IsDir
			switch {
			case dstDir && !srcDir:
				return fmt.Errorf("MOVE %s: %w: %s is a directory", display(from), backends.ErrIsDir, display(to))
			case !dstDir && srcDir:
				return fmt.Errorf("MOVE %s: %w: %s is a file", display(from), backends.ErrNotDir, display(to))
			case dstDir && !dstEmpty:
				return fmt.Errorf("MOVE %s: %w: %s", display(from), backends.ErrNotEmpty, display(to))
			}
		}
	}
	resp, err := b.move(ctx, from, to, srcDir, overwrite)
	if err == nil && !srcDir && (resp.StatusCode == http.StatusBadRequest || resp.StatusCode == http.StatusConflict) &&
		b.kindOf(ctx, from) == kindDir {
		// nginx moves a collection only when both URLs have the trailing
		// slash (400 "is collection", 409 when only one has it).
		resp, err = b.move(ctx, from, to, true, overwrite)
	}
	if err != nil {
		return err
	}
	switch resp.StatusCode {
	case http.StatusCreated, http.StatusNoContent, http.StatusOK:
		return nil
	case http.StatusPreconditionFailed:
		if !overwrite {
			return statusErrorAs("MOVE", from, resp, backends.ErrExist)
		}
	case http.StatusMultiStatus:
		return statusErrorAs("MOVE", from, resp, backends.ErrPermission)
	case http.StatusForbidden, http.StatusInternalServerError:
		// x/net/webdav (rclone) answers 403 for a missing source or
		// destination parent, Apache 500 for the latter: look before
		// calling it a refusal.
		if _, err := b.Stat(ctx, from); errors.Is(err, backends.ErrNotFound) {
			return statusErrorAs("MOVE", from, resp, backends.ErrNotFound)
		}
		if _, err := b.Stat(ctx, path.Dir("/" + to)[1:]); errors.Is(err, backends.ErrNotFound) {
			return statusErrorAs("MOVE", from, resp, backends.ErrNotFound)
		}
	}
	return statusError("MOVE", from, resp)
}

// move sends one MOVE of from to to, both addressed as collections when dir
// is set, and returns the reply with its body read and closed.
func (b *Backend) move(ctx context.Context, from, to string, dir, overwrite bool) (*http.Response, error) {
	ctx, cancel := b.callContext(ctx)
	defer cancel()
	resp, err := b.call(ctx, &request{method: "MOVE", path: from, dir: dir, dest: &to, overwrite: overwrite})
	if err != nil {
		return nil, err
	}
	drain(resp)
	return resp, nil
}
