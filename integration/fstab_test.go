package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// fstabBinary is where mount(8) finds the program of fuse.cloudmount
// entries: mount.fuse3 runs it with a fixed PATH.
const fstabBinary = "/usr/local/bin/cloudmount"

// TestFstabUserMount is the user story of an fstab entry with `user`: an
// ordinary user (nobody) runs `mount MOUNTPOINT` and `umount MOUNTPOINT`,
// with the password in the user's own 0600 secrets file.
func TestFstabUserMount(t *testing.T) {
	needRoot(t)
	needMountable(t)
	needTool(t, "mount.fuse3")
	needTool(t, "fusermount3")
	u, err := user.Lookup("nobody")
	if err != nil {
		need(t, "user nobody: %v", err)
	}
	if fi, err := os.Stat("/dev/fuse"); err != nil || fi.Mode().Perm()&0o006 != 0o006 {
		need(t, "/dev/fuse is not usable by ordinary users (%v); Debian's udev rule makes it 0666, and make test does so in CI", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	installForFstab(t)

	eachServer(t, func(t *testing.T, srv *Server) {
		base, err := os.MkdirTemp("", "cloudmount-fstab-")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(base) })
		os.Chmod(base, 0o755)
		mnt, cacheDir, secrets := filepath.Join(base, "cloud"), filepath.Join(base, "cache"), filepath.Join(base, "secrets")
		mkdirOwned(t, mnt, 0o755, cred)
		mkdirOwned(t, cacheDir, 0o700, cred)
		writeSecrets(t, secrets, 0o600, srv.URL, srv.User, srv.Password)
		chownTo(t, secrets, cred)
		addFstabLine(t, fmt.Sprintf("%s %s fuse.cloudmount user,noauto,_netdev,secrets_file=%s,cache_dir=%s 0 0",
			srv.URL, mnt, secrets, cacheDir))

		as := func(args ...string) (string, error) {
			cmd := exec.Command(args[0], args[1:]...)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent"}
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			return out.String(), err
		}
		t.Cleanup(func() {
			if _, ok := mountedAt(mnt); ok {
				exec.Command("fusermount3", "-uz", mnt).Run()
			}
		})
		if out, err := as("mount", mnt); err != nil {
			t.Fatalf("mount %s as %s: %v\n%s", mnt, u.Username, err, out)
		}
		e, ok := mountedAt(mnt)
		if !ok || e.FSType != "fuse.cloudmount" {
			t.Fatalf("after mount: %+v mounted=%v, want type fuse.cloudmount", e, ok)
		}
		if out, err := as("sh", "-c", "echo from fstab > "+mnt+"/fstab.txt && stat -c %U "+mnt+"/fstab.txt"); err != nil || strings.TrimSpace(out) != u.Username {
			t.Errorf("write as %s: %v %q", u.Username, err, out)
		}
		wantServerFile(t, srv, "fstab.txt", []byte("from fstab\n"))
		if out, err := as("umount", mnt); err != nil {
			t.Errorf("umount %s as %s: %v\n%s", mnt, u.Username, err, out)
		}
		deadline := time.Now().Add(30 * time.Second)
		for {
			if _, ok := mountedAt(mnt); !ok {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s still mounted 30s after umount", mnt)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})
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
