package cache

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

const (
	// seqSlack is how far a read may start from where the last one ended
	// and still count as sequential: the kernel's read-ahead sends several
	// reads at once, and they arrive in any order.
	seqSlack = 2 * BlockSize
	// skipLimit is how far ahead the stream is read and discarded rather
	// than reopened at the block it must go on with.
	skipLimit = 2 * BlockSize
)

// ErrClosed is returned by reads after the cache or the reader was closed.
var ErrClosed = errors.New("block cache closed")

// Reader reads one open file through the cache. Blocks on disk are read
// from disk; missing ones are fetched, one fetch per block however many
// readers want it. A reader that reads sequentially gets read-ahead: one
// stream from the server, opened at the first missing block and kept open,
// is cut into blocks as they arrive by a goroutine of the Reader (the
// streamer), up to maxAhead blocks ahead of the reads (fewer while the
// read-ahead buffers of all readers are taken); each block goes to the
// cache's writers, which store it on disk while the next one arrives.
// Read-ahead blocks stay in memory (in the window) until the reader has
// passed them, so a block the cache evicts or refuses is not fetched twice.
// Random reads fetch just the blocks they need, one ranged read each.
//
// A Reader is safe for concurrent use.
type Reader struct {
	b      *Blocks
	fetch  Fetch
	ctx    context.Context // ends with Close; fetches are made under it
	cancel context.CancelFunc
	// oneShot: no read-ahead (Blocks.ReadAt).
	oneShot bool

	mu sync.Mutex // protects the fields below
	// key is the content read; ph and vh are its hashes, cache whether it
	// is stored (it has a version).
	key   Key
	ph    pathHash
	vh    versionHash
	cache bool
	reads int
	// next is where the sequential reads have got to; ahead is the
	// read-ahead depth in blocks, 0 while reading at random.
	next      int64
	ahead     int
	lastFirst int64
	// window holds a reference to each block this reader claimed ahead of
	// its reads; queue lists those the streamer has still to fetch, in
	// order.
	window map[int64]*flight
	queue  []*flight
	// wake tells the streamer there is work; streaming says it runs.
	wake      chan struct{}
	streaming bool
	// stream is the streamer's open stream when it is between blocks; it
	// stands at offset spos. gen changes with key: a stream of another
	// generation is closed.
	stream io.ReadCloser
	spos   int64
	gen    int
	closed bool
}

// NewReader returns a Reader that fetches what the cache lacks with fetch.
// Close it when done.
func (b *Blocks) NewReader(fetch Fetch) *Reader {
	ctx, cancel := context.WithCancel(b.ctx)
	return &Reader{b: b, fetch: fetch, ctx: ctx, cancel: cancel,
		window: map[int64]*flight{}, wake: make(chan struct{}, 1)}
}

// ReadAt reads the content of k at off into dest, without read-ahead: for a
// single read. Repeated reads of an open file should use a Reader.
func (b *Blocks) ReadAt(ctx context.Context, k Key, dest []byte, off int64, fetch Fetch) (int, error) {
	r := b.NewReader(fetch)
	r.oneShot = true
	defer r.Close()
	return r.ReadAt(ctx, k, dest, off)
}

// ReadAt reads the content of k at off into dest, from the cache or the
// server. It returns fewer bytes than dest holds only at the end of the file,
// and an error when the server's content could not be had or disagrees with
// k.Size (a ContentError). ctx bounds the wait; fetches go on for
// other readers.
func (r *Reader) ReadAt(ctx context.Context, k Key, dest []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read %s: negative offset %d", k.Path, off)
	}
	if off >= k.Size || len(dest) == 0 {
		return 0, nil
	}
	if rest := k.Size - off; int64(len(dest)) > rest {
		dest = dest[:rest]
	}
	first, last := off/BlockSize, (off+int64(len(dest))-1)/BlockSize

	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return 0, ErrClosed
	}
	var drop []*flight
	var stale io.ReadCloser
	if k != r.key || r.reads == 0 {
		drop, stale = r.resetLocked(k)
	}
	drop = append(drop, r.planLocked(first, last, off, len(dest))...)
	ph, vh, cache := r.ph, r.vh, r.cache
	r.mu.Unlock()
	r.let(drop, stale)

	done := 0
	for j := first; j <= last; j++ {
		id := blockID{ph: ph, vh: vh, idx: j}
		within := int(off + int64(done) - j*BlockSize)
		want := min(len(dest)-done, blockLen(k.Size, j)-within)
		n, err := r.serve(ctx, k, id, cache, dest[done:done+want], within)
		done += n
		if err != nil {
			return done, err
		}
		if n < want {
			// The server's content ended early.
			return done, nil
		}
	}
	return done, nil
}

