package cache

import (
	"context"
	"time"
)

// probeInterval is how often an offline queue asks whether the server is
// back.
const probeInterval = 5 * time.Second

// dispatch starts due uploads, oldest record first, with at most
// Transfers in flight; while offline it probes the server instead.
func (q *Queue) dispatch(ctx context.Context) {
	defer q.wg.Done()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	slots := make(chan struct{}, q.opts.Transfers)
	for {
		q.mu.Lock()
		if q.closed {
			q.mu.Unlock()
			return
		}
		next, wait := q.nextDueLocked()
		if next != nil && !q.online {
			// Offline: one upload at a time tries its luck; the rest wait
			// for the probe. Refused credentials: one try per backoff.
			if q.flyingCountLocked() > 0 {
				next = nil
				wait = probeInterval
			} else if d := q.auth.waitLocked(time.Now()); d > 0 {
				next = nil
				wait = d
			}
		}
		if next != nil {
			select {
			case slots <- struct{}{}:
				next.flying = next.rec.Seq
				next.done, next.started = 0, time.Now()
				rec := next.rec
				q.mu.Unlock()
				q.wg.Add(1)
				go func() {
					defer q.wg.Done()
					defer func() { <-slots }()
					if rec.IsChange() {
						q.runChange(ctx, rec)
					} else {
						q.run(ctx, rec)
					}
				}()
				continue
			default:
				wait = time.Second // all workers busy; a finishing one wakes us
			}
		}
		// A server that refuses the credentials may still answer the
		// probe: only an upload tells when they work again.
		offline := !q.online && !q.auth.failed
		q.mu.Unlock()
		if offline && q.flyingCount() == 0 {
			q.probe(ctx)
			if wait > probeInterval {
				wait = probeInterval
			}
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-q.wake:
		case <-timer.C:
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
	}
}

// nextDueLocked returns the oldest change of the tree that may start now,
// else the due upload with the lowest sequence number that may start now,
// or how long until one is due.
func (q *Queue) nextDueLocked() (*item, time.Duration) {
	c, wait := q.nextChangeLocked()
	if c != nil {
		return c, 0
	}
	now := time.Now()
	var best *item
	for p, it := range q.items {
		if it.flying != 0 || it.perm {
			continue
		}
		if d := it.due.Sub(now); d > 0 {
			if d < wait {
				wait = d
			}
			continue
		}
		if (best != nil && it.rec.Seq > best.rec.Seq) || q.pausedLocked(p) || q.changePendingLocked(p) {
			continue
		}
		best = it
	}
	return best, wait
}

func (q *Queue) flyingCountLocked() int {
	n := 0
	for _, it := range q.items {
		if it.flying != 0 {
			n++
		}
	}
	for _, c := range q.changes {
		if c.flying != 0 {
			n++
		}
	}
	return n
}

func (q *Queue) flyingCount() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.flyingCountLocked()
}

// probe asks the server whether it is back; if so, every waiting upload is
// due at once.
func (q *Queue) probe(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, probeInterval)
	err := q.up.Probe(pctx)
	cancel()
	if err != nil {
		return
	}
	q.mu.Lock()
	q.setOnlineLocked()
	q.mu.Unlock()
}

// setOnlineLocked marks the server reachable and makes the uploads that
// were waiting for it due now.
func (q *Queue) setOnlineLocked() {
	if q.online {
		return
	}
	if q.auth.failed {
		q.log.Info("the server accepts the credentials again; uploading what was queued", "refused_for", time.Since(q.offSince).Round(time.Second))
	} else {
		q.log.Info("the server answers again; uploading what was queued", "offline_for", time.Since(q.offSince).Round(time.Second))
	}
	q.online, q.lastErr, q.auth = true, "", authState{}
	now := time.Now()
	for _, it := range q.items {
		if it.lastErr != nil && !it.perm && it.due.After(now) {
			it.due = now
		}
	}
	for _, c := range q.changes {
		if c.lastErr != nil && c.due.After(now) {
			c.due = now
		}
	}
	q.changedLocked()
}

