package webdav

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// Streams (a GET body, a PUT body) may take far longer than one call's
// timeout, so they get no overall deadline beyond the caller's context.
// Instead a stallGuard cancels the request when no data has moved for the
// timeout: it is armed while we wait on the network and disarmed while the
// caller (or the caller's source) has the data.
type stallGuard struct {
	d      time.Duration
	timer  *time.Timer
	fired  atomic.Bool
	cancel context.CancelFunc
}

func newStallGuard(d time.Duration, cancel context.CancelFunc) *stallGuard {
	g := &stallGuard{d: d, cancel: cancel}
	g.timer = time.AfterFunc(d, func() {
		g.fired.Store(true)
		cancel()
	})
	g.timer.Stop()
	return g
}

func (g *stallGuard) arm()    { g.timer.Reset(g.d) }
func (g *stallGuard) disarm() { g.timer.Stop() }

// explain replaces the cancellation error of a stalled transfer.
func (g *stallGuard) explain(err error) error {
	if err != nil && g.fired.Load() {
		return errStalled
	}
	return err
}

// readStream is the body of a GET handed to the caller of Read.
type readStream struct {
	b      *Backend
	path   string
	body   io.ReadCloser
	r      io.Reader // body, possibly limited to the requested length
	guard  *stallGuard
	cancel context.CancelFunc
	closed atomic.Bool
}

// Read reads from the response, failing if the network stalls.
func (s *readStream) Read(p []byte) (int, error) {
	s.guard.arm()
	n, err := s.r.Read(p)
	s.guard.disarm()
	if err != nil && err != io.EOF {
		if s.closed.Load() || errors.Is(err, backends.ErrProtocol) {
			return n, err // closed by the caller; a reply that does not fit
		}
		return n, s.b.netError("GET", s.path, s.guard.explain(err))
	}
	return n, err
}

// Close releases the connection (closing early is fine).
func (s *readStream) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	s.guard.disarm()
	err := s.body.Close()
	s.cancel()
	return err
}

// putBody feeds an upload to the transport. remaining counts the bytes still
// to send (-1: unknown size); the guard runs while the transport writes.
type putBody struct {
	r         io.Reader
	guard     *stallGuard
	remaining int64
	started   atomic.Bool
	srcErr    atomic.Pointer[error] // a failure of the source, not of the network
}

// Read hands the next chunk of the source to the transport.
func (pb *putBody) Read(p []byte) (int, error) {
	pb.guard.disarm()
	pb.started.Store(true)
	if pb.remaining == 0 {
		return 0, io.EOF
	}
	if pb.remaining > 0 && int64(len(p)) > pb.remaining {
		p = p[:pb.remaining]
	}
	n, err := pb.r.Read(p)
	if pb.remaining > 0 {
		pb.remaining -= int64(n)
		if err == io.EOF && pb.remaining > 0 {
			err = fmt.Errorf("the source ended %d bytes short of the declared size", pb.remaining)
		}
	}
	if err != nil && err != io.EOF {
		pb.srcErr.Store(&err)
	}
	if err == nil && pb.remaining != 0 {
		pb.guard.arm()
	}
	return n, err
}

// sourceError is the error of the source, if reading it failed.
func (pb *putBody) sourceError() error {
	if e := pb.srcErr.Load(); e != nil {
		return *e
	}
	return nil
}

// Close is a no-op: the caller owns the source.
func (pb *putBody) Close() error { return nil }
