package main

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"

	"github.com/cloudmount/cloudmount/mountutil"
)

// Where control sockets live. A daemon of user UID puts the socket of the
// mount at the absolute path MP in the first of these directories that it
// can make safe (it must exist or be creatable, be owned by UID and have
// mode 0700):
//
//	/run/cloudmount                      only for root
//	$XDG_RUNTIME_DIR/cloudmount          if set (and absolute)
//	/run/user/UID/cloudmount             if /run/user/UID exists
//	/tmp/cloudmount-UID
//
// under the name hex(sha256(MP))[:32] + ".sock", mode 0600. A client looks
// in all of them (for its own uid and for the uid that mounted), because a
// daemon started by mount(8) may have had another environment.

// controlSocketName is the file name of the control socket of the mount at
// the absolute path mountpoint.
func controlSocketName(mountpoint string) string {
	sum := sha256.Sum256([]byte(mountpoint))
	return hex.EncodeToString(sum[:16]) + ".sock"
}

// socketDirs lists the directories for the control sockets of uid's
// daemons, in the order a daemon tries them. Tests replace it.
var socketDirs = defaultSocketDirs

// defaultSocketDirs is socketDirs outside tests.
func defaultSocketDirs(uid int) []string {
	var dirs []string
	if uid == 0 {
		dirs = append(dirs, "/run/cloudmount")
	}
	if uid == os.Geteuid() {
		if x := os.Getenv("XDG_RUNTIME_DIR"); filepath.IsAbs(x) {
			dirs = append(dirs, filepath.Join(filepath.Clean(x), "cloudmount"))
		}
	}
	dirs = append(dirs, filepath.Join("/run/user", strconv.Itoa(uid), "cloudmount"),
		filepath.Join("/tmp", "cloudmount-"+strconv.Itoa(uid)))
	return dedupe(dirs)
}

// dedupe drops repeated strings, keeping the first of each.
func dedupe(in []string) []string {
	seen := map[string]bool{}
	out := in[:0]
	for _, s := range in {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	return out
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

// ensureSocketDir makes dir a safe place for uid's control sockets: its
// parent must exist, be owned by uid or root, and be writable by no one
// else unless sticky (/tmp); dir itself is created 0700 if missing and must
// then be a real directory owned by uid with mode 0700. Anything else is
// refused, never repaired.
func ensureSocketDir(dir string, uid int) error {
	parent := filepath.Dir(dir)
	pfi, err := os.Stat(parent)
	if err != nil {
		return fmt.Errorf("control socket directory %s: %w", dir, err)
	}
	if err := checkParentDir(parent, pfi, uid); err != nil {
		return err
	}
	created := false
	if err := os.Mkdir(dir, 0o700); err == nil {
		created = true
	} else if !errors.Is(err, fs.ErrExist) {
		return fmt.Errorf("control socket directory: %w", err)
	}
	if created {
		// The umask may have taken bits away; it never adds any.
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("control socket directory: %w", err)
		}
	}
	return checkSocketDir(dir, uid)
}

// checkParentDir checks the directory that holds a socket directory.
func checkParentDir(parent string, fi os.FileInfo, uid int) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("control socket directory: %s is not a directory", parent)
	case !ok:
		return fmt.Errorf("control socket directory: cannot tell the owner of %s", parent)
	case int(st.Uid) != uid && st.Uid != 0:
		return fmt.Errorf("control socket directory: %s belongs to uid %d, not %d or root", parent, st.Uid, uid)
	case fi.Mode().Perm()&0o022 != 0 && fi.Mode()&fs.ModeSticky == 0:
		return fmt.Errorf("control socket directory: %s is writable by others and not sticky", parent)
	}
	return nil
}

// checkSocketDir checks that dir is a directory (not a symlink) owned by
// uid with mode 0700: what a daemon and a client both insist on before they
// trust a socket in it.
func checkSocketDir(dir string, uid int) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("control socket directory %s: %w", dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.IsDir():
		return fmt.Errorf("control socket directory %s is not a directory (%v); refusing it", dir, fi.Mode().Type())
	case !ok || int(st.Uid) != uid:
		return fmt.Errorf("control socket directory %s is not owned by uid %d; refusing it", dir, uid)
	case fi.Mode().Perm() != 0o700:
		return fmt.Errorf("control socket directory %s has mode %04o, not 0700; refusing it (fix: chmod 700 %s)", dir, fi.Mode().Perm(), dir)
	}
	return nil
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
	if _, ok := mountutil.FDMountpoint(mountpoint); ok {
		return nil, fmt.Errorf("control socket: the mountpoint was handed over as %s, so its path is unknown", mountpoint)
	}
	mp, err := canonicalMountpoint(mountpoint)
	if err != nil {
		return nil, err
	}
	name := controlSocketName(mp)
	var errs []error
	for _, dir := range socketDirs(uid) {
		p := filepath.Join(dir, name)
		if len(p) > maxSocketPath {
			errs = append(errs, fmt.Errorf("control socket path %s is longer than %d bytes", p, maxSocketPath))
			continue
		}
		if err := ensureSocketDir(dir, uid); err != nil {
			errs = append(errs, err)
			continue
		}
		s, err := bindControl(dir, name, log)
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
	return nil, fmt.Errorf("no safe directory for the control socket of %s: %w", mp, errors.Join(errs...))
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
