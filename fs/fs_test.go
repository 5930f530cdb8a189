package fs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/memory"
	"github.com/hanwen/go-fuse/v2/posixtest"
)

// mountMem mounts an in-memory backend and returns the mountpoint.
func mountMem(t *testing.T, b backends.Backend, o Options) string {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	mnt, m, store := mountAt(t, b, t.TempDir(), o)
	mountsMu.Lock()
	mounts[mnt] = m
	mountsMu.Unlock()
	t.Cleanup(func() {
		if err := m.Server.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		m.Drain(10 * time.Second)
		store.Close()
		mountsMu.Lock()
		delete(mounts, mnt)
		mountsMu.Unlock()
	})
	return mnt
}

// mounts are the test mounts by mountpoint.
var (
	mountsMu sync.Mutex
	mounts   = map[string]*Mounted{}
)

// syncMount waits until the mount at mnt has uploaded everything.
func syncMount(t *testing.T, mnt string) {
	t.Helper()
	mountsMu.Lock()
	m := mounts[mnt]
	mountsMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Sync(ctx, nil); err != nil {
		t.Fatalf("sync: %v", err)
	}
}

func TestReadWriteRenameRemove(t *testing.T) {
	b := memory.New()
	mnt := mountMem(t, b, Options{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())})
	p := filepath.Join(mnt, "a b #?%&.txt")
	if err := os.WriteFile(p, []byte("hello"), 0o640); err != nil {
		t.Fatal(err)
	}
	syncMount(t, mnt)
	if got, _ := b.Content("a b #?%&.txt"); string(got) != "hello" {
		t.Fatalf("server has %q after close, want hello", got)
	}
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString(" world")
	f.Close()
	f, _ = os.OpenFile(p, os.O_RDWR, 0)
	f.WriteAt([]byte("J"), 6)
	f.Close()
	if got, _ := os.ReadFile(p); string(got) != "hello Jorld" {
		t.Fatalf("read back %q", got)
	}
	if err := os.Mkdir(filepath.Join(mnt, "d"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(p, filepath.Join(mnt, "d", "moved")); err != nil {
		t.Fatal(err)
	}
	syncMount(t, mnt)
	if got, ok := b.Content("d/moved"); !ok || string(got) != "hello Jorld" {
		t.Fatalf("server after rename: %q %v", got, ok)
	}
	st, err := os.Stat(filepath.Join(mnt, "d", "moved"))
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Fatalf("mode after rename: %v %v", st, err)
	}
	if err := os.Remove(filepath.Join(mnt, "d")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Fatalf("rmdir of a full directory: %v, want ENOTEMPTY", err)
	}
	if err := os.RemoveAll(filepath.Join(mnt, "d")); err != nil {
		t.Fatal(err)
	}
	if _, ok := b.Content("d/moved"); ok {
		t.Fatal("file still on the server after rm -r")
	}
}

func TestMTimeAndModeStored(t *testing.T) {
	b := memory.New()
	mnt := mountMem(t, b, Options{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())})
	p := filepath.Join(mnt, "f")
	os.WriteFile(p, []byte("x"), 0o600)
	want := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
	if err := os.Chtimes(p, want, want); err != nil {
		t.Fatal(err)
	}
	os.Chmod(p, 0o751)
	syncMount(t, mnt)
	e, err := b.Stat(t.Context(), "f")
	if err != nil || e.Meta.MTime == nil || !e.Meta.MTime.Equal(want) || *e.Meta.Mode != 0o751 {
		t.Fatalf("server meta %+v %v", e.Meta, err)
	}
}

func TestUnprivilegedChown(t *testing.T) {
	b := memory.New()
	mnt := mountMem(t, b, Options{UID: 4242, GID: 4242})
	p := filepath.Join(mnt, "f")
	os.WriteFile(p, nil, 0o644)
	st, _ := os.Stat(p)
	if s := st.Sys().(*syscall.Stat_t); s.Uid != 4242 || s.Gid != 4242 {
		t.Fatalf("owner %d:%d, want the mount's 4242:4242", s.Uid, s.Gid)
	}
	if err := os.Chown(p, 4242, 4242); err != nil {
		t.Fatalf("chown to the owner: %v", err)
	}
	if err := os.Chown(p, 1, 1); !errors.Is(err, syscall.EPERM) {
		t.Fatalf("chown to another user: %v, want EPERM", err)
	}
}

