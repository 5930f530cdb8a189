package fs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/memory"
	"github.com/hanwen/go-fuse/v2/posixtest"
	"golang.org/x/sys/unix"
)

// fileSystemBackend is a memory backend that keeps metadata as a file
// system served over SFTP does: mode and mtime with the file, the mtime in
// whole seconds, and nothing else (no owner, no hash, no file type). Its
// versions are size and mtime. It can also be told to store content but
// fail on the metadata of the next uploads.
type fileSystemBackend struct {
	*memory.Backend
	failMeta atomic.Int32
}

func (b *fileSystemBackend) keep(m backends.Meta) backends.Meta {
	out := backends.Meta{Mode: m.Mode}
	if m.MTime != nil {
		t := m.MTime.Truncate(time.Second)
		out.MTime = &t
	}
	return out
}

func (b *fileSystemBackend) view(e backends.Entry) backends.Entry {
	e.Meta = b.keep(e.Meta)
	e.ModTime = e.ModTime.Truncate(time.Second)
	if e.Meta.MTime != nil {
		e.ModTime = *e.Meta.MTime
	}
	if !e.IsDir {
		e.Version = backends.StatVersion(e.Size, e.ModTime)
	}
	return e
}

func (b *fileSystemBackend) Stat(ctx context.Context, p string) (backends.Entry, error) {
	e, err := b.Backend.Stat(ctx, p)
	return b.view(e), err
}

func (b *fileSystemBackend) List(ctx context.Context, p string) ([]backends.Entry, error) {
	es, err := b.Backend.List(ctx, p)
	for i := range es {
		es[i] = b.view(es[i])
	}
	return es, err
}

// Put stores the content and the metadata the server keeps; the memory
// backend's own versions are not this server's, so the conditions are
// checked against the size-and-mtime version.
func (b *fileSystemBackend) Put(ctx context.Context, p string, r io.Reader, size int64, opts backends.PutOptions) (backends.Entry, error) {
	if opts.IfMatch != "" {
		cur, err := b.Stat(ctx, p)
		if err != nil || cur.Version != opts.IfMatch {
			return backends.Entry{}, fmt.Errorf("put %s: %w", p, backends.ErrPrecondition)
		}
	}
	keep := b.keep(opts.Meta)
	failMeta := b.failMeta.Add(-1) >= 0
	if failMeta {
		keep = backends.Meta{}
	}
	e, err := b.Backend.Put(ctx, p, r, size, backends.PutOptions{IfNoneMatch: opts.IfNoneMatch, Meta: keep})
	if err != nil {
		return e, err
	}
	if failMeta && !b.keep(opts.Meta).IsZero() {
		return b.view(e), fmt.Errorf("chmod %s: %w", p, backends.ErrMetaNotStored)
	}
	return b.view(e), nil
}

func (b *fileSystemBackend) SetMeta(ctx context.Context, p string, m backends.Meta, ifVersion string) (backends.Entry, error) {
	if ifVersion != "" {
		if cur, err := b.Stat(ctx, p); err != nil || cur.Version != ifVersion {
			return backends.Entry{}, fmt.Errorf("setstat %s: %w", p, backends.ErrPrecondition)
		}
	}
	e, err := b.Backend.SetMeta(ctx, p, b.keep(m), "")
	return b.view(e), err
}

func (b *fileSystemBackend) Capabilities(ctx context.Context) (backends.Capabilities, error) {
	return backends.Capabilities{
		MTime: backends.MetaField{Stored: true, OnPut: true, Precision: time.Second},
		Mode:  backends.MetaField{Stored: true, OnPut: true},
		Quota: true, AtomicRename: true,
	}, nil
}

