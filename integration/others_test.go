package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tests of what other local users can and cannot do to a mount: file
// permissions with allow_other, and the control socket's directory.

// otherUserTry is one thing another user tries through the mount.
type otherUserTry struct {
	what string
	argv []string
	// want is "" when it must succeed, else the message of the error
	// ("Permission denied" for EACCES, "Operation not permitted" for EPERM;
	// alternatives separated by "|").
	want string
}

// TestAllowOtherEnforcesModes: root mounts with allow_other, which now
// implies default_permissions. Another local user can read what the modes
// let everyone read, and chmod a file of their own, but appending to,
// creating, removing, renaming, chmodding and touching root's files fails
// with EACCES or EPERM, and none of it reaches the server.
func TestAllowOtherEnforcesModes(t *testing.T) {
	needRoot(t)
	eachServer(t, func(t *testing.T, srv *Server) {
		other := addLocalUser(t, false)
		srv.WriteFile(t, "hello.txt", []byte("hello\n"), time.Time{})
		srv.WriteFile(t, "hello2.txt", []byte("second\n"), time.Time{})
		srv.WriteFile(t, "dir/inner.txt", []byte("inner\n"), time.Time{})
		m := mountServer(t, srv, MountOptions{Args: []string{"--allow-other"}})
		traversable(t, filepath.Dir(filepath.Dir(m.Dir)), filepath.Dir(m.Dir))
		if o := mountOptions(t, m.Dir); !o["default_permissions"] || !o["allow_other"] {
			t.Fatalf("mount options: %v, want allow_other and default_permissions", o)
		}
		// A file of the other user's own, made and given away by root.
		bash(t, m.Dir, fmt.Sprintf("printf 'theirs\\n' > theirs.txt && chown %d:%d theirs.txt", other.UID, other.GID))
		m.Sync(t)
		before := writeRequests(t, srv)

		for _, c := range []otherUserTry{
			{"read", []string{"cat", "hello.txt", "dir/inner.txt"}, ""},
			{"list", []string{"ls", "-la", ".", "dir"}, ""},
			{"append", []string{"sh", "-c", "echo x >> hello.txt"}, "Permission denied"},
			{"truncate", []string{"truncate", "-s", "0", "hello.txt"}, "Permission denied"},
			{"create", []string{"sh", "-c", "echo x > new.txt"}, "Permission denied"},
			{"create in a subdirectory", []string{"sh", "-c", "echo x > dir/new.txt"}, "Permission denied"},
			{"mkdir", []string{"mkdir", "newdir"}, "Permission denied"},
			{"rm", []string{"rm", "-f", "hello2.txt"}, "Permission denied"},
			{"rename", []string{"mv", "hello.txt", "moved.txt"}, "Permission denied"},
			{"chmod", []string{"chmod", "666", "hello.txt"}, "Operation not permitted"},
			{"chown to oneself", []string{"chown", strconv.Itoa(other.UID), "hello.txt"}, "Operation not permitted"},
			{"set mtime", []string{"touch", "-d", "2001-01-01", "hello.txt"}, "Permission denied|Operation not permitted"},
			{"chmod of one's own file", []string{"chmod", "600", "theirs.txt"}, ""},
		} {
			out, err := asUser(other, m.Dir, c.argv[0], c.argv[1:]...)
			switch {
			case c.want == "" && err != nil:
				t.Errorf("%s (%q) as %s: %v\n%s", c.what, c.argv, other.Name, err, out)
			case c.want != "" && (err == nil || !containsAny(out, strings.Split(c.want, "|"))):
				t.Errorf("%s (%q) as %s: err %v, output %q; want it to fail with %q", c.what, c.argv, other.Name, err, out, c.want)
			}
		}
		if out, _ := asUser(other, m.Dir, "cat", "hello.txt"); out != "hello\n" {
			t.Errorf("cat hello.txt as %s: %q", other.Name, out)
		}
		if got := run(t, m.Dir, "stat", "-c", "%a %u", "theirs.txt"); got != fmt.Sprintf("600 %d\n", other.UID) {
			t.Errorf("theirs.txt after its owner's chmod 600: %q", got)
		}

		m.Sync(t)
		wantFile(t, srv.Path("hello.txt"), []byte("hello\n"))
		wantFile(t, srv.Path("hello2.txt"), []byte("second\n"))
		for _, gone := range []string{"new.txt", "dir/new.txt", "newdir", "moved.txt"} {
			if _, err := os.Lstat(srv.Path(gone)); err == nil {
				t.Errorf("the server has %s", gone)
			}
		}
		// The one change allowed (the owner's chmod) may have reached the
		// server, in the file or in the metadata file of its directory;
		// nothing else may have.
		after := writeRequests(t, srv)
		for _, r := range after[len(before):] {
			if r.Path != "/theirs.txt" && r.Path != "/"+metaFileName {
				t.Errorf("the server received %s %s after the other user's tries", r.Method, r.Path)
			}
		}
	})
}

