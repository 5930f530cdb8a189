// Package cache keeps what a mount stores on local disk: the cache directory
// (one mount at a time), staging files for open writers, the journal and
// write-back queue of what is not on the server yet, the block cache of file
// content, and the metadata index that remembers mtime, mode and owner where
// the server cannot.
package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// Store is one mount's cache directory, locked for the life of the mount.
type Store struct {
	// Dir is the cache directory (mode 0700).
	Dir string
	// Index remembers metadata the server cannot store.
	Index *Index
	// Blocks caches file content read from the server.
	Blocks *Blocks
	// Journal records the uploads not yet on the server.
	Journal *Journal

	lock *os.File
}

// Options configure a cache directory.
type Options struct {
	// CacheSize limits the block cache in bytes; 0 picks the default.
	CacheSize int64
	// Mountpoint is recorded in the lock file, so that a later mount can
	// tell a daemon that still serves it from one that drains its queue.
	Mountpoint string
}

// BusyError: another cloudmount holds the cache directory.
type BusyError struct {
	Dir string
	// PID and Mountpoint are the holder's, as its lock file says.
	PID        int
	Mountpoint string
}

func (e *BusyError) Error() string {
	return fmt.Sprintf("cache directory %s is in use by another cloudmount (pid %d); unmount it first or pass --cache-dir", e.Dir, e.PID)
}

// Open creates (0700) and locks the cache directory dir. It fails if another
// cloudmount holds the lock.
func Open(dir string, o Options) (*Store, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		owner, _ := os.ReadFile(lock.Name())
		lock.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			pid, mnt, _ := strings.Cut(strings.TrimSpace(string(owner)), "\n")
			be := &BusyError{Dir: dir, Mountpoint: mnt}
			be.PID, _ = strconv.Atoi(pid)
			return nil, be
		}
		return nil, fmt.Errorf("lock cache directory %s: %w", dir, err)
	}
	if err := lock.Truncate(0); err == nil {
		lock.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"+o.Mountpoint+"\n"), 0)
	}
	s := &Store{Dir: dir, lock: lock}
	if err := os.MkdirAll(s.StagingDir(), 0o700); err != nil {
		s.Close()
		return nil, fmt.Errorf("cache directory: %w", err)
	}
	if s.Index, err = openIndex(filepath.Join(dir, "index.db")); err != nil {
		s.Close()
		return nil, err
	}
	if s.Journal, err = openJournal(filepath.Join(dir, "journal"), s.StagingDir()); err != nil {
		s.Close()
		return nil, err
	}
	if s.Blocks, err = openBlocks(filepath.Join(dir, "blocks"), o.CacheSize); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// StagingDir is where open writers keep their data.
func (s *Store) StagingDir() string { return filepath.Join(s.Dir, "staging") }

// StagedFile is the name of the file that holds the data of rec.
func (s *Store) StagedFile(rec Record) string { return filepath.Join(s.StagingDir(), rec.Data) }

// OpenStaged opens the data of rec for reading and writing.
func (s *Store) OpenStaged(rec Record) (*os.File, error) {
	return os.OpenFile(s.StagedFile(rec), os.O_RDWR, 0)
}

// Close makes the journal durable and marks it clean, releases the lock
// and closes the index. Nothing may write to the store any more.
func (s *Store) Close() error {
	var err error
	if s.Journal != nil {
		err = s.Journal.Close()
	}
	if s.Blocks != nil {
		err = errors.Join(err, s.Blocks.close())
	}
	if s.Index != nil {
		err = errors.Join(err, s.Index.close())
	}
	if s.lock != nil {
		s.lock.Close()
	}
	return err
}

// DefaultDir is the cache directory of a mount of source as user below
// base (the user's cache home, ~/.cache): base/cloudmount/<mount id>, where
// the id is derived from the source URL (without secrets) and the user
// name.
func DefaultDir(base, source, user string) string {
	return filepath.Join(base, "cloudmount", MountID(source, user))
}

// MountID names a mount of source as user in a way that is readable and
// unique: host and path, then a short hash of the full source and user.
func MountID(source, user string) string {
	label := source
	if u, err := url.Parse(source); err == nil && u.Host != "" {
		label = u.Host + u.Path
	}
	var b strings.Builder
	for _, r := range label {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9', r == '.', r == '-':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	name := strings.Trim(b.String(), "_")
	if len(name) > 48 {
		name = name[:48]
	}
	sum := sha256.Sum256([]byte(source + "\x00" + user))
	return name + "-" + hex.EncodeToString(sum[:6])
}
