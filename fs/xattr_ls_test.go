package fs

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/memory"
	"golang.org/x/sys/unix"
)

// getxattrCounter counts the GETXATTR requests that reach one mount's
// daemon, by attribute name.
type getxattrCounter struct {
	mu     sync.Mutex
	byName map[string]int
}

// countGetxattr counts the GETXATTR requests of the mount at mnt until the
// test ends.
func countGetxattr(t *testing.T, mnt string) *getxattrCounter {
	t.Helper()
	mountsMu.Lock()
	f := mounts[mnt].f
	mountsMu.Unlock()
	c := &getxattrCounter{byName: map[string]int{}}
	hook := func(of *fsys, attr string) {
		if of != f {
			return
		}
		c.mu.Lock()
		c.byName[attr]++
		c.mu.Unlock()
	}
	if !getxattrHook.CompareAndSwap(nil, &hook) {
		t.Fatal("another test counts getxattr requests")
	}
	t.Cleanup(func() { getxattrHook.Store(nil) })
	return c
}

// take returns the counts since the last take, and their sum.
func (c *getxattrCounter) take() (map[string]int, int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	m, sum := c.byName, 0
	for _, k := range m {
		sum += k
	}
	c.byName = map[string]int{}
	return m, sum
}

// lsRun is one run of ls -l as coreutils 9.1 (Debian 12) does it, for the
// extended attributes: for each entry, lgetxattr of security.selinux
// (getfilecon_cache) and, unless that failed otherwise than "not
// supported", getxattr of system.posix_acl_access, and of
// system.posix_acl_default for a directory without an access ACL
// (gnulib's file_has_acl). Like ls, a run remembers the last device that
// answered "not supported" (or EINVAL, ENOSYS) to either question and does
// not ask it again on that device.
type lsRun struct {
	noLabels, noACLs      uint64
	noLabelSet, noACLsSet bool
}

// unsupported is coreutils' errno_unsupported.
func unsupported(err error) bool {
	return errors.Is(err, unix.ENOTSUP) || errors.Is(err, unix.EINVAL) || errors.Is(err, unix.ENOSYS)
}

// list lists dir as ls -l does and returns, per name, what ls shows: "+"
// after the mode for an ACL, and the label (ls -Z), "?" if none.
func (r *lsRun) list(t *testing.T, dir string) map[string]string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	shown := map[string]string{}
	for _, de := range des {
		p := filepath.Join(dir, de.Name())
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		label := "?"
		var err error = unix.ENOTSUP
		if !r.noLabelSet || r.noLabels != st.Dev {
			buf := make([]byte, 255)
			var k int
			k, err = unix.Lgetxattr(p, "security.selinux", buf)
			if err == nil {
				label = string(buf[:k])
			} else if unsupported(err) {
				r.noLabels, r.noLabelSet = st.Dev, true
			}
		}
		if err != nil && !unsupported(err) && !errors.Is(err, unix.ENODATA) {
			t.Fatalf("lgetxattr %s security.selinux: %v", p, err)
		}
		acl := ""
		if st.Mode&unix.S_IFMT != unix.S_IFLNK && (!r.noACLsSet || r.noACLs != st.Dev) {
			names := []string{"system.posix_acl_access"}
			if st.Mode&unix.S_IFMT == unix.S_IFDIR {
				names = append(names, "system.posix_acl_default")
			}
			for _, name := range names {
				k, err := unix.Getxattr(p, name, nil)
				if err == nil && k > 0 {
					acl = "+"
					break
				}
				if unsupported(err) {
					r.noACLs, r.noACLsSet = st.Dev, true
					break
				}
				if err != nil && !errors.Is(err, unix.ENODATA) {
					t.Fatalf("getxattr %s %s: %v", p, name, err)
				}
			}
		}
		shown[de.Name()] = acl + " " + label
	}
	return shown
}

// aclXattr encodes an ACL as setfacl sends it: the owner's, the group's and
// the others' permissions, and read for the user uid (with its mask).
func aclXattr(owner, group, other uint16, uid uint32) []byte {
	const (
		userObj, user, groupObj, mask, others = 0x01, 0x02, 0x04, 0x10, 0x20
		noID                                  = 0xffffffff
	)
	out := binary.LittleEndian.AppendUint32(nil, 2) // version
	for _, e := range []struct {
		tag, perm uint16
		id        uint32
	}{{userObj, owner, noID}, {user, 4, uid}, {groupObj, group, noID}, {mask, 4 | group, noID}, {others, other, noID}} {
		out = binary.LittleEndian.AppendUint16(out, e.tag)
		out = binary.LittleEndian.AppendUint16(out, e.perm)
		out = binary.LittleEndian.AppendUint32(out, e.id)
	}
	return out
}