// containsAny reports whether s contains one of subs.
func containsAny(s string, subs []string) bool {
	for _, sub := range subs {
		if strings.Contains(s, sub) {
			return true
		}
	}
	return false
}

// mountOptions are the options of the mount at dir in the kernel's mount
// table (mount and super block options together).
func mountOptions(t testing.TB, dir string) map[string]bool {
	t.Helper()
	e, ok := mountedAt(dir)
	if !ok {
		t.Fatalf("%s is not mounted", dir)
	}
	o := map[string]bool{}
	for _, opt := range strings.Split(e.Options, ",") {
		o[opt] = true
	}
	return o
}

// writeRequests are the requests in srv's access log that change something.
func writeRequests(t testing.TB, srv *Server) []Request {
	t.Helper()
	var out []Request
	for _, r := range srv.Requests(t) {
		switch r.Method {
		case "GET", "HEAD", "PROPFIND", "OPTIONS":
		default:
			out = append(out, r)
		}
	}
	return out
}

// TestAllowOtherOff: without allow_other another user cannot even enter the
// mount; with default_permissions turned off explicitly, the daemon warns
// in its log at every start.
func TestAllowOtherOff(t *testing.T) {
	needRoot(t)
	srv := startApache(t)
	other := addLocalUser(t, false)
	srv.WriteFile(t, "hello.txt", []byte("hello\n"), time.Time{})

	t.Run("no allow_other", func(t *testing.T) {
		m := mountServer(t, srv, MountOptions{})
		traversable(t, filepath.Dir(filepath.Dir(m.Dir)), filepath.Dir(m.Dir))
		for _, argv := range [][]string{{"stat", m.Dir}, {"ls", m.Dir}, {"cat", m.Path("hello.txt")}} {
			if out, err := asUser(other, "/", argv[0], argv[1:]...); err == nil || !strings.Contains(out, "Permission denied") {
				t.Errorf("%q as %s: err %v, output %q; want EACCES", argv, other.Name, err, out)
			}
		}
		if o := mountOptions(t, m.Dir); o["allow_other"] || o["default_permissions"] {
			t.Errorf("mount options: %v, want neither allow_other nor default_permissions", o)
		}
	})

	t.Run("default_permissions=false", func(t *testing.T) {
		m := mountServer(t, srv, MountOptions{OForm: true, Args: []string{"-o", "allow_other,default_permissions=false"}})
		if o := mountOptions(t, m.Dir); o["default_permissions"] || !o["allow_other"] {
			t.Errorf("mount options: %v, want allow_other without default_permissions", o)
		}
		const warning = "allow_other without default_permissions: every local user can read, change and delete every file"
		if log, err := os.ReadFile(m.LogFile); err != nil || strings.Count(string(log), warning) != 1 {
			t.Fatalf("log (%v) has %d warnings, want 1:\n%s", err, strings.Count(string(log), warning), log)
		}
		m = m.Remount(t, false)
		if log, err := os.ReadFile(m.LogFile); err != nil || strings.Count(string(log), warning) != 1 {
			t.Errorf("after a remount the log (%v) has %d warnings, want 1 (one per start)", err, strings.Count(string(log), warning))
		}
	})
}

// needUserMounts stops a test in which an ordinary user mounts, where that
// cannot work.
func needUserMounts(t *testing.T) {
	t.Helper()
	needMountable(t)
	if fi, err := os.Stat(needTool(t, "fusermount3")); err != nil || fi.Mode()&os.ModeSetuid == 0 {
		need(t, "fusermount3 is not setuid root, so ordinary users cannot mount (%v)", err)
	}
	if fi, err := os.Stat("/dev/fuse"); err != nil || fi.Mode().Perm()&0o006 != 0o006 {
		need(t, "/dev/fuse is not usable by ordinary users (%v); Debian's udev rule makes it 0666, and make test does so in CI", err)
	}
}

