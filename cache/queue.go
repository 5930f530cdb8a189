package cache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// Uploader does the remote half of the write-back queue.
type Uploader interface {
	// Upload sends rec's content and metadata to the server. It reports
	// progress in bytes, and returns the path of a conflict copy if the
	// content went there because the server's version had changed.
	Upload(ctx context.Context, rec Record, progress func(done int64)) (conflictCopy string, err error)
	// Probe checks whether the server answers (used while offline).
	Probe(ctx context.Context) error
	// Permanent reports whether a failed upload will fail again however
	// often it is retried (refused by the server, too large).
	Permanent(err error) bool
	// Offline reports whether err means the server cannot be reached.
	Offline(err error) bool
	// Unauthorized reports whether err means the server refused the
	// credentials. Such an upload is retried like an offline one, with a
	// backoff for the whole queue, until the server accepts them again.
	Unauthorized(err error) bool
	// Apply carries out a change of the tree (rec.Change) on the server.
	// A change found done already (a lost reply) is done. note says what
	// was done instead when the server's tree had changed meanwhile (a
	// conflict); "" when the change went as made.
	Apply(ctx context.Context, rec Record) (note string, err error)
}

// QueueOptions configure a write-back queue.
type QueueOptions struct {
	// Transfers is the number of parallel uploads (default 4).
	Transfers int
	// Delay is how long a committed file waits before its upload, so that
	// the steps of rsync and editors (create, write, utimens, chmod,
	// rename) become one upload (default 0: at once).
	Delay time.Duration
	// CommitInterval is the longest a close waits to be durable on local
	// disk: the group commit's interval (default DefaultCommitInterval).
	CommitInterval time.Duration
	// EarlySize is the size from which a file's upload starts right after
	// its commit instead of after Delay (default EarlyUploadSize; negative:
	// never).
	EarlySize int64
	// MaxBackoff caps the wait between retries (default 30s).
	MaxBackoff time.Duration
	// Logger receives the queue's log; nil means slog.Default().
	Logger *slog.Logger
}

// Queue uploads committed files in the background: in sequence order, after
// a delay, in parallel workers, retrying with capped exponential backoff.
// Its items are the journal's records; a record leaves the journal only
// once its upload succeeded.
//
// Lock order: callers' locks (fs nodes) before Queue.mu; Queue.mu is never
// held during an upload or a journal write of another item.
type Queue struct {
	j    *Journal
	up   Uploader
	opts QueueOptions
	log  *slog.Logger

	mu            sync.Mutex // protects the fields below
	changed       *sync.Cond // signalled on every state change
	items         map[string]*item
	changes       []*item        // changes of the tree, oldest first
	paused        map[string]int // path prefixes not to start uploads under
	closed        bool
	online        bool
	offSince      time.Time
	lastErr       string
	auth          authState
	conflicts     []Conflict
	uploadedFiles int
	uploadedBytes int64
	quarantined   []string

	wake   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
}

// item is one path's pending upload.
type item struct {
	rec      Record
	due      time.Time
	flying   uint64 // Seq of the record being uploaded; 0 when idle
	attempts int
	lastErr  error
	perm     bool
	done     int64
	started  time.Time
}

