package integration

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// closeBound is how long a write and close may take while the server is
// down: the data only has to be durable locally, so no remote timeout may
// be waited for.
const closeBound = 3 * time.Second

// TestOfflineWrites stops the server and writes 200 files through the
// mount: every write and close must succeed at once, the mount must show
// the files, and `cloudmount status` must say offline with 200 files
// queued. Once the server is back, `cloudmount sync` exits 0 and the
// server has every file.
func TestOfflineWrites(t *testing.T) {
	const n = 200
	eachServer(t, func(t *testing.T, srv *Server) {
		m := mountServer(t, srv, MountOptions{Args: []string{"--writeback-delay=0s"}})
		files := makeQueuedFiles("offline", n, 3)
		// The directories exist (and are listed) before the server goes.
		for dir := range namesByDir(files) {
			if err := os.MkdirAll(m.Path(dir), 0o755); err != nil {
				t.Fatal(err)
			}
			readDirNames(t, m.Path(dir))
		}
		m.Sync(t)

		srv.Stop(t)
		var slowest time.Duration
		var slowestName string
		start := time.Now()
		for _, f := range files {
			t0 := time.Now()
			if err := writeClose(m.Path(f.Rel), f.Data); err != nil {
				t.Fatalf("with the server down: %s: %v", f.Rel, err)
			}
			if d := time.Since(t0); d > slowest {
				slowest, slowestName = d, f.Rel
			}
			if err := os.Chtimes(m.Path(f.Rel), f.MTime, f.MTime); err != nil {
				t.Fatalf("with the server down: set the mtime of %s: %v", f.Rel, err)
			}
		}
		total := time.Since(start)
		t.Logf("FIGURE: %s: server down: %d files written in %.2fs, slowest create+write+close %v", srv.Kind, n, total.Seconds(), slowest)
		if slowest > closeBound {
			t.Errorf("with the server down, creating, writing and closing %s took %v, want under %v", slowestName, slowest, closeBound)
		}

		checkMountFiles(t, m, files, "server down")
		var st Status
		eventually(t, time.Minute, func() error {
			var err error
			if st, err = m.tryStatus(); err != nil {
				return err
			}
			if st.Online || st.QueuedFiles != n || st.QueuedBytes != queuedBytes(files) {
				return errorf("status with the server down: want offline, %d files, %d bytes queued:\n%s", n, queuedBytes(files), st)
			}
			return nil
		})
		if k := onServer(srv, files); k > 0 {
			t.Fatalf("%d files on the server's disk while it was down?", k)
		}

		srv.Start(t)
		took := m.Sync(t)
		t.Logf("FIGURE: %s: server back: cloudmount sync of %d files returned after %.2fs", srv.Kind, n, took.Seconds())
		checkServerFiles(t, srv, files)
		st = m.Status(t)
		if !st.Online || st.QueuedFiles != 0 || len(st.Failed) != 0 {
			t.Errorf("status after sync: want online, nothing queued or failed:\n%s", st)
		}
		checkMountFiles(t, m, files, "server back")
	})
}

// writeClose creates name, writes data and closes it, as a shell
// redirection does, and returns the first error, the one of close
// included.
func writeClose(name string, data []byte) error {
	f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// dropPageCache asks the kernel to forget the cached pages of a file, so
// that the next read reaches the daemon (drop_caches is not writable in
// every container; fadvise is).
func dropPageCache(t testing.TB, name string) {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		t.Fatalf("fadvise DONTNEED %s: %v", name, err)
	}
}

