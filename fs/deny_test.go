package fs

import (
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends/webdav"
	"github.com/cloudmount/cloudmount/backends/webdav/ncserver"
)

// TestReadOnlyShareIsRefusedLocally mounts the Nextcloud emulation (unit
// level: there is no Nextcloud to install here) with a folder shared
// read-only (oc:permissions without W, C, K, D, N, V): its files and the
// folder show without write bits, and every change in it fails at once
// with EACCES, with no request sent and nothing queued; the user's own
// folder beside it takes changes as before.
func TestReadOnlyShareIsRefusedLocally(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"shared/sub", "shared/empty", "own"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range []string{"shared/report.txt", "shared/sub/data.csv", "own/notes.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("content of "+f), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv, err := ncserver.New(dir, ncserver.Options{Login: "alice", Password: "pw",
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Permissions: func(p string, isDir bool) string {
			switch {
			case p == "/shared" || strings.HasPrefix(p, "/shared/"):
				return "SMG" // shared with us, read-only
			case isDir:
				return "RGDNVCK"
			}
			return "RGDNVW"
		}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	b, err := webdav.New(t.Context(), webdav.Config{URL: ts.URL + "/remote.php/dav/files/alice/",
		User: "alice", Password: "pw", Timeout: 5 * time.Second, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	mnt := mountMem(t, b, Options{Umask: 0o022})

	for _, c := range []struct {
		name string
		mode os.FileMode
	}{{"shared", os.ModeDir | 0o555}, {"shared/report.txt", 0o444}, {"own", os.ModeDir | 0o755}, {"own/notes.txt", 0o644}} {
		fi, err := os.Stat(filepath.Join(mnt, c.name))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode() != c.mode {
			t.Errorf("%s: mode %v, want %v", c.name, fi.Mode(), c.mode)
		}
	}

	changes := func() int {
		n := 0
		for _, m := range []string{"PUT", "MKCOL", "DELETE", "MOVE", "COPY", "PROPPATCH"} {
			n += srv.Count("files " + m)
		}
		return n
	}
	before := changes()
	sh := filepath.Join(mnt, "shared")
	refused := []struct {
		what string
		do   func() error
	}{
		{"open for writing", func() error {
			f, err := os.OpenFile(filepath.Join(sh, "report.txt"), os.O_WRONLY|os.O_APPEND, 0)
			if err == nil {
				f.Close()
			}
			return err
		}},
		{"truncate", func() error { return os.Truncate(filepath.Join(sh, "report.txt"), 0) }},
		{"chmod", func() error { return os.Chmod(filepath.Join(sh, "report.txt"), 0o600) }},
		{"touch", func() error {
			now := time.Now()
			return os.Chtimes(filepath.Join(sh, "report.txt"), now, now)
		}},
		{"create", func() error { return os.WriteFile(filepath.Join(sh, "new.txt"), []byte("x"), 0o644) }},
		{"mkdir", func() error { return os.Mkdir(filepath.Join(sh, "newdir"), 0o755) }},
		{"symlink", func() error { return os.Symlink("report.txt", filepath.Join(sh, "link")) }},
		{"remove", func() error { return os.Remove(filepath.Join(sh, "report.txt")) }},
		{"rmdir", func() error { return os.Remove(filepath.Join(sh, "empty")) }},
		{"rename in place", func() error { return os.Rename(filepath.Join(sh, "report.txt"), filepath.Join(sh, "renamed.txt")) }},
		{"move out", func() error {
			return os.Rename(filepath.Join(sh, "report.txt"), filepath.Join(mnt, "own", "report.txt"))
		}},
		{"move in", func() error {
			return os.Rename(filepath.Join(mnt, "own", "notes.txt"), filepath.Join(sh, "notes.txt"))
		}},
	}
	for _, c := range refused {
		err := c.do()
		if !errors.Is(err, syscall.EACCES) {
			t.Errorf("%s in the read-only share: %v, want EACCES", c.what, err)
		}
	}
	if got, err := os.ReadFile(filepath.Join(sh, "report.txt")); err != nil || string(got) != "content of shared/report.txt" {
		t.Errorf("the shared file reads %q, %v", got, err)
	}
	syncMount(t, mnt)
	if n := changes() - before; n != 0 {
		t.Errorf("%d changing requests reached the server for refused calls", n)
	}

	// The user's own folder takes changes.
	own := filepath.Join(mnt, "own")
	if err := os.WriteFile(filepath.Join(own, "new.txt"), []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(own, "notes.txt"), filepath.Join(own, "notes2.txt")); err != nil {
		t.Fatal(err)
	}
	syncMount(t, mnt)
	if got, err := os.ReadFile(filepath.Join(dir, "own", "new.txt")); err != nil || string(got) != "mine" {
		t.Errorf("server's own/new.txt: %q, %v", got, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "own", "notes2.txt")); err != nil {
		t.Errorf("the rename in the user's own folder did not reach the server: %v", err)
	}
}