// OpenQueue loads the journal's records; Start starts the uploads. Records
// of an earlier mount are uploaded first, without delay.
func (s *Store) OpenQueue(up Uploader, o QueueOptions) (*Queue, []Record, error) {
	if o.Transfers <= 0 {
		o.Transfers = 4
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.EarlySize == 0 {
		o.EarlySize = EarlyUploadSize
	}
	res, err := s.Journal.Load()
	if err != nil {
		return nil, nil, err
	}
	recs, orphans := res.Records, res.Orphans
	for _, q := range res.Quarantined {
		why, _ := os.ReadFile(q + ".why")
		o.Logger.Error("kept in quarantine, not uploaded: look at the file and copy it into the mount if it is what you want, then remove it", "file", q, "why", strings.TrimSpace(string(why)))
	}
	for _, d := range res.Dropped {
		o.Logger.Warn("journal replay after a crash", "dropped", d)
	}
	for _, orphan := range orphans {
		// Data of a writer that never closed its file: close() never
		// promised it, and no record says where it belongs.
		os.Remove(orphan)
	}
	if len(orphans) > 0 {
		o.Logger.Info("removed staging files of writers that never closed", "count", len(orphans))
	}
	q := &Queue{j: s.Journal, up: up, opts: o, log: o.Logger,
		items: map[string]*item{}, paused: map[string]int{}, online: true,
		quarantined: s.Journal.Quarantined(), wake: make(chan struct{}, 1)}
	q.changed = sync.NewCond(&q.mu)
	now := time.Now()
	var bytes int64
	for _, r := range recs {
		if r.IsChange() {
			q.changes = append(q.changes, &item{rec: r, due: now})
			continue
		}
		q.items[r.Path] = &item{rec: r, due: now}
		bytes += r.Size
	}
	if len(recs) > 0 {
		o.Logger.Info("replaying the journal of an earlier mount", "files", len(q.items), "bytes", bytes, "changes", len(q.changes))
	}
	ctx, cancel := context.WithCancel(context.Background())
	q.ctx, q.cancel = ctx, cancel
	s.Journal.Start(o.CommitInterval, o.Logger)
	return q, recs, nil
}

// Start starts the uploads.
func (q *Queue) Start() {
	q.wg.Add(1)
	go q.dispatch(q.ctx)
}

// EarlyUploadSize is the default size from which an upload starts right
// after the commit: sending it takes longer than the steps of a writer that
// the delay waits for, and a rename during the upload is a server-side move.
const EarlyUploadSize = 8 << 20

// Commit appends rec (its data written to its staging file) to the journal
// and queues it, replacing what was queued for the same path. It returns
// once the record is handed to the kernel; the next group commit, or Flush,
// makes it durable. It returns the record's sequence number.
func (q *Queue) Commit(rec Record) (uint64, error) {
	rec.Committed = time.Now()
	if err := q.j.Commit(&rec); err != nil {
		return 0, err
	}
	q.mu.Lock()
	it := q.items[rec.Path]
	var stale uint64
	if it == nil {
		it = &item{}
		q.items[rec.Path] = it
	} else if it.rec.Seq != it.flying {
		stale = it.rec.Seq
	}
	it.rec = rec
	it.due = q.dueAfter(rec, rec.Committed)
	it.attempts, it.lastErr, it.perm = 0, nil, false
	q.changedLocked()
	q.mu.Unlock()
	if stale != 0 {
		if err := q.j.Delete(stale); err != nil {
			q.log.Warn("removing a superseded journal record failed", "path", rec.Path, "err", err)
		}
	}
	return rec.Seq, nil
}

// dueAfter is when the upload of rec may start after a change at t: after
// the write-back delay, so that the next steps of the writer join it, or at
// once for a large file.
func (q *Queue) dueAfter(rec Record, t time.Time) time.Time {
	if q.opts.EarlySize > 0 && rec.Size >= q.opts.EarlySize {
		return t
	}
	return t.Add(q.opts.Delay)
}

// Flush makes everything committed so far durable on local disk.
func (q *Queue) Flush() error { return q.j.Flush() }

// Pending returns the queued record of p.
func (q *Queue) Pending(p string) (Record, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	if it := q.items[p]; it != nil {
		return it.rec, true
	}
	return Record{}, false
}

// Has reports whether anything is queued at or below p.
func (q *Queue) Has(p string) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	for ip := range q.items {
		if backends.InTree(ip, p) {
			return true
		}
	}
	return false
}