// TestOfflineReads reads a file and lists directories, stops the server,
// and checks that the file read before is still readable (from the block
// cache, the kernel's copy dropped) and that the directories still list.
// A file never read fails in bounded time rather than hanging; once the
// server is back, it reads again.
func TestOfflineReads(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		seen := randomBytes(3<<20+12345, 31)
		unseen := []byte("never read before the server went away\n")
		srv.WriteFile(t, "docs/report.bin", seen, time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC))
		srv.WriteFile(t, "docs/unseen.txt", unseen, time.Time{})
		srv.WriteFile(t, "docs/sub/deeper.txt", []byte("deeper\n"), time.Time{})
		m := mountServer(t, srv, MountOptions{})
		wantNames := []string{"report.bin", "sub", "unseen.txt"}
		if got := readDirNames(t, m.Path("docs")); !slices.Equal(got, wantNames) {
			t.Fatalf("ls docs: %q, want %q", got, wantNames)
		}
		if got := readDirNames(t, m.Path("docs/sub")); !slices.Equal(got, []string{"deeper.txt"}) {
			t.Fatalf("ls docs/sub: %q", got)
		}
		wantFile(t, m.Path("docs/report.bin"), seen)
		dropPageCache(t, m.Path("docs/report.bin"))

		srv.Stop(t)
		// Past the attribute timeout, so that the mount asks the server
		// (and finds it gone) rather than answering from the kernel.
		time.Sleep(1500 * time.Millisecond)
		for i, when := range []string{"server down", "server down, second read"} {
			start := time.Now()
			got, err := os.ReadFile(m.Path("docs/report.bin"))
			if err != nil || !bytes.Equal(got, seen) {
				t.Fatalf("%s: read docs/report.bin (read once before): %d bytes, %v; want %d bytes", when, len(got), err, len(seen))
			}
			t.Logf("%s: %s: cached read took %v", srv.Kind, when, time.Since(start))
			if i == 0 {
				dropPageCache(t, m.Path("docs/report.bin"))
			}
		}
		if got := mtimeOf(t, m.Path("docs/report.bin")); !got.Equal(time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)) {
			t.Errorf("server down: stat docs/report.bin: mtime %v", got.UTC())
		}
		if got, err := listNames(m.Path("docs")); err != nil || !slices.Equal(got, wantNames) {
			t.Errorf("server down: ls docs: %q, %v; want %q", got, err, wantNames)
		}
		if got, err := listNames(m.Path("docs/sub")); err != nil || !slices.Equal(got, []string{"deeper.txt"}) {
			t.Errorf("server down: ls docs/sub: %q, %v", got, err)
		}
		if out, err := runCmd(m.Dir, time.Minute, "ls", "-l", "docs"); err != nil {
			t.Errorf("server down: ls -l docs: %v\n%s", err, out)
		}

		// A file whose content was never fetched cannot be read, but the
		// read ends with an error, soon, and never with wrong data.
		start := time.Now()
		got, err := os.ReadFile(m.Path("docs/unseen.txt"))
		took := time.Since(start)
		switch {
		case err == nil && !bytes.Equal(got, unseen):
			t.Errorf("server down: read of a file never fetched returned %q", got)
		case err == nil:
			t.Logf("server down: docs/unseen.txt read fine (the daemon had fetched it ahead)")
		default:
			t.Logf("server down: read of a file never fetched: %v after %v", err, took)
		}
		if took > 45*time.Second {
			t.Errorf("server down: read of a file never fetched took %v", took)
		}

		srv.Start(t)
		eventually(t, 90*time.Second, func() error {
			got, err := os.ReadFile(m.Path("docs/unseen.txt"))
			if err != nil {
				return fmt.Errorf("server back: read docs/unseen.txt: %w", err)
			}
			if !bytes.Equal(got, unseen) {
				return errorf("server back: docs/unseen.txt has %q", got)
			}
			return nil
		})
		wantFile(t, m.Path("docs/report.bin"), seen)
	})
}

