package fs

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/cache"
)

// fsys is the state one mount shares between its nodes.
type fsys struct {
	be    backends.Backend
	store *cache.Store
	caps  backends.Capabilities
	opts  Options
	log   *slog.Logger

	inos  *inodeNumbers
	dirs  *dirCache
	lists listFlights // one listing per directory in flight
	pre   *prefetcher // reads listings ahead of a walk; nil: never
	qc    quotaCache
	// q uploads committed files; live holds their nodes.
	q    *cache.Queue
	live *liveNodes
	// replayed is the highest sequence number of the records of earlier
	// mounts.
	replayed uint64
	// stall is when (UnixNano) a call last got no answer within the
	// timeout; 0 once the server answered again (see stalled).
	stall atomic.Int64
	// probing: watchServer's probe runs.
	probing atomic.Bool
}

// call returns a context for one remote call, bounded by the mount's timeout.
func (f *fsys) call(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), f.opts.Timeout)
}

// split divides m into what the server keeps and what the local index
// keeps. An mtime the server keeps more coarsely than to the nanosecond is
// kept in both: the index has the exact one (see resolve).
func (f *fsys) split(m backends.Meta) (onServer, local backends.Meta) {
	onServer, local = f.caps.Split(m)
	if onServer.MTime != nil && f.caps.MTime.Precision > 0 {
		local.MTime = onServer.MTime
	}
	return onServer, local
}

// reserved reports whether name is that of the server's per-directory
// metadata file (Capabilities.MetaFile), which the mount never shows and
// never creates.
func (f *fsys) reserved(name string) bool {
	return f.caps.MetaFile != "" && name == f.caps.MetaFile
}

// nativeLink reports whether e is a symbolic link of a server that has
// them.
func (f *fsys) nativeLink(e backends.Entry) bool {
	return f.caps.Symlinks && e.Meta.Type == "symlink"
}

// resolve completes an entry read from the server with what the local index
// remembers for that version of it: the fields the server does not keep,
// and the exact mtime where the server keeps a coarser one that agrees.
func (f *fsys) resolve(p string, e backends.Entry) backends.Entry {
	if f.store == nil || (f.caps.StoresAll() && f.caps.MTime.Precision == 0 && !f.caps.Symlinks) {
		return e
	}
	m, ok := f.store.Index.Get(p, e)
	if !ok {
		return e
	}
	if f.nativeLink(e) {
		e.Meta.Merge(m)
		return e
	}
	onServer, local := f.caps.Split(m)
	if mt := onServer.MTime; mt != nil && f.caps.MTime.Precision > 0 && !e.IsDir &&
		mt.Truncate(f.caps.MTime.Precision).Equal(e.ModTime.Truncate(f.caps.MTime.Precision)) {
		e.ModTime = *mt
		local.MTime = mt
	}
	e.Meta.Merge(local)
	return e
}

// storeMeta records m for the file at p, on the server where it can keep it,
// else in the local index keyed by the server's version e. It returns the
// entry as it now is. With ifVersion set (m describes that version's
// content), a server that has another version by now refuses with
// backends.ErrPrecondition.
func (f *fsys) storeMeta(ctx context.Context, p string, e backends.Entry, m backends.Meta, ifVersion string) (backends.Entry, error) {
	if m.IsZero() {
		return e, nil
	}
	onServer, local := f.split(m)
	if f.nativeLink(e) {
		// A server's link has the metadata of what it points to, or
		// none of its own: the index keeps the link's.
		onServer, local = backends.Meta{}, m
	}
	if ms, ok := f.be.(backends.MetaSetter); ok && !onServer.IsZero() {
		cctx, cancel := f.call(ctx)
		defer cancel()
		ne, err := ms.SetMeta(cctx, p, onServer, ifVersion)
		if err != nil {
			return e, err
		}
		e = ne
	} else if !onServer.IsZero() {
		local.Merge(onServer)
	}
	if !local.IsZero() {
		if err := f.store.Index.Set(p, e, local); err != nil {
			return e, err
		}
	}
	return f.resolve(p, e), nil
}

// inodeNumbers hands out inode numbers that stay the same for a path for the
// life of the mount and move with it on rename.
type inodeNumbers struct {
	mu   sync.Mutex // protects the fields below
	next uint64
	byP  map[string]uint64
}

func newInodeNumbers() *inodeNumbers {
	return &inodeNumbers{next: 2, byP: map[string]uint64{"": 1}}
}

func (in *inodeNumbers) get(p string) uint64 {
	in.mu.Lock()
	defer in.mu.Unlock()
	if n, ok := in.byP[p]; ok {
		return n
	}
	n := in.next
	in.next++
	in.byP[p] = n
	return n
}

func (in *inodeNumbers) rename(from, to string, dir bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if !dir {
		// A file replaces at most a file: no paths below either.
		if n, ok := in.byP[from]; ok {
			delete(in.byP, from)
			in.byP[to] = n
		} else {
			delete(in.byP, to)
		}
		return
	}
	moved := map[string]uint64{}
	for p, n := range in.byP {
		if backends.InTree(p, from) {
			moved[to+p[len(from):]] = n
			delete(in.byP, p)
		}
	}
	for p := range in.byP {
		if backends.InTree(p, to) {
			delete(in.byP, p)
		}
	}
	for p, n := range moved {
		in.byP[p] = n
	}
}

