package tahoe

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"

	"github.com/cloudmount/cloudmount/backends"
)

// Rename moves from to to with t=relink (within a directory and across
// directories), which Tahoe does in two changes: it links the node at the
// new name (with its metadata), then unlinks the old name. It is not
// atomic: both names exist for a moment, and a crash between leaves both
// (Capabilities.AtomicRename is false).
//
// What is at to is checked first, as rename(2) would: without overwrite
// anything there fails with ErrExist (and relink's replace=false checks it
// again in the change itself); with overwrite a file replaces a file
// (replace=only-files), a directory an empty directory, never a full one
// (Tahoe would unlink it with all it holds: the emptiness is checked on a
// listing made just before, see Remove).
//
// Tahoe strips the names given to relink of leading and trailing blanks;
// a name that has them is moved by hand instead, with the same two
// changes (set_children at the new name with the node's caps and
// metadata, then unlink).
func (b *Backend) Rename(ctx context.Context, from, to string, overwrite bool) error {
	from, to = cleanPath(from), cleanPath(to)
	if err := b.beginChange(ctx, "rename", from); err != nil {
		return err
	}
	if from == "" || to == "" {
		return opError("rename", from, backends.ErrPermission, "cannot move the root of the mount (to %s)", display(to))
	}
	// A directory keeps its cap when it moves: neither path may lead to
	// it by a remembered cap any more.
	defer func() { b.dirs.forget(from); b.dirs.forget(to) }()
	b.dirs.forget(from)
	src, err := b.lookup(ctx, "rename", from)
	if err != nil {
		return err
	}
	if src.child == nil {
		return opError("rename", from, backends.ErrNotFound, "")
	}
	if from == to {
		return nil
	}
	srcDir := src.child.kind == "dirnode"
	if srcDir && strings.HasPrefix(to, from+"/") {
		return opError("rename", from, backends.ErrPermission, "cannot move a directory into itself (%s)", display(to))
	}
	if src.child.kind != "dirnode" && src.child.kind != "filenode" {
		return opError("rename", from, backends.ErrUnsupported, "%v", errUnknownNode)
	}
	srcRW, err := src.writable("rename", from)
	if err != nil {
		return err
	}
	_, toName := splitPath(to)
	if err := checkName("rename", to, toName); err != nil {
		return err
	}
	dst, err := b.lookup(ctx, "rename", to)
	if err != nil {
		return err
	}
	dstRW, err := dst.writable("rename", to)
	if err != nil {
		return err
	}
	replace := "false"
	if c := dst.child; c != nil {
		if dstRW == srcRW && c.name == src.child.name {
			return nil // the same link, named in another Unicode form
		}
		dstDir := c.kind == "dirnode"
		switch {
		case !overwrite:
			return opError("rename", from, backends.ErrExist, "%s exists", display(to))
		case c.kind != "dirnode" && c.kind != "filenode":
			return opError("rename", from, backends.ErrUnsupported, "%v is at %s", errUnknownNode, display(to))
		case dstDir && !srcDir:
			return opError("rename", from, backends.ErrIsDir, "%s is a directory", display(to))
		case !dstDir && srcDir:
			return opError("rename", from, backends.ErrNotDir, "%s is not a directory", display(to))
		case dstDir:
			empty, err := b.isEmpty(ctx, "rename", to, &c.node)
			if err != nil {
				return err
			}
			if !empty {
				return opError("rename", from, backends.ErrNotEmpty, "%s is not empty", display(to))
			}
			replace = "true"
		default:
			replace = "only-files"
		}
		toName = c.name
	}
	moved := *src.child
	landed := func(ctx context.Context) bool {
		// After a collision: the move is done when the node is at to and
		// no longer at from; when it is at both (the link went through,
		// the collision came before the unlink), the unlink is what is
		// left to do.
		s, err1 := b.lookup(ctx, "rename", from)
		d, err2 := b.lookup(ctx, "rename", to)
		if err1 != nil || err2 != nil || d.child == nil || !sameNode(&d.child.node, &moved.node) {
			return false
		}
		if s.child == nil {
			return true
		}
		if !sameNode(&s.child.node, &moved.node) {
			return false
		}
		return b.change(ctx, &request{method: http.MethodPost, op: "rename", cap: srcRW, shown: from,
			query: url.Values{"t": {"unlink"}, "name": {s.child.name}}}, nil) == nil
	}
	if stripped(src.child.name) || stripped(toName) {
		err = b.moveByHand(ctx, from, to, src.child, srcRW, dstRW, toName, replace, landed)
	} else {
		q := url.Values{"t": {"relink"}, "from_name": {src.child.name}, "to_name": {toName}, "replace": {replace}}
		if dstRW != srcRW {
			q.Set("to_dir", dstRW)
		}
		err = b.change(ctx, &request{method: http.MethodPost, op: "rename", cap: srcRW, shown: from, query: q}, landed)
	}
	if errors.Is(err, backends.ErrExist) {
		if !overwrite {
			return opError("rename", from, backends.ErrExist, "another client created %s meanwhile", display(to))
		}
		return opError("rename", from, backends.ErrIsDir, "another client made a directory of %s meanwhile", display(to))
	}
	return err
}

// moveByHand moves the link c of the directory srcRW to the name toName
// of the directory dstRW: set_children there with c's caps and metadata,
// then unlink here.
func (b *Backend) moveByHand(ctx context.Context, from, to string, c *child, srcRW, dstRW, toName, replace string,
	landed func(context.Context) bool) error {
	user, _ := parseMeta(c.meta)
	moved := c.node
	err := b.link(ctx, "rename", to, dstRW, toName, &moved, user, replace, func(ctx context.Context) bool {
		d, err := b.lookup(ctx, "rename", to)
		return err == nil && d.child != nil && sameNode(&d.child.node, &c.node)
	})
	if err != nil {
		return err
	}
	r := &request{method: http.MethodPost, op: "rename", cap: srcRW, shown: from,
		query: url.Values{"t": {"unlink"}, "name": {c.name}}}
	return b.change(ctx, r, landed)
}

// sameNode reports whether two listings show the same node.
func sameNode(a, b *node) bool {
	return a.kind == b.kind && a.ro == b.ro && a.rw == b.rw
}

// stripped reports whether Tahoe's relink would change name: it strips
// from_name and to_name of ASCII blanks (Python's bytes.strip).
func stripped(name string) bool {
	return strings.Trim(name, " \t\n\r\v\f") != name
}