// TestMetadataTheServerCannotKeep: on a server that keeps mode and a
// seconds mtime only, the mount shows the nanoseconds, the hash and the
// file type it was given, from its local index, for as long as the
// server's version is the one they describe; the server gets what it can
// keep.
func TestMetadataTheServerCannotKeep(t *testing.T) {
	b := &fileSystemBackend{Backend: memory.New()}
	mnt := mountMem(t, b, Options{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()),
		AttrTimeout: time.Millisecond, DirCacheTime: 10 * time.Millisecond})
	p := filepath.Join(mnt, "f")
	content := []byte("kept where it can be")
	if err := os.WriteFile(p, content, 0o600); err != nil {
		t.Fatal(err)
	}
	want := time.Date(2001, 2, 3, 4, 5, 6, 789, time.UTC)
	if err := os.Chtimes(p, want, want); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, 0o751); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mkfifo(filepath.Join(mnt, "fifo"), 0o640); err != nil {
		t.Fatal(err)
	}
	syncMount(t, mnt)

	e, err := b.Stat(t.Context(), "f")
	if err != nil || e.Meta.Mode == nil || *e.Meta.Mode != 0o751 || !e.ModTime.Equal(want.Truncate(time.Second)) {
		t.Fatalf("server: %+v, %v; want mode 0751 and the mtime in seconds", e, err)
	}
	if fe, err := b.Stat(t.Context(), "fifo"); err != nil || fe.Meta.Type != "" {
		t.Fatalf("server entry of the fifo: %+v, %v (a plain empty file)", fe, err)
	}

	// The kernel forgets (attr timeout 1 ms); the node asks the server and
	// the index again.
	time.Sleep(5 * time.Millisecond)
	fi, err := os.Stat(p)
	if err != nil || !fi.ModTime().Equal(want) || fi.Mode().Perm() != 0o751 {
		t.Fatalf("mount: mtime %v mode %v (%v); want %v and 0751", fi.ModTime(), fi.Mode(), err, want)
	}
	if fi, err := os.Lstat(filepath.Join(mnt, "fifo")); err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		t.Fatalf("fifo shows as %v (%v)", fi.Mode(), err)
	}
	sum := sha256.Sum256(content)
	buf := make([]byte, 64)
	n, err := unix.Getxattr(p, "user.cloudmount.sha256", buf)
	if err != nil || string(buf[:n]) != hex.EncodeToString(sum[:]) {
		t.Fatalf("sha256 xattr %q, %v", buf[:max(n, 0)], err)
	}

	// Another client rewrites the file: the server's mtime wins, and the
	// index's nanoseconds no longer apply.
	later := time.Date(2011, 1, 1, 0, 0, 0, 0, time.UTC)
	if _, err := b.Backend.Put(t.Context(), "f", strings.NewReader("changed"), 7,
		backends.PutOptions{Meta: backends.Meta{MTime: &later}}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		fi, err = os.Stat(p)
		if err == nil && fi.Size() == 7 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the mount never saw the other client's version: %v %v", fi, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !fi.ModTime().Equal(later) {
		t.Errorf("mtime after another client's upload: %v, want %v", fi.ModTime(), later)
	}
}

