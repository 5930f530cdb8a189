package integration

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRootMetadata sets the mount root's mtime and mode, as `rsync -a src/
// MOUNT/` does, and checks that they hold, also after a remount with the
// same cache directory, on every server (those without dead properties
// keep them in the local index).
func TestRootMetadata(t *testing.T) {
	needTool(t, "rsync")
	eachServer(t, func(t *testing.T, srv *Server) {
		m := mountServer(t, srv, MountOptions{})
		bash(t, m.Dir, `
chmod 0750 .
touch -d '2004-05-06 07:08:09.25 UTC' .
`)
		want := time.Date(2004, 5, 6, 7, 8, 9, 250000000, time.UTC)
		check := func(t *testing.T, when string, mtime time.Time, mode uint32) {
			t.Helper()
			st := lstat(t, m.Dir)
			if got := time.Unix(st.Mtim.Unix()); !got.Equal(mtime) {
				t.Errorf("%s: the root's mtime is %v, want %v", when, got.UTC(), mtime)
			}
			if st.Mode != mode {
				t.Errorf("%s: the root's mode is %o, want %o", when, st.Mode, mode)
			}
		}
		check(t, "after touch and chmod", want, 0o040750)
		m = m.Remount(t, false)
		check(t, "after remount", want, 0o040750)

		src := filepath.Join(t.TempDir(), "src")
		files := makeTree(t, src, 20, 3)
		srcTime := time.Date(2005, 1, 2, 3, 4, 5, 0, time.UTC)
		if err := os.Chtimes(src, srcTime, srcTime); err != nil {
			t.Fatal(err)
		}
		rsync := rsyncOnto(src, m.Dir, srv.Kind, files)
		if n := rsync(t, "onto the root"); n != len(files) {
			t.Errorf("rsync onto the root transferred %d files, want %d", n, len(files))
		}
		check(t, "after rsync -a src/ MOUNT/", srcTime, 0o040000|uint32(lstat(t, src).Mode&0o7777))
		if n := rsync(t, "onto the root, again"); n != 0 {
			t.Errorf("second rsync onto the root transferred %d files, want 0", n)
		}
	})
}
