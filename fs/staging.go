package fs

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// staging is a file's content on local disk while it is written, and for as
// long as a handle needs it (an open file that was unlinked).
type staging struct {
	file *os.File
	size int64
	// dirty: the content differs from the server's.
	dirty bool
	// base is the server version the content started from ("" for a new
	// file); an upload succeeds only if the server still has it.
	base string
}

// newStaging creates an empty staging file in dir.
func newStaging(dir, base string) (*staging, error) {
	f, err := os.CreateTemp(dir, "stage-")
	if err != nil {
		return nil, fmt.Errorf("create staging file: %w", err)
	}
	return &staging{file: f, base: base}, nil
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
}

// newWatchdog returns a context that ends when the watchdog is not kicked for
// d, or when stop is called.
func newWatchdog(parent context.Context, d time.Duration) (context.Context, *watchdog) {
	ctx, cancel := context.WithCancel(context.WithoutCancel(parent))
	w := &watchdog{d: d, cancel: cancel}
	w.t = time.AfterFunc(d, cancel)
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
