package sidecar

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// Lock order: Backend.treeMu, then dir.loadMu, then Backend.mu, then
// dir.mu. No lock is held across a wait for a batch.

// dir is what the wrapper holds of one directory's metadata file.
type dir struct {
	// loadMu serialises reads of the file from the server.
	loadMu chan struct{}

	mu sync.Mutex // protects the fields below
	// path is the directory's path; it changes when the directory moves
	// (under Backend.treeMu held for writing).
	path string
	// loaded: recs and version are a copy of the server's file as it was
	// at checked. version "" is no file.
	loaded  bool
	version string
	checked time.Time
	// recs is never changed once set (copy on write): readers may keep it.
	recs map[string]record
	// next gathers the changes for the write after the one in flight.
	next     *batch
	flushing bool
	used     uint64
}

// batch is changes that go to the server in one write of the file.
type batch struct {
	changes []func(map[string]record)
	done    chan struct{} // closed when written (or failed)
	err     error
}

// sideState is what the server has at a directory's file path.
type sideState struct {
	exists bool
	entry  backends.Entry
}

func (s sideState) version() string {
	if !s.exists {
		return ""
	}
	return s.entry.Version
}

// dirOf returns the state of directory p, making it if needed.
func (b *Backend) dirOf(p string) *dir {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tick++
	d := b.dirs[p]
	if d == nil {
		if len(b.dirs) >= b.opts.MaxDirs {
			b.evictLocked()
		}
		d = &dir{path: p, loadMu: make(chan struct{}, 1)}
		b.dirs[p] = d
	}
	d.mu.Lock()
	d.used = b.tick
	d.mu.Unlock()
	return d
}

// evictLocked forgets the least recently used quarter of the idle
// directories. b.mu is held.
func (b *Backend) evictLocked() {
	type use struct {
		p string
		t uint64
	}
	var idle []use
	for p, d := range b.dirs {
		d.mu.Lock()
		if !d.flushing && d.next == nil {
			idle = append(idle, use{p, d.used})
		}
		d.mu.Unlock()
	}
	if len(idle) == 0 {
		return
	}
	// The oldest quarter: a partial selection by threshold is enough.
	var sum uint64
	for _, u := range idle {
		sum += u.t
	}
	avg := sum / uint64(len(idle))
	n := 0
	for _, u := range idle {
		if u.t <= avg && n < len(idle)/4+1 {
			delete(b.dirs, u.p)
			n++
		}
	}
}

// renameTree moves the states of from and the directories below it to to,
// dropping those at and below to. Backend.treeMu is held for writing.
func (b *Backend) renameTree(from, to string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	moved := map[string]*dir{}
	for p, d := range b.dirs {
		switch {
		case backends.InTree(p, from):
			np := to + p[len(from):]
			d.mu.Lock()
			d.path = np
			d.mu.Unlock()
			moved[np] = d
			delete(b.dirs, p)
		case backends.InTree(p, to):
			delete(b.dirs, p)
		}
	}
	for p, d := range moved {
		b.dirs[p] = d
	}
}

// forgetTree drops the states of p and the directories below it.
func (b *Backend) forgetTree(p string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for q := range b.dirs {
		if backends.InTree(q, p) {
			delete(b.dirs, q)
		}
	}
}

// snapshot returns the records held for d (nil if none were read) and
// whether they were checked within the freshness window.
func (d *dir) snapshot(fresh time.Duration) (recs map[string]record, loaded, isFresh bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.recs, d.loaded, d.loaded && time.Since(d.checked) < fresh
}

// statFile asks the server what is at directory p's file path.
func (b *Backend) statFile(ctx context.Context, p string) (sideState, error) {
	e, err := b.inner.Stat(ctx, filePath(p))
	if errors.Is(err, backends.ErrNotFound) || errors.Is(err, backends.ErrNotDir) {
		return sideState{}, nil
	}
	if err != nil {
		return sideState{}, err
	}
	return sideState{exists: true, entry: e}, nil
}

