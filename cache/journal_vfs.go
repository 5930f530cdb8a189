package cache

import (
	"io"
	"os"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// vfs is the file system the journal keeps its segments and staging files
// on: the real one (osFS), or in the crash-consistency tests one that
// models what a power cut keeps of writes that were not synced.
type vfs interface {
	// OpenFile opens name as os.OpenFile does.
	OpenFile(name string, flag int, perm os.FileMode) (vfile, error)
	Remove(name string) error
	Rename(from, to string) error
	// ReadDir returns the names in dir, sorted.
	ReadDir(dir string) ([]string, error)
	MkdirAll(dir string) error
	// SyncDir makes the entries of dir durable (created, renamed, removed).
	SyncDir(dir string) error
}

// vfile is an open file of a vfs.
type vfile interface {
	io.ReaderAt
	io.WriterAt
	io.Writer
	// Sync makes the file's content durable (fdatasync).
	Sync() error
	Truncate(size int64) error
	Size() (int64, error)
	Close() error
}

// osFS is the real file system.
type osFS struct{}

func (osFS) OpenFile(name string, flag int, perm os.FileMode) (vfile, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

func (osFS) Remove(name string) error     { return os.Remove(name) }
func (osFS) Rename(from, to string) error { return os.Rename(from, to) }
func (osFS) MkdirAll(dir string) error    { return os.MkdirAll(dir, 0o700) }

func (osFS) ReadDir(dir string) ([]string, error) {
	des, err := os.ReadDir(dir)
	names := make([]string, 0, len(des))
	for _, de := range des {
		names = append(names, de.Name())
	}
	return names, err
}

func (osFS) SyncDir(dir string) error { return syncDir(dir) }

// osFile is an *os.File whose Sync is fdatasync: the journal needs the
// data and the size durable, not the timestamps.
type osFile struct{ *os.File }

func (f osFile) Sync() error {
	fileSyncs.Add(1)
	return unix.Fdatasync(int(f.Fd()))
}

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// fileSyncs and dirSyncs count syncs of the real file system (for tests:
// the price of a commit).
var fileSyncs, dirSyncs atomic.Int64

// syncDir makes the directory entries of dir durable.
func syncDir(dir string) error {
	dirSyncs.Add(1)
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