func (in *inodeNumbers) forget(p string) {
	in.mu.Lock()
	defer in.mu.Unlock()
	delete(in.byP, p)
}

// dirCache remembers directory listings for a short time, so that the
// lookups that follow a readdir (ls -l, file managers) and probes for names
// that do not exist cost no round trip.
type dirCache struct {
	ttl time.Duration
	mu  sync.Mutex // protects byDir
	byD map[string]*listing
}

type listing struct {
	at      time.Time
	entries map[string]backends.Entry
	// partial: built from single lookups, not a full listing; it answers
	// for the names it has, never that a name is absent.
	partial bool
	// absent holds names the server said do not exist, with when.
	absent map[string]time.Time
	// times holds when single entries were learnt since the listing was
	// read (lookups, this mount's own changes, removals included).
	times map[string]time.Time
	// got is when the listing arrived (at is when it was asked for: a
	// slow listing arrives expired).
	got time.Time
	// probedAt is when a single lookup last went to the server because
	// this full listing had been held longer than the cache time.
	probedAt time.Time
	// descents counts the subdirectories a walk listed after this
	// listing; subdirs are their names in order, and the listings of
	// those before aheadTo were read ahead (prefetch.go).
	descents int
	subdirs  []string
	aheadTo  int
	// nsub counts the subdirectories in entries when nsubKnown.
	nsub      int
	nsubKnown bool
}

// entryTime is when the entry of name was read from the server.
func (l *listing) entryTime(name string) time.Time {
	if t, ok := l.times[name]; ok {
		return t
	}
	return l.at
}

func newDirCache(ttl time.Duration) *dirCache {
	return &dirCache{ttl: ttl, byD: map[string]*listing{}}
}

