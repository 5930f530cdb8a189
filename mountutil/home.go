package mountutil

import (
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
)

// Home is the home directory of the user cloudmount runs as: $HOME when it
// names a directory of that user, else the home of the real uid's entry in
// the password database, as ssh and davfs2 do. mount(8) runs the helper of
// a "user" fstab mount as the user but with HOME=/root, and sudo may pass
// on the caller's HOME.
func Home() (string, error) {
	uid := os.Getuid()
	if h := os.Getenv("HOME"); h != "" && ownedBy(h, uid) {
		return h, nil
	}
	u, err := user.LookupId(strconv.Itoa(uid))
	if err != nil || u.HomeDir == "" {
		return "", fmt.Errorf("no home directory: $HOME (%q) is not a directory of uid %d and the password database names none; pass --cache-dir and --secrets-file", os.Getenv("HOME"), uid)
	}
	return u.HomeDir, nil
}

// ConfigHome is $XDG_CONFIG_HOME, else ~/.config; CacheHome is
// $XDG_CACHE_HOME, else ~/.cache. The variables count only where $HOME is
// the user's own: they come from the same, trusted environment.
func ConfigHome() (string, error) { return xdgHome("XDG_CONFIG_HOME", ".config") }

// CacheHome: see ConfigHome.
func CacheHome() (string, error) { return xdgHome("XDG_CACHE_HOME", ".cache") }

func xdgHome(env, fallback string) (string, error) {
	home, err := Home()
	if err != nil {
		return "", err
	}
	if v := os.Getenv(env); v != "" && filepath.IsAbs(v) && os.Getenv("HOME") == home {
		return v, nil
	}
	return filepath.Join(home, fallback), nil
}

// ownedBy reports whether dir is a directory that belongs to uid.
func ownedBy(dir string, uid int) bool {
	fi, err := os.Stat(dir)
	if err != nil || !fi.IsDir() {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && int(st.Uid) == uid
}
