package sftp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/cloudmount/cloudmount/backends"
)

// conn is one SSH connection with its SFTP session.
type conn struct {
	id    int64
	ssh   *ssh.Client
	chain []*ssh.Client // ProxyJump hops, closed after ssh
	sftp  *sftp.Client
	// lastRx is when the SFTP session last received a byte (UnixNano):
	// progress of transfers and listings.
	lastRx atomic.Int64
	// load weighs the calls that use the connection (a stream weighs more
	// than a stat), so that the pool hands out the least busy one.
	load atomic.Int64

	deadOnce sync.Once
	dead     chan struct{}
	reason   atomic.Pointer[string]
}

// kill closes the connection and marks it dead; calls blocked on it
// return. The first reason is kept for messages.
func (c *conn) kill(reason string) {
	c.deadOnce.Do(func() {
		c.reason.Store(&reason)
		close(c.dead)
		c.ssh.Close()
		for i := len(c.chain) - 1; i >= 0; i-- {
			c.chain[i].Close()
		}
		// Close waits for the SFTP receiver, which the closed SSH
		// connection ends.
		if c.sftp != nil {
			go c.sftp.Close()
		}
	})
}

// isDead reports whether the connection was closed.
func (c *conn) isDead() bool {
	select {
	case <-c.dead:
		return true
	default:
		return false
	}
}

// deathReason says why the connection was closed ("" if it was not).
func (c *conn) deathReason() string {
	if r := c.reason.Load(); r != nil {
		return *r
	}
	return ""
}

// release gives back the load a call took.
func (c *conn) release(weight int64) { c.load.Add(-weight) }

// keepAlive sends keepalive@openssh.com every interval; a connection that
// has not answered for three intervals is dead. Any reply (OpenSSH answers
// "failure" to this request) proves the link and the server alive.
func (c *conn) keepAlive(interval time.Duration) {
	for {
		select {
		case <-c.dead:
			return
		case <-time.After(interval):
		}
		t := time.AfterFunc(3*interval, func() {
			c.kill(fmt.Sprintf("no answer to keep-alives for %s", 3*interval))
		})
		_, _, err := c.ssh.SendRequest("keepalive@openssh.com", true, nil)
		t.Stop()
		if err != nil {
			c.kill(fmt.Sprintf("keep-alive failed: %v", err))
			return
		}
	}
}

// rxCounter notes when the SFTP session receives data.
type rxCounter struct {
	r io.Reader
	c *conn
}

func (r *rxCounter) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if n > 0 {
		r.c.lastRx.Store(time.Now().UnixNano())
	}
	return n, err
}

// pool keeps up to size connections: filled once the first is up (fill),
// then grown back one at a time when every live one is busy; a dead one is
// thus replaced when a call needs it. While none is up and the last
// attempt failed, calls fail at once with that attempt's error until the
// backoff has passed, so that an unreachable server never makes a call
// hang.
type pool struct {
	size int
	dial func(ctx context.Context) (*conn, error)
	// timeout bounds one connection attempt.
	timeout time.Duration
	server  string
	log     *slog.Logger
	// onConnect, if set, runs (in its own goroutine) after a connection
	// attempt succeeds.
	onConnect func()

	mu       sync.Mutex // protects the fields below
	conns    []*conn    // live ones
	dialing  int
	failures int // consecutive failed attempts
	nextTry  time.Time
	lastErr  error
	closed   bool
	wake     chan struct{} // closed (and replaced) when conns or dialing change
}

// Backoff between connection attempts: doubling from minBackoff to
// maxBackoff, and authBackoff after the server refused the login (trying
// again at once could lock the account).
const (
	minBackoff  = 250 * time.Millisecond
	maxBackoff  = 10 * time.Second
	authBackoff = time.Minute
)

func newPool(size int, timeout time.Duration, server string, log *slog.Logger, dial func(context.Context) (*conn, error)) *pool {
	return &pool{size: size, dial: dial, timeout: timeout, server: server, log: log, wake: make(chan struct{})}
}

// broadcast wakes the calls waiting for a connection. Called with mu held.
func (p *pool) broadcast() {
	close(p.wake)
	p.wake = make(chan struct{})
}

