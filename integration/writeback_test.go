package integration

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// queuedFile is a file a test writes through the mount and then expects on
// the server.
type queuedFile struct {
	Rel   string // slash-separated, relative to the mount root
	Data  []byte
	MTime time.Time
}

// makeQueuedFiles returns n small files of 0 to 40 KiB with deterministic
// content, spread over a few directories under top, with awkward names
// among them and mtimes in the past with nanoseconds.
func makeQueuedFiles(top string, n int, seed uint64) []queuedFile {
	rng := rand.New(rand.NewPCG(seed, 7))
	base := time.Date(2018, 3, 4, 5, 6, 7, 0, time.UTC)
	files := make([]queuedFile, n)
	for i := range files {
		size := rng.IntN(40 << 10)
		if i%25 == 0 {
			size = 0
		}
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		files[i] = queuedFile{
			Rel:   fmt.Sprintf("%s/d%d/f%03d %s.bin", top, i%5, i, treeNames[i%len(treeNames)]),
			Data:  data,
			MTime: base.Add(time.Duration(i)*time.Hour + time.Duration(i*1234567+1)),
		}
	}
	return files
}

// writeQueuedFiles writes files through the mount (making their
// directories) and sets their mtimes.
func writeQueuedFiles(t testing.TB, m *Mount, files []queuedFile) {
	t.Helper()
	for _, f := range files {
		p := m.Path(f.Rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatalf("write %s: %v", f.Rel, err)
		}
		if err := os.Chtimes(p, f.MTime, f.MTime); err != nil {
			t.Fatalf("set the mtime of %s: %v", f.Rel, err)
		}
	}
}

// queuedBytes is the total size of files.
func queuedBytes(files []queuedFile) int64 {
	var n int64
	for _, f := range files {
		n += int64(len(f.Data))
	}
	return n
}

// namesByDir groups the base names of files by their directory.
func namesByDir(files []queuedFile) map[string][]string {
	out := map[string][]string{}
	for _, f := range files {
		d, b := path.Split(f.Rel)
		out[strings.TrimSuffix(d, "/")] = append(out[strings.TrimSuffix(d, "/")], b)
	}
	for _, names := range out {
		slices.Sort(names)
	}
	return out
}

// onServer counts the files that are on the server's disk already.
func onServer(srv *Server, files []queuedFile) int {
	n := 0
	for _, f := range files {
		if _, err := os.Stat(srv.Path(f.Rel)); err == nil {
			n++
		}
	}
	return n
}

// checkMountFiles checks what a user sees on the mount: the listings hold
// exactly the files, each with its content and mtime (to the nanosecond).
func checkMountFiles(t testing.TB, m *Mount, files []queuedFile, when string) {
	t.Helper()
	for dir, want := range namesByDir(files) {
		got := readDirNames(t, m.Path(dir))
		if !slices.Equal(got, want) {
			t.Errorf("%s: listing of %s on the mount has %d names, want %d:\n got %q\nwant %q", when, dir, len(got), len(want), clipNames(got), clipNames(want))
		}
	}
	bad := 0
	for _, f := range files {
		got, err := os.ReadFile(m.Path(f.Rel))
		if err != nil || !bytes.Equal(got, f.Data) {
			if bad++; bad <= 5 {
				t.Errorf("%s: %s on the mount: %d bytes (%v), want %d bytes", when, f.Rel, len(got), err, len(f.Data))
			}
			continue
		}
		if mt := mtimeOf(t, m.Path(f.Rel)); !mt.Equal(f.MTime) {
			if bad++; bad <= 5 {
				t.Errorf("%s: %s on the mount: mtime %v, want %v", when, f.Rel, mt.UTC(), f.MTime)
			}
		}
	}
	if bad > 5 {
		t.Errorf("%s: %d of %d files differ on the mount", when, bad, len(files))
	}
}

