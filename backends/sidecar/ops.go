package sidecar

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/cloudmount/cloudmount/backends"
)

// List lists directory p without its metadata file, each child with the
// metadata its entry in the file holds while that entry is current.
func (b *Backend) List(ctx context.Context, p string) ([]backends.Entry, error) {
	s, err := b.active(ctx)
	if err != nil || s == nil {
		if err != nil {
			return nil, err
		}
		return b.inner.List(ctx, p)
	}
	p = cleanPath(p)
	if isMetaFile(p) {
		return nil, reservedErr("list", p, backends.ErrNotFound)
	}
	var side sideState
	var sideErr error
	var wg sync.WaitGroup
	if s.inner.UnlistedDotNames {
		wg.Add(1)
		go func() {
			defer wg.Done()
			side, sideErr = b.statFile(ctx, p)
		}()
	}
	ents, err := b.inner.List(ctx, p)
	wg.Wait()
	if err != nil {
		return nil, err
	}
	out := ents[:0]
	for _, e := range ents {
		if e.Name == backends.MetaFileName {
			side, sideErr = sideState{exists: true, entry: e}, nil
			continue
		}
		out = append(out, e)
	}
	d := b.dirOf(p)
	if sideErr == nil {
		sideErr = b.refresh(ctx, d, side)
	}
	if sideErr != nil {
		if ctx.Err() != nil {
			return nil, sideErr
		}
		b.log.Warn("metadata file not read; the listing shows the server's mtimes and modes",
			backends.NameAttr("dir", p), "err", sideErr)
		return out, nil
	}
	recs, _, _ := d.snapshot(b.opts.Fresh)
	for i := range out {
		if r, ok := recs[out[i].Name]; ok {
			out[i] = s.merge(out[i], r)
		}
	}
	return out, nil
}

// Stat returns the entry at p with the metadata its entry in the file
// holds while current. The file is asked for again when the copy held is
// older than Options.Fresh.
func (b *Backend) Stat(ctx context.Context, p string) (backends.Entry, error) {
	s, err := b.active(ctx)
	if err != nil {
		return backends.Entry{}, err
	}
	if s == nil {
		return b.inner.Stat(ctx, p)
	}
	if isMetaFile(p) {
		return backends.Entry{}, reservedErr("stat", p, backends.ErrNotFound)
	}
	e, err := b.inner.Stat(ctx, p)
	if err != nil {
		return e, err
	}
	return b.withRecord(ctx, s, p, e)
}

// withRecord merges the current entry of p from its file into e.
func (b *Backend) withRecord(ctx context.Context, s *setup, p string, e backends.Entry) (backends.Entry, error) {
	dp, key := parentKey(p)
	d := b.dirOf(dp)
	if _, _, fresh := d.snapshot(b.opts.Fresh); !fresh {
		side, err := b.statFile(ctx, dp)
		if err == nil {
			err = b.refresh(ctx, d, side)
		}
		if err != nil {
			if ctx.Err() != nil {
				return e, err
			}
			b.log.Warn("metadata file not read; the server's mtime and mode are shown", backends.NameAttr("path", p), "err", err)
			return e, nil
		}
	}
	recs, _, _ := d.snapshot(b.opts.Fresh)
	if r, ok := recs[key]; ok {
		e = s.merge(e, r)
	}
	return e, nil
}

// merge returns e with the metadata of r, where r is current for e.
func (s *setup) merge(e backends.Entry, r record) backends.Entry {
	if !r.matches(e) {
		return e
	}
	m, _ := s.kinds.split(r.meta)
	if e.IsDir {
		m.SHA256, m.Type = "", ""
	}
	e.Meta.Merge(m)
	if m.MTime != nil {
		e.ModTime = *m.MTime
	}
	return e
}