// SetMeta merges metadata into the queued record of p (utimens or chmod
// after close), to be stored with the upload. It reports whether p was
// queued. Like the metadata change of a local file it is durable at the
// next group commit or fsync.
func (q *Queue) SetMeta(p string, apply func(*Record)) (bool, error) {
	q.mu.Lock()
	it := q.items[p]
	if it == nil {
		q.mu.Unlock()
		return false, nil
	}
	apply(&it.rec)
	rec := it.rec
	if it.flying == 0 {
		it.due = laterOf(it.due, q.dueAfter(rec, time.Now()))
	}
	it.attempts, it.perm = 0, false
	q.changedLocked()
	q.mu.Unlock()
	return true, q.j.Update(rec)
}

// Pause stops uploads from starting at or below p and waits for those in
// flight there to end, so that p can be renamed or removed on the server.
// The returned function ends the pause.
func (q *Queue) Pause(p string) (resume func()) {
	q.mu.Lock()
	q.paused[p]++
	for q.flyingUnder(p) {
		q.changed.Wait()
	}
	q.mu.Unlock()
	return func() {
		q.mu.Lock()
		if q.paused[p]--; q.paused[p] == 0 {
			delete(q.paused, p)
		}
		q.changedLocked()
		q.mu.Unlock()
	}
}

// Rename moves the queued records at and below from to to (the caller holds
// a Pause of from). Records already queued at or below to are dropped and
// returned: their files were replaced.
func (q *Queue) Rename(from, to string) (dropped []Record, err error) {
	q.mu.Lock()
	var moved []Record
	for ip, it := range q.items {
		if backends.InTree(ip, to) && !backends.InTree(ip, from) && it.flying == 0 {
			dropped = append(dropped, it.rec)
			delete(q.items, ip)
		}
	}
	for ip, it := range q.items {
		if backends.InTree(ip, from) && it.flying == 0 {
			delete(q.items, ip)
			it.rec.Path = to + ip[len(from):]
			moved = append(moved, it.rec)
		}
	}
	for _, r := range moved {
		it := &item{rec: r, due: q.dueAfter(r, time.Now())}
		q.items[r.Path] = it
	}
	q.changedLocked()
	q.mu.Unlock()
	for _, r := range moved {
		err = errors.Join(err, q.j.Update(r))
	}
	for _, r := range dropped {
		err = errors.Join(err, q.j.Delete(r.Seq))
	}
	return dropped, err
}

// Remove drops the queued records at and below p (the caller holds a Pause
// of p) and returns them; the caller deletes their data.
func (q *Queue) Remove(p string) ([]Record, error) {
	q.mu.Lock()
	var gone []Record
	for ip, it := range q.items {
		if backends.InTree(ip, p) && it.flying == 0 {
			gone = append(gone, it.rec)
			delete(q.items, ip)
		}
	}
	q.changedLocked()
	q.mu.Unlock()
	var err error
	for _, r := range gone {
		err = errors.Join(err, q.j.Delete(r.Seq))
	}
	return gone, err
}

// List returns the queued records directly inside dir.
func (q *Queue) List(dir string) []Record {
	q.mu.Lock()
	defer q.mu.Unlock()
	var out []Record
	for ip, it := range q.items {
		if parentOf(ip) == dir {
			out = append(out, it.rec)
		}
	}
	return out
}

