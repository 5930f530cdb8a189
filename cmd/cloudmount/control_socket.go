package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/mountutil"
)

// controlSocketName is the file name of the control socket of the mount at
// the absolute path mountpoint.
func controlSocketName(mountpoint string) string {
	sum := sha256.Sum256([]byte(mountpoint))
	return hex.EncodeToString(sum[:16]) + ".sock"
}

// maxSocketPath is the longest path a unix socket address can hold
// (sun_path, less its terminating NUL).
const maxSocketPath = 107

// canonicalMountpoint is the path the kernel lists for a mountpoint: it is
// absolute and its parent's symlinks are resolved. The mountpoint itself is
// not touched, so that a dead mount does not make this hang or fail.
func canonicalMountpoint(mountpoint string) (string, error) {
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		return "", fmt.Errorf("mountpoint %s: %w", mountpoint, err)
	}
	if abs == "/" {
		return abs, nil
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		abs = filepath.Join(dir, filepath.Base(abs))
	}
	return abs, nil
}

// controlSocket is a listening control socket and the file it is bound to.
type controlSocket struct {
	l          *net.UnixListener
	path       string
	mountpoint string
	// fi identifies the socket file, so that close removes it only while it
	// is still ours.
	fi os.FileInfo
}

// listenControl binds the control socket of mountpoint for a daemon of uid
// in the first safe directory of socketDirs(uid). An existing socket at the
// path is replaced: a stale one of a daemon that crashed, or one of a
// daemon still draining after its unmount (a mountpoint has one cloudmount
// mount at a time, and this daemon has just mounted it).
func listenControl(mountpoint string, uid int, log *slog.Logger) (*controlSocket, error) {
	var errs []error
	mp, _ := canonicalMountpoint(mountpoint) // an error comes from controlSocketDirs
	for dir, err := range controlSocketDirs(mountpoint, uid) {
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s, err := bindControl(dir, controlSocketName(mp), log)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		s.mountpoint = mp
		for _, err := range errs {
			log.Warn("control socket: a preferred directory was not used", "err", err)
		}
		return s, nil
	}
	return nil, noSocketDirError(mountpoint, errs)
}

// errMountpointUnknown: the mountpoint was handed over as /dev/fd/N
// (mount.fuse3 -o drop_privileges), so no socket can be named after it.
var errMountpointUnknown = errors.New("the mountpoint was handed over as a file descriptor, so its path is unknown")

// checkControlPlace reports whether the control socket of mountpoint can be
// had: a safe directory for it exists or was made. A daemon asks before it
// mounts, so that it fails rather than mount without status and sync.
func checkControlPlace(mountpoint string, uid int) error {
	var errs []error
	for _, err := range controlSocketDirs(mountpoint, uid) {
		if err == nil {
			return nil
		}
		errs = append(errs, err)
	}
	return noSocketDirError(mountpoint, errs)
}

// controlSocketDirs yields the directories of socketDirs(uid) in order,
// each with nil if it is safe (made so by ensureSocketDir) and short enough
// for the socket of mountpoint, or with the reason it is not.
func controlSocketDirs(mountpoint string, uid int) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if _, ok := mountutil.FDMountpoint(mountpoint); ok {
			yield("", fmt.Errorf("control socket of %s: %w", mountpoint, errMountpointUnknown))
			return
		}
		mp, err := canonicalMountpoint(mountpoint)
		if err != nil {
			yield("", err)
			return
		}
		name := controlSocketName(mp)
		for _, dir := range socketDirs(uid) {
			if p := filepath.Join(dir, name); len(p) > maxSocketPath {
				err = fmt.Errorf("control socket path %s is longer than %d bytes", p, maxSocketPath)
			} else {
				err = ensureSocketDir(dir, uid)
			}
			if !yield(dir, err) {
				return
			}
		}
	}
}

// noSocketDirError is the error of a mount that cannot have a control
// socket: it says what each directory is missing and what to do.
func noSocketDirError(mountpoint string, errs []error) error {
	if len(errs) == 1 && errors.Is(errs[0], errMountpointUnknown) {
		return errs[0]
	}
	lines := make([]string, len(errs))
	for i, err := range errs {
		lines[i] = "  " + err.Error()
	}
	return fmt.Errorf("no safe directory for the control socket of %s, so cloudmount status and cloudmount sync could not reach the mount; "+
		"not mounting. The directories tried:\n%s\n"+
		"Fix one of them (a directory that another user made must be removed by root), "+
		"or set XDG_RUNTIME_DIR to a directory of yours with mode 0700", mountpoint, strings.Join(lines, "\n"))
}

// bindControl binds a socket under a temporary name in dir, makes it 0600
// and renames it to name, so that the path is never missing or open to
// others, and an old socket there is replaced in one step.
func bindControl(dir, name string, log *slog.Logger) (*controlSocket, error) {
	final := filepath.Join(dir, name)
	// Shorter than name, so within maxSocketPath too.
	tmp := filepath.Join(dir, fmt.Sprintf(".%d.tmp", os.Getpid()))
	_ = os.Remove(tmp)
	l, err := net.ListenUnix("unix", &net.UnixAddr{Name: tmp, Net: "unix"})
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	l.SetUnlinkOnClose(false)
	fail := func(err error) (*controlSocket, error) {
		l.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("control socket %s: %w", final, err)
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return fail(err)
	}
	if _, err := os.Lstat(final); err == nil {
		if c, err := net.DialTimeout("unix", final, time.Second); err == nil {
			c.Close()
			log.Warn("control socket: another daemon still answers for this mountpoint (one draining after its unmount); taking the socket over", "socket", final)
		} else {
			log.Info("control socket: replacing a stale socket", "socket", final, "err", err)
		}
	}
	if err := os.Rename(tmp, final); err != nil {
		return fail(err)
	}
	fi, err := os.Lstat(final)
	if err != nil {
		return fail(err)
	}
	return &controlSocket{l: l, path: final, fi: fi}, nil
}

// close stops listening and removes the socket file if it is still the one
// this daemon bound.
func (s *controlSocket) close(log *slog.Logger) {
	s.l.Close()
	if fi, err := os.Lstat(s.path); err == nil && os.SameFile(fi, s.fi) {
		if err := os.Remove(s.path); err != nil {
			log.Warn("control socket: cannot remove it", "socket", s.path, "err", err)
		}
	}
}