// Put uploads the file and then records the metadata the server does not
// keep in its directory's file. Overwriting keeps the mode and owner the
// file had and drops its mtime, hash and type. If the content is stored
// but the file's write fails, it returns the entry and an error matching
// backends.ErrMetaNotStored.
func (b *Backend) Put(ctx context.Context, p string, r io.Reader, size int64, opts backends.PutOptions) (backends.Entry, error) {
	s, err := b.active(ctx)
	if err != nil {
		return backends.Entry{}, err
	}
	if s == nil {
		return b.inner.Put(ctx, p, r, size, opts)
	}
	if isMetaFile(p) {
		return backends.Entry{}, reservedErr("put", p, backends.ErrPermission)
	}
	fileMeta, _ := s.kinds.split(opts.Meta)
	e, err := b.inner.Put(ctx, p, r, size, opts)
	if err != nil && !errors.Is(err, backends.ErrMetaNotStored) {
		return e, err
	}
	innerErr := err
	dp, key := parentKey(p)
	d := b.dirOf(dp)
	if fileMeta.IsZero() {
		// Nothing to record unless the old file had a mode or owner to
		// keep (or a stale entry to drop).
		if recs, loaded, _ := d.snapshot(b.opts.Fresh); loaded {
			if _, had := recs[key]; !had {
				return e, innerErr
			}
		}
	}
	var rec record
	version := e.Version
	err = b.commit(ctx, d, func(recs map[string]record) {
		old, had := recs[key]
		rec = record{version: version}
		if had && !old.dir {
			rec.meta.Mode, rec.meta.UID, rec.meta.GID = old.meta.Mode, old.meta.UID, old.meta.GID
		}
		rec.meta.Merge(fileMeta)
		if rec.meta.IsZero() {
			delete(recs, key)
			return
		}
		recs[key] = rec
	})
	if err != nil {
		return e, fmt.Errorf("put %s: %w: %w", backends.Escape(p), backends.ErrMetaNotStored, err)
	}
	if !rec.meta.IsZero() {
		e = s.merge(e, rec)
	}
	return e, innerErr
}

// SetMeta stores the fields of m: those the server keeps through inner's
// SetMeta, the others in the directory's file, for the version the server
// has now (ifVersion, when set, must be it).
func (b *Backend) SetMeta(ctx context.Context, p string, m backends.Meta, ifVersion string) (backends.Entry, error) {
	s, err := b.active(ctx)
	if err != nil {
		return backends.Entry{}, err
	}
	ms, hasSetter := b.inner.(backends.MetaSetter)
	if s == nil {
		if !hasSetter {
			return b.inner.Stat(ctx, p)
		}
		return ms.SetMeta(ctx, p, m, ifVersion)
	}
	if isMetaFile(p) {
		return backends.Entry{}, reservedErr("setmeta", p, backends.ErrNotFound)
	}
	fileMeta, rest := s.kinds.split(m)
	var e backends.Entry
	if hasSetter && !rest.IsZero() {
		e, err = ms.SetMeta(ctx, p, rest, ifVersion)
	} else {
		e, err = b.inner.Stat(ctx, p)
		if err == nil && ifVersion != "" && e.Version != ifVersion {
			err = fmt.Errorf("setmeta %s: %w: version %s is now %s", backends.Escape(p), backends.ErrPrecondition, ifVersion, e.Version)
		}
	}
	if err != nil {
		return e, err
	}
	if fileMeta.IsZero() {
		return b.withRecord(ctx, s, p, e)
	}
	if e.IsDir {
		fileMeta.SHA256, fileMeta.Type = "", ""
	}
	dp, key := parentKey(p)
	var rec record
	cur := e
	err = b.commit(ctx, b.dirOf(dp), func(recs map[string]record) {
		rec = record{dir: cur.IsDir}
		if !cur.IsDir {
			rec.version = cur.Version
		}
		if old, had := recs[key]; had && old.matches(cur) {
			rec.meta = old.meta
		}
		rec.meta.Merge(fileMeta)
		recs[key] = rec
	})
	if err != nil {
		return e, fmt.Errorf("setmeta %s: %w", backends.Escape(p), err)
	}
	return s.merge(e, rec), nil
}

// Remove deletes a file or an empty directory and drops its entry. A
// directory that holds nothing but its metadata file counts as empty: the
// file goes first.
func (b *Backend) Remove(ctx context.Context, p string) error {
	s, err := b.active(ctx)
	if err != nil || s == nil {
		if err != nil {
			return err
		}
		return b.inner.Remove(ctx, p)
	}
	if isMetaFile(p) {
		return reservedErr("remove", p, backends.ErrNotFound)
	}
	p = cleanPath(p)
	b.treeMu.Lock()
	err = b.inner.Remove(ctx, p)
	if errors.Is(err, backends.ErrNotEmpty) && b.onlyMetaFile(ctx, p) {
		err = b.inner.Remove(ctx, filePath(p))
		if err == nil || errors.Is(err, backends.ErrNotFound) {
			err = b.inner.Remove(ctx, p)
		}
	}
	if err == nil {
		b.forgetTree(p)
	}
	b.treeMu.Unlock()
	if err != nil {
		return err
	}
	dp, key := parentKey(p)
	b.dropEntry(ctx, dp, key)
	return nil
}

