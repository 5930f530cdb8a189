package integration

import (
	"path/filepath"
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
	testConflicts(t, srv, m, sftpHidden)
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
	m := mountSFTP(t, e, srv, sftpMountOptions{})
	rsync := rsyncOnto(src, m.Path("dst"), "sftp", files)
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
