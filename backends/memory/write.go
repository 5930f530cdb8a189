package memory

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// Put implements backends.Backend. An overwrite keeps the mode and owner of
// the file it replaces and drops its mtime, hash and type (they describe
// the old content), then stores what opts.Meta sets.
func (b *Backend) Put(ctx context.Context, p string, r io.Reader, size int64, opts backends.PutOptions) (backends.Entry, error) {
	if r == nil {
		r = strings.NewReader("")
	}
	data, err := io.ReadAll(ctxReader{ctx: ctx, r: r})
	if err != nil {
		return backends.Entry{}, fmt.Errorf("put %s: %w", p, err)
	}
	if size >= 0 && int64(len(data)) != size {
		return backends.Entry{}, fmt.Errorf("put %s: the data to upload has %d bytes, not the %d announced", p, len(data), size)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.beginWrite(ctx, "Put", p); err != nil {
		return backends.Entry{}, err
	}
	p = clean(p)
	if p == "" {
		return backends.Entry{}, fmt.Errorf("put /: %w", backends.ErrIsDir)
	}
	if err := b.parentDir(p); err != nil {
		return backends.Entry{}, fmt.Errorf("put %s: %w", p, err)
	}
	old, exists := b.nodes[p]
	switch {
	case exists && old.dir:
		return backends.Entry{}, fmt.Errorf("put %s: %w", p, backends.ErrIsDir)
	case exists && opts.IfNoneMatch:
		return backends.Entry{}, fmt.Errorf("put %s: %w (if-none-match: %w)", p, backends.ErrExist, backends.ErrPrecondition)
	case opts.IfMatch != "" && !exists:
		return backends.Entry{}, fmt.Errorf("put %s: %w: the file is gone", p, backends.ErrPrecondition)
	case opts.IfMatch != "" && old.version != opts.IfMatch:
		return backends.Entry{}, fmt.Errorf("put %s: %w: version %s is now %s", p, backends.ErrPrecondition, opts.IfMatch, old.version)
	}
	var meta backends.Meta
	if exists {
		meta = backends.Meta{Mode: old.meta.Mode, UID: old.meta.UID, GID: old.meta.GID}
	}
	meta.Merge(b.kept(opts.Meta))
	if exists && opts.InPlace {
		// Written over: every name of the node sees it.
		old.data, old.modTime, old.version, old.meta = data, time.Now(), b.newVersion(), meta
		return b.entry(p, old), nil
	}
	n := &node{data: data, modTime: time.Now(), version: b.newVersion(), meta: meta}
	b.nodes[p] = n
	return b.entry(p, n), nil
}

// kept is a copy of the fields of m that the backend keeps, to their
// precision.
func (b *Backend) kept(m backends.Meta) backends.Meta {
	m, _ = b.caps.Split(copyMeta(m))
	if m.MTime != nil && b.caps.MTime.Precision > 0 {
		t := m.MTime.Truncate(b.caps.MTime.Precision)
		m.MTime = &t
	}
	return m
}

// copyMeta returns m with copies of what its pointers point to, so that
// neither the caller nor the tree sees the other's later changes.
func copyMeta(m backends.Meta) backends.Meta {
	if m.MTime != nil {
		t := *m.MTime
		m.MTime = &t
	}
	if m.Mode != nil {
		v := *m.Mode
		m.Mode = &v
	}
	if m.UID != nil {
		v := *m.UID
		m.UID = &v
	}
	if m.GID != nil {
		v := *m.GID
		m.GID = &v
	}
	return m
}

// Mkdir implements backends.Backend.
func (b *Backend) Mkdir(ctx context.Context, p string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.beginWrite(ctx, "Mkdir", p); err != nil {
		return err
	}
	p = clean(p)
	if _, ok := b.nodes[p]; ok {
		return fmt.Errorf("mkdir %s: %w", p, backends.ErrExist)
	}
	if err := b.parentDir(p); err != nil {
		return fmt.Errorf("mkdir %s: %w", p, err)
	}
	b.nodes[p] = &node{dir: true, modTime: time.Now()}
	return nil
}

// Remove implements backends.Backend. The root is never removed.
func (b *Backend) Remove(ctx context.Context, p string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.beginWrite(ctx, "Remove", p); err != nil {
		return err
	}
	p = clean(p)
	if p == "" {
		return fmt.Errorf("remove /: %w: refusing to remove the root", backends.ErrPermission)
	}
	n, ok := b.nodes[p]
	if !ok {
		return fmt.Errorf("remove %s: %w", p, backends.ErrNotFound)
	}
	if n.dir && b.hasChildren(p) {
		return fmt.Errorf("remove %s: %w", p, backends.ErrNotEmpty)
	}
	delete(b.nodes, p)
	return nil
}

// hasChildren reports whether the directory p has any. b.mu is held.
func (b *Backend) hasChildren(p string) bool {
	for q := range b.nodes {
		if strings.HasPrefix(q, p+"/") {
			return true
		}
	}
	return false
}

// Rename implements backends.Backend, the way rename(2) does: with
// overwrite a file replaces a file and a directory an empty directory.
func (b *Backend) Rename(ctx context.Context, from, to string, overwrite bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.beginWrite(ctx, "Rename", from); err != nil {
		return err
	}
	from, to = clean(from), clean(to)
	if from == "" || to == "" {
		return fmt.Errorf("rename %s to %s: %w: cannot move the root", from, to, backends.ErrPermission)
	}
	src, ok := b.nodes[from]
	if !ok {
		return fmt.Errorf("rename %s: %w", from, backends.ErrNotFound)
	}
	if from == to {
		return nil
	}
	if strings.HasPrefix(to, from+"/") {
		return fmt.Errorf("rename %s to %s: %w: cannot move a directory into itself", from, to, backends.ErrPermission)
	}
	if err := b.parentDir(to); err != nil {
		return fmt.Errorf("rename to %s: %w", to, err)
	}
	if dst, ok := b.nodes[to]; ok {
		switch {
		case !overwrite:
			return fmt.Errorf("rename to %s: %w", to, backends.ErrExist)
		case dst.dir && !src.dir:
			return fmt.Errorf("rename to %s: %w", to, backends.ErrIsDir)
		case !dst.dir && src.dir:
			return fmt.Errorf("rename to %s: %w", to, backends.ErrNotDir)
		case dst.dir && b.hasChildren(to):
			return fmt.Errorf("rename to %s: %w", to, backends.ErrNotEmpty)
		}
	}
	moved := map[string]*node{}
	for q, n := range b.nodes {
		if q == from || strings.HasPrefix(q, from+"/") {
			moved[to+q[len(from):]] = n
			delete(b.nodes, q)
		}
	}
	for q, n := range moved {
		b.nodes[q] = n
	}
	return nil
}

// SetMeta implements backends.MetaSetter. It stores the fields the backend
// keeps and ignores the others.
func (b *Backend) SetMeta(ctx context.Context, p string, m backends.Meta, ifVersion string) (backends.Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if err := b.beginWrite(ctx, "SetMeta", p); err != nil {
		return backends.Entry{}, err
	}
	p = clean(p)
	n, ok := b.nodes[p]
	if !ok {
		return backends.Entry{}, fmt.Errorf("setmeta %s: %w", p, backends.ErrNotFound)
	}
	if ifVersion != "" && n.version != ifVersion {
		return backends.Entry{}, fmt.Errorf("setmeta %s: %w: version %s is now %s", p, backends.ErrPrecondition, ifVersion, n.version)
	}
	n.meta.Merge(b.kept(m))
	return b.entry(p, n), nil
}
