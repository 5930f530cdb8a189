package cache

import (
	"context"
	"fmt"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// Changes of the tree (mkdir, rmdir, rm and mv of what is on the server)
// made while the server cannot be reached are journal records too
// (Record.Change). They are carried out one at a time, in the order they
// were made. An upload waits while a change that concerns its path (its
// own, a directory above it, or one below it) is pending: a file written
// into a directory made offline, or moved with it, reaches the server after
// the directory. A change does not wait for pending uploads: those under a
// moved directory move with it (Rename), those of removed files are gone.

// Change appends a change of the tree to the journal and queues it after
// everything queued before. Like a commit it is durable at the next group
// commit.
func (q *Queue) Change(rec Record) (uint64, error) {
	if err := checkChange(rec); err != nil {
		return 0, fmt.Errorf("journal: %w", err)
	}
	rec.Committed = time.Now()
	if err := q.j.Commit(&rec); err != nil {
		return 0, err
	}
	q.mu.Lock()
	q.changes = append(q.changes, &item{rec: rec, due: rec.Committed})
	q.changedLocked()
	q.mu.Unlock()
	return rec.Seq, nil
}

// Changes returns the pending changes of the tree, oldest first.
func (q *Queue) Changes() []Record {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]Record, len(q.changes))
	for i, it := range q.changes {
		out[i] = it.rec
	}
	return out
}

// HasChanges reports whether a change of the tree is pending: a new one
// must then wait its turn too.
func (q *Queue) HasChanges() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.changes) > 0
}

// Online reports whether the last attempt to reach the server worked.
func (q *Queue) Online() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.online
}

// concerns reports whether the change rec touches p: p is, is below or is
// above one of its paths.
func concerns(rec Record, p string) bool {
	related := func(a, b string) bool { return backends.InTree(a, b) || backends.InTree(b, a) }
	return related(p, rec.Path) || (rec.To != "" && related(p, rec.To))
}

// changePendingLocked reports whether a pending change touches p, so that
// an upload of p must wait for it.
func (q *Queue) changePendingLocked(p string) bool {
	for _, c := range q.changes {
		if concerns(c.rec, p) {
			return true
		}
	}
	return false
}

// nextChangeLocked returns the oldest change if it may start now: none is
// in flight, it is due, and no upload it touches is in flight.
func (q *Queue) nextChangeLocked() (*item, time.Duration) {
	if len(q.changes) == 0 {
		return nil, time.Hour
	}
	c := q.changes[0]
	if c.flying != 0 || c.perm {
		return nil, time.Hour
	}
	if d := time.Until(c.due); d > 0 {
		return nil, d
	}
	for ip, it := range q.items {
		if it.flying != 0 && concerns(c.rec, ip) {
			return nil, time.Hour // the upload's end wakes the dispatcher
		}
	}
	return c, 0
}

// changeIndexLocked returns the index of the pending change seq, or -1.
func (q *Queue) changeIndexLocked(seq uint64) int {
	for i, c := range q.changes {
		if c.rec.Seq == seq {
			return i
		}
	}
	return -1
}

// runChange carries out one change of the tree and records the outcome. A
// change that fails for good is dropped with an error in the log and in
// the status: it holds no data, and the uploads it held back must go on.
func (q *Queue) runChange(ctx context.Context, rec Record) {
	note, err := q.up.Apply(ctx, rec)
	q.mu.Lock()
	i := q.changeIndexLocked(rec.Seq)
	if i < 0 {
		q.changedLocked()
		q.mu.Unlock()
		return
	}
	it := q.changes[i]
	it.flying = 0
	if err != nil && ctx.Err() != nil {
		q.changedLocked() // closing: the record stays in the journal
		q.mu.Unlock()
		return
	}
	if err != nil && !q.up.Permanent(err) {
		q.failedLocked(it, err)
		q.mu.Unlock()
		return
	}
	if err != nil {
		note = fmt.Sprintf("not done on the server: %v", err)
		q.log.Error("a change of the tree made while the server was unreachable failed and is dropped; the files themselves are uploaded", "change", rec.String(), "err", err)
	} else {
		q.setOnlineLocked()
	}
	if note != "" {
		q.conflicts = append(q.conflicts, Conflict{Path: rec.String(), Note: note, Time: time.Now()})
	}
	q.changes = append(q.changes[:i:i], q.changes[i+1:]...)
	q.mu.Unlock()
	if err := q.j.Delete(rec.Seq); err != nil {
		q.log.Warn("removing a finished journal record failed; the change is tried again (and found done) at the next mount", "change", rec.String(), "err", err)
	}
	q.mu.Lock()
	q.changedLocked()
	q.mu.Unlock()
}

// ChangePending reports whether a pending change of the tree concerns p.
func (q *Queue) ChangePending(p string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.changePendingLocked(p)
}

// ReportOffline tells the queue that a call of the mount (a lookup, a
// listing, a read) found the server unreachable: the status says so at
// once, and the uploads wait for the probe instead of each failing first.
func (q *Queue) ReportOffline(err error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.online || q.closed {
		return
	}
	q.online, q.offSince, q.lastErr = false, time.Now(), err.Error()
	q.log.Warn("the server cannot be reached; uploads wait and are retried", "err", err)
	q.changedLocked()
}

// ReportOnline tells the queue that a call of the mount got an answer.
func (q *Queue) ReportOnline() {
	q.mu.Lock()
	defer q.mu.Unlock()
	if !q.online && !q.auth.failed {
		q.setOnlineLocked()
	}
}
