package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fstabBinary is where mount(8) finds the program of fuse.cloudmount
// entries: mount.fuse3 runs it with a fixed PATH.
const fstabBinary = "/usr/local/bin/cloudmount"

// TestFstabUserMount is the user story of an fstab entry with `user` and
// default paths only: an ordinary user with a home directory puts the
// password in ~/.config/cloudmount/secrets (0600), runs `mount ~/cloud`
// and `umount ~/cloud` from a shell. mount(8) may hand the helper
// HOME=/root; the cache directory, log and secrets file must still be the
// user's own.
func TestFstabUserMount(t *testing.T) {
	needRoot(t)
	needFstabMounts(t)

	eachServer(t, func(t *testing.T, srv *Server) {
		u := addLocalUser(t, true)
		cred := u.Cred()
		mnt := filepath.Join(u.Home, "cloud")
		mkdirOwned(t, mnt, 0o755, cred)
		confDir := filepath.Join(u.Home, ".config", "cloudmount")
		mkdirOwned(t, filepath.Join(u.Home, ".config"), 0o755, cred)
		mkdirOwned(t, confDir, 0o700, cred)
		secrets := filepath.Join(confDir, "secrets")
		writeSecrets(t, secrets, 0o600, srv.URL, srv.User, srv.Password)
		chownTo(t, secrets, cred)
		cacheRoot := filepath.Join(u.Home, ".cache", "cloudmount")
		mountFromFstab(t, u, srv.URL, mnt)
		if out, err := asUser(u, u.Home, "sh", "-c", "echo from fstab > "+mnt+"/fstab.txt && stat -c %U "+mnt+"/fstab.txt"); err != nil || strings.TrimSpace(out) != u.Name {
			t.Errorf("write as %s: %v %q", u.Name, err, out)
		}
		wantServerFile(t, srv, "fstab.txt", []byte("from fstab\n"))
		// The default cache directory, with its log (where the machine
		// has no system log), is in the user's home and belongs to the user.
		log := "daemon.log"
		if systemLog() {
			log = "crash.log"
		}
		logs, _ := filepath.Glob(filepath.Join(cacheRoot, "*", log))
		if len(logs) != 1 {
			t.Errorf("%s under %s: %v, want one (the default cache directory in the user's home)", log, cacheRoot, logs)
		} else if fi, err := os.Stat(filepath.Dir(logs[0])); err != nil || fi.Sys().(*syscall.Stat_t).Uid != uint32(u.UID) {
			t.Errorf("cache directory %s: %v, want owned by %s", filepath.Dir(logs[0]), err, u.Name)
		}
		umountFromFstab(t, u, mnt)
	})
}

// needFstabMounts stops a test where an ordinary user cannot mount
// through mount(8), and puts the built binary where mount(8) finds it.
func needFstabMounts(t *testing.T) {
	t.Helper()
	needUserMounts(t)
	needTool(t, "mount.fuse3")
	installForFstab(t)
}

// mountFromFstab adds `SOURCE MNT fuse.cloudmount user,noauto,_netdev`
// to /etc/fstab and runs `mount MNT` as u from its home, as u would from
// its shell; t.Cleanup unmounts what is left and waits for u's daemons.
func mountFromFstab(t *testing.T, u LocalUser, source, mnt string) {
	t.Helper()
	addFstabLine(t, fmt.Sprintf("%s %s fuse.cloudmount user,noauto,_netdev 0 0", source, mnt))
	t.Cleanup(func() {
		if _, ok := mountedAt(mnt); ok {
			exec.Command("fusermount3", "-uz", mnt).Run()
		}
		waitDaemonsGone(t, filepath.Join(u.Home, ".cache", "cloudmount"))
	})
	if out, err := asUser(u, u.Home, "mount", mnt); err != nil {
		t.Fatalf("mount %s as %s: %v\n%s", mnt, u.Name, err, out)
	}
	if e, ok := mountedAt(mnt); !ok || e.FSType != "fuse.cloudmount" {
		t.Fatalf("after mount: %+v mounted=%v, want type fuse.cloudmount", e, ok)
	}
}

// umountFromFstab runs `umount MNT` as u and waits until it is gone.
func umountFromFstab(t *testing.T, u LocalUser, mnt string) {
	t.Helper()
	if out, err := asUser(u, u.Home, "umount", mnt); err != nil {
		t.Errorf("umount %s as %s: %v\n%s", mnt, u.Name, err, out)
	}
	eventually(t, 30*time.Second, func() error {
		if _, ok := mountedAt(mnt); ok {
			return fmt.Errorf("%s still mounted after umount", mnt)
		}
		return nil
	})
}

// systemLog reports whether this machine has a system log that a
// background daemon logs to instead of daemon.log.
func systemLog() bool {
	for _, p := range []string{"/run/systemd/journal/dev-log", "/dev/log"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Type() == os.ModeSocket {
			return true
		}
	}
	return false
}

// waitDaemonsGone waits until no daemon holds a cache directory below root
// (they drain their queue after the unmount), so that the user they run as
// can be removed.
func waitDaemonsGone(t *testing.T, root string) {
	t.Helper()
	locks, _ := filepath.Glob(filepath.Join(root, "*", "lock"))
	deadline := time.Now().Add(time.Minute)
	for _, l := range locks {
		for {
			f, err := os.Open(l)
			if err != nil {
				break
			}
			err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
			f.Close()
			if err == nil {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("a cloudmount daemon still holds %s a minute after the unmount", l)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

// installForFstab puts the built binary where mount(8) finds it, and puts
// back what was there when the test ends.
func installForFstab(t *testing.T) {
	t.Helper()
	old, oldErr := os.ReadFile(fstabBinary)
	data, err := os.ReadFile(binPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(fstabBinary+".tmp", data, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(fstabBinary+".tmp", fstabBinary); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if oldErr != nil {
			os.Remove(fstabBinary)
			return
		}
		os.WriteFile(fstabBinary+".tmp", old, 0o755)
		os.Rename(fstabBinary+".tmp", fstabBinary)
	})
}

// addFstabLine appends a line to /etc/fstab and removes it when the test
// ends.
func addFstabLine(t *testing.T, line string) {
	t.Helper()
	const fstab = "/etc/fstab"
	before, err := os.ReadFile(fstab)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	next := append(bytes.Clone(before), []byte(line+"\n")...)
	if len(before) > 0 && before[len(before)-1] != '\n' {
		next = append(append(bytes.Clone(before), '\n'), []byte(line+"\n")...)
	}
	if err := os.WriteFile(fstab, next, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cur, err := os.ReadFile(fstab)
		if err != nil {
			return
		}
		os.WriteFile(fstab, bytes.Replace(cur, []byte(line+"\n"), nil, 1), 0o644)
	})
}