// put caches the listing of dir that the server gave for a request made at
// asked. It may not show what this mount changed in dir while it was on
// its way: those names keep what the cache learnt since.
func (d *dirCache) put(dir string, entries []backends.Entry, asked time.Time) {
	l := &listing{at: asked, got: time.Now(), entries: make(map[string]backends.Entry, len(entries))}
	for _, e := range entries {
		l.entries[e.Name] = e
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if old, ok := d.byD[dir]; ok {
		for name, t := range old.times {
			if t.Before(asked) {
				continue
			}
			if e, ok := old.entries[name]; ok {
				l.entries[name] = e
			} else {
				delete(l.entries, name)
			}
			if l.times == nil {
				l.times = map[string]time.Time{}
			}
			l.times[name] = t
		}
		for name, t := range old.absent {
			if !t.Before(asked) {
				delete(l.entries, name)
				if l.absent == nil {
					l.absent = map[string]time.Time{}
				}
				l.absent[name] = t
			}
		}
	}
	d.byD[dir] = l
}

// lookup answers from a fresh listing: the entry and true if the name is
// there, false and known=true if the listing is fresh and the name absent.
func (d *dirCache) lookup(dir, name string) (e backends.Entry, found, known bool) {
	return d.lookupWithin(dir, name, d.ttl)
}

// lookupWithin is lookup for listings and negative entries younger than ttl.
func (d *dirCache) lookupWithin(dir, name string, ttl time.Duration) (e backends.Entry, found, known bool) {
	e, found, known, _ = d.lookupAt(dir, name, ttl)
	return e, found, known
}

// lookupAt is lookupWithin that also says when the answer was read from
// the server.
func (d *dirCache) lookupAt(dir, name string, ttl time.Duration) (e backends.Entry, found, known bool, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.byD[dir]
	if !ok {
		return backends.Entry{}, false, false, at
	}
	if at, ok := l.absent[name]; ok && time.Since(at) <= ttl {
		return backends.Entry{}, false, true, at
	}
	if e, found = l.entries[name]; found {
		at = l.entryTime(name)
		if time.Since(at) > ttl {
			return backends.Entry{}, false, false, at
		}
		return e, true, true, at
	}
	if l.partial || time.Since(l.at) > ttl {
		return backends.Entry{}, false, false, at
	}
	return backends.Entry{}, false, true, l.at
}

// lookupStale answers from the last listing however old: for a server that
// cannot be reached.
func (d *dirCache) lookupStale(dir, name string) (e backends.Entry, found, known bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.byD[dir]
	if !ok {
		return backends.Entry{}, false, false
	}
	e, found = l.entries[name]
	return e, found, found || !l.partial
}

// stale returns the last full listing of dir however old.
func (d *dirCache) stale(dir string) ([]backends.Entry, bool) {
	return d.within(dir, -1)
}

// fresh returns the full listing of dir if it was read less than the cache
// time ago. Entries changed since (this mount's own creates, renames and
// uploads, single lookups) are in it as they are now.
func (d *dirCache) fresh(dir string) ([]backends.Entry, bool) {
	return d.within(dir, d.ttl)
}

// within returns the full listing of dir if it is younger than ttl; a
// negative ttl takes it however old.
func (d *dirCache) within(dir string, ttl time.Duration) ([]backends.Entry, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.byD[dir]
	if !ok || l.partial || (ttl >= 0 && time.Since(l.at) > ttl) {
		return nil, false
	}
	out := make([]backends.Entry, 0, len(l.entries))
	for _, e := range l.entries {
		out = append(out, e)
	}
	return out, true
}

// probed reports whether single lookups in dir have started a partial
// listing since its last full one, or gone to the server since that one
// was held for longer than the cache time: the next lookup lists the
// directory again.
func (d *dirCache) probed(dir string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.byD[dir]
	return ok && (l.partial || (!l.probedAt.IsZero() && time.Since(l.got) > d.ttl))
}

// absent remembers that the server has no name in dir (a negative entry).
func (d *dirCache) absent(dir, name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.partialLocked(dir)
	d.noteProbeLocked(l)
	delete(l.entries, name)
	l.absent[name] = time.Now()
	l.nsubKnown = false
}

// found remembers a single lookup's answer, also where dir has no full
// listing, so that it can answer while the server is unreachable.
func (d *dirCache) found(dir, name string, e backends.Entry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l := d.partialLocked(dir)
	d.noteProbeLocked(l)
	delete(l.absent, name)
	l.entries[name] = e
	l.times[name] = time.Now()
	l.nsubKnown = false
}

// noteProbeLocked records a single lookup's trip to the server in an
// expired full listing. d.mu is held.
func (d *dirCache) noteProbeLocked(l *listing) {
	if !l.partial && time.Since(l.got) > d.ttl {
		l.probedAt = time.Now()
	}
}

// partialLocked returns dir's listing, starting a partial one if there is
// none. d.mu must be held.
func (d *dirCache) partialLocked(dir string) *listing {
	l, ok := d.byD[dir]
	if !ok {
		l = &listing{at: time.Now(), entries: map[string]backends.Entry{}, partial: true}
		d.byD[dir] = l
	}
	if l.absent == nil {
		l.absent = map[string]time.Time{}
	}
	if l.times == nil {
		l.times = map[string]time.Time{}
	}
	return l
}

// update changes one name in a cached listing; e == nil removes it.
func (d *dirCache) update(dir, name string, e *backends.Entry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.byD[dir]
	if !ok {
		return
	}
	delete(l.absent, name)
	if l.times == nil {
		l.times = map[string]time.Time{}
	}
	l.times[name] = time.Now()
	l.nsubKnown = false
	if e == nil {
		delete(l.entries, name)
	} else {
		l.entries[name] = *e
	}
}

// rename moves an entry between cached listings, and drops the listings of
// a renamed directory and of what it replaced. local says the source exists
// only here so far (written or queued): the mount answers for it by its
// node until its upload puts it in the listing, so the target's listing
// stays. Otherwise a source the cache did not know leaves the target's
// listing unknown. moveTree (a rename queued while the server cannot be
// reached) keeps the listings below from, moved below to: the mount shows
// them until the server has done the rename.
func (d *dirCache) rename(from, to string, local, moveTree bool) {
	fromDir, fromName := splitPath(from)
	toDir, toName := splitPath(to)
	d.mu.Lock()
	defer d.mu.Unlock()
	var e backends.Entry
	var ok bool
	if l := d.byD[fromDir]; l != nil {
		e, ok = l.entries[fromName]
		delete(l.entries, fromName)
		l.nsubKnown = false
	}
	if l := d.byD[toDir]; l != nil {
		delete(l.absent, toName)
		l.nsubKnown = false
		switch {
		case ok:
			e.Name = toName
			l.entries[toName] = e
		case local:
			delete(l.entries, toName)
		default:
			delete(d.byD, toDir)
		}
	}
	moved := map[string]*listing{}
	for p, l := range d.byD {
		if backends.InTree(p, from) || backends.InTree(p, to) {
			if moveTree && backends.InTree(p, from) {
				moved[to+p[len(from):]] = l
			}
			delete(d.byD, p)
		}
	}
	for p, l := range moved {
		d.byD[p] = l
	}
}

// forgetTree drops the listings of dir and everything below it.
func (d *dirCache) forgetTree(dir string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	for p := range d.byD {
		if backends.InTree(p, dir) {
			delete(d.byD, p)
		}
	}
}

// subdirs counts the subdirectories of dir in its last full listing,
// however old, with what the mount changed since; 0 without one.
func (d *dirCache) subdirs(dir string) int {
	d.mu.Lock()
	defer d.mu.Unlock()
	l, ok := d.byD[dir]
	if !ok || l.partial {
		return 0
	}
	if !l.nsubKnown {
		l.nsub = 0
		for _, e := range l.entries {
			if e.IsDir {
				l.nsub++
			}
		}
		l.nsubKnown = true
	}
	return l.nsub
}
