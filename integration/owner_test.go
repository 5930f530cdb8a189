package integration

import (
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

// ownerOf returns "uid gid" of a path.
func ownerOf(t testing.TB, name string) string {
	t.Helper()
	st := lstat(t, name)
	return fmt.Sprintf("%d %d", st.Uid, st.Gid)
}

// TestOwnerRoot: a daemon mounted by root accepts chown (from cp -a, rsync
// -a and chown itself) and keeps the owner with the file's metadata, so it
// is still there after a remount.
func TestOwnerRoot(t *testing.T) {
	needRoot(t)
	needTool(t, "rsync")
	eachServer(t, func(t *testing.T, srv *Server) {
		local := t.TempDir()
		bash(t, local, `
mkdir -p src/dir
printf 'owned by 1234\n' > src/file
printf 'inside\n' > src/dir/inner
chown 1234:2345 src/file src/dir src/dir/inner
chmod 0640 src/file
`)
		m := mountServer(t, srv, MountOptions{})
		run(t, m.Dir, "mkdir", "own")
		dir := m.Path("own")
		run(t, dir, "cp", "-a", filepath.Join(local, "src"), "by-cp")
		run(t, "", "rsync", "-a", filepath.Join(local, "src")+"/", filepath.Join(dir, "by-rsync")+"/")
		bash(t, dir, `
printf 'made by root\n' > chowned
mkdir chowned-dir
chown 1234:2345 chowned
chown 4321 chowned-dir
`)
		want := map[string]string{
			"by-cp/file":         "1234 2345",
			"by-cp/dir":          "1234 2345",
			"by-cp/dir/inner":    "1234 2345",
			"by-rsync/file":      "1234 2345",
			"by-rsync/dir":       "1234 2345",
			"by-rsync/dir/inner": "1234 2345",
			"chowned":            "1234 2345",
			"chowned-dir":        "4321 0",
		}
		check := func(when string) {
			t.Helper()
			for p, w := range want {
				if got := ownerOf(t, filepath.Join(dir, p)); got != w {
					t.Errorf("%s: owner of %s is %q, want %q", when, p, got, w)
				}
			}
		}
		check("on the mount")
		m = m.Remount(t, false)
		check("after remount with the same cache directory")
		m = m.Remount(t, true)
		check("after remount with a fresh cache directory")
		wantFile(t, m.Path("own/by-rsync/dir/inner"), []byte("inside\n"))
	})
}

// TestUIDGID mounts with --uid/--gid (and -o uid=,gid=): files that have no
// stored owner, and the mount's root, show that owner.
func TestUIDGID(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		srv.WriteFile(t, "from server/file", []byte("x"), time.Time{})
		for _, c := range []struct {
			name string
			opts MountOptions
		}{
			{"flags", MountOptions{Args: []string{"--uid", "1234", "--gid", "2345"}}},
			{"o-options", MountOptions{OForm: true, Args: []string{"-o", "uid=1234,gid=2345"}}},
		} {
			t.Run(c.name, func(t *testing.T) {
				m := mountServer(t, srv, c.opts)
				for _, p := range []string{"", "from server", "from server/file"} {
					if got := ownerOf(t, m.Path(p)); got != "1234 2345" {
						t.Errorf("owner of %q: %q, want \"1234 2345\"", "/"+p, got)
					}
				}
				if out := run(t, m.Dir, "ls", "-ln", "from server"); !strings.Contains(out, " 1234 2345 ") {
					t.Errorf("ls -ln: %s", out)
				}
			})
		}
	})
}

// TestOwnerUnprivileged mounts as an ordinary user (nobody): everything
// shows that user as owner, and chown to another user is refused with
// EPERM as on a local filesystem, while chown to oneself works.
func TestOwnerUnprivileged(t *testing.T) {
	needRoot(t)
	needTool(t, "fusermount3")
	u, err := user.Lookup("nobody")
	if err != nil {
		need(t, "user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	if fi, err := os.Stat(needTool(t, "fusermount3")); err != nil || fi.Mode()&os.ModeSetuid == 0 {
		need(t, "fusermount3 is not setuid root, so ordinary users cannot mount (%v)", err)
	}
	if fi, err := os.Stat("/dev/fuse"); err != nil {
		need(t, "no /dev/fuse: %v", err)
	} else if fi.Mode().Perm()&0o006 != 0o006 {
		need(t, "/dev/fuse is mode %04o, so ordinary users cannot mount here; "+
			"Debian's udev rule makes it 0666, and make test does so in CI", fi.Mode().Perm())
	}
	cred := &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	eachServer(t, func(t *testing.T, srv *Server) {
		srv.WriteFile(t, "theirs", []byte("made on the server\n"), time.Time{})
		m := mountServer(t, srv, MountOptions{Credential: cred})
		self := fmt.Sprintf("%d %d", uid, gid)
		as := func(name string, args ...string) (string, error) {
			cmd := exec.Command(name, args...)
			cmd.Dir = m.Dir
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			out, err := cmd.CombinedOutput()
			return string(out), err
		}
		if out, err := as("stat", "-c", "%u %g", ".", "theirs"); err != nil || out != self+"\n"+self+"\n" {
			t.Errorf("stat as %s: %v %q, want owner %q", u.Username, err, out, self)
		}
		if out, err := as("sh", "-c", "printf mine > mine && stat -c '%u %g' mine"); err != nil || strings.TrimSpace(out) != self {
			t.Errorf("a file made by %s: %v %q", u.Username, err, out)
		}
		if out, err := as("chown", "1234", "mine"); err == nil || !strings.Contains(out, "Operation not permitted") {
			t.Errorf("chown to another user as %s: %v %q, want EPERM", u.Username, err, out)
		}
		if out, err := as("chown", u.Uid+":"+u.Gid, "mine"); err != nil {
			t.Errorf("chown to oneself as %s: %v %q", u.Username, err, out)
		}
		if out, err := as("chmod", "0600", "mine"); err != nil {
			t.Errorf("chmod as %s: %v %q", u.Username, err, out)
		}
		if out, err := as("stat", "-c", "%a %u %g", "mine"); err != nil || strings.TrimSpace(out) != "600 "+self {
			t.Errorf("after chmod: %v %q", err, out)
		}
		wantServerFile(t, srv, "mine", []byte("mine"))
		m.Unmount(t, "cloudmount")
	})
}