// preemptSocketDir has squatter make /tmp/cloudmount-UID, the old place of
// victim's control sockets, mode 0777, as a hostile user would before
// victim's first mount; it is removed when the test ends.
func preemptSocketDir(t *testing.T, squatter, victim LocalUser) string {
	t.Helper()
	dir := filepath.Join("/tmp", "cloudmount-"+strconv.Itoa(victim.UID))
	t.Cleanup(func() { os.RemoveAll(dir) })
	if out, err := asUser(squatter, "/", "mkdir", "-m", "0777", dir); err != nil {
		t.Fatalf("mkdir %s as %s: %v\n%s", dir, squatter.Name, err, out)
	}
	if got := run(t, "", "stat", "-c", "%a %u", dir); got != fmt.Sprintf("777 %d\n", squatter.UID) {
		t.Fatalf("%s: %q, want mode 777 owned by %s", dir, got, squatter.Name)
	}
	return dir
}

// TestControlSocketPreempted: another user made /tmp/cloudmount-UID (mode
// 0777) before a user's first mount, which has no XDG_RUNTIME_DIR (su, cron,
// fstab). The mount still has a working status and sync, with its socket
// in the user's home; nothing goes into the other user's directory.
func TestControlSocketPreempted(t *testing.T) {
	needRoot(t)
	needUserMounts(t)
	srv := startApache(t)
	owner := addLocalUser(t, true)
	squatter := addLocalUser(t, false)
	if _, err := os.Stat(filepath.Join("/run/user", strconv.Itoa(owner.UID))); err == nil {
		t.Fatalf("/run/user/%d exists for a user made a moment ago", owner.UID)
	}
	squatted := preemptSocketDir(t, squatter, owner)

	m := mountServer(t, srv, MountOptions{Credential: owner.Cred(), Env: []string{"XDG_RUNTIME_DIR="}})
	if out, err := asUser(owner, m.Dir, "sh", "-c", "printf 'backed up\\n' > backup.txt"); err != nil {
		t.Fatalf("write as %s: %v\n%s", owner.Name, err, out)
	}
	if st := m.Status(t); !st.Online {
		t.Errorf("status: %s", st)
	}
	m.Sync(t)
	wantServerFile(t, srv, "backup.txt", []byte("backed up\n"))
	// The client finds the socket also from another environment (a login
	// shell's HOME and XDG_RUNTIME_DIR).
	if out, err := asUser(owner, "/", binPath, "status", m.Dir); err != nil || !strings.Contains(out, "online") {
		t.Errorf("cloudmount status %s as %s from a plain environment: %v\n%s", m.Dir, owner.Name, err, out)
	}

	socks, _ := filepath.Glob(filepath.Join(owner.Home, ".cache/cloudmount/sockets/*.sock"))
	if len(socks) != 1 {
		t.Errorf("sockets in %s's home: %q, want one", owner.Name, socks)
	}
	if entries, err := os.ReadDir(squatted); err != nil || len(entries) != 0 {
		t.Errorf("%s has %v (%v), want nothing of the mount", squatted, entries, err)
	}
	m.Unmount(t, "cloudmount")
}

// TestControlSocketNoSafePlace: a user without a usable home and with
// /tmp/cloudmount-UID made by another user has no safe place for the
// control socket: the mount fails, saying what is wrong and what to do,
// rather than run without status and sync.
func TestControlSocketNoSafePlace(t *testing.T) {
	needRoot(t)
	needUserMounts(t)
	srv := startApache(t)
	owner := addLocalUser(t, false)
	squatter := addLocalUser(t, false)
	squatted := preemptSocketDir(t, squatter, owner)

	m, out, err := tryMount(t, srv, MountOptions{Credential: owner.Cred(), Env: []string{"XDG_RUNTIME_DIR="}})
	if err == nil {
		t.Fatalf("mounted without a safe place for the control socket:\n%s", out)
	}
	if _, ok := mountedAt(m.Dir); ok {
		t.Fatalf("%s is mounted after the mount command failed", m.Dir)
	}
	for _, want := range []string{
		"no safe directory for the control socket",
		"not mounting",
		squatted + " is not owned by uid " + strconv.Itoa(owner.UID) + " but by uid " + strconv.Itoa(squatter.UID),
		"must be removed by root",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("mount output lacks %q:\n%s", want, out)
		}
	}
}