// resetLocked starts reading another key (a new file, a new version, a
// rename): read-ahead of the old one is let go, and the blocks of other
// versions of the path are dropped. r.mu must be held; the caller lets go
// of what it returns.
func (r *Reader) resetLocked(k Key) ([]*flight, io.ReadCloser) {
	r.abandonLocked()
	var drop []*flight
	for j, f := range r.window {
		drop = append(drop, f)
		delete(r.window, j)
	}
	stale := r.stream
	r.stream = nil
	r.gen++
	r.key, r.reads, r.next, r.ahead, r.lastFirst = k, 0, 0, 0, -1
	r.ph, r.vh, r.cache = hashPath(k.Path), hashVersion(k.Version), k.Version != ""
	if r.cache {
		r.b.keepVersion(r.ph, r.vh)
	}
	return drop, stale
}

// abandonLocked takes back the blocks queued for the streamer that it has
// not started: they are finished as abandoned (their window references
// are for the caller to drop, with the window). r.mu must be held.
func (r *Reader) abandonLocked() {
	for _, f := range r.queue {
		r.b.finish(f, 0, errAbandoned)
	}
	r.queue = nil
}

// planLocked notes a read of [off, off+n) (blocks first to last), tells
// whether it continues a sequential run, and claims the blocks to read
// ahead. It returns window blocks to let go. r.mu must be held.
func (r *Reader) planLocked(first, last, off int64, n int) []*flight {
	seq := !r.oneShot && ((r.reads == 0 && off == 0) ||
		(r.reads > 0 && off >= r.next-seqSlack && off <= r.next+seqSlack))
	r.reads++
	var drop []*flight
	if !seq {
		r.ahead, r.next = 0, off+int64(n)
		r.abandonLocked()
		for j, f := range r.window {
			if j < first || j > last {
				drop = append(drop, f)
				delete(r.window, j)
			}
		}
		return drop
	}
	switch {
	case r.ahead == 0:
		r.ahead = 2
	case first > r.lastFirst:
		r.ahead = min(2*r.ahead, maxAhead)
	}
	r.lastFirst = max(r.lastFirst, first)
	r.next = max(r.next, off+int64(n))
	for j, f := range r.window {
		if j < first-1 {
			drop = append(drop, f)
			delete(r.window, j)
		}
	}
	end := min(last+int64(r.ahead), (r.key.Size-1)/BlockSize)
	for j := first; j <= end; j++ {
		if r.window[j] != nil {
			continue
		}
		id := blockID{ph: r.ph, vh: r.vh, idx: j}
		bf, f, owner := r.b.claim(id, r.key, r.cache, j > last)
		if bf != nil {
			continue
		}
		if f == nil {
			break // no read-ahead token free, or closed
		}
		r.window[j] = f
		if owner {
			r.enqueueLocked(f)
		}
	}
	if len(r.queue) > 0 {
		r.startStreamerLocked()
	}
	return drop
}

// enqueueLocked adds f to the streamer's queue, which stays in block order
// (the kernel's reads arrive out of order). r.mu must be held.
func (r *Reader) enqueueLocked(f *flight) {
	i := len(r.queue)
	for i > 0 && r.queue[i-1].off > f.off {
		i--
	}
	r.queue = append(r.queue, nil)
	copy(r.queue[i+1:], r.queue[i:])
	r.queue[i] = f
}

// let drops window references and closes a stale stream, outside r.mu.
func (r *Reader) let(drop []*flight, stale io.ReadCloser) {
	for _, f := range drop {
		f.unref()
	}
	if stale != nil {
		stale.Close()
	}
}

// serve reads the part of block id at within into p: from the window, from
// disk, or by waiting for (or making) a fetch of it.
func (r *Reader) serve(ctx context.Context, k Key, id blockID, cache bool, p []byte, within int) (int, error) {
	b := r.b
	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		r.mu.Lock()
		f := r.window[id.idx]
		if f != nil && (r.ph != id.ph || r.vh != id.vh) {
			f = nil
		}
		if f != nil {
			f.ref()
		}
		r.mu.Unlock()
		if f == nil {
			var bf *blockFile
			var owner bool
			bf, f, owner = b.claim(id, k, cache, false)
			if bf != nil {
				n, err := r.readDisk(bf, p, within)
				if err == nil {
					b.hits.Add(1)
					b.touch(id)
					return n, nil
				}
				// Missing or damaged: fetch it again.
				b.forget(bf)
				lastErr = err
				continue
			}
			if f == nil {
				return 0, ErrClosed
			}
			if owner {
				go b.fetchOne(r.ctx, f, r.fetch)
			} else {
				b.hits.Add(1)
			}
		}
		err := f.wait(ctx)
		if err == nil {
			n := f.copyOut(p, within)
			f.unref()
			return n, nil
		}
		f.unref()
		if ctx.Err() != nil {
			return 0, ctx.Err()
		}
		// The fetch failed, or was given up by another reader: the next
		// read of this block fetches it alone.
		r.mu.Lock()
		if r.window[id.idx] == f {
			delete(r.window, id.idx)
			defer f.unref()
		}
		r.mu.Unlock()
		if !retryable(err) {
			return 0, err // asking again would only wait as long, or fetch the same
		}
		lastErr = err
	}
	return 0, lastErr
}

