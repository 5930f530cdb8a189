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
	r      io.Reader       // body, possibly limited to the requested length
	ctx    context.Context // the request's: ends with the caller's, the guard and Close
	guard  *stallGuard
	cancel context.CancelFunc
	closed atomic.Bool
}

// Read reads from the response, failing if the network stalls or the
// context ends. The context is checked here, not left to the transport:
// it tears the connection down from another goroutine, and until it does
// a reply already in the socket buffers (megabytes on loopback) would
// still be read.
func (s *readStream) Read(p []byte) (int, error) {
	if err := s.ctx.Err(); err != nil && !s.closed.Load() {
		return 0, s.b.netError("GET", s.path, s.guard.explain(err))
	}
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

// putBody feeds an upload to the transport. size is the size declared
// (-1: unknown) and remaining counts the bytes still to send; the guard
// runs while the transport writes. A source that gives more or fewer bytes
// than declared fails the upload.
type putBody struct {
	r         io.Reader
	guard     *stallGuard
	size      int64
	remaining int64
	state     atomic.Int32          // bodyFresh, bodyRead or bodyDropped
	end       error                 // sticky: io.EOF once the source is done, or its failure
	srcErr    atomic.Pointer[error] // a failure of the source, not of the network
}

// The states of a putBody: the source is read by one request only.
const (
	bodyFresh   int32 = iota // nothing read yet
	bodyRead                 // a request reads the source
	bodyDropped              // given up unread: another request reads the source
)

// errBodyDropped fails a late read of a body given up for another attempt.
var errBodyDropped = errors.New("upload body given up for another attempt")

// Read hands the next chunk of the source to the transport.
func (pb *putBody) Read(p []byte) (int, error) {
	pb.guard.disarm()
	if pb.state.Load() != bodyRead && !pb.state.CompareAndSwap(bodyFresh, bodyRead) {
		return 0, errBodyDropped
	}
	if pb.end != nil {
		return 0, pb.end
	}
	n, err := pb.read(p)
	if err != nil {
		pb.end = err
		if err != io.EOF {
			pb.srcErr.Store(&err)
		}
		return n, err
	}
	pb.guard.arm()
	return n, nil
}

func (pb *putBody) read(p []byte) (int, error) {
	if pb.remaining < 0 {
		return pb.r.Read(p)
	}
	if pb.remaining == 0 {
		return 0, sourceEnds(pb.r, pb.size)
	}
	if int64(len(p)) > pb.remaining {
		p = p[:pb.remaining]
	}
	n, err := pb.r.Read(p)
	pb.remaining -= int64(n)
	switch {
	case err == io.EOF && pb.remaining > 0:
		return n, fmt.Errorf("the source ended %d bytes short of the declared size of %d bytes", pb.remaining, pb.size)
	case err == nil && pb.remaining == 0:
		// The last bytes: the source must end here. That is checked
		// before they go out, and they are held back if it does not,
		// so that the server gets a short body and the request is
		// aborted rather than a whole one it could commit.
		if err := sourceEnds(pb.r, pb.size); err != io.EOF {
			return 0, err
		}
		return n, io.EOF
	}
	return n, err
}

// sourceEnds reads one byte past the size declared for r: io.EOF when
// there is none, else an error saying r is longer (or r's failure).
func sourceEnds(r io.Reader, size int64) error {
	var one [1]byte
	switch _, err := io.ReadFull(r, one[:]); err {
	case nil:
		return fmt.Errorf("the source holds more than the declared size of %d bytes", size)
	case io.EOF:
		return io.EOF
	default:
		return err
	}
}

// started reports whether a request began to read the body.
func (pb *putBody) started() bool { return pb.state.Load() == bodyRead }

// drop gives the body up for another attempt, if no request read any of
// it; a late read then fails, and the source is left to the next attempt.
func (pb *putBody) drop() bool { return pb.state.CompareAndSwap(bodyFresh, bodyDropped) }

// sourceError is the error of the source, if reading it failed.
func (pb *putBody) sourceError() error {
	if e := pb.srcErr.Load(); e != nil {
		return *e
	}
	return nil
}

// Close is a no-op: the caller owns the source.
func (pb *putBody) Close() error { return nil }