// run uploads one record and records the outcome.
func (q *Queue) run(ctx context.Context, rec Record) {
	progress := func(done int64) {
		q.mu.Lock()
		if it := q.items[rec.Path]; it != nil && it.flying == rec.Seq {
			it.done = done
		}
		q.mu.Unlock()
	}
	conflict, err := q.up.Upload(ctx, rec, progress)
	if ctx.Err() != nil && err != nil {
		// Closing: the record stays in the journal.
		q.mu.Lock()
		if it := q.items[rec.Path]; it != nil && it.flying == rec.Seq {
			it.flying = 0
		}
		q.changedLocked()
		q.mu.Unlock()
		return
	}
	q.mu.Lock()
	it := q.items[rec.Path]
	if it == nil || it.flying != rec.Seq {
		// Renamed or removed meanwhile cannot happen (Pause waits for
		// uploads in flight); be safe and keep the journal as it is.
		q.changedLocked()
		q.mu.Unlock()
		return
	}
	if err != nil {
		it.flying = 0
		q.failedLocked(it, err)
		q.mu.Unlock()
		return
	}
	q.setOnlineLocked()
	q.uploadedFiles++
	q.uploadedBytes += rec.Size
	if conflict != "" {
		q.conflicts = append(q.conflicts, Conflict{Path: rec.Path, Copy: conflict, Time: time.Now()})
	}
	// The item stays in flight until its record is gone from disk, so
	// that a Sync that returns has nothing left in the journal.
	finished := it.rec.Seq == rec.Seq && it.rec.Path == rec.Path && metaEqual(it.rec, rec)
	superseded := it.rec.Seq != rec.Seq
	q.mu.Unlock()
	if finished || superseded {
		if err := q.j.Delete(rec.Seq); err != nil {
			q.log.Warn("removing a finished journal record failed; it will be uploaded again (unchanged) at the next mount", "path", rec.Path, "err", err)
		}
	}
	q.mu.Lock()
	it.flying = 0
	var rewrite *Record
	switch {
	case it.rec.Seq != rec.Seq:
		// Committed again during the upload: the new record waits its turn.
	case finished && metaEqual(it.rec, rec):
		delete(q.items, rec.Path)
		q.j.Forget(rec.Data)
	default:
		// Metadata changed during the upload: send it too.
		it.due = time.Now()
		it.attempts, it.lastErr = 0, nil
		if finished {
			r := it.rec
			rewrite = &r
		}
	}
	q.changedLocked()
	q.mu.Unlock()
	if rewrite != nil {
		q.j.Update(*rewrite)
	}
}

// failedLocked records a failed attempt of it (not in flight any more) and
// when to try again. q.mu is held.
func (q *Queue) failedLocked(it *item, err error) {
	it.attempts++
	it.lastErr = err
	unauthorized := q.up.Unauthorized(err)
	it.perm = !unauthorized && q.up.Permanent(err)
	backoff := q.backoff(it.attempts)
	it.due = time.Now().Add(backoff)
	if unauthorized {
		q.authFailedLocked(err)
		it.due = laterOf(it.due, q.auth.next)
	} else if q.up.Offline(err) {
		if q.online || q.auth.failed {
			q.online, q.offSince = false, time.Now()
			q.log.Warn("the server cannot be reached; uploads wait and are retried", "err", err)
		}
		q.auth = authState{}
		q.lastErr = err.Error()
	} else if it.perm {
		q.log.Error("upload failed and will not be retried in this mount; the data stays in the journal", "path", it.rec.String(), "err", err)
	} else {
		q.log.Warn("upload failed; retrying", "path", it.rec.String(), "attempt", it.attempts, "in", backoff, "err", err)
	}
	q.changedLocked()
}

// hasSeq reports whether p's queued record is still seq.
func (q *Queue) hasSeq(p string, seq uint64) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	it := q.items[p]
	return it != nil && it.rec.Seq == seq
}

// metaEqual reports whether two records carry the same metadata.
func metaEqual(a, b Record) bool {
	ja, _ := encodeFrame(journalEntry{Op: opPut}, Record{Seq: 1, Data: "d", Path: "p", Meta: a.Meta})
	jb, _ := encodeFrame(journalEntry{Op: opPut}, Record{Seq: 1, Data: "d", Path: "p", Meta: b.Meta})
	return string(ja) == string(jb)
}
