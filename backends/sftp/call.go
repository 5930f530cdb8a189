package sftp

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"

	"github.com/cloudmount/cloudmount/backends"
)

// Weights of calls in the pool's load: a transfer keeps its connection busy
// far longer than a stat, so later calls go elsewhere.
const (
	weightCall   = 1
	weightStream = 16
)

// session is one backend call's hold on a pooled connection. pkg/sftp's
// calls take no context, so each runs in a goroutine: when it outlives its
// limit (Config.Timeout; for transfers, the timeout without receiving
// data) the connection is closed, which ends the call, and marked dead, and
// the call fails with ErrUnavailable. A caller whose context ends first
// returns at once with an error matching ErrUnavailable and ctx.Err(); its
// call may run on until that same limit, and only then is the connection
// closed, so that one impatient caller does not break the transfers of
// others on the same connection.
type session struct {
	b      *Backend
	c      *conn
	ctx    context.Context
	weight int64

	running sync.WaitGroup // calls still running, perhaps after their caller left
	active  atomic.Int32   // how many
	once    sync.Once
}

// session takes a connection for one backend call.
func (b *Backend) session(ctx context.Context, weight int64) (*session, error) {
	if err := ctx.Err(); err != nil {
		return nil, b.canceledError(err)
	}
	c, err := b.pool.get(ctx, weight)
	if err != nil {
		return nil, err
	}
	return &session{b: b, c: c, ctx: ctx, weight: weight}, nil
}

// end gives the connection back once every call of the session is over;
// then runs after (if not nil), in the background if a call still runs.
func (s *session) end(after func()) {
	s.once.Do(func() {
		finish := func() {
			s.c.release(s.weight)
			if after != nil {
				after()
			}
		}
		if s.active.Load() == 0 {
			finish()
			return
		}
		go func() { s.running.Wait(); finish() }()
	})
}

// do runs one SFTP request (or a few quick ones) with the call timeout.
func (s *session) do(fn func(c *sftp.Client) error) error {
	return s.run(callSpec{fn: fn, limit: s.b.timeout})
}

// transfer runs a call that may take long (a listing, an upload, a read)
// and fails only when the connection stops delivering: no SFTP data
// received for the timeout while the call waits on the server. waiting,
// if not nil, tells whether the call is waiting on the caller instead
// (an upload reading its source); that time does not count.
func (s *session) transfer(fn func(c *sftp.Client) error, waiting func() bool) error {
	return s.run(callSpec{fn: fn, limit: s.b.timeout, progress: true, waiting: waiting})
}

// callSpec says how one call is run and bounded.
type callSpec struct {
	fn func(c *sftp.Client) error
	// limit is the time the call may take (progress: may go without
	// receiving data).
	limit    time.Duration
	progress bool
	waiting  func() bool
	// abort ends a call that overran its limit; nil: close the connection.
	abort func()
	// detached: the call runs even when the session's context has ended
	// (closing a file).
	detached bool
	// keepConn: an error of the call is not the connection's (a command
	// on an exec channel).
	keepConn bool
}

func (s *session) run(cs callSpec) error {
	b, c := s.b, s.c
	if c.isDead() {
		return b.lostError(c)
	}
	ctx := s.ctx
	if cs.detached {
		ctx = context.Background()
	}
	if err := ctx.Err(); err != nil {
		return b.canceledError(err)
	}
	done := make(chan error, 1)
	s.running.Add(1)
	s.active.Add(1)
	go func() {
		defer s.running.Done()
		err := cs.fn(c.sftp)
		s.active.Add(-1)
		done <- err
	}()
	start := time.Now()
	var idleSince atomic.Int64 // when waiting() last was true
	stalled := func() bool {
		now := time.Now()
		if !cs.progress {
			return now.Sub(start) >= cs.limit
		}
		if cs.waiting != nil && cs.waiting() {
			idleSince.Store(now.UnixNano())
			return false
		}
		last := max(start.UnixNano(), c.lastRx.Load(), idleSince.Load())
		return now.UnixNano()-last >= int64(cs.limit)
	}
	abort := func(reason string) {
		if cs.abort != nil {
			cs.abort()
			return
		}
		c.kill(reason)
	}
	tick := cs.limit
	if cs.progress {
		tick = cs.limit / 8
	}
	tick = max(tick, 5*time.Millisecond)
	timer := time.NewTicker(tick)
	defer timer.Stop()
	for {
		select {
		case err := <-done:
			if err == nil {
				return nil
			}
			if c.isDead() {
				return b.lostError(c)
			}
			if !cs.keepConn && classify(err) == backends.ErrUnavailable {
				c.kill(fmt.Sprintf("broken: %v", err))
			}
			return err
		case <-timer.C:
			if stalled() {
				what := fmt.Sprintf("did not answer within %s", cs.limit)
				if cs.progress {
					what = fmt.Sprintf("sent nothing for %s", cs.limit)
				}
				abort(what)
				return b.deadlineError(what)
			}
		case <-ctx.Done():
			// The caller gave up (or its own deadline came first). The
			// call runs on, and the connection is closed only if it
			// stalls by the measure above: a short deadline of one
			// caller must not break the transfers of others.
			go s.watchAbandoned(done, stalled, tick, abort)
			return b.canceledError(ctx.Err())
		}
	}
}

// watchAbandoned waits for a call whose caller left, closing its
// connection if it stalls.
func (s *session) watchAbandoned(done <-chan error, stalled func() bool, tick time.Duration, abort func(string)) {
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-done:
			return
		case <-t.C:
			if stalled() {
				abort("a call whose caller gave up did not end")
				return
			}
		}
	}
}

// lostError is the error of a call on a connection that died.
func (b *Backend) lostError(c *conn) error {
	return backends.Describe(backends.ErrUnavailable, "the connection to %s broke (%s)", b.hostPort, c.deathReason())
}