// readDisk reads from a block file.
func (r *Reader) readDisk(bf *blockFile, p []byte, within int) (int, error) {
	file, err := os.Open(bf.name)
	if err != nil {
		return 0, err
	}
	defer file.Close()
	if !bf.verified.Load() {
		// First read since start-up: the block's mtime tells the next
		// start-up which blocks were used last.
		now := time.Now()
		os.Chtimes(bf.name, now, now)
	}
	return bf.readFile(file, p, within)
}

// startStreamerLocked starts the streamer unless it runs, and wakes it.
// r.mu must be held.
func (r *Reader) startStreamerLocked() {
	if !r.streaming {
		b := r.b
		b.mu.Lock()
		ok := !b.closed
		if ok {
			b.wg.Add(1)
		}
		b.mu.Unlock()
		if !ok {
			r.abandonLocked()
			return
		}
		r.streaming = true
		go r.streamer()
	}
	select {
	case r.wake <- struct{}{}:
	default:
	}
}

// streamer fetches the queued blocks in order from one stream, which it
// keeps open between blocks, skipping short gaps and reopening it elsewhere.
// It ends when the reader closes.
func (r *Reader) streamer() {
	defer r.b.wg.Done()
	var rc io.ReadCloser
	var spos int64
	for {
		r.mu.Lock()
		if r.closed || r.ctx.Err() != nil {
			r.abandonLocked()
			stale := r.stream
			r.stream, r.streaming = nil, false
			r.mu.Unlock()
			if stale != nil {
				stale.Close()
			}
			return
		}
		if len(r.queue) == 0 {
			r.mu.Unlock()
			select {
			case <-r.wake:
			case <-r.ctx.Done():
			}
			continue
		}
		f := r.queue[0]
		r.queue = r.queue[1:]
		rc, spos = r.stream, r.spos
		r.stream = nil
		gen := r.gen
		r.mu.Unlock()

		rc, spos = r.fill(f, rc, spos)

		r.mu.Lock()
		if r.gen == gen && !r.closed && rc != nil {
			r.stream, r.spos, rc = rc, spos, nil
		}
		r.mu.Unlock()
		if rc != nil {
			rc.Close()
		}
	}
}

// fill fetches block f from the stream rc, which stands at spos (nil: none
// open), and finishes f. It returns the stream to go on with.
func (r *Reader) fill(f *flight, rc io.ReadCloser, spos int64) (io.ReadCloser, int64) {
	var n int
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		if rc != nil && spos != f.off {
			gap := f.off - spos
			if gap > 0 && gap <= skipLimit {
				if _, err := io.CopyN(io.Discard, rc, gap); err == nil {
					spos = f.off
				}
			}
			if spos != f.off {
				rc.Close()
				rc = nil
			}
		}
		if rc == nil {
			if rc, err = r.fetch(r.ctx, f.key(), f.off, -1); err != nil {
				rc = nil
				if !retryable(err) {
					break
				}
				continue
			}
			spos = f.off
		}
		n, err = f.readBlock(rc)
		spos += int64(n)
		if err == nil {
			err = f.checkEnd(rc)
		}
		if err == nil {
			break
		}
		rc.Close()
		rc = nil
		if !retryable(err) {
			break
		}
	}
	r.b.finish(f, n, err)
	return rc, spos
}

// Close ends the reader's read-ahead and stream. It does not wait for
// fetches others wait for.
func (r *Reader) Close() {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return
	}
	r.closed = true
	r.abandonLocked()
	var drop []*flight
	for j, f := range r.window {
		drop = append(drop, f)
		delete(r.window, j)
	}
	stale := r.stream
	r.stream = nil
	r.mu.Unlock()
	r.cancel()
	r.let(drop, stale)
}