func TestConflictCopy(t *testing.T) {
	b := memory.New()
	mnt := mountMem(t, b, Options{})
	p := filepath.Join(mnt, "doc.txt")
	os.WriteFile(p, []byte("v1"), 0o644)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("local"), 0)
	b.Put(t.Context(), "doc.txt", strings.NewReader("remote"), 6, backends.PutOptions{})
	if err := f.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	syncMount(t, mnt)
	if got, _ := b.Content("doc.txt"); string(got) != "remote" {
		t.Fatalf("server copy overwritten: %q", got)
	}
	entries, _ := b.List(t.Context(), "")
	var found bool
	for _, e := range entries {
		if strings.HasPrefix(e.Name, "doc (conflicted copy ") && strings.HasSuffix(e.Name, ".txt") {
			c, _ := b.Content(e.Name)
			found = bytes.Equal(c, []byte("local"))
		}
	}
	if !found {
		t.Fatalf("no conflict copy with the local version in %v", entries)
	}
}

func TestOpenUnlinkedStaysUsable(t *testing.T) {
	b := memory.New()
	mnt := mountMem(t, b, Options{})
	p := filepath.Join(mnt, "f")
	os.WriteFile(p, []byte("keep me"), 0o644)
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 7)
	if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "keep me" {
		t.Fatalf("read after unlink: %q %v", buf, err)
	}
	if _, ok := b.Content("f"); ok {
		t.Fatal("still on the server")
	}
}

func TestUnreachableServerGivesEIONotHang(t *testing.T) {
	b := memory.New()
	mnt := mountMem(t, b, Options{AttrTimeout: time.Millisecond})
	b.FailWith(backends.ErrUnavailable)
	defer b.FailWith(nil)
	time.Sleep(5 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(mnt, "nothing")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("stat while the server is down: %v, want EIO", err)
	}
}

// posixSkip lists posixtest cases the mount cannot honour, with the reason
// (docs/posix.md has the same list).
var posixSkip = map[string]string{
	"Link":             "hard links: no remote store cloudmount supports has them",
	"LinkUnlinkRename": "hard links",
	"XAttr":            "user extended attributes are not stored",
	"FcntlFlockLocksFile": "expects two descriptors of one process to conflict, which POSIX record locks do not " +
		"(ext4 fails it too); the kernel's local locking applies",
}

func TestPosix(t *testing.T) {
	for name, fn := range posixtest.All {
		t.Run(name, func(t *testing.T) {
			if why, ok := posixSkip[name]; ok {
				t.Skip(why)
			}
			mnt := mountMem(t, memory.New(), Options{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())})
			fn(t, mnt)
		})
	}
}