// dropEntry removes key from the file of directory dp where the copy held
// has it. A failure is logged only: the stale entry matches no later
// version of a file.
func (b *Backend) dropEntry(ctx context.Context, dp, key string) {
	d := b.dirOf(dp)
	recs, loaded, _ := d.snapshot(b.opts.Fresh)
	if _, had := recs[key]; !loaded || !had {
		return
	}
	err := b.commit(ctx, d, func(recs map[string]record) { delete(recs, key) })
	if err != nil {
		b.log.Info("metadata file: entry of a removed file not dropped", backends.NameAttr("dir", dp), backends.NameAttr("name", key), "err", err)
	}
}

// onlyMetaFile reports whether directory p holds its metadata file and
// nothing else.
func (b *Backend) onlyMetaFile(ctx context.Context, p string) bool {
	ents, err := b.inner.List(ctx, p)
	if err != nil {
		return false
	}
	found := false
	for _, e := range ents {
		if e.Name != backends.MetaFileName {
			return false
		}
		found = true
	}
	return found
}

// Rename moves from to to and its entry from one file to the other. A
// directory carries its own file with it. A directory that holds nothing
// but its metadata file may be replaced, as an empty one.
func (b *Backend) Rename(ctx context.Context, from, to string, overwrite bool) error {
	s, err := b.active(ctx)
	if err != nil || s == nil {
		if err != nil {
			return err
		}
		return b.inner.Rename(ctx, from, to, overwrite)
	}
	if isMetaFile(from) {
		return reservedErr("rename", from, backends.ErrNotFound)
	}
	if isMetaFile(to) {
		return reservedErr("rename", to, backends.ErrPermission)
	}
	from, to = cleanPath(from), cleanPath(to)
	if from == to {
		return b.inner.Rename(ctx, from, to, overwrite)
	}
	fd, fk := parentKey(from)
	td, tk := parentKey(to)
	// The entry that moves, from the source directory's file.
	src := b.dirOf(fd)
	if _, loaded, _ := src.snapshot(b.opts.Fresh); !loaded {
		side, err := b.statFile(ctx, fd)
		if err == nil {
			err = b.refresh(ctx, src, side)
		}
		if err != nil && ctx.Err() != nil {
			return err
		}
	}
	recs, _, _ := src.snapshot(b.opts.Fresh)
	rec, had := recs[fk]

	b.treeMu.Lock()
	err = b.inner.Rename(ctx, from, to, overwrite)
	if errors.Is(err, backends.ErrNotEmpty) && overwrite && b.onlyMetaFile(ctx, to) {
		err = b.inner.Remove(ctx, filePath(to))
		if err == nil || errors.Is(err, backends.ErrNotFound) {
			err = b.inner.Rename(ctx, from, to, overwrite)
		}
	}
	if err == nil {
		b.renameTree(from, to)
	}
	b.treeMu.Unlock()
	if err != nil {
		return err
	}

	move := func(recs map[string]record) { recs[tk] = rec }
	if !had {
		// Nothing moves; only an entry at to, if any, is dropped.
		b.dropEntry(ctx, td, tk)
		return nil
	}
	if fd == td {
		err = b.commit(ctx, b.dirOf(td), func(recs map[string]record) {
			delete(recs, fk)
			move(recs)
		})
	} else {
		err = b.commit(ctx, b.dirOf(td), move)
		if err == nil {
			err = b.commit(ctx, b.dirOf(fd), func(recs map[string]record) { delete(recs, fk) })
		}
	}
	if err != nil {
		// The move itself is done: its metadata shows as the server's.
		b.log.Warn("metadata file: the entry of a renamed file was not moved", backends.NameAttr("from", from),
			backends.NameAttr("to", to), "err", err)
	}
	return nil
}