// add puts a connection into the pool, to be removed when it dies. Called
// with mu held.
func (p *pool) add(c *conn) {
	go func() {
		<-c.dead
		p.remove(c)
	}()
	p.conns = append(p.conns, c)
	p.failures, p.lastErr = 0, nil
	p.broadcast()
}

// remove drops a dead connection.
func (p *pool) remove(c *conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i, x := range p.conns {
		if x == c {
			p.conns = append(p.conns[:i], p.conns[i+1:]...)
			break
		}
	}
	if !p.closed {
		p.log.Warn("sftp: connection lost", "server", p.server, "conn", c.id, "reason", c.deathReason())
	}
	p.broadcast()
}

// startDial opens one more connection in the background. Called with mu
// held.
func (p *pool) startDial() {
	p.dialing++
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), p.timeout)
		c, err := p.dial(ctx)
		cancel()
		p.mu.Lock()
		defer p.mu.Unlock()
		p.dialing--
		switch {
		case err == nil && p.closed:
			c.kill("the backend is closed")
		case err == nil:
			p.add(c)
			p.log.Debug("sftp: connected", "server", p.server, "conn", c.id, "pool", len(p.conns))
			if p.onConnect != nil {
				go p.onConnect()
			}
		default:
			p.failures++
			wait := minBackoff << min(p.failures-1, 8)
			wait = min(wait, maxBackoff)
			if errors.Is(err, backends.ErrAuth) {
				wait = authBackoff
			}
			p.nextTry = time.Now().Add(wait)
			p.lastErr = err
			if len(p.conns) == 0 {
				p.log.Warn("sftp: cannot connect", "server", p.server, "error", err, "retry_in", wait)
			}
		}
		p.broadcast()
	}()
}

// get returns the least busy live connection with weight added to its
// load (the caller releases it). Without one it waits for an attempt in
// progress (bounded by ctx and the attempt's timeout), starts one if the
// backoff allows, or fails at once.
func (p *pool) get(ctx context.Context, weight int64) (*conn, error) {
	for {
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			return nil, backends.Describe(backends.ErrUnavailable, "the connection to %s is closed", p.server)
		}
		var best *conn
		for _, c := range p.conns {
			if c.isDead() {
				continue // on its way out
			}
			if best == nil || c.load.Load() < best.load.Load() {
				best = c
			}
		}
		now := time.Now()
		if best != nil {
			if best.load.Load() > 0 && len(p.conns)+p.dialing < p.size && p.dialing == 0 && !now.Before(p.nextTry) {
				p.startDial() // the pool grows when every connection is busy
			}
			best.load.Add(weight)
			p.mu.Unlock()
			return best, nil
		}
		if p.dialing == 0 {
			if now.Before(p.nextTry) && p.lastErr != nil {
				err := p.lastErr
				p.mu.Unlock()
				return nil, &notConnectedError{server: p.server, err: err}
			}
			p.startDial()
		}
		wake := p.wake
		p.mu.Unlock()
		select {
		case <-wake:
		case <-ctx.Done():
			return nil, &timeoutError{server: p.server, what: "is not connected (still trying)", ctxErr: ctx.Err()}
		}
	}
}

// fill opens the missing connections in the background.
func (p *pool) fill() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for len(p.conns)+p.dialing < p.size && !p.closed {
		p.startDial()
	}
}

// close kills every connection; later calls fail.
func (p *pool) close() {
	p.mu.Lock()
	p.closed = true
	conns := append([]*conn(nil), p.conns...)
	p.broadcast()
	p.mu.Unlock()
	for _, c := range conns {
		c.kill("the backend is closed")
	}
}

// notConnectedError is a call made while no connection is up and the last
// attempt failed. It matches backends.ErrUnavailable, and also
// backends.ErrAuth when the server refused the login.
type notConnectedError struct {
	server string
	err    error
}

func (e *notConnectedError) Error() string {
	return fmt.Sprintf("not connected to %s: %v", e.server, e.err)
}

func (e *notConnectedError) Unwrap() []error { return []error{backends.ErrUnavailable, e.err} }