// checkServerFiles checks the server's side: every file with its bytes
// and no other names in its directories, and, where the server keeps
// cloudmount's dead properties (Apache), the mtimes to the nanosecond.
// rclone serve webdav keeps neither dead properties nor X-OC-Mtime, so
// there the mtime lives in the mount's local index only.
func checkServerFiles(t testing.TB, srv *Server, files []queuedFile) {
	t.Helper()
	for dir, want := range namesByDir(files) {
		got := slices.DeleteFunc(readDirNames(t, srv.Path(dir)), srv.Hidden)
		if !slices.Equal(got, want) {
			t.Errorf("listing of %s on the server has %d names, want %d:\n got %q\nwant %q", dir, len(got), len(want), clipNames(got), clipNames(want))
		}
	}
	mtimes := map[string]map[string]time.Time{}
	bad := 0
	for _, f := range files {
		dir, name := path.Split(f.Rel)
		dir = strings.TrimSuffix(dir, "/")
		got, err := os.ReadFile(srv.Path(f.Rel))
		if err != nil || sha256.Sum256(got) != sha256.Sum256(f.Data) {
			if bad++; bad <= 5 {
				t.Errorf("%s on the server: %d bytes (%v), want %d bytes with sha256 %x", f.Rel, len(got), err, len(f.Data), sha256.Sum256(f.Data))
			}
			continue
		}
		if !srv.DeadProps {
			continue // the mtime lives in the mount's local index
		}
		if mtimes[dir] == nil {
			mtimes[dir] = srv.ServerMTimes(t, dir)
		}
		if mt, ok := mtimes[dir][name]; !ok || !mt.Equal(f.MTime) {
			if bad++; bad <= 5 {
				t.Errorf("%s on the server: mtime %v (stored: %v), want %v", f.Rel, mt.UTC(), ok, f.MTime)
			}
		}
	}
	if bad > 5 {
		t.Errorf("%d of %d files differ on the server", bad, len(files))
	}
}

// clipNames shortens a list of names for messages.
func clipNames(names []string) []string {
	if len(names) > 8 {
		return append(slices.Clip(names[:8]), fmt.Sprintf("... (%d more)", len(names)-8))
	}
	return names
}

// bigUploadSize is the file whose upload a kill -9 cuts off: above the
// size from which uploads start at once.
const bigUploadSize = 96 << 20

