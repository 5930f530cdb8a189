package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/memory"
	"github.com/cloudmount/cloudmount/cache"
)

// mountAt mounts b with the cache directory dir and returns the mountpoint
// and the mount; the caller unmounts.
func mountAt(t *testing.T, b backends.Backend, dir string, o Options) (string, *Mounted, *cache.Store) {
	t.Helper()
	store, err := cache.Open(dir, cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	m, err := Mount(mnt, b, store, o)
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	return mnt, m, store
}

func TestWritesQueueWhileOfflineAndReplayAfterCrash(t *testing.T) {
	b := memory.New()
	dir := t.TempDir()
	mnt, m, store := mountAt(t, b, dir, Options{AttrTimeout: time.Millisecond})
	os.Mkdir(filepath.Join(mnt, "d"), 0o755)
	b.FailWith(backends.ErrUnavailable)
	mtime := time.Date(2011, 1, 2, 3, 4, 5, 6, time.UTC)
	for i := range 20 {
		p := filepath.Join(mnt, "d", fmt.Sprintf("f%02d", i))
		start := time.Now()
		if err := os.WriteFile(p, []byte(p), 0o640); err != nil {
			t.Fatalf("write while offline: %v", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("close took %v while offline", d)
		}
		os.Chtimes(p, mtime, mtime)
	}
	entries, err := os.ReadDir(filepath.Join(mnt, "d"))
	if err != nil || len(entries) != 20 {
		t.Fatalf("listing while offline: %d entries, %v", len(entries), err)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "d", "f07")); err != nil || string(got) != filepath.Join(mnt, "d", "f07") {
		t.Fatalf("read of a queued file: %q %v", got, err)
	}
	if st := m.Status(); st.QueuedFiles != 20 {
		t.Fatalf("status %+v, want 20 queued", st)
	}
	// As after kill -9: nothing drained, the journal stays.
	m.Server.Unmount()
	m.Drain(0)
	store.Close()
	if _, ok := b.Content("d/f00"); ok {
		t.Fatal("uploaded while the server was down")
	}

	b.FailWith(nil)
	mnt2, m2, store2 := mountAt(t, b, dir, Options{})
	defer func() { m2.Server.Unmount(); m2.Drain(time.Second); store2.Close() }()
	if fi, err := os.Stat(filepath.Join(mnt2, "d", "f03")); err != nil || !fi.ModTime().Equal(mtime) {
		t.Fatalf("queued file after remount: %v %v", fi, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m2.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		rel := fmt.Sprintf("d/f%02d", i)
		got, ok := b.Content(rel)
		e, _ := b.Stat(ctx, rel)
		if !ok || string(got) != filepath.Join(mnt, rel) || e.Meta.MTime == nil || !e.Meta.MTime.Equal(mtime) {
			t.Fatalf("%s on the server: %q %v, mtime %v", rel, got, ok, e.Meta.MTime)
		}
	}
}

func TestQueuedRenameAndDeleteAreVisibleAtOnce(t *testing.T) {
	b := memory.New()
	mnt, m, store := mountAt(t, b, t.TempDir(), Options{WritebackDelay: time.Hour})
	defer func() { m.Server.Unmount(); m.Drain(5 * time.Second); store.Close() }()
	tmp, final, gone := filepath.Join(mnt, ".f.XXXX"), filepath.Join(mnt, "f"), filepath.Join(mnt, "gone")
	os.WriteFile(tmp, []byte("content"), 0o600)
	mt := time.Unix(1234567890, 0)
	os.Chtimes(tmp, mt, mt)
	os.Chmod(tmp, 0o644)
	if err := os.Rename(tmp, final); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(gone, []byte("x"), 0o600)
	if err := os.Remove(gone); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(gone); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("removed queued file: %v", err)
	}
	if _, err := os.Stat(tmp); !errors.Is(err, syscall.ENOENT) {
		t.Fatalf("old name after rename: %v", err)
	}
	fi, err := os.Stat(final)
	if err != nil || fi.Size() != 7 || !fi.ModTime().Equal(mt) || fi.Mode().Perm() != 0o644 {
		t.Fatalf("renamed queued file: %v %v", fi, err)
	}
	if st := m.Status(); st.QueuedFiles != 1 {
		t.Fatalf("status %+v: want only f queued", st)
	}
	puts := b.Calls("Put")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := m.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if b.Calls("Put")-puts != 1 || b.Calls("SetMeta") != 0 {
		t.Fatalf("%d puts and %d metadata calls for create, utimens, chmod and rename; want one put", b.Calls("Put")-puts, b.Calls("SetMeta"))
	}
	e, err := b.Stat(ctx, "f")
	if err != nil || e.Meta.MTime == nil || !e.Meta.MTime.Equal(mt) || *e.Meta.Mode != 0o644 {
		t.Fatalf("server: %+v %v", e, err)
	}
	if _, err := b.Stat(ctx, ".f.XXXX"); err == nil {
		t.Fatal("temporary name uploaded")
	}
}

func TestRenameOverIdenticalFileSendsOnlyMetadata(t *testing.T) {
	b := memory.New()
	mnt, m, store := mountAt(t, b, t.TempDir(), Options{WritebackDelay: time.Hour})
	defer func() { m.Server.Unmount(); m.Drain(5 * time.Second); store.Close() }()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	final := filepath.Join(mnt, "f")
	os.WriteFile(final, []byte("same content"), 0o644)
	if err := m.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	puts := b.Calls("Put")
	// rsync after touch: a temporary copy with the new mtime, renamed over.
	tmp := filepath.Join(mnt, ".f.abcd")
	os.WriteFile(tmp, []byte("same content"), 0o600)
	mt := time.Unix(1700000000, 5)
	os.Chtimes(tmp, mt, mt)
	os.Chmod(tmp, 0o644)
	if err := os.Rename(tmp, final); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if b.Calls("Put") != puts {
		t.Fatalf("identical content uploaded again (%d puts)", b.Calls("Put")-puts)
	}
	e, err := b.Stat(ctx, "f")
	if err != nil || e.Meta.MTime == nil || !e.Meta.MTime.Equal(mt) {
		t.Fatalf("new mtime not stored: %+v %v", e.Meta, err)
	}
	// A different content of the same size is uploaded.
	os.WriteFile(tmp, []byte("SAME CONTENT"), 0o644)
	if err := os.Rename(tmp, final); err != nil {
		t.Fatal(err)
	}
	if err := m.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.Content("f"); string(got) != "SAME CONTENT" {
		t.Fatalf("server has %q", got)
	}
	if entries, _ := b.List(ctx, ""); len(entries) != 1 {
		t.Fatalf("server has %d entries, want only f (no conflict copy)", len(entries))
	}
}

// An upload cut off on a server that writes PUTs in place leaves the start
// of the file there; the next attempt finds its own prefix and finishes the
// upload instead of keeping a conflict copy. Another client's file (not a
// prefix) still gets one.
func TestInterruptedUploadIsFinished(t *testing.T) {
	b := memory.New()
	mnt := mountMem(t, b, Options{WritebackDelay: time.Hour})
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<16)
	for _, name := range []string{"partial", "other"} {
		if err := os.WriteFile(filepath.Join(mnt, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := b.Put(t.Context(), "partial", bytes.NewReader(data[:300000]), 300000, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(t.Context(), "other", strings.NewReader("another client"), 14, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	syncMount(t, mnt)
	if got := readBackend(t, b, "partial"); !bytes.Equal(got, data) {
		t.Errorf("the interrupted upload: %d bytes on the server, want %d", len(got), len(data))
	}
	if got := readBackend(t, b, "other"); string(got) != "another client" {
		t.Errorf("another client's file was replaced: %d bytes", len(got))
	}
	ents, _ := os.ReadDir(mnt)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if len(names) != 3 || !strings.HasPrefix(names[1], "other (conflicted copy") {
		t.Errorf("names %q; want partial, other and one conflict copy of other", names)
	}
}

// readBackend returns the content of p on b.
func readBackend(t *testing.T, b backends.Backend, p string) []byte {
	t.Helper()
	rc, err := b.Read(t.Context(), p, 0, -1)
	if err != nil {
		t.Fatalf("read %s on the server: %v", p, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestLockedUploadIsRetried: a server that answers "locked by another
// client" (WebDAV 423) for a while gets the upload again once the lock is
// gone; the status shows the failure as one that is retried.
func TestLockedUploadIsRetried(t *testing.T) {
	b := memory.New()
	mnt, m, store := mountAt(t, b, t.TempDir(), Options{WritebackDelay: time.Millisecond})
	defer func() { m.Server.Unmount(); m.Drain(time.Second); store.Close() }()
	if _, err := os.ReadDir(mnt); err != nil { // "f" is known to be new
		t.Fatal(err)
	}
	b.FailWith(fmt.Errorf("PUT f: %w", backends.ErrLocked))
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("locked for a while"), 0o644); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		st := m.Status()
		if len(st.Failed) == 1 {
			if st.Failed[0].Permanent {
				t.Fatalf("a locked file's upload is given up: %+v", st.Failed[0])
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no failed upload in the status: %+v", st)
		}
		time.Sleep(10 * time.Millisecond)
	}
	b.FailWith(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got, ok := b.Content("f"); !ok || string(got) != "locked for a while" {
		t.Fatalf("on the server after the lock: %q %v", got, ok)
	}
}

// TestIdenticalContentIsNoConflict: when another client puts exactly the
// bytes that a mount has staged (a new file, an edit), the upload finds
// the server changed but makes no conflict copy: it takes the server's
// version with the mount's metadata, whether the server keeps hashes (read
// from them) or not (the content is read and compared).
func TestIdenticalContentIsNoConflict(t *testing.T) {
	for name, caps := range map[string]backends.Capabilities{
		"hashes kept":  memory.DefaultCapabilities(),
		"nothing kept": {AtomicPut: true, ConditionalPut: true},
	} {
		t.Run(name, func(t *testing.T) {
			b := memory.NewWith(caps)
			mnt := mountMem(t, b, Options{})
			mtime := time.Date(2010, 1, 2, 3, 4, 5, 6, time.UTC)
			for _, c := range []struct{ name, before string }{{"new.txt", ""}, {"edit.txt", "old content"}} {
				p := filepath.Join(mnt, c.name)
				if c.before != "" {
					if err := os.WriteFile(p, []byte(c.before), 0o644); err != nil {
						t.Fatal(err)
					}
					syncMount(t, mnt)
				}
				f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.Write([]byte("the same bytes")); err != nil {
					t.Fatal(err)
				}
				if _, err := b.Put(t.Context(), c.name, strings.NewReader("the same bytes"), 14, backends.PutOptions{}); err != nil {
					t.Fatal(err)
				}
				if err := f.Chmod(0o600); err != nil {
					t.Fatal(err)
				}
				if err := f.Close(); err != nil {
					t.Fatal(err)
				}
				if err := os.Chtimes(p, mtime, mtime); err != nil {
					t.Fatal(err)
				}
				syncMount(t, mnt)
				fi, err := os.Stat(p)
				if err != nil {
					t.Fatal(err)
				}
				if fi.Mode().Perm() != 0o600 || !fi.ModTime().Equal(mtime) {
					t.Errorf("%s: mode %v, mtime %v; want the mount's, 0600 and %v", c.name, fi.Mode(), fi.ModTime().UTC(), mtime)
				}
			}
			entries, err := b.List(t.Context(), "")
			if err != nil {
				t.Fatal(err)
			}
			if len(entries) != 2 {
				t.Errorf("server has %v, want new.txt and edit.txt and no conflict copy", entries)
			}
		})
	}
}