func TestSHA256Xattr(t *testing.T) {
	b := memory.New()
	mnt := mountMem(t, b, Options{})
	getHash := func(p string) string {
		t.Helper()
		buf := make([]byte, 128)
		k, err := syscall.Getxattr(p, "user.cloudmount.sha256", buf)
		if err != nil {
			t.Fatalf("getxattr %s: %v", p, err)
		}
		return string(buf[:k])
	}
	want := func(data []byte) string {
		s := sha256.Sum256(data)
		return hex.EncodeToString(s[:])
	}

	seq := filepath.Join(mnt, "seq")
	data := bytes.Repeat([]byte("0123456789"), 50000)
	os.WriteFile(seq, data, 0o644)
	syncMount(t, mnt)
	if got := getHash(seq); got != want(data) {
		t.Fatalf("sequential write: hash %s, want %s", got, want(data))
	}
	if e, _ := b.Stat(t.Context(), "seq"); e.Meta.SHA256 != want(data) {
		t.Fatalf("hash stored with the file: %q", e.Meta.SHA256)
	}
	buf := make([]byte, 256)
	k, err := syscall.Listxattr(seq, buf)
	if err != nil || string(buf[:k]) != "user.cloudmount.sha256\x00" {
		t.Fatalf("listxattr: %q %v", buf[:k], err)
	}

	f, _ := os.OpenFile(seq, os.O_RDWR, 0)
	f.WriteAt([]byte("XY"), 100)
	f.Close()
	data[100], data[101] = 'X', 'Y'
	if got := getHash(seq); got != want(data) {
		t.Fatalf("after a write in the middle: hash %s, want %s", got, want(data))
	}

	b.Put(t.Context(), "remote", strings.NewReader("from elsewhere"), 14, backends.PutOptions{})
	remote := filepath.Join(mnt, "remote")
	if k, _ := syscall.Listxattr(remote, buf); k != 0 {
		t.Fatalf("listxattr names a hash that would need a download: %q", buf[:k])
	}
	if got := getHash(remote); got != want([]byte("from elsewhere")) {
		t.Fatalf("hash of a file written elsewhere: %s", got)
	}
	if e, _ := b.Stat(t.Context(), "remote"); e.Meta.SHA256 != want([]byte("from elsewhere")) {
		t.Fatalf("computed hash not stored: %q", e.Meta.SHA256)
	}
	if err := syscall.Setxattr(seq, "user.cloudmount.sha256", []byte("00"), 0); !errors.Is(err, syscall.ENOTSUP) {
		t.Fatalf("setxattr of the hash: %v, want ENOTSUP", err)
	}
	// What rsync -X does: set the hash the file has, remove it (its source
	// lacks it). Both succeed and the hash stays what the content says.
	if err := syscall.Setxattr(seq, "user.cloudmount.sha256", []byte(want(data)), 0); err != nil {
		t.Fatalf("setxattr of the hash to its value: %v", err)
	}
	if err := syscall.Removexattr(seq, "user.cloudmount.sha256"); err != nil {
		t.Fatalf("removexattr of the hash: %v", err)
	}
	if got := getHash(seq); got != want(data) {
		t.Fatalf("hash after removexattr: %s", got)
	}
	if _, err := syscall.Getxattr(seq, "user.other", buf); !errors.Is(err, syscall.ENODATA) {
		t.Fatalf("getxattr of another attribute: %v, want ENODATA", err)
	}
}

func TestUnchangedContentIsNotUploadedAgain(t *testing.T) {
	b := memory.New()
	mnt := mountMem(t, b, Options{})
	p := filepath.Join(mnt, "f")
	data := []byte("the same bytes")
	os.WriteFile(p, data, 0o644)
	syncMount(t, mnt)
	puts := b.Calls("Put")
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	want := time.Date(2020, 1, 2, 3, 4, 5, 6, time.UTC)
	os.Chtimes(p, want, want)
	syncMount(t, mnt)
	if b.Calls("Put") != puts {
		t.Fatalf("rewriting identical content uploaded it again (%d puts, want %d)", b.Calls("Put"), puts)
	}
	if e, _ := b.Stat(t.Context(), "f"); e.Meta.MTime == nil || !e.Meta.MTime.Equal(want) {
		t.Fatalf("metadata of the rewrite not stored: %+v", e.Meta)
	}
	os.WriteFile(p, []byte("other bytes!!!"), 0o644)
	syncMount(t, mnt)
	if got, _ := b.Content("f"); string(got) != "other bytes!!!" || b.Calls("Put") != puts+1 {
		t.Fatalf("changed content of the same size: server has %q after %d puts", got, b.Calls("Put")-puts)
	}
}

func TestHashIsNotStampedOnAnotherClientsVersion(t *testing.T) {
	b := memory.New()
	// Attributes trusted for an hour: this mount does not see the other
	// client's version before its upload does.
	mnt := mountMem(t, b, Options{AttrTimeout: time.Hour})
	p := filepath.Join(mnt, "f")
	mine, theirs := []byte("the same bytes"), []byte("other bytes!!!")
	if err := os.WriteFile(p, mine, 0o644); err != nil {
		t.Fatal(err)
	}
	syncMount(t, mnt)
	b.Put(t.Context(), "f", bytes.NewReader(theirs), int64(len(theirs)), backends.PutOptions{})
	// This mount saves its unchanged content again.
	if err := os.WriteFile(p, mine, 0o644); err != nil {
		t.Fatal(err)
	}
	syncMount(t, mnt)
	e, _ := b.Stat(t.Context(), "f")
	if got, _ := b.Content("f"); !bytes.Equal(got, theirs) {
		t.Fatalf("the other client's version was replaced: server has %q", got)
	}
	if sum := sha256.Sum256(theirs); e.Meta.SHA256 != "" && e.Meta.SHA256 != hex.EncodeToString(sum[:]) {
		t.Fatalf("the server's version carries hash %s, not its own (%x)", e.Meta.SHA256, sum)
	}
	entries, _ := b.List(t.Context(), "")
	var copies int
	for _, ce := range entries {
		if strings.HasPrefix(ce.Name, "f (conflicted copy ") {
			copies++
			if c, _ := b.Content(ce.Name); !bytes.Equal(c, mine) {
				t.Fatalf("conflict copy %q holds %q", ce.Name, c)
			}
		}
	}
	if copies != 1 {
		t.Fatalf("%d conflict copies in %v, want 1 with this mount's content", copies, entries)
	}
}

