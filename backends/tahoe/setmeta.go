package tahoe

import (
	"context"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// SetMeta stores the fields of m that are set with the edge of p and
// returns the entry as it now is. The web API has no call that changes
// metadata alone: the edge is set again (POST ?t=set_children) with the
// cap the listing just gave and the whole new metadata. Tahoe has no
// test-and-set, so a new content linked at p by another client between
// that listing and the change would be replaced by the one listed (the
// single-writer rule). ifVersion, when set, must be the Version of that
// listing, else ErrPrecondition. The root, which has no edge, keeps no
// metadata (ErrUnsupported).
func (b *Backend) SetMeta(ctx context.Context, p string, m backends.Meta, ifVersion string) (backends.Entry, error) {
	p = cleanPath(p)
	if err := b.beginChange(ctx, "setmeta", p); err != nil {
		return backends.Entry{}, err
	}
	if err := validateMeta(m); err != nil {
		return backends.Entry{}, opError("setmeta", p, backends.ErrUnsupported, "%v", err)
	}
	if p == "" {
		if _, err := b.Stat(ctx, ""); err != nil {
			return backends.Entry{}, err
		}
		return backends.Entry{}, opError("setmeta", p, backends.ErrUnsupported,
			"the root of a Tahoe mount is no directory's child, and has no edge to keep metadata on")
	}
	lk, err := b.lookup(ctx, "setmeta", p)
	if err != nil {
		return backends.Entry{}, err
	}
	if lk.child == nil {
		return backends.Entry{}, opError("setmeta", p, backends.ErrNotFound, "")
	}
	c := lk.child
	if err := b.fillSize(ctx, "setmeta", p, &c.node); err != nil {
		return backends.Entry{}, err
	}
	_, name := splitPath(p)
	cur, err := entryOf(name, &c.node)
	if err != nil {
		return backends.Entry{}, opError("setmeta", p, backends.ErrUnsupported, "%v", err)
	}
	if ifVersion != "" && cur.Version != ifVersion {
		return backends.Entry{}, opError("setmeta", p, backends.ErrPrecondition, "version %s is now %s", ifVersion, cur.Version)
	}
	if m.IsZero() {
		return cur, nil
	}
	dirRW, err := lk.writable("setmeta", p)
	if err != nil {
		return backends.Entry{}, err
	}
	meta := editMeta(&c.node, cur.Version, m, cur.ModTime, time.Now())
	if err := b.link(ctx, "setmeta", p, dirRW, c.name, &c.node, meta, "true", nil); err != nil {
		return backends.Entry{}, err
	}
	c.meta = meta.marshal()
	return entryOf(name, &c.node)
}