// TestKill9Replay queues 500 files (with a 10-minute write-back delay, so
// that none is uploaded), checks that the mount shows them and that
// `cloudmount status` counts them, writes a large file whose upload starts
// at once, kills the daemon with SIGKILL during that upload, mounts again
// with the same cache directory and runs `cloudmount sync`: every file must
// reach the server with its bytes, name and mtime, and show on the mount
// as it was written.
func TestKill9Replay(t *testing.T) {
	const n = 500
	eachServer(t, func(t *testing.T, srv *Server) {
		m := mountServer(t, srv, MountOptions{Args: []string{"--writeback-delay=10m"}})
		files := makeQueuedFiles("crash", n, 1)
		start := time.Now()
		writeQueuedFiles(t, m, files)
		t.Logf("FIGURE: %s: %d files (%.1f MiB) written and closed in %.2fs with the uploads queued",
			srv.Kind, n, float64(queuedBytes(files))/(1<<20), time.Since(start).Seconds())

		if k := onServer(srv, files); k > 0 {
			t.Errorf("%d of %d files are on the server already, with --writeback-delay=10m", k, n)
		}
		checkMountFiles(t, m, files, "queued")
		st := m.Status(t)
		if st.QueuedFiles != n || st.QueuedBytes != queuedBytes(files) {
			t.Errorf("status before the crash: %d files, %d bytes queued; want %d files, %d bytes\n%s", st.QueuedFiles, st.QueuedBytes, n, queuedBytes(files), st)
		}

		// A large file starts its upload at once, whatever the delay: the
		// daemon dies with it in flight.
		big := queuedFile{Rel: "crash/d0/big.bin", Data: randomBytes(bigUploadSize, 99), MTime: time.Date(2019, 1, 2, 3, 4, 5, 6, time.UTC)}
		writeQueuedFiles(t, m, []queuedFile{big})
		eventually(t, 30*time.Second, func() error {
			for _, tr := range m.Status(t).Uploading {
				if tr.Path == big.Rel && tr.Done > 0 {
					t.Logf("%s: killed with %d of %d MiB of %s sent", srv.Kind, tr.Done>>20, bigUploadSize>>20, big.Rel)
					return nil
				}
			}
			if fi, err := os.Stat(srv.Path(big.Rel)); err == nil && fi.Size() == bigUploadSize {
				t.Logf("%s: %s was uploaded before the kill", srv.Kind, big.Rel)
				return nil // a fast server: it was quicker than this look
			}
			return fmt.Errorf("the upload of %s (%d MiB) has not started:\n%s", big.Rel, bigUploadSize>>20, m.statusForMessage())
		})

		m.Kill9(t)
		if k := onServer(srv, files); k > 0 {
			t.Errorf("%d of %d files reached the server before the crash, with --writeback-delay=10m", k, n)
		}

		m = m.MountAgain(t)
		took := m.Sync(t)
		t.Logf("FIGURE: %s: cloudmount sync after kill -9 and mount: %d files and %d MiB cut off in its upload replayed in %.2fs", srv.Kind, n, bigUploadSize>>20, took.Seconds())
		files = append(files, big)
		checkServerFiles(t, srv, files)
		checkMountFiles(t, m, files, "after kill -9 and mount")
		st = m.Status(t)
		if st.QueuedFiles != 0 || len(st.Failed) != 0 || len(st.Conflicts) != 0 {
			t.Errorf("status after sync: want nothing queued, failed or conflicted:\n%s", st)
		}
	})
}

// TestUnmountDrains writes files with the default write-back delay and
// unmounts at once: the unmount uploads them before the daemon ends, so
// the server has them all without another mount.
func TestUnmountDrains(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		m := mountServer(t, srv, MountOptions{})
		files := makeQueuedFiles("drain", 60, 2)
		writeQueuedFiles(t, m, files)
		m.Unmount(t, "cloudmount")
		checkServerFiles(t, srv, files)
	})
}

// TestWritebackCoalesces runs rsync onto the mount with the default
// write-back delay. rsync writes each file to a temporary name, sets its
// mtime and mode and renames it; the server must see one PUT per file, to
// its final name, and no trace of the temporary names.
func TestWritebackCoalesces(t *testing.T) {
	needTool(t, "rsync")
	eachServer(t, func(t *testing.T, srv *Server) {
		src := filepath.Join(t.TempDir(), "src")
		tree := makeTree(t, src, 40, 11)
		m := mountServer(t, srv, MountOptions{})
		run(t, "", "rsync", "-a", src+"/", m.Path("co")+"/")
		m.Sync(t)
		if err := treeDiff(src, srv.Path("co"), false, srv.Hidden); err != nil {
			t.Errorf("after cloudmount sync, the server differs: %v", err)
		}
		// On a server without conditional PUT, an upload is a PUT of a
		// temporary name moved onto the file: those count per directory.
		puts, temps := map[string]int{}, map[string]int{}
		for _, r := range srv.Requests(t) {
			switch {
			case !strings.HasPrefix(r.Path, "/co/"):
			case r.Method == "PUT" && isUploadTemp(r.Path):
				temps[path.Dir(r.Path)]++
			case r.Method == "PUT":
				puts[r.Path]++
			case r.Method == "MOVE" && !isUploadTemp(r.Path):
				t.Errorf("the server saw a MOVE of %s: rsync's rename was not folded into the upload", r.Path)
			}
		}
		for _, f := range tree {
			p := "/co/" + filepath.ToSlash(f.Rel)
			if puts[p] == 0 && temps[path.Dir(p)] > 0 {
				puts[p]++
				temps[path.Dir(p)]--
			}
			if puts[p] != 1 {
				t.Errorf("%s: %d PUTs, want 1", p, puts[p])
			}
			delete(puts, p)
		}
		for p, k := range puts {
			if path.Base(p) == metaFileName {
				continue // the metadata of a directory's files (servers without dead properties)
			}
			t.Errorf("%d PUT(s) of %s, which is not one of rsync's files (a temporary name?)", k, p)
		}
		for d, k := range temps {
			if k > 0 {
				t.Errorf("%d uploads through a temporary name in %s more than rsync's files there", k, d)
			}
		}
	})
}