// Sync waits until everything committed before the call is on the server
// (or went to a conflict copy). It returns an error naming the uploads that
// failed for good, or ctx's error. progress, if not nil, is called with
// the queue's status about once a second.
func (q *Queue) Sync(ctx context.Context, progress func(Status)) error {
	q.mu.Lock()
	target := q.j.lastSeq()
	q.mu.Unlock()
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.changed.Broadcast()
		q.mu.Unlock()
	})
	defer stop()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	finished := make(chan struct{})
	defer close(finished)
	go func() {
		for {
			select {
			case <-finished:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				q.mu.Lock()
				q.changed.Broadcast()
				q.mu.Unlock()
			}
		}
	}()
	// Everything queued is due now: a sync does not wait for the delay.
	q.mu.Lock()
	now := time.Now()
	for _, it := range q.items {
		if it.rec.Seq <= target && it.due.After(now) && it.attempts == 0 {
			it.due = now
		}
	}
	q.changedLocked()
	last := time.Time{}
	for {
		waiting, failed := 0, []string(nil)
		for _, it := range q.items {
			if it.rec.Seq > target && (it.flying == 0 || it.flying > target) {
				continue // queued after the call
			}
			if it.perm {
				failed = append(failed, fmt.Sprintf("%s: %v", it.rec, it.lastErr))
				continue
			}
			waiting++
		}
		for _, c := range q.changes {
			if c.rec.Seq <= target {
				waiting++
			}
		}
		if progress != nil && time.Since(last) >= time.Second {
			st := q.statusLocked()
			q.mu.Unlock()
			progress(st)
			q.mu.Lock()
			last = time.Now()
		}
		if waiting == 0 {
			q.mu.Unlock()
			if len(failed) > 0 {
				sort.Strings(failed)
				return fmt.Errorf("%d upload(s) failed and will not be retried in this mount (the data stays in the journal):\n  %s", len(failed), strings.Join(failed, "\n  "))
			}
			return nil
		}
		if err := ctx.Err(); err != nil {
			q.mu.Unlock()
			return err
		}
		q.changed.Wait()
	}
}

// Drain uploads everything queued without delay and waits up to timeout
// (0: not at all) for the queue to empty, logging progress. It reports how
// many files are left in the journal for the next mount.
func (q *Queue) Drain(timeout time.Duration) int {
	return q.DrainContext(context.Background(), timeout)
}

// DrainContext is Drain that also ends when ctx does (a new mount of the
// same cache directory takes the queue over).
func (q *Queue) DrainContext(ctx context.Context, timeout time.Duration) int {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	files, bytes := q.counts()
	if files == 0 {
		return 0
	}
	if st := q.Status(); !st.Online {
		pctx, pcancel := context.WithTimeout(ctx, probeInterval)
		err := q.up.Probe(pctx)
		pcancel()
		switch {
		case err != nil && q.up.Unauthorized(err):
			q.log.Warn("the server refuses the credentials: what is queued stays in the journal and is uploaded at the next mount with this cache directory", "files", files, "bytes", bytes, "err", err)
			return files
		case err != nil:
			q.log.Warn("the server cannot be reached: what is queued stays in the journal and is uploaded at the next mount with this cache directory", "files", files, "bytes", bytes)
			return files
		}
	}
	q.log.Info("uploading what is queued before unmounting", "files", files, "bytes", bytes, "timeout", timeout)
	err := q.Sync(ctx, func(s Status) {
		q.log.Info("draining the upload queue", "files", s.QueuedFiles, "bytes", s.QueuedBytes, "online", s.Online)
	})
	files, bytes = q.counts()
	switch {
	case files == 0:
		q.log.Info("upload queue drained")
	case err != nil && ctx.Err() == nil:
		q.log.Error("some uploads failed; they stay in the journal and are retried at the next mount", "files", files, "bytes", bytes, "err", err)
	default:
		q.log.Warn("upload queue not drained in time; the rest stays in the journal and is uploaded at the next mount with this cache directory", "files", files, "bytes", bytes)
	}
	return files
}

// Close stops the workers; uploads in flight are cancelled and their
// records stay in the journal.
func (q *Queue) Close() {
	q.mu.Lock()
	q.closed = true
	q.changedLocked()
	q.mu.Unlock()
	q.cancel()
	q.wg.Wait()
}

// Status returns a snapshot for `cloudmount status`.
func (q *Queue) Status() Status {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.statusLocked()
}

