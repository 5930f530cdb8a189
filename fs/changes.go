package fs

import (
	"context"
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/cache"
)

// Changes of the tree made while the server cannot be reached (mkdir,
// rmdir, rm and mv of what is on the server) are queued in the journal
// (cache.Queue.Change) and shown in the mount at once: the directory cache
// takes them as it takes this mount's other changes, and while one is
// pending, the paths it concerns are answered from that cache, never from
// the server, whose tree is older. They are carried out in order once the
// server answers (Apply); a conflict with a change made on the server
// meanwhile keeps what the server has.

// deferTree reports whether a change of the tree must be queued instead of
// made now: changes are pending (a new one waits its turn), or the server
// is known not to answer.
func (f *fsys) deferTree() bool {
	return f.q.HasChanges() || !f.q.Online() || f.stalled()
}

// unreachable reports whether a failed change of the tree is to be queued:
// the server could not be reached (or answered too late).
func (f *fsys) unreachable(err error) bool {
	if f.Offline(err) {
		f.noteErr(err)
		return true
	}
	return false
}

// queueChange queues rec. It fails only when the journal cannot be written.
func (f *fsys) queueChange(rec cache.Record) syscall.Errno {
	if _, err := f.q.Change(rec); err != nil {
		f.log.Error("queueing a change of the tree failed", "change", rec.String(), "err", err)
		return syscall.EIO
	}
	f.log.Info("change of the tree queued: it is made on the server once the server answers and the changes before it are made", "change", rec.String())
	return 0
}

// pending reports whether a queued change concerns p: p's entry and
// listing then come from the directory cache.
func (f *fsys) pending(p string) bool {
	return f.q.ChangePending(p)
}

// Apply implements cache.Uploader: it carries out one queued change of the
// tree. A change found done (its reply was lost, or an earlier mount did it
// before a crash) is done.
func (f *fsys) Apply(ctx context.Context, rec cache.Record) (string, error) {
	cctx, cancel := f.call(ctx)
	defer cancel()
	var note string
	var err error
	switch rec.Change {
	case cache.ChangeMkdir:
		note, err = f.applyMkdir(cctx, rec)
	case cache.ChangeRemove:
		note, err = f.applyRemove(cctx, rec)
	case cache.ChangeRename:
		note, err = f.applyRename(cctx, rec)
	default:
		return "", fmt.Errorf("unknown change %q: %w", rec.Change, backends.ErrUnsupported)
	}
	if err == nil {
		f.answered()
		if note != "" {
			f.log.Warn("a change of the tree made while the server was unreachable met a change on the server", "change", rec.String(), "done", note)
		}
	}
	return note, err
}

func (f *fsys) applyMkdir(ctx context.Context, rec cache.Record) (string, error) {
	err := f.be.Mkdir(ctx, rec.Path)
	if errors.Is(err, backends.ErrExist) {
		e, serr := f.be.Stat(ctx, rec.Path)
		switch {
		case serr != nil:
			return "", serr
		case !e.IsDir:
			return "a file of that name was made on the server meanwhile: the directory was not made, and what was written into it fails to upload (it stays in the journal)", nil
		}
		return "", nil
	}
	if err != nil {
		return "", err
	}
	if !rec.Meta.IsZero() {
		if _, err := f.storeMeta(ctx, rec.Path, backends.Entry{IsDir: true}, rec.Meta, ""); err != nil {
			f.log.Warn("storing directory metadata failed", "path", rec.Path, "err", err)
		}
	}
	return "", nil
}

func (f *fsys) applyRemove(ctx context.Context, rec cache.Record) (string, error) {
	e, err := f.be.Stat(ctx, rec.Path)
	switch {
	case errors.Is(err, backends.ErrNotFound):
		return "", nil
	case err != nil:
		return "", err
	case e.IsDir != rec.Dir:
		return "replaced on the server by another kind of entry meanwhile: the server's was kept", nil
	case !rec.Dir && rec.Base != "" && e.Version != "" && e.Version != rec.Base:
		return "changed on the server after it was removed here: the server's version was kept", nil
	}
	err = f.be.Remove(ctx, rec.Path)
	switch {
	case err == nil, errors.Is(err, backends.ErrNotFound):
		return "", nil
	case errors.Is(err, backends.ErrNotEmpty):
		return "files were added to it on the server after it was removed here: it was kept", nil
	}
	return "", err
}

func (f *fsys) applyRename(ctx context.Context, rec cache.Record) (string, error) {
	src, err := f.be.Stat(ctx, rec.Path)
	dst, derr := f.be.Stat(ctx, rec.To)
	if derr != nil && !errors.Is(derr, backends.ErrNotFound) {
		return "", derr
	}
	dstExists := derr == nil
	switch {
	case errors.Is(err, backends.ErrNotFound) && dstExists:
		return "", nil // moved already
	case errors.Is(err, backends.ErrNotFound):
		return "gone from the server before it could be moved: nothing was moved", nil
	case err != nil:
		return "", err
	}
	to, note := rec.To, ""
	if dstExists && (rec.ToBase == "" || dst.IsDir != src.IsDir || (!dst.IsDir && dst.Version != rec.ToBase)) {
		// Something else is at the destination now: keep it.
		to = conflictName(rec.To, time.Now())
		dstExists = false
		note = fmt.Sprintf("%s was made or changed on the server meanwhile and was kept; moved to %s instead", rec.To, to)
	}
	if err := f.be.Rename(ctx, rec.Path, to, dstExists); err != nil {
		return "", err
	}
	if !rec.Dir && note == "" {
		f.rebaseQueued(ctx, rec.To, src.Version)
	}
	return note, nil
}

// rebaseQueued follows a queued edit of the file the server has just
// moved to p from version base: its upload must replace the moved file,
// whatever version name the server gave it.
func (f *fsys) rebaseQueued(ctx context.Context, p, base string) {
	if base == "" {
		return
	}
	rec, ok := f.q.Pending(p)
	if !ok || rec.Base != base {
		return
	}
	e, err := f.be.Stat(ctx, p)
	if err != nil || e.Version == "" || e.Version == base {
		return
	}
	if n := f.live.get(p); n != nil {
		n.mu.Lock()
		if n.staged != nil && n.staged.base == base {
			n.staged.base = e.Version
		}
		n.mu.Unlock()
	}
	if _, err := f.q.SetMeta(p, func(r *cache.Record) {
		if r.Base == base {
			r.Base = e.Version
		}
	}); err != nil {
		f.log.Warn("journal update failed", "path", p, "err", err)
	}
}
