package fs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends/memory"
	"golang.org/x/sys/unix"
)

// fallocateFile opens p for writing and applies fallocate(mode, off, n).
func fallocateFile(t *testing.T, p string, mode uint32, off, n int64) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fallocate(int(f.Fd()), mode, off, n); err != nil {
		t.Fatalf("fallocate(%#x, %d, %d) of %s: %v", mode, off, n, p, err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("close after fallocate: %v", err)
	}
}

// hashXattr returns the file's user.cloudmount.sha256.
func hashXattr(t *testing.T, p string) string {
	t.Helper()
	buf := make([]byte, 128)
	k, err := syscall.Getxattr(p, xattrSHA256, buf)
	if err != nil {
		t.Fatalf("getxattr %s: %v", p, err)
	}
	return string(buf[:k])
}

func sumHex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// checkFile asserts that the mount, the server and the hash xattr all hold
// want for rel.
func checkFile(t *testing.T, b *memory.Backend, mnt, rel string, want []byte) {
	t.Helper()
	p := filepath.Join(mnt, rel)
	if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, want) {
		t.Fatalf("%s on the mount: %q (%v), want %q", rel, got, err, want)
	}
	if got, ok := b.Content(rel); !ok || !bytes.Equal(got, want) {
		t.Fatalf("%s on the server: %q (found %v), want %q", rel, got, ok, want)
	}
	if got := hashXattr(t, p); got != sumHex(want) {
		t.Fatalf("%s: hash xattr %s, want %s (of the content)", rel, got, sumHex(want))
	}
}

// Every fallocate mode that changes bytes makes the file dirty and its hash
// new, whether or not it was uploaded yet; a later rewrite with the
// original bytes is uploaded, not skipped as unchanged.
func TestFallocateChangesReachTheServer(t *testing.T) {
	orig := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB
	zeroed := func(off, n int) []byte {
		b := bytes.Clone(orig)
		clear(b[off : off+n])
		return b
	}
	for _, tc := range []struct {
		name     string
		mode     uint32
		off, n   int64
		want     []byte
		uploaded bool // the file is on the server before fallocate
	}{
		{"punch hole, new file", unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE, 4096, 4096, zeroed(4096, 4096), false},
		{"punch hole, uploaded file", unix.FALLOC_FL_PUNCH_HOLE | unix.FALLOC_FL_KEEP_SIZE, 4096, 4096, zeroed(4096, 4096), true},
		{"zero range, new file", unix.FALLOC_FL_ZERO_RANGE, 100, 5000, zeroed(100, 5000), false},
		{"zero range, uploaded file", unix.FALLOC_FL_ZERO_RANGE | unix.FALLOC_FL_KEEP_SIZE, 100, 5000, zeroed(100, 5000), true},
		{"allocate past the end, uploaded file", 0, 0, int64(len(orig)) + 3000, append(bytes.Clone(orig), make([]byte, 3000)...), true},
		{"keep size past the end, uploaded file", unix.FALLOC_FL_KEEP_SIZE, 0, 1 << 20, orig, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := memory.New()
			mnt := mountMem(t, b, Options{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()),
				AttrTimeout: time.Millisecond, WritebackDelay: time.Hour})
			p := filepath.Join(mnt, "f")
			if err := os.WriteFile(p, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			if tc.uploaded {
				syncMount(t, mnt)
				checkFile(t, b, mnt, "f", orig)
			}
			fallocateFile(t, p, tc.mode, tc.off, tc.n)
			if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, tc.want) {
				t.Fatalf("after fallocate the mount shows %d bytes (%v), want %d", len(got), err, len(tc.want))
			}
			if got := hashXattr(t, p); got != sumHex(tc.want) {
				t.Fatalf("hash xattr after fallocate %s, want %s", got, sumHex(tc.want))
			}
			syncMount(t, mnt)
			checkFile(t, b, mnt, "f", tc.want)

			// Rewriting the original bytes is a change like any other.
			if err := os.WriteFile(p, orig, 0o644); err != nil {
				t.Fatal(err)
			}
			syncMount(t, mnt)
			checkFile(t, b, mnt, "f", orig)
		})
	}
}

// fallocate modes the mount does not offer say so.
func TestFallocateUnsupportedModes(t *testing.T) {
	b := memory.New()
	mnt := mountMem(t, b, Options{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())})
	p := filepath.Join(mnt, "f")
	if err := os.WriteFile(p, make([]byte, 1<<16), 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	for _, mode := range []uint32{unix.FALLOC_FL_COLLAPSE_RANGE, unix.FALLOC_FL_INSERT_RANGE} {
		if err := unix.Fallocate(int(f.Fd()), mode, 4096, 4096); err != unix.EOPNOTSUPP {
			t.Errorf("fallocate mode %#x: %v, want EOPNOTSUPP", mode, err)
		}
	}
}