// TestOfflineTreeChanges stops the server and changes the tree through the
// mount: mkdir, a tree of new files in the new directory, rm of a file and
// rmdir of a directory that are on the server, mv of a file and of a
// directory with files. Each returns at once and shows in the mount. Once
// the server is back, `cloudmount sync` exits 0 and the server's tree is
// the mount's.
func TestOfflineTreeChanges(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		old := time.Date(2021, 5, 6, 7, 8, 9, 0, time.UTC)
		for rel, data := range map[string]string{"docs/a.txt": "a\n", "docs/old/x.txt": "x\n",
			"docs/old/sub/y.txt": "y\n", "docs/gone.txt": "gone\n", "docs/empty/.keep": ""} {
			srv.WriteFile(t, rel, []byte(data), old)
		}
		if err := os.Remove(srv.Path("docs/empty/.keep")); err != nil {
			t.Fatal(err)
		}
		m := mountServer(t, srv, MountOptions{Args: []string{"--writeback-delay=0s"}})
		// Looked at before the server goes: the listings are known.
		if _, err := scanTree(m.Path("docs"), nil); err != nil {
			t.Fatal(err)
		}

		srv.Stop(t)
		files := makeQueuedFiles("docs/new/tree", 30, 3)
		steps := []struct {
			what string
			do   func() error
		}{
			{"mkdir docs/new", func() error { return os.Mkdir(m.Path("docs/new"), 0o755) }},
			{"mkdir -p and write 30 files below docs/new/tree", func() error {
				for _, f := range files {
					if err := os.MkdirAll(filepath.Dir(m.Path(f.Rel)), 0o755); err != nil {
						return err
					}
					if err := writeClose(m.Path(f.Rel), f.Data); err != nil {
						return err
					}
					if err := os.Chtimes(m.Path(f.Rel), f.MTime, f.MTime); err != nil {
						return err
					}
				}
				return nil
			}},
			{"rm docs/gone.txt", func() error { return os.Remove(m.Path("docs/gone.txt")) }},
			{"rmdir docs/empty", func() error { return os.Remove(m.Path("docs/empty")) }},
			{"mv docs/old docs/moved", func() error { return os.Rename(m.Path("docs/old"), m.Path("docs/moved")) }},
			{"mv docs/a.txt docs/moved/a.txt", func() error { return os.Rename(m.Path("docs/a.txt"), m.Path("docs/moved/a.txt")) }},
		}
		for _, s := range steps {
			start := time.Now()
			if err := s.do(); err != nil {
				t.Fatalf("with the server down: %s: %v", s.what, err)
			}
			if d := time.Since(start); d > closeBound {
				t.Errorf("with the server down, %s took %v, want under %v", s.what, d, closeBound)
			}
		}
		want := []string{"moved", "moved/a.txt", "moved/sub", "moved/sub/y.txt", "moved/x.txt", "new", "new/tree"}
		got, err := scanTree(m.Path("docs"), nil)
		if err != nil {
			t.Fatalf("with the server down: walk the mount: %v", err)
		}
		for _, rel := range want {
			if _, ok := got[rel]; !ok {
				t.Errorf("with the server down, the mount lacks docs/%s", rel)
			}
		}
		for _, rel := range []string{"old", "a.txt", "gone.txt", "empty"} {
			if _, ok := got[rel]; ok {
				t.Errorf("with the server down, the mount still shows docs/%s", rel)
			}
		}
		checkMountFiles(t, m, files, "server down")
		eventually(t, time.Minute, func() error {
			st, err := m.tryStatus()
			if err != nil {
				return err
			}
			if st.Online || st.QueuedChanges == 0 || st.QueuedFiles != len(files) {
				return errorf("status with the server down: want offline, %d files and the changes of the tree queued:\n%s", len(files), st)
			}
			return nil
		})

		srv.Start(t)
		took := m.Sync(t)
		t.Logf("FIGURE: %s: server back: cloudmount sync of the changes of the tree and %d files returned after %.2fs", srv.Kind, len(files), took.Seconds())
		if st := m.Status(t); st.QueuedChanges != 0 || st.QueuedFiles != 0 || len(st.Failed) != 0 || len(st.Conflicts) != 0 {
			t.Errorf("status after sync: want nothing queued, failed or in conflict:\n%s", st)
		}
		onMount, err := scanTree(m.Path("docs"), nil)
		if err != nil {
			t.Fatal(err)
		}
		onSrv, err := scanTree(srv.Path("docs"), srv.Hidden)
		if err != nil {
			t.Fatal(err)
		}
		for rel, e := range onMount {
			if s, ok := onSrv[rel]; !ok || s.kind != e.kind || s.sum != e.sum {
				t.Errorf("docs/%s: on the mount a %s (sha256 %s), on the server %+v (there: %v)", rel, e.kind, e.sum, s, ok)
			}
		}
		for rel := range onSrv {
			if _, ok := onMount[rel]; !ok {
				t.Errorf("docs/%s is on the server, not in the mount", rel)
			}
		}
	})
}
