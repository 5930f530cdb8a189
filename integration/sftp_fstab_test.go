package integration

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testSFTPFstab is the fstab story for an sftp:// source, as the SFTP
// test user itself: its key in ~/.ssh/id_ed25519, the server in
// ~/.ssh/known_hosts, and nothing but `user,noauto,_netdev` in the fstab
// line; `mount ~/cloud` and `umount ~/cloud` from its own shell, through
// mount(8) and mount.fuse3 (which hand the helper HOME=/root).
func testSFTPFstab(t *testing.T, e *sftpEnv) {
	needFstabMounts(t)
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
	t.Cleanup(func() { os.RemoveAll(filepath.Join(u.Home, ".cache")) })
	mountFromFstab(t, u, srv.URL, mnt)
	if out, err := asUser(u, u.Home, "sh", "-c", "echo from fstab > "+mnt+"/fstab.txt && cat "+mnt+"/fstab.txt"); err != nil || strings.TrimSpace(out) != "from fstab" {
		t.Errorf("write and read back as %s: %v %q", u.Name, err, out)
	}
	wantServerFile(t, srv, "fstab.txt", []byte("from fstab\n"))
	umountFromFstab(t, u, mnt)
}