func (q *Queue) statusLocked() Status {
	// Lists are never null in JSON: scripts can iterate them.
	st := Status{Online: q.online, AuthFailed: q.auth.failed, LastError: q.lastErr,
		Quarantined:   append([]string{}, q.quarantined...),
		UploadedFiles: q.uploadedFiles, UploadedBytes: q.uploadedBytes,
		Conflicts: append([]Conflict{}, q.conflicts...),
		Uploading: []Transfer{}, Failed: []Failure{}}
	if !q.online {
		st.OfflineSince = q.offSince
	}
	st.QueuedChanges = len(q.changes)
	for _, c := range q.changes {
		if c.lastErr != nil {
			f := Failure{Path: c.rec.String(), Attempts: c.attempts, LastError: c.lastErr.Error(), NextTry: c.due}
			st.Failed = append(st.Failed, f)
		}
	}
	for ip, it := range q.items {
		st.QueuedFiles++
		st.QueuedBytes += it.rec.Size
		if it.flying != 0 {
			tr := Transfer{Path: ip, Size: it.rec.Size, Done: it.done, Started: it.started}
			if d := time.Since(it.started).Seconds(); d > 0 {
				tr.Rate = float64(it.done) / d
			}
			st.Uploading = append(st.Uploading, tr)
		}
		if it.lastErr != nil {
			f := Failure{Path: ip, Attempts: it.attempts, LastError: it.lastErr.Error(), Permanent: it.perm}
			if !it.perm {
				f.NextTry = it.due
				if q.auth.failed && f.NextTry.Before(q.auth.next) {
					f.NextTry = q.auth.next
				}
			}
			st.Failed = append(st.Failed, f)
		}
	}
	sort.Slice(st.Uploading, func(a, b int) bool { return st.Uploading[a].Path < st.Uploading[b].Path })
	sort.Slice(st.Failed, func(a, b int) bool { return st.Failed[a].Path < st.Failed[b].Path })
	return st
}

// counts returns what is queued: files (and changes of the tree) and bytes.
func (q *Queue) counts() (int, int64) {
	st := q.Status()
	return st.QueuedFiles + st.QueuedChanges, st.QueuedBytes
}

// changedLocked wakes the dispatcher and every waiter. q.mu must be held.
func (q *Queue) changedLocked() {
	q.changed.Broadcast()
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// flyingUnder reports whether an upload at or below p, or a change of the
// tree that touches p, is in flight.
func (q *Queue) flyingUnder(p string) bool {
	for ip, it := range q.items {
		if it.flying != 0 && backends.InTree(ip, p) {
			return true
		}
	}
	for _, c := range q.changes {
		if c.flying != 0 && concerns(c.rec, p) {
			return true
		}
	}
	return false
}

// pausedLocked reports whether uploads to p must not start.
func (q *Queue) pausedLocked(p string) bool {
	for pp := range q.paused {
		if backends.InTree(p, pp) {
			return true
		}
	}
	return false
}

// parentOf is the directory of p ("" for the root).
func parentOf(p string) string {
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		return p[:i]
	}
	return ""
}

func laterOf(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// WaitUploaded starts the upload of the record seq now and waits until it
// is on the server (or in a conflict copy), an attempt fails (the record
// stays queued and is retried), or ctx ends.
func (q *Queue) WaitUploaded(ctx context.Context, seq uint64) error {
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		q.changed.Broadcast()
		q.mu.Unlock()
	})
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	for {
		var found *item
		for _, it := range q.items {
			if it.rec.Seq == seq || it.flying == seq {
				found = it
				break
			}
		}
		switch {
		case found == nil:
			return nil
		case found.lastErr != nil && found.flying == 0:
			return fmt.Errorf("upload of %s failed: %w", found.rec.Path, found.lastErr)
		case ctx.Err() != nil:
			if found.lastErr != nil {
				return fmt.Errorf("%w (last error: %v)", ctx.Err(), found.lastErr)
			}
			return ctx.Err()
		}
		if found.flying == 0 && found.attempts == 0 && found.due.After(time.Now()) {
			found.due = time.Now()
			q.changedLocked()
		}
		q.changed.Wait()
	}
}
