package cache

import (
	"log/slog"
	"os"
	"sync"
)

// spareCount is how many empty staging files are kept ready.
const spareCount = 32

// spares keeps empty staging files made ahead of time by a goroutine of
// their own, so that a create on the mount does not wait for the local
// filesystem to make one (half a millisecond and more on a busy ext4:
// rsync and tar create a file for every file they write). They are kept
// closed, by name, so that they hold no descriptors: opening one costs a
// fraction of making it. A spare left by a crash is an empty file that no
// record names, which the next Load removes.
type spares struct {
	mu     sync.Mutex
	ready  chan string
	wake   chan struct{}
	quit   chan struct{}
	done   chan struct{}
	closed bool
}

// start starts making spares in dir.
func (s *spares) start(dir string, log *slog.Logger) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready != nil || s.closed {
		return
	}
	s.ready = make(chan string, spareCount)
	s.wake = make(chan struct{}, 1)
	s.quit, s.done = make(chan struct{}), make(chan struct{})
	go fill(dir, log, s.ready, s.wake, s.quit, s.done)
}

// fill tops ready up whenever a spare is taken (wake), until quit.
func fill(dir string, log *slog.Logger, ready chan string, wake, quit, done chan struct{}) {
	defer close(done)
	for {
		for len(ready) < cap(ready) {
			f, err := os.CreateTemp(dir, "stage-")
			if err != nil {
				log.Debug("journal: no spare staging file", "err", err)
				break
			}
			f.Close()
			select {
			case ready <- f.Name():
			default:
				os.Remove(f.Name())
			}
		}
		select {
		case <-quit:
			return
		case <-wake:
		}
	}
}

// take returns a spare, open for reading and writing, or nil when there is
// none ready.
func (s *spares) take() *os.File {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ready == nil || s.closed {
		return nil
	}
	select {
	case name := <-s.ready:
		select {
		case s.wake <- struct{}{}:
		default:
		}
		f, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			os.Remove(name)
			return nil
		}
		return f
	default:
		return nil
	}
}

// stop ends the filling for good and removes the spares not taken.
func (s *spares) stop() { s.end(true) }

// drain ends the filling and removes the spares not taken, until the next
// start: Load must not see them as files of writers that never closed.
func (s *spares) drain() { s.end(false) }

func (s *spares) end(final bool) {
	s.mu.Lock()
	ready, quit, done := s.ready, s.quit, s.done
	s.ready = nil
	s.closed = s.closed || final
	s.mu.Unlock()
	if ready == nil {
		return
	}
	close(quit)
	<-done
	for {
		select {
		case name := <-ready:
			os.Remove(name)
		default:
			return
		}
	}
}
