package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// testSFTPConflict edits a file on the mount while its copy on the server
// changes behind the mount's back, before the edit is uploaded: after
// `cloudmount sync` the server keeps its version under the name and the
// local edit as a conflict copy beside it; nothing is lost. The same for
// a file created on both sides.
func testSFTPConflict(t *testing.T, e *sftpEnv) {
	srv := e.server(t)
	m := mountSFTP(t, e, srv, sftpMountOptions{Args: []string{"--writeback-delay=10m", "--dir-cache-time=1s"}})
	if err := os.Mkdir(m.Path("c"), 0o755); err != nil {
		t.Fatal(err)
	}

	t.Run("edit", func(t *testing.T) {
		original := []byte("version 1, written through the mount\n")
		local := []byte("version 2, edited on the mount\n")
		remote := []byte("version 3, changed on the server meanwhile, by someone else\n")
		if err := os.WriteFile(m.Path("c/doc.txt"), original, 0o644); err != nil {
			t.Fatal(err)
		}
		m.Sync(t)
		wantFile(t, srv.Path("c/doc.txt"), original)

		if err := os.WriteFile(m.Path("c/doc.txt"), local, 0o644); err != nil {
			t.Fatal(err)
		}
		wantFile(t, m.Path("c/doc.txt"), local)
		wantFile(t, srv.Path("c/doc.txt"), original)
		srv.WriteFile(t, "c/doc.txt", remote, time.Now().Add(time.Minute))
		m.Sync(t)

		wantFile(t, srv.Path("c/doc.txt"), remote)
		copies := conflictCopies(t, srv, "c", "doc", ".txt")
		if len(copies) != 1 {
			t.Fatalf("server's c/: want doc.txt and one conflict copy of it, got %q", readDirNames(t, srv.Path("c")))
		}
		wantFile(t, srv.Path("c/"+copies[0]), local)
		wantConflictInStatus(t, m, "c/doc.txt", copies[0])
		eventually(t, 90*time.Second, func() error {
			for name, want := range map[string][]byte{"doc.txt": remote, copies[0]: local} {
				got, err := os.ReadFile(m.Path("c/" + name))
				if err != nil || !bytes.Equal(got, want) {
					return fmt.Errorf("on the mount, c/%s has %q (%v), want %q", name, got, err, want)
				}
			}
			return nil
		})
	})

	t.Run("create", func(t *testing.T) {
		local := []byte("created on the mount\n")
		remote := []byte("created on the server first\n")
		if err := os.WriteFile(m.Path("c/new.txt"), local, 0o644); err != nil {
			t.Fatal(err)
		}
		wantFile(t, m.Path("c/new.txt"), local)
		srv.WriteFile(t, "c/new.txt", remote, time.Time{})
		m.Sync(t)

		wantFile(t, srv.Path("c/new.txt"), remote)
		copies := conflictCopies(t, srv, "c", "new", ".txt")
		if len(copies) != 1 {
			t.Fatalf("server's c/: want new.txt and one conflict copy of it, got %q", readDirNames(t, srv.Path("c")))
		}
		wantFile(t, srv.Path("c/"+copies[0]), local)
		wantConflictInStatus(t, m, "c/new.txt", copies[0])
	})

	if got := slices.DeleteFunc(readDirNames(t, srv.Path("c")), sftpHidden); len(got) != 4 {
		t.Errorf("server's c/ after both conflicts: %q, want doc.txt, new.txt and one conflict copy of each", got)
	}
}

// testSFTPRsync copies a tree of mixed files onto the mount with `rsync
// -a --stats`: the server ends up with the same bytes, modes and mtimes
// (to the second), and a second run transfers nothing, also after an
// unmount and a mount with the same cache directory.
func testSFTPRsync(t *testing.T, e *sftpEnv) {
	needTool(t, "rsync")
	srv := e.server(t)
	src := filepath.Join(t.TempDir(), "src")
	files := makeTree(t, src, 300*sftpSoak(), 11)
	var size int
	for _, f := range files {
		size += f.Size
	}
	m := mountSFTP(t, e, srv, sftpMountOptions{})
	dst := m.Path("dst") + "/"
	rsync := func(t *testing.T, label string) int {
		t.Helper()
		start := time.Now()
		out := run(t, "", "rsync", "-a", "--stats", src+"/", dst)
		n := rsyncTransferred(t, out)
		t.Logf("FIGURE: rsync -a sftp, %s: %d of %d files (%.1f MiB) transferred in %.2fs",
			label, n, len(files), float64(size)/(1<<20), time.Since(start).Seconds())
		return n
	}
	if n := rsync(t, "first run"); n != len(files) {
		t.Errorf("first run transferred %d files, want %d", n, len(files))
	}
	compareTree(t, src, m.Path("dst"), true, nil)
	start := time.Now()
	m.Sync(t)
	t.Logf("FIGURE: cloudmount sync after the first rsync to sftp: %.2fs", time.Since(start).Seconds())
	compareTree(t, src, srv.Path("dst"), true, sftpHidden)
	if n := rsync(t, "second run"); n != 0 {
		t.Errorf("second run transferred %d files, want 0", n)
	}
	m = remountSFTP(t, e, m, sftpMountOptions{})
	if n := rsync(t, "after unmount and mount"); n != 0 {
		t.Errorf("run after unmount and mount transferred %d files, want 0", n)
	}
	compareTree(t, src, m.Path("dst"), true, nil)
}