// TestMetadataNotStoredIsRetried: an upload whose content arrives but whose
// metadata does not is retried until the server has both.
func TestMetadataNotStoredIsRetried(t *testing.T) {
	b := &fileSystemBackend{Backend: memory.New()}
	b.failMeta.Store(1)
	mnt := mountMem(t, b, Options{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()), WritebackDelay: 10 * time.Millisecond})
	p := filepath.Join(mnt, "f")
	if err := os.WriteFile(p, []byte("x"), 0o640); err != nil {
		t.Fatal(err)
	}
	mountsMu.Lock()
	m := mounts[mnt]
	mountsMu.Unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for {
		err := m.Sync(ctx, nil)
		if err == nil {
			break
		}
		if ctx.Err() != nil || !strings.Contains(err.Error(), "metadata") && !errors.Is(err, backends.ErrMetaNotStored) {
			t.Fatalf("sync: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	e, err := b.Stat(t.Context(), "f")
	if err != nil || e.Meta.Mode == nil || *e.Meta.Mode != 0o640 {
		t.Fatalf("server: %+v, %v; want mode 0640 after the retry", e, err)
	}
}

func TestDifferentialFileSystemServer(t *testing.T) {
	runDifferential(t, &fileSystemBackend{Backend: memory.New()}, 1000)
}

// sftpLike are the capabilities of a file system served over SFTP: mode
// and a seconds mtime kept natively, native symbolic and hard links.
func sftpLike() backends.Capabilities {
	return backends.Capabilities{
		MTime:    backends.MetaField{Stored: true, OnPut: true, Precision: time.Second},
		Mode:     backends.MetaField{Stored: true, OnPut: true},
		Symlinks: true, HardLinks: true, AtomicPut: true, AtomicRename: true, Quota: true,
	}
}

// TestPosixOnAFileSystemServer: go-fuse's POSIX tests, hard links
// included, on a server with native links that keeps only mode and mtime.
func TestPosixOnAFileSystemServer(t *testing.T) {
	for name, fn := range posixtest.All {
		t.Run(name, func(t *testing.T) {
			if why, ok := posixSkip[name]; ok && !strings.HasPrefix(name, "Link") {
				t.Skip(why)
			}
			mnt := mountMem(t, memory.NewWith(sftpLike()), Options{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())})
			fn(t, mnt)
		})
	}
}

// TestHardLinks: a hard link made on the mount is one on the server; the
// names share content and inode until one is removed.
func TestHardLinks(t *testing.T) {
	b := memory.NewWith(sftpLike())
	mnt := mountMem(t, b, Options{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())})
	a, l := filepath.Join(mnt, "a"), filepath.Join(mnt, "l")
	if err := os.WriteFile(a, []byte("shared"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Link(a, l); err != nil {
		t.Fatalf("link: %v", err)
	}
	if got, ok := b.Content("l"); !ok || string(got) != "shared" {
		t.Fatalf("server's l: %q %v", got, ok)
	}
	var sa, sl unix.Stat_t
	if err := unix.Stat(a, &sa); err != nil {
		t.Fatal(err)
	}
	if err := unix.Stat(l, &sl); err != nil {
		t.Fatal(err)
	}
	if sa.Ino != sl.Ino || sa.Nlink != 2 {
		t.Fatalf("inodes %d %d, nlink %d; want one inode with 2 links", sa.Ino, sl.Ino, sa.Nlink)
	}
	// A rewrite through one name reaches the other on the server too (the
	// upload writes in place rather than replacing the file).
	if err := os.WriteFile(a, []byte("rewritten"), 0o644); err != nil {
		t.Fatal(err)
	}
	syncMount(t, mnt)
	if got, ok := b.Content("l"); !ok || string(got) != "rewritten" {
		t.Fatalf("server's l after rewriting a: %q %v", got, ok)
	}
	if err := os.Remove(a); err != nil {
		t.Fatal(err)
	}
	if got, err := os.ReadFile(l); err != nil || string(got) != "rewritten" {
		t.Fatalf("l after removing a: %q %v", got, err)
	}
	if err := unix.Stat(l, &sl); err != nil || sl.Nlink != 1 {
		t.Fatalf("nlink of l after removing a: %d (%v)", sl.Nlink, err)
	}
	if _, ok := b.Content("a"); ok {
		t.Fatal("a is still on the server")
	}
	// On a server without hard links link(2) says so.
	mnt2 := mountMem(t, memory.New(), Options{})
	os.WriteFile(filepath.Join(mnt2, "x"), nil, 0o644)
	if err := os.Link(filepath.Join(mnt2, "x"), filepath.Join(mnt2, "y")); !errors.Is(err, syscall.ENOTSUP) {
		t.Fatalf("link without server support: %v, want ENOTSUP", err)
	}
}

// stallingReads is a server whose reads never answer while stall is set.
type stallingReads struct {
	*memory.Backend
	stall atomic.Bool
}

func (b *stallingReads) Read(ctx context.Context, p string, off, length int64) (io.ReadCloser, error) {
	if b.stall.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return b.Backend.Read(ctx, p, off, length)
}

func (b *stallingReads) ReadSized(ctx context.Context, p string, off, length, size int64) (io.ReadCloser, error) {
	return b.Read(ctx, p, off, length)
}

// TestStalledReadsWaitOneTimeout: once a read of uncached data waited out
// the timeout, the next ones fail at once for a timeout's time (a cat's
// several reads cost one timeout, not one each), and after it the server
// is asked again.
func TestStalledReadsWaitOneTimeout(t *testing.T) {
	b := &stallingReads{Backend: memory.New()}
	for _, name := range []string{"a", "b", "c"} {
		if _, err := b.Backend.Put(t.Context(), name, strings.NewReader("content of "+name), int64(len("content of "+name)), backends.PutOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	const timeout = 500 * time.Millisecond
	mnt := mountMem(t, b, Options{Timeout: timeout})
	names(t, mnt) // list: the entries are known, the contents are not
	b.stall.Store(true)
	start := time.Now()
	if _, err := os.ReadFile(filepath.Join(mnt, "a")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("read of a stalled file: %v, want EIO", err)
	}
	first := time.Since(start)
	start = time.Now()
	if _, err := os.ReadFile(filepath.Join(mnt, "b")); !errors.Is(err, syscall.EIO) {
		t.Fatalf("second read: %v, want EIO", err)
	}
	if second := time.Since(start); first < timeout || second > timeout/2 {
		t.Errorf("first read failed after %s, the second after %s; want the timeout (%s), then at once", first, second, timeout)
	}
	b.stall.Store(false)
	time.Sleep(timeout)
	if got, err := os.ReadFile(filepath.Join(mnt, "c")); err != nil || string(got) != "content of c" {
		t.Fatalf("read after the server answers again: %q %v", got, err)
	}
}

// silentServer is a server that accepts every call and, while silent is
// set, never answers one.
type silentServer struct {
	*memory.Backend
	silent atomic.Bool
}

func (b *silentServer) wait(ctx context.Context) error {
	if b.silent.Load() {
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}

func (b *silentServer) Stat(ctx context.Context, p string) (backends.Entry, error) {
	if err := b.wait(ctx); err != nil {
		return backends.Entry{}, err
	}
	return b.Backend.Stat(ctx, p)
}

func (b *silentServer) List(ctx context.Context, p string) ([]backends.Entry, error) {
	if err := b.wait(ctx); err != nil {
		return nil, err
	}
	return b.Backend.List(ctx, p)
}

func (b *silentServer) Read(ctx context.Context, p string, off, length int64) (io.ReadCloser, error) {
	if err := b.wait(ctx); err != nil {
		return nil, err
	}
	return b.Backend.Read(ctx, p, off, length)
}

func (b *silentServer) Quota(ctx context.Context) (backends.Quota, error) {
	if err := b.wait(ctx); err != nil {
		return backends.Quota{}, err
	}
	return b.Backend.Quota(ctx)
}

// TestSilentServerCostsOneTimeout: a server that stops answering costs
// the first call that meets it one timeout; after that, a file manager's
// look into folders (listings, lookups of many names, statfs, reads)
// answers from the cache or fails at once, the status says offline, and
// the mount's own probe finds the server back without a user's call.
func TestSilentServerCostsOneTimeout(t *testing.T) {
	b := &silentServer{Backend: memory.New()}
	ctx := t.Context()
	for _, d := range []string{"seen", "unseen"} {
		b.Backend.Mkdir(ctx, d)
		for i := range 20 {
			putFile(t, b.Backend, fmt.Sprintf("%s/f%02d", d, i), "content "+d)
		}
	}
	const timeout = 500 * time.Millisecond
	mnt, m, store := mountAt(t, b, t.TempDir(), Options{Timeout: timeout, DirCacheTime: 50 * time.Millisecond, AttrTimeout: 10 * time.Millisecond})
	t.Cleanup(func() { m.Server.Unmount(); m.Drain(time.Second); store.Close() })
	seen := filepath.Join(mnt, "seen")
	if got, err := os.ReadFile(filepath.Join(seen, "f00")); err != nil || string(got) != "content seen" {
		t.Fatalf("read before the server went silent: %q %v", got, err)
	}
	if _, err := os.ReadDir(seen); err != nil {
		t.Fatal(err)
	}
	var st syscall.Statfs_t
	if err := syscall.Statfs(mnt, &st); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the listings are older than the cache time

	b.silent.Store(true)
	start := time.Now()
	if _, err := os.ReadDir(seen); err != nil {
		t.Fatalf("listing of a folder seen before, server silent: %v", err)
	}
	if took := time.Since(start); took > timeout+timeout/2 {
		t.Fatalf("the first listing took %s, want at most the timeout %s", took, timeout)
	}
	start = time.Now()
	ops := map[string]func() error{
		"listing of a folder seen before": func() error { _, err := os.ReadDir(seen); return err },
		"cat of a cached file": func() error {
			got, err := os.ReadFile(filepath.Join(seen, "f00"))
			if err == nil && string(got) != "content seen" {
				err = fmt.Errorf("read %q", got)
			}
			return err
		},
		"statfs": func() error { return syscall.Statfs(mnt, &st) },
	}
	for name, op := range ops {
		if err := op(); err != nil {
			t.Errorf("%s, server silent: %v", name, err)
		}
	}
	// Twenty names in a folder never listed: each fails at once.
	for i := range 20 {
		if _, err := os.Lstat(filepath.Join(mnt, "unseen", fmt.Sprintf("f%02d", i))); !errors.Is(err, syscall.EIO) {
			t.Fatalf("lstat in a folder never listed, server silent: %v, want EIO", err)
		}
	}
	if took := time.Since(start); took > timeout/2 {
		t.Errorf("after the first timeout, 23 calls took %s; want them answered at once (the timeout is %s)", took, timeout)
	}
	if s := m.Status(); s.Online {
		t.Error("status says online while the server is silent")
	}

	b.silent.Store(false)
	deadline := time.Now().Add(3 * time.Second)
	for !m.Status().Online && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if s := m.Status(); !s.Online {
		t.Fatalf("status 3 s after the server answers again: offline (%q)", s.LastError)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "unseen", "f03")); err != nil || string(got) != "content unseen" {
		t.Fatalf("read after the server is back: %q %v", got, err)
	}
}