// TestReadWhileUploading writes a 512 MiB file through the mount and,
// while it is being written and then uploaded, reads other files (one
// cached, one never read before) and lists a directory: each must take
// well under a second, not wait for the big transfer. With -short the
// file is 128 MiB.
func TestReadWhileUploading(t *testing.T) {
	size := int64(512 << 20)
	if testing.Short() {
		size = 128 << 20
	}
	const bound = 2 * time.Second
	eachServer(t, func(t *testing.T, srv *Server) {
		small := []byte("a small file written through the mount\n")
		fresh := randomBytes(200<<10, 21)
		for i := 0; i < 20; i++ {
			srv.WriteFile(t, fmt.Sprintf("busy/listed/entry %02d.txt", i), []byte(strings.Repeat("x", i)), time.Time{})
		}
		srv.WriteFile(t, "busy/fresh.bin", fresh, time.Time{})
		m := mountServer(t, srv, MountOptions{Args: []string{"--writeback-delay=0s"}})
		if err := os.WriteFile(m.Path("busy/small.txt"), small, 0o644); err != nil {
			t.Fatal(err)
		}
		m.Sync(t)
		wantFile(t, m.Path("busy/small.txt"), small)
		if got := readDirNames(t, m.Path("busy/listed")); len(got) != 20 {
			t.Fatalf("ls busy/listed: %d names, want 20: %q", len(got), got)
		}

		// probe reads and lists what a user would while the big file
		// moves, and returns the slowest step and its name.
		freshRead := false
		probe := func() (time.Duration, string) {
			var slowest time.Duration
			var what string
			step := func(name string, fn func() error) {
				start := time.Now()
				if err := fn(); err != nil {
					t.Errorf("%s: %v", name, err)
				}
				if d := time.Since(start); d > slowest {
					slowest, what = d, name
				}
			}
			step("read busy/small.txt", func() error {
				got, err := os.ReadFile(m.Path("busy/small.txt"))
				if err == nil && !bytes.Equal(got, small) {
					err = fmt.Errorf("got %q", got)
				}
				return err
			})
			if !freshRead {
				freshRead = true
				step("first read of busy/fresh.bin", func() error {
					got, err := os.ReadFile(m.Path("busy/fresh.bin"))
					if err == nil && !bytes.Equal(got, fresh) {
						err = fmt.Errorf("got %d bytes, want %d", len(got), len(fresh))
					}
					return err
				})
			}
			step("ls -l busy/listed", func() error {
				ents, err := os.ReadDir(m.Path("busy/listed"))
				if err != nil {
					return err
				}
				for _, e := range ents {
					if _, err := e.Info(); err != nil {
						return err
					}
				}
				if len(ents) != 20 {
					return fmt.Errorf("%d entries, want 20", len(ents))
				}
				return nil
			})
			return slowest, what
		}

		// While the big file is written.
		var wg sync.WaitGroup
		var writeErr error
		var want string
		writing := make(chan struct{})
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(writing)
			want, writeErr = writeRandom(m.Path("busy/big.bin"), size, 5)
		}()
		during := 0
		for done := false; !done; {
			d, what := probe()
			select {
			case <-writing:
				done = true
			default:
				during++
				if d > bound {
					t.Errorf("while the big file was written: %s took %v, want under %v", what, d, bound)
				}
			}
		}
		wg.Wait()
		if writeErr != nil {
			t.Fatalf("write the big file through the mount: %v", writeErr)
		}
		t.Logf("%s: %d probes while the big file was written", srv.Kind, during)

		// While it is uploaded: a probe counts when the status shows the
		// upload before and after it.
		uploading := func() bool {
			st := m.Status(t)
			for _, u := range st.Uploading {
				if strings.TrimPrefix(u.Path, "/") == "busy/big.bin" {
					return true
				}
			}
			return false
		}
		var upload, worst time.Duration
		probes := 0
		for start := time.Now(); time.Since(start) < 5*time.Minute; {
			if !uploading() {
				if st := m.Status(t); st.QueuedFiles == 0 {
					break
				}
				time.Sleep(20 * time.Millisecond)
				continue
			}
			d, what := probe()
			if !uploading() {
				continue
			}
			probes++
			upload += d
			worst = max(worst, d)
			if d > bound {
				t.Errorf("while the big file was uploaded: %s took %v, want under %v", what, d, bound)
			}
		}
		if probes == 0 {
			t.Errorf("no probe ran while `cloudmount status` showed the upload of busy/big.bin: the upload was over before it could be watched")
		} else {
			t.Logf("FIGURE: %s: reads and listings while a %d MiB upload runs: %d probes, slowest %v", srv.Kind, size>>20, probes, worst)
		}
		m.Sync(t)
		if got, err := sha256File(srv.Path("busy/big.bin")); err != nil || got != want {
			t.Errorf("sha256 of busy/big.bin on the server: %s %v, want %s", got, err, want)
		}
	})
}