// names lists dir, sorted.
func names(t *testing.T, dir string) []string {
	t.Helper()
	des, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, de := range des {
		out = append(out, de.Name())
	}
	return out
}

func TestListingIsAnsweredFromCacheWithinDirCacheTime(t *testing.T) {
	b := memory.New()
	ctx := t.Context()
	b.Mkdir(ctx, "d")
	b.Put(ctx, "d/a", strings.NewReader("a"), 1, backends.PutOptions{})
	mnt := mountMem(t, b, Options{DirCacheTime: 2 * time.Second})
	d := filepath.Join(mnt, "d")
	if got := names(t, d); !slices.Equal(got, []string{"a"}) {
		t.Fatalf("first listing %v", got)
	}
	lists := b.Calls("List")
	// Another client adds a file; this mount writes one itself.
	b.Put(ctx, "d/b", strings.NewReader("b"), 1, backends.PutOptions{})
	if err := os.WriteFile(filepath.Join(d, "c"), []byte("c"), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := names(t, d); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("listing within the cache time %v, want the cached one and this mount's file", got)
	}
	if n := b.Calls("List") - lists; n != 0 {
		t.Fatalf("a listing within the cache time asked the server %d times", n)
	}
	time.Sleep(2100 * time.Millisecond)
	if got := names(t, d); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("listing after the cache time %v, want the server's", got)
	}
}

func TestRenameOfNewFileKeepsTheListing(t *testing.T) {
	b := memory.New()
	ctx := t.Context()
	b.Mkdir(ctx, "d")
	b.Put(ctx, "d/a", strings.NewReader("a"), 1, backends.PutOptions{})
	mnt := mountMem(t, b, Options{AttrTimeout: time.Millisecond, DirCacheTime: time.Minute})
	d := filepath.Join(mnt, "d")
	names(t, d)
	// rsync's pattern: a temporary name, renamed to the final one.
	tmp := filepath.Join(d, ".x.XXXXXX")
	if err := os.WriteFile(tmp, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(d, "x")); err != nil {
		t.Fatal(err)
	}
	stats, lists := b.Calls("Stat"), b.Calls("List")
	time.Sleep(5 * time.Millisecond)
	if _, err := os.Stat(filepath.Join(d, "a")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(d, "nope")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat of a name never created: %v", err)
	}
	if got := names(t, d); !slices.Equal(got, []string{"a", "x"}) {
		t.Fatalf("listing %v", got)
	}
	if n, l := b.Calls("Stat")-stats, b.Calls("List")-lists; n+l != 0 {
		t.Fatalf("after renaming a new file, lookups in its directory asked the server (%d stats, %d listings), want none", n, l)
	}
}

