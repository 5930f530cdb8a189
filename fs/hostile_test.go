package fs

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends/webdav"
	"github.com/cloudmount/cloudmount/backends/webdav/hostile"
	"github.com/cloudmount/cloudmount/cache"
)

// connectHostile opens the WebDAV backend on srv.
func connectHostile(t *testing.T, srv *hostile.Server, maxEntries int) *webdav.Backend {
	t.Helper()
	b, err := webdav.New(t.Context(), webdav.Config{URL: srv.URL, User: hostile.User, Password: hostile.Password,
		Timeout: 10 * time.Second, Logger: slog.New(slog.DiscardHandler), MaxListingEntries: maxEntries})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// A reply whose length or range does not fit the file gives EIO, puts
// nothing into the block cache, and once the server is right again (the
// same version), a read returns the file's bytes. The range modes answer
// only ranged requests, which a read from the middle of a file makes.
func TestHostileDataIsNotCached(t *testing.T) {
	srv := hostile.New(t)
	small := randomBytes(3000, 1)
	big := randomBytes(2*cache.BlockSize+5000, 2)
	cases := []struct {
		mode hostile.Mode
		big  bool
		off  int64
	}{
		{hostile.ShortBody, false, 0},
		{hostile.ShortBody, true, 0},
		{hostile.LongBody, false, 0},
		{hostile.LongBody, true, cache.BlockSize},
		{hostile.ShortRange, true, cache.BlockSize + 10},
		{hostile.WrongTotal, true, cache.BlockSize},
		{hostile.WrongStart, true, 2*cache.BlockSize + 100},
	}
	name := func(i int) string { return fmt.Sprintf("f%d-%s", i, cases[i].mode) }
	for i, c := range cases {
		data := small
		if c.big {
			data = big
		}
		srv.WriteFile(t, name(i), data)
	}
	store := openStore(t, t.TempDir())
	t.Cleanup(func() { store.Close() })
	mnt, _ := mountStore(t, connectHostile(t, srv, 0), store, Options{})
	for i, c := range cases {
		data := small
		if c.big {
			data = big
		}
		f, err := os.Open(filepath.Join(mnt, name(i)))
		if err != nil {
			t.Fatal(err)
		}
		want := data[c.off:min(int64(len(data)), c.off+64<<10)]
		buf := make([]byte, len(want))
		srv.SetMode(c.mode)
		gets := srv.Gets()
		n, err := f.ReadAt(buf, c.off)
		if !errors.Is(err, syscall.EIO) {
			t.Errorf("%s at %d: read %d bytes, err %v; want EIO", name(i), c.off, n, err)
		}
		if srv.Gets() == gets {
			t.Errorf("%s: the read asked the server nothing", name(i))
		}
		waitFor(t, func() bool { return store.Blocks.Stats().Blocks == 0 })
		srv.SetMode(hostile.Normal)
		n, err = f.ReadAt(buf, c.off)
		if (err != nil && n != len(want)) || !bytes.Equal(buf[:n], want) {
			t.Errorf("%s after the fix: %d bytes (equal %v), %v", name(i), n, bytes.Equal(buf[:n], want), err)
		}
		f.Close()
		store.Blocks.DropTree("")
	}
}

// A listing slower than the directory cache time is read once, however
// many readdirs and lookups want it meanwhile: they wait for it.
func TestSlowListingIsReadOnce(t *testing.T) {
	srv := hostile.New(t)
	const files = 30
	for i := range files {
		srv.WriteFile(t, fmt.Sprintf("d/f%02d", i), []byte("x"))
	}
	store := openStore(t, t.TempDir())
	t.Cleanup(func() { store.Close() })
	mnt, _ := mountStore(t, connectHostile(t, srv, 0), store, Options{DirCacheTime: 200 * time.Millisecond})
	dir := filepath.Join(mnt, "d")
	// The first name looked up costs a Stat; from the second on, lookups
	// list the directory.
	if _, err := os.Lstat(filepath.Join(dir, "f00")); err != nil {
		t.Fatal(err)
	}
	srv.SetListingDelay(1500 * time.Millisecond)
	before := srv.Listings("d")
	var wg sync.WaitGroup
	errs := make(chan error, files+4)
	for i := range files {
		wg.Go(func() {
			if _, err := os.Lstat(filepath.Join(dir, fmt.Sprintf("f%02d", i))); err != nil {
				errs <- err
			}
		})
	}
	for range 4 {
		wg.Go(func() {
			if es, err := os.ReadDir(dir); err != nil || len(es) != files {
				errs <- fmt.Errorf("readdir: %d entries, %v", len(es), err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if n := srv.Listings("d") - before; n != 1 {
		t.Errorf("%d lookups and 4 readdirs during a slow listing cost %d listings, want 1", files, n)
	}
}

// A listing the server cannot give (here, over the bound on entries) is
// not asked again for every name looked up: the lookups fall back to one
// Stat each, and a readdir gives EIO.
func TestFailedListingIsNotRepeated(t *testing.T) {
	srv := hostile.New(t)
	const files = 20
	for i := range files {
		srv.WriteFile(t, fmt.Sprintf("d/f%02d", i), []byte("x"))
	}
	store := openStore(t, t.TempDir())
	t.Cleanup(func() { store.Close() })
	mnt, _ := mountStore(t, connectHostile(t, srv, 500), store, Options{DirCacheTime: time.Minute})
	dir := filepath.Join(mnt, "d")
	srv.SetMode(hostile.EndlessListing)
	before := srv.Listings("d")
	for i := range files {
		if _, err := os.Lstat(filepath.Join(dir, fmt.Sprintf("f%02d", i))); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.ReadDir(dir); !errors.Is(err, syscall.EIO) {
		t.Errorf("readdir: %v, want EIO", err)
	}
	if n := srv.Listings("d") - before; n != 1 {
		t.Errorf("%d lookups and a readdir in a directory the server cannot list cost %d listings, want 1", files, n)
	}
}