// lockLoad takes d.loadMu, or fails when ctx ends first.
func (d *dir) lockLoad(ctx context.Context) error {
	select {
	case d.loadMu <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (d *dir) unlockLoad() { <-d.loadMu }

// refresh makes d's copy that of the file the server has (side): it reads
// the file when its version differs from the copy's. A file that cannot be
// read as a whole (too large, malformed, a directory) counts as empty and
// is logged once; a failure to reach the server is returned.
func (b *Backend) refresh(ctx context.Context, d *dir, side sideState) error {
	if err := d.lockLoad(ctx); err != nil {
		return err
	}
	defer d.unlockLoad()
	d.mu.Lock()
	if d.loaded && d.version == side.version() {
		d.checked = time.Now()
		d.mu.Unlock()
		return nil
	}
	p := d.path
	d.mu.Unlock()
	recs := map[string]record{}
	if side.exists {
		got, err := b.readFile(ctx, p, side.entry)
		if err != nil {
			return err
		}
		recs = got
	}
	d.mu.Lock()
	d.recs, d.version, d.loaded, d.checked = recs, side.version(), true, time.Now()
	d.mu.Unlock()
	return nil
}

// readFile reads and decodes the file of directory p whose entry is e.
func (b *Backend) readFile(ctx context.Context, p string, e backends.Entry) (map[string]record, error) {
	fp := filePath(p)
	warn := func(msg string, args ...any) {
		if b.warns.first(fp + "\x00" + e.Version + "\x00" + msg) {
			b.log.Warn(msg, append([]any{backends.NameAttr("file", fp)}, args...)...)
		}
	}
	if e.IsDir {
		warn("metadata file ignored: it is a directory on the server")
		return map[string]record{}, nil
	}
	if e.Size > MaxFileBytes {
		warn("metadata file ignored: too large", "size", e.Size, "max", MaxFileBytes)
		return map[string]record{}, nil
	}
	var rc io.ReadCloser
	var err error
	if sr, ok := b.inner.(backends.SizedReader); ok && e.Size >= 0 {
		rc, err = sr.ReadSized(ctx, fp, 0, -1, e.Size)
	} else {
		rc, err = b.inner.Read(ctx, fp, 0, -1)
	}
	if errors.Is(err, backends.ErrNotFound) {
		return map[string]record{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", backends.Escape(fp), err)
	}
	defer rc.Close()
	recs, skipped, err := decode(rc)
	switch {
	case errors.Is(err, errMalformed) || errors.Is(err, backends.ErrProtocol) && ctx.Err() == nil:
		warn("metadata file ignored: the mtimes and modes of this directory are the server's", "err", err)
		return map[string]record{}, nil
	case err != nil:
		return nil, fmt.Errorf("read %s: %w", backends.Escape(fp), err)
	case skipped > 0:
		warn("metadata file: invalid entries ignored", "skipped", skipped)
	}
	return recs, nil
}

// commit applies change to d's file on the server, with the other changes
// gathered meanwhile, and returns once that write ended (or ctx did).
// change may run more than once (a write retried on a conflict), each
// time on the latest records, and must leave the map in the state wanted.
func (b *Backend) commit(ctx context.Context, d *dir, change func(map[string]record)) error {
	d.mu.Lock()
	if d.next == nil {
		d.next = &batch{done: make(chan struct{})}
	}
	w := d.next
	w.changes = append(w.changes, change)
	if !d.flushing {
		d.flushing = true
		go b.flushLoop(d)
	}
	d.mu.Unlock()
	select {
	case <-w.done:
		return w.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

// flushLoop writes d's batches one after the other until none is left.
func (b *Backend) flushLoop(d *dir) {
	for {
		d.mu.Lock()
		w := d.next
		d.next = nil
		if w == nil {
			d.flushing = false
			d.mu.Unlock()
			return
		}
		d.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), b.opts.Timeout)
		w.err = b.write(ctx, d, w.changes)
		cancel()
		close(w.done)
	}
}

// maxWriteAttempts bounds the writes of one batch that find the file
// changed by another machine meanwhile (conditional servers).
const maxWriteAttempts = 4

// write sends one batch: it reads the server's file where it may have
// changed, applies the changes to it and writes it back (or removes it
// when no entry is left).
func (b *Backend) write(ctx context.Context, d *dir, changes []func(map[string]record)) error {
	b.treeMu.RLock()
	defer b.treeMu.RUnlock()
	s, err := b.setup(ctx)
	if err != nil {
		return err
	}
	cond := s.inner.ConditionalPut
	d.mu.Lock()
	old, loaded := d.recs, d.loaded
	d.mu.Unlock()
	if loaded && sameRecords(old, applied(old, changes)) {
		// Nothing changes (an entry dropped that was never there).
		return nil
	}
	for attempt := 1; ; attempt++ {
		d.mu.Lock()
		p, loaded := d.path, d.loaded
		d.mu.Unlock()
		if !cond || !loaded {
			// Without If-Match, look right before the upload.
			side, err := b.statFile(ctx, p)
			if err != nil {
				return err
			}
			if err := b.refresh(ctx, d, side); err != nil {
				return err
			}
		}
		d.mu.Lock()
		old, ver := d.recs, d.version
		d.mu.Unlock()
		recs := applied(old, changes)
		if sameRecords(old, recs) {
			return nil
		}
		if len(recs) == 0 {
			err := b.inner.Remove(ctx, filePath(p))
			if err != nil && !errors.Is(err, backends.ErrNotFound) {
				return fmt.Errorf("remove %s: %w", backends.Escape(filePath(p)), err)
			}
			d.install(recs, "")
			return nil
		}
		data, err := encode(recs)
		if err != nil {
			return err
		}
		opts := backends.PutOptions{}
		if cond {
			opts.IfMatch, opts.IfNoneMatch = ver, ver == ""
		}
		e, err := b.inner.Put(ctx, filePath(p), bytes.NewReader(data), int64(len(data)), opts)
		if cond && attempt < maxWriteAttempts && (errors.Is(err, backends.ErrPrecondition) || errors.Is(err, backends.ErrExist)) {
			// Another machine wrote it meanwhile: read theirs, merge.
			d.mu.Lock()
			d.loaded = false
			d.mu.Unlock()
			continue
		}
		if err != nil && !errors.Is(err, backends.ErrMetaNotStored) {
			return fmt.Errorf("write %s: %w", backends.Escape(filePath(p)), err)
		}
		d.install(recs, e.Version)
		return nil
	}
}

// applied returns a copy of old with the changes applied.
func applied(old map[string]record, changes []func(map[string]record)) map[string]record {
	recs := make(map[string]record, len(old)+len(changes))
	for k, v := range old {
		recs[k] = v
	}
	for _, c := range changes {
		c(recs)
	}
	return recs
}

// install makes recs, as the server has them under version, d's copy.
func (d *dir) install(recs map[string]record, version string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.recs, d.version, d.loaded, d.checked = recs, version, true, time.Now()
}

// sameRecords reports whether a and b hold the same entries.
func sameRecords(a, b map[string]record) bool {
	if len(a) != len(b) {
		return false
	}
	for k, x := range a {
		y, ok := b[k]
		if !ok || !sameRecord(x, y) {
			return false
		}
	}
	return true
}

func sameRecord(x, y record) bool {
	if x.version != y.version || x.dir != y.dir || x.meta.SHA256 != y.meta.SHA256 || x.meta.Type != y.meta.Type {
		return false
	}
	eqT := func(a, b *time.Time) bool { return (a == nil) == (b == nil) && (a == nil || a.Equal(*b)) }
	eqU := func(a, b *uint32) bool { return (a == nil) == (b == nil) && (a == nil || *a == *b) }
	eqM := (x.meta.Mode == nil) == (y.meta.Mode == nil) && (x.meta.Mode == nil || *x.meta.Mode == *y.meta.Mode)
	return eqT(x.meta.MTime, y.meta.MTime) && eqM && eqU(x.meta.UID, y.meta.UID) && eqU(x.meta.GID, y.meta.GID)
}