// writeRandom writes size bytes of deterministic pseudo-random data to
// name and returns their sha256.
func writeRandom(name string, size int64, seed byte) (string, error) {
	f, err := os.Create(name)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	_, err = io.CopyBuffer(io.MultiWriter(f, h), io.LimitReader(rand.NewChaCha8([32]byte{seed}), size), make([]byte, 1<<20))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return hex.EncodeToString(h.Sum(nil)), err
}

// TestFsync checks what fsync waits for. With the default (--fsync local)
// it returns once the file is durable in the journal, long before its
// upload (here a 10-minute write-back delay): the server has nothing, and
// after a kill -9 the next mount uploads it. With --fsync server it returns
// once the server has the file, bytes and all.
func TestFsync(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		write := func(m *Mount, rel string, data []byte) time.Duration {
			t.Helper()
			f, err := os.Create(m.Path(rel))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if _, err := f.Write(data); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if err := f.Sync(); err != nil {
				t.Fatalf("fsync %s: %v", rel, err)
			}
			return time.Since(start)
		}
		local := randomBytes(300<<10, 5)
		m := mountServer(t, srv, MountOptions{Args: []string{"--writeback-delay=10m"}})
		took := write(m, "fsync-local.bin", local)
		t.Logf("FIGURE: %s: fsync of 300 KiB with --fsync local: %v", srv.Kind, took.Round(time.Microsecond))
		if n := countPuts(t, srv, "/fsync-local.bin"); n != 0 {
			t.Errorf("--fsync local: fsync uploaded the file (%d PUT)", n)
		}
		m.Kill9(t)
		m = m.MountAgain(t)
		m.Sync(t)
		if got, err := os.ReadFile(srv.Path("fsync-local.bin")); err != nil || !bytes.Equal(got, local) {
			t.Errorf("fsynced file after kill -9, a new mount and sync: %d bytes on the server (%v), want %d", len(got), err, len(local))
		}
		m.Unmount(t, "cloudmount")

		remote := randomBytes(2<<20, 6)
		m = mountServer(t, srv, MountOptions{Args: []string{"--writeback-delay=10m", "--fsync=server"}})
		took = write(m, "fsync-server.bin", remote)
		t.Logf("FIGURE: %s: fsync of 2 MiB with --fsync server: %v", srv.Kind, took.Round(time.Millisecond))
		if got, err := os.ReadFile(srv.Path("fsync-server.bin")); err != nil || !bytes.Equal(got, remote) {
			t.Errorf("--fsync server: when fsync returned the server had %d bytes (%v), want %d", len(got), err, len(remote))
		}
	})
}

