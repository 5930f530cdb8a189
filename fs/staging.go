package fs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"hash"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudmount/cloudmount/cache"
	"golang.org/x/sys/unix"
)

// staging is a file's content on local disk while it is written, and for as
// long as a handle needs it (an open file that was unlinked).
type staging struct {
	file *os.File
	size int64
	// dirty: the content differs from the server's.
	dirty bool
	// changed: written since the last commit to the journal.
	changed bool
	// committed: the journal holds a record of this content.
	committed bool
	// base is the server version the content started from ("" for a new
	// file); an upload succeeds only if the server still has it.
	base string

	// h hashes the content while it is written in order: it has seen the
	// first hashed bytes, and is valid while inOrder holds.
	h       hash.Hash
	hashed  int64
	inOrder bool
}

// newStaging creates an empty staging file in the journal's directory.
func newStaging(j *cache.Journal, base string) (*staging, error) {
	f, err := j.CreateData()
	if err != nil {
		return nil, err
	}
	return newStagingFile(f, base), nil
}

// newStagingFile wraps an open staging file whose content is not hashed yet.
func newStagingFile(f *os.File, base string) *staging {
	return &staging{file: f, base: base, h: sha256.New(), inOrder: true}
}

// wrote, truncate and allocate record every change of the content (a
// write's data goes to the file first, without the node's lock): each one
// marks it dirty and changed and keeps the running hash or gives it up, so
// that no change can leave a stale hash behind.

// truncate sets the size, as ftruncate(2).
func (s *staging) truncate(size int64) error {
	if err := s.file.Truncate(size); err != nil {
		return err
	}
	s.size, s.dirty, s.changed = size, true, true
	s.truncated(size)
	return nil
}

// allocate applies fallocate(2) and reports whether the content (bytes or
// size) may have changed. Only a KEEP_SIZE preallocation leaves it as it
// was; punching a hole or zeroing a range changes bytes without changing
// the size, so the running hash is given up.
func (s *staging) allocate(mode uint32, off, n int64) (bool, error) {
	if err := syscall.Fallocate(int(s.file.Fd()), mode, off, n); err != nil {
		return false, err
	}
	fi, err := s.file.Stat()
	if err != nil {
		return false, err
	}
	if mode == unix.FALLOC_FL_KEEP_SIZE && fi.Size() == s.size {
		return false, nil
	}
	s.size, s.dirty, s.changed = fi.Size(), true, true
	s.inOrder = false
	return true, nil
}

// wrote records that data was written at off: the size, the dirty state
// and the hash. Writes in order (cp, rsync, dd) are hashed as they come;
// any other write leaves the hash to sum, which reads the file once.
func (s *staging) wrote(data []byte, off int64) {
	if len(data) == 0 {
		return
	}
	if end := off + int64(len(data)); end > s.size {
		s.size = end
	}
	s.dirty, s.changed = true, true
	if s.inOrder && off == s.hashed {
		s.h.Write(data)
		s.hashed += int64(len(data))
		return
	}
	s.inOrder = false
}

// truncated tells the hash about a new size.
func (s *staging) truncated(size int64) {
	switch {
	case size == 0:
		s.h.Reset()
		s.hashed, s.inOrder = 0, true
	case size != s.hashed:
		s.inOrder = false
	}
}

// sum returns the content's SHA-256 in hex, reading the file when the
// writes were not in order.
func (s *staging) sum() (string, error) {
	if !s.inOrder || s.hashed != s.size {
		s.h.Reset()
		if _, err := io.Copy(s.h, io.NewSectionReader(s.file, 0, s.size)); err != nil {
			return "", fmt.Errorf("hash staging file: %w", err)
		}
		s.hashed, s.inOrder = s.size, true
	}
	return hex.EncodeToString(s.h.Sum(nil)), nil
}

// resum hashes the file's bytes anew, whatever the running hash says, and
// makes the result the running hash: what an upload decision is made from.
func (s *staging) resum() (string, error) {
	s.inOrder = false
	return s.sum()
}

// knownSum returns the content's SHA-256 if it is known without reading
// the file (written in order, or summed since the last write), else "".
func (s *staging) knownSum() string {
	if !s.inOrder || s.hashed != s.size {
		return ""
	}
	return hex.EncodeToString(s.h.Sum(nil))
}

// discard deletes the staging file.
func (s *staging) discard() {
	s.file.Close()
	os.Remove(s.file.Name())
}

// watchdog cancels a context when no progress was reported for d, so a
// stream of any length has a deadline without a fixed limit on its size.
type watchdog struct {
	d      time.Duration
	t      *time.Timer
	cancel context.CancelFunc
	once   sync.Once
	// fired: the context ended for want of progress.
	fired atomic.Bool
}

// newWatchdog returns a context that ends when the watchdog is not kicked for
// d, or when stop is called.
func newWatchdog(parent context.Context, d time.Duration) (context.Context, *watchdog) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	w := &watchdog{d: d, cancel: cancel}
	w.t = time.AfterFunc(d, func() {
		w.fired.Store(true)
		cancel()
	})
	return ctx, w
}

func (w *watchdog) kick() { w.t.Reset(w.d) }

func (w *watchdog) stop() {
	w.once.Do(func() {
		w.t.Stop()
		w.cancel()
	})
}

// kickReader reports every read to a watchdog.
type kickReader struct {
	r  io.Reader
	wd *watchdog
}

func (k kickReader) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	k.wd.kick()
	return n, err
}
