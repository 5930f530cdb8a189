package fs

import (
	"context"
	"path"
	"slices"
)

// Walks (rsync, find, ls -R, a file manager counting what each folder
// holds) list one directory after another, in name order. The mount reads
// ahead of them as a kernel reads ahead in a file: once a walk has entered
// two subdirectories of a directory, each entry into one of them starts
// background listings of the next prefetchWindow subdirectories (by name)
// that are neither known nor asked for yet, a few at a time, so that the
// walk finds them ready instead of waiting a round trip for each. It never
// reaches further down on its own, and a look at one directory (ls -l)
// reads nothing ahead.
const (
	// prefetchWindow is how many subdirectories ahead of a walk are read.
	prefetchWindow = 16
	// prefetchParallel bounds the listings read ahead at once, across the
	// mount, leaving the server's other connections to what a user waits
	// for.
	prefetchParallel = 4
)

// prefetcher runs the background listings of one mount.
type prefetcher struct {
	ctx  context.Context // ends when the mount does
	stop context.CancelFunc
	sem  chan struct{}
}

func newPrefetcher() *prefetcher {
	ctx, stop := context.WithCancel(context.Background())
	return &prefetcher{ctx: ctx, stop: stop, sem: make(chan struct{}, prefetchParallel)}
}

// descended notes that dir was listed from the server. When it is the
// second subdirectory of its parent that a walk entered, the listings of
// the parent's other subdirectories are read ahead.
func (f *fsys) descended(dir string) {
	if f.pre == nil || dir == "" {
		return
	}
	for _, d := range f.dirs.descend(dir) {
		f.prefetch(d)
	}
}

// prefetch reads the listing of dir in the background, unless the server
// is not answering or the listing is known or on its way by the time a
// slot is free.
func (f *fsys) prefetch(dir string) {
	if f.stalled() {
		return
	}
	go func() {
		select {
		case f.pre.sem <- struct{}{}:
		case <-f.pre.ctx.Done():
			return
		}
		defer func() { <-f.pre.sem }()
		if f.pre.ctx.Err() != nil || f.stalled() || f.lists.busy(dir) || f.dirs.has(dir) ||
			f.lists.failure(dir, f.opts.DirCacheTime) != nil {
			return
		}
		f.listDir(f.pre.ctx, dir)
	}()
}

// descend counts a walk's entry into dir (just listed) in its parent's
// listing and returns the parent's subdirectories to read ahead: from the
// second entry on, the next prefetchWindow after dir by name that have no
// listing and were not asked for before.
func (d *dirCache) descend(dir string) []string {
	parent, name := splitPath(dir)
	d.mu.Lock()
	defer d.mu.Unlock()
	pl, ok := d.byD[parent]
	if !ok || pl.partial {
		return nil
	}
	if pl.descents++; pl.descents < 2 {
		return nil
	}
	if pl.subdirs == nil {
		pl.subdirs = []string{}
		for n, e := range pl.entries {
			if e.IsDir {
				pl.subdirs = append(pl.subdirs, n)
			}
		}
		slices.Sort(pl.subdirs)
	}
	i, _ := slices.BinarySearch(pl.subdirs, name)
	from := max(i+1, pl.aheadTo)
	to := min(i+1+prefetchWindow, len(pl.subdirs))
	var dirs []string
	for _, n := range pl.subdirs[min(from, to):to] {
		child := path.Join(parent, n)
		if _, known := d.byD[child]; !known {
			dirs = append(dirs, child)
		}
	}
	pl.aheadTo = max(pl.aheadTo, to)
	return dirs
}

// walkedInto reports whether dir, of which the mount knows nothing yet,
// was entered from a directory the mount has a full listing of: a lookup
// in it lists it rather than asking for the one name.
func (d *dirCache) walkedInto(dir string) bool {
	if dir == "" {
		return false
	}
	parent, _ := splitPath(dir)
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, known := d.byD[dir]; known {
		return false
	}
	pl, ok := d.byD[parent]
	return ok && !pl.partial
}

// has reports whether the mount holds any listing of dir, or single
// lookups in it.
func (d *dirCache) has(dir string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, ok := d.byD[dir]
	return ok
}