// TestRemountTakesOverTheQueue is `umount ~/cloud && mount ~/cloud` while
// the daemon still uploads its queue after the unmount: the new mount must
// work at once, taking the queue over (the old daemon stops its drain and
// ends), and every file must reach the server.
func TestRemountTakesOverTheQueue(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		m := mountServer(t, srv, MountOptions{Args: []string{"--writeback-delay=10m", "--transfers=1"}})
		files := makeQueuedFiles("handover", 800, 3)
		writeQueuedFiles(t, m, files)
		if out, err := exec.Command("fusermount3", "-u", m.Dir).CombinedOutput(); err != nil {
			t.Fatalf("fusermount3 -u: %v\n%s", err, out)
		}
		m.done = true
		if !m.daemonAlive() {
			t.Skipf("%s: the daemon uploaded all %d files before the new mount started", srv.Kind, len(files))
		}
		start := time.Now()
		m2 := m.MountAgain(t)
		t.Logf("FIGURE: %s: mount while the earlier daemon drained its queue: ready in %.2fs", srv.Kind, time.Since(start).Seconds())
		if !m.waitDaemonExit(30 * time.Second) {
			t.Errorf("the earlier daemon %d still runs after the new mount took its queue over", m.pid)
		}
		if !strings.Contains(tailFile(m2.LogFile, 200), "taking over the upload queue") {
			t.Errorf("the new mount's log does not say that it took the queue over:\n%s", tailFile(m2.LogFile, 20))
		}
		m2.Sync(t)
		checkServerFiles(t, srv, files)
	})
}

// TestTornStagingFileIsQuarantined is what a power cut can leave: a
// staging file whose bytes are not those its journal record committed
// (here changed by hand in the cache directory of a killed daemon). The
// next mount must not upload it: it is quarantined, `cloudmount status`
// names it and says why, and the other queued file is uploaded.
func TestTornStagingFileIsQuarantined(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		m := mountServer(t, srv, MountOptions{Args: []string{"--writeback-delay=10m"}})
		torn, whole := []byte("the content committed before the crash\n"), []byte("another file, intact\n")
		if err := os.WriteFile(m.Path("torn.txt"), torn, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(m.Path("whole.txt"), whole, 0o644); err != nil {
			t.Fatal(err)
		}
		m.Kill9(t)
		staged, _ := filepath.Glob(filepath.Join(m.CacheDir, "staging", "*"))
		found := ""
		for _, p := range staged {
			if data, err := os.ReadFile(p); err == nil && bytes.Equal(data, torn) {
				found = p
				data[4] ^= 0x20
				if err := os.WriteFile(p, data, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
		if found == "" {
			t.Fatalf("no staging file holds torn.txt's content among %v", staged)
		}
		m = m.MountAgain(t)
		m.Sync(t)
		wantServerFile(t, srv, "whole.txt", whole)
		if _, err := os.Stat(srv.Path("torn.txt")); err == nil {
			t.Errorf("torn.txt reached the server with bytes that were never committed")
		}
		st := m.Status(t)
		if len(st.Quarantined) != 1 || filepath.Base(st.Quarantined[0]) != filepath.Base(found) {
			t.Fatalf("status quarantined %v, want the staging file %s", st.Quarantined, filepath.Base(found))
		}
		out, _, err := m.ctl(30*time.Second, "status", m.Dir)
		if err != nil || !strings.Contains(out, "torn.txt") || !strings.Contains(out, "not what was committed") {
			t.Errorf("cloudmount status does not say which file was quarantined and why:\n%s", out)
		}
		if _, err := os.Stat(m.Path("torn.txt")); err == nil {
			t.Errorf("torn.txt is listed on the mount after its data was quarantined")
		}
	})
}
