package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"
)

// TestBlockCacheRemount puts a 1 GiB file of pseudo-random data on the
// server's disk, reads it through the mount, unmounts, mounts again with
// the same cache directory and reads it again: the second read must come
// from the block cache on disk (no GET of the file in the server's access
// log) and have the same sha256. With -short the file is 64 MiB.
func TestBlockCacheRemount(t *testing.T) {
	size := int64(1 << 30)
	if testing.Short() {
		size = 64 << 20
	}
	mib := size >> 20
	eachServer(t, func(t *testing.T, srv *Server) {
		h := sha256.New()
		srv.WriteStream(t, "cached/big.bin", io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{7, 7, 7}), size), h))
		want := hex.EncodeToString(h.Sum(nil))
		const rel = "/cached/big.bin"
		// A file that has sat on the server a while: Apache gives a weak
		// ETag for a file changed within the last second, a strong one
		// after that, and the version must not seem to change between the
		// two reads for that reason alone.
		old := time.Date(2022, 5, 6, 7, 8, 9, 0, time.UTC)
		if err := os.Chtimes(srv.Path("cached/big.bin"), old, old); err != nil {
			t.Fatal(err)
		}

		m := mountServer(t, srv, MountOptions{Args: []string{"--cache-size=3G"}})
		start := time.Now()
		got, err := sha256File(m.Path("cached/big.bin"))
		if err != nil || got != want {
			t.Fatalf("first read through the mount: sha256 %s, %v; want %s", got, err, want)
		}
		t.Logf("FIGURE: %s: first read of %d MiB (from the server): %.2fs", srv.Kind, mib, time.Since(start).Seconds())
		// After the unmount no request of the first mount is in flight.
		m.Unmount(t, "cloudmount")
		before := srv.Count(t, "GET", rel)
		if before == 0 {
			t.Fatalf("the access log shows no GET of %s after the first read, so GETs cannot be counted:\n%s", rel, tailFile(srv.AccessLog, 10))
		}

		m = m.MountAgain(t)
		start = time.Now()
		got, err = sha256File(m.Path("cached/big.bin"))
		if err != nil || got != want {
			t.Fatalf("second read, after unmount and mount with the same cache directory: sha256 %s, %v; want %s", got, err, want)
		}
		t.Logf("FIGURE: %s: second read of %d MiB (block cache, after a remount): %.2fs", srv.Kind, mib, time.Since(start).Seconds())
		m.Unmount(t, "cloudmount")
		if after := srv.Count(t, "GET", rel); after != before {
			t.Errorf("the second read, after a remount with the same cache directory, sent %d GET(s) of %s; want none (the first sent %d)", after-before, rel, before)
		}
	})
}

// TestVerify writes files through the mount and runs `cloudmount verify`
// on them (exit 0), then flips one byte of one file on the server's disk
// in place, keeping its size and mtime so that the server's version does
// not change and the mount's cache still looks valid: verify reads from
// the server, not the cache, so it must exit 1 and name that file.
func TestVerify(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		m := mountServer(t, srv, MountOptions{})
		if err := os.Mkdir(m.Path("v"), 0o755); err != nil {
			t.Fatal(err)
		}
		for i, name := range []string{"a.bin", "rotten.bin", "c d.bin"} {
			if err := os.WriteFile(m.Path("v/"+name), randomBytes(100<<10+i, uint64(40+i)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		m.Sync(t)
		if out, code := m.Verify(t, m.Path("v")); code != 0 {
			t.Fatalf("cloudmount verify of files just uploaded: exit %d, want 0\n%s", code, out)
		}

		// Bit rot on the server.
		p := srv.Path("v/rotten.bin")
		fi, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1)
		if _, err := f.ReadAt(b, 5000); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x55
		if _, err := f.WriteAt(b, 5000); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
		out, code := m.Verify(t, m.Path("v"))
		if code != 1 {
			t.Errorf("cloudmount verify with a file changed on the server's disk: exit %d, want 1\n%s", code, out)
		}
		if !strings.Contains(out, "rotten.bin") {
			t.Errorf("cloudmount verify does not name the file that differs:\n%s", out)
		}

		// Repaired on the server, the file verifies again (and the
		// verify at the end of every test finds nothing).
		b[0] ^= 0x55
		if f, err = os.OpenFile(p, os.O_RDWR, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WriteAt(b, 5000); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, fi.ModTime(), fi.ModTime()); err != nil {
			t.Fatal(err)
		}
		if out, code := m.Verify(t, m.Path("v")); code != 0 {
			t.Errorf("cloudmount verify after the server's file was repaired: exit %d, want 0\n%s", code, out)
		}
	})
}