// TestXattrLsLongAsksOncePerRun: ls -l asks for the ACL and the SELinux
// label of every file. The mount answers "not supported" (it stores
// neither), so ls stops asking after the first file: the daemon sees two
// requests per run of ls, whatever the number of files, and none for the
// files after the first. The hash attribute still answers.
func TestXattrLsLongAsksOncePerRun(t *testing.T) {
	b := memory.New()
	ctx := t.Context()
	const files = 200
	b.Mkdir(ctx, "d")
	b.Mkdir(ctx, "d/sub")
	for i := range files {
		s := fmt.Sprintf("file %d\n", i)
		b.Put(ctx, fmt.Sprintf("d/f%03d", i), strings.NewReader(s), int64(len(s)), backends.PutOptions{})
	}
	b.Put(ctx, "d/sub/g", strings.NewReader("g"), 1, backends.PutOptions{})
	mnt := mountMem(t, b, Options{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())})
	d := filepath.Join(mnt, "d")
	written := filepath.Join(d, "written")
	if err := os.WriteFile(written, []byte("written here"), 0o644); err != nil {
		t.Fatal(err)
	}
	c := countGetxattr(t, mnt)

	// First run: the first entry's two questions reach the daemon.
	run := &lsRun{}
	shown := run.list(t, d)
	if len(shown) != files+2 {
		t.Fatalf("ls listed %d entries, want %d", len(shown), files+2)
	}
	for name, s := range shown {
		if s != " ?" {
			t.Fatalf("ls shows %q for %s, want no ACL and no label", s, name)
		}
	}
	byName, n := c.take()
	if n > 2 || byName["security.selinux"] > 1 || byName["system.posix_acl_access"] > 1 {
		t.Fatalf("first ls -l of %d entries: %d getxattr requests reached the daemon (%v), want at most 2", len(shown), n, byName)
	}
	// The same run goes on, as ls -lR does: no request at all.
	run.list(t, d)
	run.list(t, filepath.Join(d, "sub"))
	if byName, n := c.take(); n != 0 {
		t.Fatalf("second pass of the same ls run: %d getxattr requests reached the daemon (%v), want none", n, byName)
	}
	// A new run of ls asks again once, not per file.
	(&lsRun{}).list(t, d)
	if byName, n := c.take(); n > 2 {
		t.Fatalf("second ls -l: %d getxattr requests reached the daemon (%v), want at most 2", n, byName)
	}

	// What getfattr, getfacl, setfacl and chmod see.
	f := filepath.Join(d, "f007")
	for _, name := range []string{"system.posix_acl_access", "system.posix_acl_default", "security.selinux", "security.capability"} {
		if _, err := unix.Lgetxattr(f, name, make([]byte, 64)); !errors.Is(err, unix.ENOTSUP) {
			t.Errorf("lgetxattr %s: %v, want ENOTSUP", name, err)
		}
	}
	// setfacl -m u:nobody:r: an ACL with a named user.
	acl := aclXattr(6, 4, 4, 65534)
	for _, set := range []struct{ path, name string }{
		{f, "system.posix_acl_access"},
		{d, "system.posix_acl_default"},
		{f, "security.selinux"},
	} {
		val := acl
		if strings.HasPrefix(set.name, "security.") {
			val = []byte("system_u:object_r:user_home_t:s0")
		}
		if err := unix.Lsetxattr(set.path, set.name, val, 0); !errors.Is(err, unix.ENOTSUP) {
			t.Errorf("lsetxattr %s %s: %v, want ENOTSUP", set.path, set.name, err)
		}
	}
	if _, err := unix.Lgetxattr(f, "user.other", make([]byte, 64)); !errors.Is(err, unix.ENODATA) {
		t.Errorf("lgetxattr user.other: %v, want ENODATA", err)
	}
	if err := os.Chmod(f, 0o600); err != nil {
		t.Fatalf("chmod: %v", err)
	}
	if st, err := os.Lstat(f); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode after chmod 600: %v %v", st.Mode(), err)
	}

	hash := func(p string) string {
		t.Helper()
		buf := make([]byte, 128)
		k, err := unix.Getxattr(p, xattrSHA256, buf)
		if err != nil {
			t.Fatalf("getxattr %s %s: %v", p, xattrSHA256, err)
		}
		return string(buf[:k])
	}
	sum := func(s string) string {
		h := sha256.Sum256([]byte(s))
		return hex.EncodeToString(h[:])
	}
	if got, want := hash(written), sum("written here"); got != want {
		t.Fatalf("hash of a file written through the mount: %s, want %s", got, want)
	}
	if got, want := hash(filepath.Join(d, "f042")), sum("file 42\n"); got != want {
		t.Fatalf("hash of a file from the server: %s, want %s", got, want)
	}
	buf := make([]byte, 256)
	if k, err := unix.Listxattr(written, buf); err != nil || string(buf[:k]) != xattrSHA256+"\x00" {
		t.Fatalf("listxattr of a file with a known hash: %q %v", buf[:k], err)
	}
	if byName, _ := c.take(); byName[xattrSHA256] != 2 {
		t.Fatalf("hash requests that reached the daemon: %v, want 2", byName)
	}
}
