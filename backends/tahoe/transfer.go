package tahoe

import (
	"context"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Transfers (an upload, a read) may take far longer than one call's
// timeout, so they get no overall deadline beyond the caller's context.
// Instead a stallGuard cancels the request when no data has moved for the
// timeout: it is armed while we wait on the network and disarmed while
// the caller (or the caller's source) has the data.
type stallGuard struct {
	d     time.Duration
	timer *time.Timer
	fired atomic.Bool
}

func newStallGuard(d time.Duration, cancel context.CancelFunc) *stallGuard {
	g := &stallGuard{d: d}
	g.timer = time.AfterFunc(d, func() {
		g.fired.Store(true)
		cancel()
	})
	g.timer.Stop()
	return g
}

func (g *stallGuard) arm()    { g.timer.Reset(g.d) }
func (g *stallGuard) disarm() { g.timer.Stop() }

// transfer is the timing of one upload: the stall guard while the body is
// sent, then a deadline for the reply, which the node gives only once the
// grid has the file.
type transfer struct {
	guard  *stallGuard
	cancel context.CancelFunc

	mu         sync.Mutex // protects replyTimer
	replyTimer *time.Timer
	replyLate  atomic.Bool
}

// waitReply starts the deadline of the reply.
func (t *transfer) waitReply(d time.Duration) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.replyTimer == nil {
		t.replyTimer = time.AfterFunc(d, func() {
			t.replyLate.Store(true)
			t.cancel()
		})
	}
}

// stop ends the timers.
func (t *transfer) stop() {
	t.guard.disarm()
	t.mu.Lock()
	if t.replyTimer != nil {
		t.replyTimer.Stop()
	}
	t.mu.Unlock()
}

// explain replaces the cancellation error of a transfer that the timers
// ended.
func (t *transfer) explain(err error) error {
	switch {
	case err == nil:
		return nil
	case t.guard.fired.Load():
		return errStalled
	case t.replyLate.Load():
		return errReplyWait
	}
	return err
}

// uploadBody feeds an upload to the transport. A source that gives more
// or fewer bytes than size (-1: unknown) fails the upload; the last bytes
// are held back until the source is known to end, so the node never gets
// a whole body cut from a longer source. Once the source is done, the
// reply's deadline starts.
type uploadBody struct {
	r    io.Reader
	size int64
	t    *transfer
	wait func(size int64) time.Duration

	n       atomic.Int64 // bytes handed to the transport
	started atomic.Bool
	done    atomic.Bool           // the whole source was read
	srcErr  atomic.Pointer[error] // a failure of the source, not of the network
	end     error                 // sticky; touched by the transport's goroutine only
}

// Read hands the next chunk of the source to the transport.
func (u *uploadBody) Read(p []byte) (int, error) {
	u.t.guard.disarm()
	u.started.Store(true)
	if u.end != nil {
		return 0, u.end
	}
	n, err := u.read(p)
	u.n.Add(int64(n))
	if err != nil {
		u.end = err
		if err == io.EOF {
			u.done.Store(true)
			u.t.waitReply(u.wait(u.n.Load()))
		} else {
			u.srcErr.Store(&err)
		}
		return n, err
	}
	u.t.guard.arm()
	return n, nil
}

func (u *uploadBody) read(p []byte) (int, error) {
	if u.size < 0 {
		return u.r.Read(p)
	}
	left := u.size - u.n.Load()
	if left == 0 {
		return 0, sourceEnds(u.r, u.size)
	}
	if int64(len(p)) > left {
		p = p[:left]
	}
	n, err := u.r.Read(p)
	switch {
	case err == io.EOF && int64(n) < left:
		return n, fmt.Errorf("the source ended %d bytes short of the declared size of %d bytes", left-int64(n), u.size)
	case err == nil && int64(n) == left:
		if err := sourceEnds(u.r, u.size); err != io.EOF {
			return 0, err
		}
		return n, io.EOF
	}
	return n, err
}

// sourceError is the error of the source, if reading it failed.
func (u *uploadBody) sourceError() error {
	if e := u.srcErr.Load(); e != nil {
		return *e
	}
	return nil
}

// Close is a no-op: the caller owns the source.
func (u *uploadBody) Close() error { return nil }

// sourceEnds reads one byte past the size declared for r: io.EOF when
// there is none, else an error saying r is longer (or r's failure).
func sourceEnds(r io.Reader, size int64) error {
	var one [1]byte
	for {
		n, err := r.Read(one[:])
		switch {
		case n > 0:
			return fmt.Errorf("the source holds more than the declared size of %d bytes", size)
		case err == io.EOF:
			return io.EOF
		case err != nil:
			return err
		}
	}
}
