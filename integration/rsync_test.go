package integration

import (
	"path/filepath"
	"testing"
	"time"
)

// TestRsync copies a tree of a few hundred mixed files with `rsync -a
// --stats` and runs it again: the second run must transfer nothing, and so
// must a run after unmount and mount, and a run after a mount with a
// fresh cache directory (a second machine), on every server: dead
// properties on Apache, the metadata file per directory elsewhere.
func TestRsync(t *testing.T) {
	needTool(t, "rsync")
	eachServer(t, func(t *testing.T, srv *Server) {
		src := filepath.Join(t.TempDir(), "src")
		files := makeTree(t, src, 300, 7)
		m := mountServer(t, srv, MountOptions{})
		rsync := rsyncOnto(src, m.Path("dst"), srv.Kind, files)
		if n := rsync(t, "first run"); n != len(files) {
			t.Errorf("first run transferred %d files, want %d", n, len(files))
		}
		compareTree(t, src, m.Path("dst"), true, nil)
		eventually(t, serverTimeout, func() error {
			return treeDiff(src, srv.Path("dst"), false, srv.Hidden)
		})
		if n := rsync(t, "second run"); n != 0 {
			t.Errorf("second run transferred %d files, want 0", n)
		}
		m = m.Remount(t, false)
		if n := rsync(t, "after remount"); n != 0 {
			t.Errorf("run after unmount and mount transferred %d files, want 0", n)
		}
		m = m.Remount(t, true)
		if n := rsync(t, "after remount with a fresh cache"); n != 0 {
			t.Errorf("run after a mount with a fresh cache directory transferred %d files, want 0", n)
		}
		compareTree(t, src, m.Path("dst"), true, nil)
	})
}

// rsyncOnto is a run of `rsync -a --stats` of the tree src (of files) into
// dst, which logs its figure, on a server of kind, under label, and
// returns how many files it transferred.
func rsyncOnto(src, dst, kind string, files []treeFile) func(t *testing.T, label string) int {
	var size int
	for _, f := range files {
		size += f.Size
	}
	return func(t *testing.T, label string) int {
		t.Helper()
		start := time.Now()
		out := run(t, "", "rsync", "-a", "--stats", src+"/", dst+"/")
		n := rsyncTransferred(t, out)
		t.Logf("FIGURE: rsync -a %s, %s: %d of %d files (%.1f MiB) transferred in %.2fs",
			kind, label, n, len(files), float64(size)/(1<<20), time.Since(start).Seconds())
		return n
	}
}
