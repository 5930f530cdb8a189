package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestFallocateRegressions: the faults of a hole punched into a file
// before its upload, as a user met them on Apache. The hash the mount
// shows must be the hash of its bytes; rewriting the original bytes after
// the punch must reach the server (it was skipped as unchanged, sync said
// all was well, and a remount showed the punched content); and a punch
// into a file already on the server must change it there too.
func TestFallocateRegressions(t *testing.T) {
	orig := bytes.Repeat([]byte("cloudmount fallocate "), 3000)
	punched := bytes.Clone(orig)
	clear(punched[4096:8192])
	hashOf := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	punch := func(t *testing.T, p string) {
		t.Helper()
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 4096, 4096); err != nil {
			t.Fatalf("fallocate -p: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
	}
	xattr := func(t *testing.T, p string) string {
		t.Helper()
		buf := make([]byte, 128)
		k, err := syscall.Getxattr(p, "user.cloudmount.sha256", buf)
		if err != nil {
			t.Fatalf("getxattr %s: %v", p, err)
		}
		return string(buf[:k])
	}
	onServer := func(t *testing.T, srv *Server, rel string, want []byte, what string) {
		t.Helper()
		if got, err := os.ReadFile(srv.Path(rel)); err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: the server has %d bytes of %s (%v), not the %d bytes the mount wrote", what, len(got), rel, err, len(want))
		}
	}
	eachServer(t, func(t *testing.T, srv *Server) {
		m := mountServer(t, srv, MountOptions{})
		// Punched before its upload, then rewritten with the original bytes.
		p := m.Path("punch2")
		if err := os.WriteFile(p, orig, 0o644); err != nil {
			t.Fatal(err)
		}
		punch(t, p)
		if got := xattr(t, p); got != hashOf(punched) {
			t.Fatalf("hash after the punch %s, want the punched content's %s", got, hashOf(punched))
		}
		m.Sync(t)
		onServer(t, srv, "punch2", punched, "after the punch")
		if out, code := m.Verify(t, m.Path("punch2")); code != 0 {
			t.Fatalf("cloudmount verify after the punch: exit %d\n%s", code, out)
		}
		if err := os.WriteFile(p, orig, 0o644); err != nil {
			t.Fatal(err)
		}
		m.Sync(t)
		onServer(t, srv, "punch2", orig, "after rewriting the original bytes")

		// Punched once it is on the server.
		q := m.Path("punch3")
		if err := os.WriteFile(q, orig, 0o644); err != nil {
			t.Fatal(err)
		}
		m.Sync(t)
		punch(t, q)
		m.Sync(t)
		onServer(t, srv, "punch3", punched, "after a punch into an uploaded file")

		m = m.Remount(t, false)
		for rel, want := range map[string][]byte{"punch2": orig, "punch3": punched} {
			if got, err := os.ReadFile(m.Path(rel)); err != nil || !bytes.Equal(got, want) {
				t.Fatalf("after a remount %s shows %d bytes (%v), want the %d written", rel, len(got), err, len(want))
			}
			if got := xattr(t, m.Path(rel)); got != hashOf(want) {
				t.Fatalf("after a remount %s has hash %s, want %s", rel, got, hashOf(want))
			}
		}
	})
}
