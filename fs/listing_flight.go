package fs

import (
	"context"
	"sync"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// listFlights keeps one listing per directory in flight: a caller that
// wants a directory listed while a listing of it is being read waits for
// that one and takes its result, so that a slow server never gets a second
// listing request of a directory before it answered the first. A listing that
// failed (other than for being offline, which answers from the cache) is
// remembered for a while, so that lookups in a directory the server cannot
// list do not ask again one by one.
type listFlights struct {
	mu       sync.Mutex // protects the maps
	inflight map[string]*listFlight
	failed   map[string]failedListing
}

type listFlight struct {
	done    chan struct{} // closed when entries and err are set
	entries []backends.Entry
	err     error
}

type failedListing struct {
	at  time.Time
	err error
}

// do returns the listing of dir: the one in flight if there is one, else
// one read with fn. The entries are shared between the callers and must
// not be changed. ctx bounds the wait, not the listing.
func (l *listFlights) do(ctx context.Context, dir string, fn func() ([]backends.Entry, error)) ([]backends.Entry, error) {
	l.mu.Lock()
	if l.inflight == nil {
		l.inflight = map[string]*listFlight{}
	}
	f := l.inflight[dir]
	if f == nil {
		f = &listFlight{done: make(chan struct{})}
		l.inflight[dir] = f
		l.mu.Unlock()
		f.entries, f.err = fn()
		l.mu.Lock()
		delete(l.inflight, dir)
		l.mu.Unlock()
		close(f.done)
		return f.entries, f.err
	}
	l.mu.Unlock()
	select {
	case <-f.done:
		return f.entries, f.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// busy reports whether a listing of dir is in flight.
func (l *listFlights) busy(dir string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.inflight[dir] != nil
}

// fail remembers that listing dir failed with err.
func (l *listFlights) fail(dir string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.failed == nil {
		l.failed = map[string]failedListing{}
	}
	l.failed[dir] = failedListing{at: time.Now(), err: err}
}

// failure returns the error of a listing of dir that failed less than ttl
// ago, or nil; an older one is forgotten.
func (l *listFlights) failure(dir string, ttl time.Duration) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	f, ok := l.failed[dir]
	if !ok {
		return nil
	}
	if time.Since(f.at) > ttl {
		delete(l.failed, dir)
		return nil
	}
	return f.err
}

// forget drops a remembered failure of dir (a listing succeeded, or the
// directory changed here).
func (l *listFlights) forget(dir string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.failed, dir)
}