func TestLookupsOneByOneListTheDirectoryOnce(t *testing.T) {
	b := memory.New()
	ctx := t.Context()
	b.Mkdir(ctx, "d")
	const files = 50
	for i := range files {
		b.Put(ctx, fmt.Sprintf("d/f%02d", i), strings.NewReader("x"), 1, backends.PutOptions{})
	}
	mnt := mountMem(t, b, Options{})
	stats, lists := b.Calls("Stat"), b.Calls("List")
	// As rsync's receiver does: lstat each name, no readdir.
	for i := range files {
		if _, err := os.Lstat(filepath.Join(mnt, "d", fmt.Sprintf("f%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Lstat(filepath.Join(mnt, "d", "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("lstat of a missing name: %v", err)
	}
	// The directory itself, its first name, then one listing.
	if s, l := b.Calls("Stat")-stats, b.Calls("List")-lists; s > 2 || l != 1 {
		t.Fatalf("%d lookups cost %d Stat and %d List calls, want at most 2 and 1", files+1, s, l)
	}
}

// A regular file renamed over a symlink (rsync, editors) replaces it as a
// regular file: on the server and for a descriptor of the old name.
func TestRegularFileReplacesSymlink(t *testing.T) {
	b := memory.New()
	target := []byte("/etc/passwd")
	if _, err := b.Put(t.Context(), "l", bytes.NewReader(target), int64(len(target)), backends.PutOptions{Meta: backends.Meta{Type: "symlink"}}); err != nil {
		t.Fatal(err)
	}
	mnt := mountMem(t, b, Options{})
	link := filepath.Join(mnt, "l")
	if got, err := os.Readlink(link); err != nil || got != string(target) {
		t.Fatalf("readlink: %q %v", got, err)
	}
	tmp := filepath.Join(mnt, ".l.tmp")
	if err := os.WriteFile(tmp, []byte("plain"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, link); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Lstat(link)
	if err != nil || !fi.Mode().IsRegular() || fi.Size() != 5 {
		t.Fatalf("after the rename: %v %v, want a regular file of 5 bytes", fi, err)
	}
	syncMount(t, mnt)
	e, err := b.Stat(t.Context(), "l")
	if err != nil || e.Meta.Type != "" || e.Size != 5 {
		t.Fatalf("on the server: %+v %v; want a regular file of 5 bytes", e, err)
	}
}

// fsync of a directory (editors and databases after a rename) succeeds.
func TestFsyncDirectory(t *testing.T) {
	mnt := mountMem(t, memory.New(), Options{})
	os.Mkdir(filepath.Join(mnt, "d"), 0o755)
	os.WriteFile(filepath.Join(mnt, "d", ".f.tmp"), []byte("x"), 0o644)
	os.Rename(filepath.Join(mnt, "d", ".f.tmp"), filepath.Join(mnt, "d", "f"))
	for _, dir := range []string{mnt, filepath.Join(mnt, "d")} {
		d, err := os.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		if err := d.Sync(); err != nil {
			t.Errorf("fsync of directory %s: %v", dir, err)
		}
		d.Close()
	}
}

// A walk of a tree nobody listed yet (rsync's receiver after a remount)
// costs one listing per directory and no lookups of single names inside
// them; a look at one directory (ls -l) lists nothing below it.
func TestWalkListsEachDirectoryOnce(t *testing.T) {
	b := memory.New()
	ctx := t.Context()
	b.Mkdir(ctx, "top")
	const dirs, files = 10, 5
	for i := range dirs {
		d := fmt.Sprintf("top/s%02d", i)
		b.Mkdir(ctx, d)
		for j := range files {
			b.Put(ctx, fmt.Sprintf("%s/f%d", d, j), strings.NewReader("x"), 1, backends.PutOptions{})
		}
	}

	mnt := mountMem(t, b, Options{})
	stats, lists := b.Calls("Stat"), b.Calls("List")
	if _, err := os.ReadDir(filepath.Join(mnt, "top")); err != nil {
		t.Fatal(err)
	}
	for i := range dirs {
		if _, err := os.Lstat(filepath.Join(mnt, "top", fmt.Sprintf("s%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(100 * time.Millisecond)
	if l := b.Calls("List") - lists; l != 1 {
		t.Fatalf("ls -l of a directory of %d directories listed %d directories, want 1", dirs, l)
	}

	mnt = mountMem(t, b, Options{})
	stats, lists = b.Calls("Stat"), b.Calls("List")
	// rsync's receiver: lstat every name of a directory, then those of
	// each directory in it, never a readdir.
	walk := []string{"top"}
	for i := range dirs {
		walk = append(walk, fmt.Sprintf("top/s%02d", i))
	}
	for _, p := range walk {
		if _, err := os.Lstat(filepath.Join(mnt, p)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range dirs {
		d := fmt.Sprintf("top/s%02d", i)
		for _, name := range []string{"f0", "f1", "f2", "f3", "f4", "missing"} {
			_, err := os.Lstat(filepath.Join(mnt, d, name))
			if (name == "missing") != errors.Is(err, os.ErrNotExist) {
				t.Fatalf("lstat %s/%s: %v", d, name, err)
			}
		}
		if i == 1 {
			// Two directories entered: the others are read ahead.
			deadline := time.Now().Add(2 * time.Second)
			for b.Calls("List")-lists < dirs+1 && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if l := b.Calls("List") - lists; l != dirs+1 {
				t.Fatalf("after the walk entered 2 of %d directories, %d listings were read, want all %d read ahead", dirs, l, dirs+1)
			}
		}
	}
	// The root's entry and top's first name are single lookups; then top
	// is listed, and each directory below once (read ahead or entered).
	if s, l := b.Calls("Stat")-stats, b.Calls("List")-lists; s > 2 || l != dirs+1 {
		t.Fatalf("the walk of %d directories cost %d Stat and %d List calls, want at most 2 and %d", dirs+1, s, l, dirs+1)
	}
}

// POSIX details a conformance suite checks: ctime moves on chmod, utimens
// and rename; names longer than NAME_MAX are refused with ENAMETOOLONG by
// every call that takes a name; a directory's link count is 2 plus its
// subdirectories.
func TestCtimeNameMaxAndDirectoryLinks(t *testing.T) {
	mnt := mountMem(t, memory.New(), Options{})
	f := filepath.Join(mnt, "f")
	if err := os.WriteFile(f, []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctime := func(p string) time.Time {
		t.Helper()
		var st syscall.Stat_t
		if err := syscall.Lstat(p, &st); err != nil {
			t.Fatal(err)
		}
		return time.Unix(st.Ctim.Unix())
	}
	for _, step := range []struct {
		name string
		do   func() error
	}{
		{"chmod", func() error { return os.Chmod(f, 0o600) }},
		{"utimens", func() error { return os.Chtimes(f, time.Unix(1e9, 0), time.Unix(1e9, 0)) }},
		{"rename", func() error {
			g := filepath.Join(mnt, "g")
			if err := os.Rename(f, g); err != nil {
				return err
			}
			f = g
			return nil
		}},
	} {
		before := ctime(f)
		time.Sleep(20 * time.Millisecond)
		if err := step.do(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if after := ctime(f); !after.After(before) {
			t.Errorf("ctime after %s: %v, before it %v; want it later", step.name, after, before)
		}
	}

	long := strings.Repeat("n", 256)
	for _, c := range []struct {
		name string
		err  error
	}{
		{"create", os.WriteFile(filepath.Join(mnt, long), nil, 0o644)},
		{"mkdir", os.Mkdir(filepath.Join(mnt, long), 0o755)},
		{"rename", os.Rename(f, filepath.Join(mnt, long))},
		{"symlink", os.Symlink("f", filepath.Join(mnt, long))},
		{"lstat", func() error { _, err := os.Lstat(filepath.Join(mnt, long)); return err }()},
	} {
		if !errors.Is(c.err, syscall.ENAMETOOLONG) {
			t.Errorf("%s of a name of 256 bytes: %v, want ENAMETOOLONG", c.name, c.err)
		}
	}
	if err := os.WriteFile(filepath.Join(mnt, long[:255]), nil, 0o644); err != nil {
		t.Errorf("create of a name of 255 bytes: %v", err)
	}

	d := filepath.Join(mnt, "d")
	for _, p := range []string{d, filepath.Join(d, "a"), filepath.Join(d, "b")} {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	os.WriteFile(filepath.Join(d, "file"), nil, 0o644)
	names(t, d)
	nlink := func() uint64 {
		var st syscall.Stat_t
		if err := syscall.Stat(d, &st); err != nil {
			t.Fatal(err)
		}
		return st.Nlink
	}
	if n := nlink(); n != 4 {
		t.Errorf("nlink of a directory with 2 subdirectories: %d, want 4", n)
	}
	os.Mkdir(filepath.Join(d, "c"), 0o755)
	if n := nlink(); n != 5 {
		t.Errorf("nlink after a third mkdir: %d, want 5", n)
	}
}
