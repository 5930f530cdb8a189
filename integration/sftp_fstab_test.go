package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// testSFTPFstab is the fstab story for an sftp:// source, as the SFTP
// test user itself: its key in ~/.ssh/id_ed25519, the server in
// ~/.ssh/known_hosts, and nothing but `user,noauto,_netdev` in the fstab
// line; `mount ~/cloud` and `umount ~/cloud` from its own shell, through
// mount(8) and mount.fuse3 (which hand the helper HOME=/root).
func testSFTPFstab(t *testing.T, e *sftpEnv) {
	needMountable(t)
	needTool(t, "mount.fuse3")
	needTool(t, "fusermount3")
	if fi, err := os.Stat("/dev/fuse"); err != nil || fi.Mode().Perm()&0o006 != 0o006 {
		need(t, "/dev/fuse is not usable by ordinary users (%v); Debian's udev rule makes it 0666, and make test does so in CI", err)
	}
	installForFstab(t)
	srv := e.server(t)
	u := e.User
	cred := u.Cred()

	sshDir := filepath.Join(u.Home, ".ssh")
	mkdirOwned(t, sshDir, 0o700, cred)
	key, err := os.ReadFile(e.SSHD.ClientKey)
	if err != nil {
		t.Fatal(err)
	}
	keyFile := filepath.Join(sshDir, "id_ed25519")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	chownTo(t, keyFile, cred)
	knownHosts := filepath.Join(sshDir, "known_hosts")
	if err := writeKnownHosts(knownHosts, e.SSHD.HostKey, e.SSHD.Port); err != nil {
		t.Fatal(err)
	}
	chownTo(t, knownHosts, cred)
	t.Cleanup(func() { os.RemoveAll(sshDir) })

	mnt := filepath.Join(u.Home, "cloud-"+randomHex(t, 3))
	mkdirOwned(t, mnt, 0o755, cred)
	t.Cleanup(func() { os.Remove(mnt) })
	addFstabLine(t, fmt.Sprintf("%s %s fuse.cloudmount user,noauto,_netdev 0 0", srv.URL, mnt))
	cacheRoot := filepath.Join(u.Home, ".cache", "cloudmount")
	t.Cleanup(func() {
		if _, ok := mountedAt(mnt); ok {
			exec.Command("fusermount3", "-uz", mnt).Run()
		}
		waitDaemonsGone(t, cacheRoot)
		os.RemoveAll(filepath.Join(u.Home, ".cache"))
	})

	if out, err := asUser(u, u.Home, "mount", mnt); err != nil {
		t.Fatalf("mount %s as %s: %v\n%s", mnt, u.Name, err, out)
	}
	if me, ok := mountedAt(mnt); !ok || me.FSType != "fuse.cloudmount" {
		t.Fatalf("after mount: %+v mounted=%v, want type fuse.cloudmount", me, ok)
	}
	if out, err := asUser(u, u.Home, "sh", "-c", "echo from fstab > "+mnt+"/fstab.txt && cat "+mnt+"/fstab.txt"); err != nil || strings.TrimSpace(out) != "from fstab" {
		t.Errorf("write and read back as %s: %v %q", u.Name, err, out)
	}
	wantServerFile(t, srv, "fstab.txt", []byte("from fstab\n"))
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
