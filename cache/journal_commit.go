package cache

import (
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Group commit. Appends reach the kernel at once (a kill -9 of the daemon
// loses nothing); a batch makes them durable against a power cut: the
// staging files committed since the last batch, their directory if a file
// was created, then the segment. One batch serves every close of a commit
// interval, and an fsync runs one at once (Flush), so concurrent fsyncs
// share theirs.

// DefaultCommitInterval is how long a close may wait for its batch.
const DefaultCommitInterval = time.Second

// Start runs a batch every interval (DefaultCommitInterval if 0) until
// Close. Batch failures are logged to log and returned by the next Flush.
func (j *Journal) Start(interval time.Duration, log *slog.Logger) {
	if interval <= 0 {
		interval = DefaultCommitInterval
	}
	if log != nil {
		j.log = log
	}
	j.stop, j.done = make(chan struct{}), make(chan struct{})
	j.spares.start(j.dataDir, j.log)
	go func() {
		defer close(j.done)
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			select {
			case <-j.stop:
				return
			case <-t.C:
				if err := j.Flush(); err != nil {
					j.log.Error("journal: group commit failed; retrying at the next interval", "err", err)
				}
			}
		}
	}()
}

// Flush makes everything appended so far durable, with the data it names,
// and returns once it is: what fsync waits for.
func (j *Journal) Flush() error {
	j.mu.Lock()
	target := j.gen
	j.mu.Unlock()
	j.batchMu.Lock()
	defer j.batchMu.Unlock()
	j.mu.Lock()
	if j.durable >= target {
		j.mu.Unlock()
		return nil
	}
	gen := j.gen
	data, newData, newSeg, seg := j.unsynced, j.newData, j.newSeg, j.seg
	j.unsynced, j.newData, j.newSeg = map[string]bool{}, false, false
	j.mu.Unlock()

	names := make([]string, 0, len(data))
	for name := range data {
		names = append(names, name)
	}
	sort.Strings(names)
	var err error
	for _, name := range names {
		err = errors.Join(err, j.syncData(name))
	}
	if newData {
		err = errors.Join(err, j.fs.SyncDir(j.dataDir))
	}
	if seg != nil {
		err = errors.Join(err, seg.Sync())
	}
	if newSeg {
		err = errors.Join(err, j.fs.SyncDir(j.dir))
	}

	j.mu.Lock()
	defer j.mu.Unlock()
	if err != nil {
		for name := range data {
			j.unsynced[name] = true
		}
		j.newData = j.newData || newData
		j.newSeg = j.newSeg || newSeg
		return fmt.Errorf("journal: sync: %w", err)
	}
	j.durable = gen
	if j.segSize > compactMin && j.segSize > 4*j.liveSize {
		// Records appended since the batch began are in the new
		// segment, but their data is not synced: the next batch does it.
		if cerr := j.compactLocked(); cerr != nil {
			j.log.Warn("journal compaction failed; the journal goes on growing", "err", cerr)
		}
	}
	return nil
}

// syncData makes the content of one staging file durable. A file removed
// meanwhile was uploaded or deleted and needs nothing.
func (j *Journal) syncData(name string) error {
	f, err := j.fs.OpenFile(filepath.Join(j.dataDir, name), os.O_RDONLY, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// Close ends the group commits with a last batch and marks the journal
// clean: the next Load trusts the staging files without reading them.
// Nothing may be appended afterwards.
func (j *Journal) Close() error {
	if j.stop != nil {
		close(j.stop)
		<-j.done
		j.stop = nil
	}
	j.spares.stop()
	if err := j.Flush(); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.seg == nil {
		return nil
	}
	err := j.appendLocked(journalEntry{Op: opClean}, Record{})
	if err == nil {
		err = j.seg.Sync()
	}
	j.seg.Close()
	j.seg = nil
	if err != nil {
		return fmt.Errorf("journal: close: %w", err)
	}
	return nil
}
