package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// Where control sockets live. A daemon of user UID puts the socket of the
// mount at the absolute path MP in the first of these directories that it
// can make safe (it must exist or be creatable, be owned by UID and have
// mode 0700, and no other user may be able to replace it or a directory
// above it):
//
//	/run/cloudmount                      only for root
//	$XDG_RUNTIME_DIR/cloudmount          if set (and absolute)
//	/run/user/UID/cloudmount             if /run/user/UID exists
//	HOME/.cache/cloudmount/sockets       HOME from the password database
//	/tmp/cloudmount-UID
//
// under the name hex(sha256(MP))[:32] + ".sock", mode 0600. A client looks
// in all of them (for its own uid and for the uid that mounted), because a
// daemon started by mount(8), su or cron may have had another environment.
//
// The directory in the home comes before /tmp because another user can
// make /tmp/cloudmount-UID first, and no one else can write in a home. If
// none of them is safe, the mount fails: a mount that status and sync
// cannot reach breaks `rsync ... && cloudmount sync` scripts.

// socketDirs lists the directories for the control sockets of uid's
// daemons, in the order a daemon tries them. Tests replace it.
var socketDirs = defaultSocketDirs

// userHome is the home directory of uid in the password database, "" if
// it has none that could hold sockets. Tests replace it.
var userHome = passwdHome

// homeSocketDir is where the socket directory is in a home directory.
const homeSocketDir = ".cache/cloudmount/sockets"

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
	dirs = append(dirs, filepath.Join("/run/user", strconv.Itoa(uid), "cloudmount"))
	if home := userHome(uid); home != "" {
		dirs = append(dirs, filepath.Join(home, homeSocketDir))
	}
	dirs = append(dirs, filepath.Join("/tmp", "cloudmount-"+strconv.Itoa(uid)))
	return dedupe(dirs)
}

// passwdHome looks uid's home directory up in the password database (not
// $HOME: mount(8) hands its helpers HOME=/root, and a client's environment
// may differ from its daemon's).
func passwdHome(uid int) string {
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil || !filepath.IsAbs(u.HomeDir) || filepath.Clean(u.HomeDir) == "/" {
		return ""
	}
	return filepath.Clean(u.HomeDir)
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

// ensureSocketDir makes dir a safe place for uid's control sockets. The
// directory it is made in must exist: dir's parent, or, for a directory in
// uid's home, the home itself (the directories in between are created
// 0700). That directory and every one above it must belong to uid or root
// and be writable by no one else unless sticky (/tmp). dir itself is
// created 0700 if missing and must then be a real directory owned by uid
// with mode 0700. Anything else is refused, never repaired.
func ensureSocketDir(dir string, uid int) error {
	base := filepath.Dir(dir)
	if home := userHome(uid); home != "" && strings.HasPrefix(dir, home+"/") {
		base = home
	}
	if err := checkAncestors(base, uid); err != nil {
		return err
	}
	rel, err := filepath.Rel(base, dir)
	if err != nil {
		return fmt.Errorf("control socket directory %s: %w", dir, err)
	}
	p := base
	for _, name := range strings.Split(rel, "/") {
		p = filepath.Join(p, name)
		if err := os.Mkdir(p, 0o700); err == nil {
			// The umask may have taken bits away; it never adds any.
			if err := os.Chmod(p, 0o700); err != nil {
				return fmt.Errorf("control socket directory: %w", err)
			}
		} else if !errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("control socket directory: %w", err)
		}
	}
	if err := checkAncestors(filepath.Dir(dir), uid); err != nil {
		return err
	}
	return checkSocketDir(dir, uid)
}

// checkAncestors checks dir (with its symlinks resolved) and every
// directory above it: each must belong to uid or root and be writable by
// no one else unless sticky, so that no other user can replace what is
// below.
func checkAncestors(dir string, uid int) error {
	real, err := filepath.EvalSymlinks(dir)
	if err != nil {
		return fmt.Errorf("control socket directory: %w", err)
	}
	for p := real; ; p = filepath.Dir(p) {
		fi, err := os.Lstat(p)
		if err != nil {
			return fmt.Errorf("control socket directory: %w", err)
		}
		if err := checkParentDir(p, fi, uid); err != nil {
			return err
		}
		if p == "/" || p == "." {
			return nil
		}
	}
}

// checkParentDir checks one directory above a socket directory.
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
		owner := "someone else"
		if ok {
			owner = "uid " + strconv.Itoa(int(st.Uid))
		}
		return fmt.Errorf("control socket directory %s is not owned by uid %d but by %s; refusing it (if another user made it, root can remove it)", dir, uid, owner)
	case fi.Mode().Perm() != 0o700:
		return fmt.Errorf("control socket directory %s has mode %04o, not 0700; refusing it (fix: chmod 700 %s)", dir, fi.Mode().Perm(), dir)
	}
	return nil
}
