package cache

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

func TestOpenLocksAndIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "c")
	s, err := Open(dir, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("cache dir mode %v, %v; want 0700", fi.Mode(), err)
	}
	if _, err := Open(dir, Options{}); err == nil || !strings.Contains(err.Error(), "in use by another cloudmount") {
		t.Fatalf("second Open: %v, want an in-use error", err)
	}
	s.Close()
	s2, err := Open(dir, Options{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

func TestIndexFollowsServerVersion(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ix := s.Index
	mt := time.Unix(1000, 123456789)
	mode := os.FileMode(0o751)
	v1 := backends.Entry{Version: `"v1"`, Size: 3}
	if err := ix.Set("a/b", v1, backends.Meta{MTime: &mt}); err != nil {
		t.Fatal(err)
	}
	ix.Set("a/b", v1, backends.Meta{Mode: &mode})
	m, ok := ix.Get("a/b", v1)
	if !ok || !m.MTime.Equal(mt) || *m.Mode != mode {
		t.Fatalf("Get = %+v %v; want both fields merged", m, ok)
	}
	if _, ok := ix.Get("a/b", backends.Entry{Version: `"v2"`, Size: 3}); ok {
		t.Fatal("record served for a changed server version")
	}
	noETag := backends.Entry{Size: 5, ModTime: time.Unix(2000, 0), Version: backends.StatVersion(5, time.Unix(2000, 0))}
	ix.Set("c", noETag, backends.Meta{Mode: &mode})
	if _, ok := ix.Get("c", backends.Entry{Size: 6, ModTime: time.Unix(2000, 0), Version: backends.StatVersion(6, time.Unix(2000, 0))}); ok {
		t.Fatal("record served after the size changed on a server without ETags")
	}
	// A file without a version (a backend breaking its contract) has no
	// record: it could never tell one version from the next.
	if err := ix.Set("d", backends.Entry{Size: 1}, backends.Meta{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	if _, ok := ix.Get("d", backends.Entry{Size: 1}); ok {
		t.Fatal("record served for a file without a version")
	}
}

func TestIndexRenameAndRemoveTrees(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ix := s.Index
	mode := os.FileMode(0o600)
	e := backends.Entry{Version: "x"}
	for _, p := range []string{"d", "d/f", "d/sub/g", "dx"} {
		ix.Set(p, e, backends.Meta{Mode: &mode})
	}
	if err := ix.Rename("d", "e"); err != nil {
		t.Fatal(err)
	}
	for p, want := range map[string]bool{"d": false, "d/f": false, "e": true, "e/f": true, "e/sub/g": true, "dx": true} {
		if _, ok := ix.Get(p, e); ok != want {
			t.Errorf("after rename, %s present=%v, want %v", p, ok, want)
		}
	}
	ix.Remove("e")
	for p, want := range map[string]bool{"e": false, "e/sub/g": false, "dx": true} {
		if _, ok := ix.Get(p, e); ok != want {
			t.Errorf("after remove, %s present=%v, want %v", p, ok, want)
		}
	}
}

func TestDefaultDir(t *testing.T) {
	a := DefaultDir("/x", "https://h/dav/", "alice")
	b := DefaultDir("/x", "https://h/dav/", "bob")
	if !strings.HasPrefix(a, "/x/cloudmount/h_dav-") || a == b {
		t.Fatalf("DefaultDir = %q, %q", a, b)
	}
}

func TestIndexKeepsDirectoryMetaWhenItsContentChanges(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	mode := os.FileMode(0o750)
	before := backends.Entry{IsDir: true, ModTime: time.Unix(100, 0)}
	s.Index.Set("d", before, backends.Meta{Mode: &mode})
	after := backends.Entry{IsDir: true, ModTime: time.Unix(200, 0), Version: "new"}
	if m, ok := s.Index.Get("d", after); !ok || *m.Mode != mode {
		t.Fatalf("directory mode lost after a child changed its server mtime: %+v %v", m, ok)
	}
}

func TestIndexKeepsTheRootsMeta(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	root := backends.Entry{IsDir: true}
	mode := os.FileMode(0o700)
	mtime := time.Unix(1e9, 5)
	if err := s.Index.Set("", root, backends.Meta{Mode: &mode, MTime: &mtime}); err != nil {
		t.Fatalf("Set of the root: %v", err)
	}
	if err := s.Index.Set("a", root, backends.Meta{Mode: &mode}); err != nil {
		t.Fatal(err)
	}
	m, ok := s.Index.Get("", root)
	if !ok || *m.Mode != mode || !m.MTime.Equal(mtime) {
		t.Fatalf("Get of the root: %+v %v", m, ok)
	}
	if err := s.Index.Rename("a", "b"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Index.Get("", root); !ok {
		t.Fatal("the root's record went with a rename of a child")
	}
	if err := s.Index.Remove(""); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"", "b"} {
		if _, ok := s.Index.Get(p, root); ok {
			t.Errorf("%q still has a record after the root was removed", p)
		}
	}
}
