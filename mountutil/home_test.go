package mountutil

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"testing"
)

func TestHomeTrustsOnlyTheUsersOwnHOME(t *testing.T) {
	me, err := user.LookupId(strconv.Itoa(os.Getuid()))
	if err != nil {
		t.Skip("no password database entry for this uid")
	}
	own := t.TempDir()
	t.Setenv("HOME", own)
	t.Setenv("XDG_CACHE_HOME", filepath.Join(own, "xdg-cache"))
	if h, err := Home(); err != nil || h != own {
		t.Fatalf("Home() with an own $HOME = %q, %v; want %q", h, err, own)
	}
	if c, _ := CacheHome(); c != filepath.Join(own, "xdg-cache") {
		t.Fatalf("CacheHome() = %q, want $XDG_CACHE_HOME", c)
	}

	// What mount(8) hands the helper of a user mount: someone else's HOME.
	foreign := t.TempDir()
	if os.Getuid() == 0 {
		if err := os.Chown(foreign, 65534, 65534); err != nil {
			t.Fatal(err)
		}
	} else {
		foreign = "/"
	}
	t.Setenv("HOME", foreign)
	if h, err := Home(); err != nil || h != me.HomeDir {
		t.Fatalf("Home() with HOME=%s (not ours) = %q, %v; want the password database's %q", foreign, h, err, me.HomeDir)
	}
	if c, _ := CacheHome(); c != filepath.Join(me.HomeDir, ".cache") {
		t.Fatalf("CacheHome() with a foreign HOME = %q; $XDG_CACHE_HOME of that environment must not count", c)
	}
	if s := DefaultSecretsFile(); s != filepath.Join(me.HomeDir, ".config", "cloudmount", "secrets") {
		t.Fatalf("DefaultSecretsFile() = %q", s)
	}
	t.Setenv("HOME", "")
	if h, err := Home(); err != nil || h != me.HomeDir {
		t.Fatalf("Home() without HOME = %q, %v", h, err)
	}
}
