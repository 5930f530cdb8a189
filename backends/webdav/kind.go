package webdav

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path"

	"github.com/cloudmount/cloudmount/backends"
)

// Servers answer a call on the wrong type of resource (GET or PUT of a
// collection, anything below a file) with statuses that do not say which
// mistake it was: x/net/webdav gives 405 for a GET of a collection and for
// a PROPFIND or MKCOL below a file, 404 for a PUT onto a collection. Only
// on such a refusal do the calls below look at the path or its parents (a
// PROPFIND Depth 0 each) to name the error; a call that succeeds costs no
// request more.

// kind is what the server has at a path.
type kind int

const (
	kindUnknown kind = iota // the server's answer does not tell
	kindMissing
	kindFile
	kindDir
)

// kindOf asks the server what is at p with one PROPFIND Depth 0 for the
// resource type. Any answer but a multistatus or "not found" is
// kindUnknown.
func (b *Backend) kindOf(ctx context.Context, p string) kind {
	if p == "" {
		return kindDir
	}
	res, err := b.propfind(ctx, p, false, "0", propfindTypeBody)
	switch {
	case errors.Is(err, backends.ErrNotFound):
		return kindMissing
	case err != nil:
		return kindUnknown
	}
	self, ok := b.pickSelf(res, p)
	switch {
	case !ok:
		return kindMissing
	case self.isDir:
		return kindDir
	}
	return kindFile
}

// parentProblem says why nothing can be at p, looking at its parent and,
// where the server's answer for that does not tell, further up:
// backends.ErrNotDir when the nearest ancestor it can tell about is a file,
// backends.ErrNotFound when that one is missing, nil when the parent is a
// directory (so the trouble is with p itself) or nothing tells.
func (b *Backend) parentProblem(ctx context.Context, p string) error {
	for q := parentOf(p); ctx.Err() == nil; q = parentOf(q) {
		switch b.kindOf(ctx, q) {
		case kindFile:
			return backends.ErrNotDir
		case kindMissing:
			return backends.ErrNotFound
		case kindDir:
			return nil
		}
		if q == "" {
			return nil
		}
	}
	return nil
}

// parentOf is the parent of a cleaned relative path ("" for the root and
// its children).
func parentOf(p string) string {
	d := path.Dir(p)
	if d == "." || d == "/" {
		return ""
	}
	return d
}

// readRefused is err, from a GET of p, as backends.ErrIsDir when the
// server refused it (405, 403) because p is a collection. A 404 is left as
// it is: it means what it says.
func (b *Backend) readRefused(ctx context.Context, p string, err error) error {
	switch httpCode(err) {
	case http.StatusMethodNotAllowed, http.StatusForbidden:
		if b.kindOf(ctx, p) == kindDir {
			return withSentinel(err, backends.ErrIsDir)
		}
	}
	return err
}

// putRefused is err, from a PUT of p, named after what is there: ErrIsDir
// when p is a collection (405, 404 or 403 from the server), ErrNotDir when
// a parent is a file, ErrNotFound when one is missing (404, 405, 409).
func (b *Backend) putRefused(ctx context.Context, p string, err error) error {
	code := httpCode(err)
	switch code {
	case http.StatusMethodNotAllowed, http.StatusForbidden, http.StatusNotFound, http.StatusConflict:
	default:
		return err
	}
	switch b.kindOf(ctx, p) {
	case kindDir:
		return withSentinel(err, backends.ErrIsDir)
	case kindFile:
		return err
	}
	if code == http.StatusForbidden {
		return err
	}
	if why := b.parentProblem(ctx, p); why != nil {
		return withSentinel(err, why)
	}
	return err
}

// statRefused is err, from a PROPFIND of p that the server refused with
// 405 (x/net/webdav, below a file), as ErrNotDir or ErrNotFound after a
// look at the parents. A 404 means what it says and costs nothing more.
func (b *Backend) statRefused(ctx context.Context, p string, err error) error {
	if httpCode(err) != http.StatusMethodNotAllowed || p == "" {
		return err
	}
	if why := b.parentProblem(ctx, p); why != nil {
		return withSentinel(err, why)
	}
	return err
}

// mkcolRefused is the error of a MKCOL of p that the server refused with
// err. RFC 4918 gives 405 for a path that is taken and 409 for a missing
// parent, but servers answer 405 below a file too: a 405 is ErrExist when
// something is at p, else (as a 409) ErrNotDir or ErrNotFound after a look
// at the parents.
func (b *Backend) mkcolRefused(ctx context.Context, p string, err error) error {
	switch httpCode(err) {
	case http.StatusMethodNotAllowed:
		switch b.kindOf(ctx, p) {
		case kindFile, kindDir:
			return withSentinel(err, backends.ErrExist)
		}
		if why := b.parentProblem(ctx, p); why != nil {
			return withSentinel(err, why)
		}
		return withSentinel(err, backends.ErrExist)
	case http.StatusConflict:
		if why := b.parentProblem(ctx, p); why != nil {
			return withSentinel(err, why)
		}
		return withSentinel(err, backends.ErrNotFound)
	}
	return err
}

// withSentinel is err with its backend sentinel replaced by sentinel,
// keeping the method, path and status an HTTPError reports.
func withSentinel(err, sentinel error) error {
	var he *HTTPError
	if errors.As(err, &he) {
		c := *he
		c.Err = sentinel
		return &c
	}
	return fmt.Errorf("%w (%v)", sentinel, err)
}
