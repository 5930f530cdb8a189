package integration

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// tahoeTimeout is the --timeout of the fault mount: every operation must
// come back within it and a margin.
const tahoeTimeout = 5 * time.Second

// testTahoeFaults takes storage nodes away under a mount (--timeout 5s)
// whose directory listings are cached and whose files were never read.
// Stopped nodes (the process ends; connections are refused):
//   - one of three down: files never read still read (2 of 3 shares
//     suffice);
//   - two down: a file never read fails with EIO within the timeout and a
//     margin, never hanging; a new file and an overwrite still succeed and
//     wait in the queue (`cloudmount status` counts them);
//   - both back: `cloudmount sync` exits 0, the grid has the bytes, and
//     the file that failed reads.
//
// Then two frozen nodes (SIGSTOP: connections stay open, nothing
// answers, as a hung server): the same reads, listings and writes must
// come back within the timeout and the margin, and once the nodes go on,
// `cloudmount sync` finishes. The daemon's log and status never show a
// capability, whatever the errors.
func testTahoeFaults(t *testing.T, g *tahoeGrid) {
	d := g.newDir(t)
	cold := map[string][]byte{}
	for i := 0; i < 7; i++ {
		// Over 55 bytes: a LIT cap would hold the data itself, with no
		// shares to lose.
		rel := fmt.Sprintf("cold/f%d.bin", i)
		cold[rel] = randomBytes(200<<10+i, uint64(100+i))
		d.WriteFile(t, rel, cold[rel])
	}
	m := mountTahoe(t, d, tahoeMountOptions{Args: []string{"--timeout", tahoeTimeout.String()}})
	// The listings and the sizes are cached (a new name needs its
	// directory listed, as for TestOfflineWrites); no file content is.
	readDirNames(t, m.Dir)
	if names := readDirNames(t, m.Path("cold")); len(names) != len(cold) {
		t.Fatalf("ls cold: %q, want %d files", names, len(cold))
	}
	for rel, data := range cold {
		if fi, err := os.Stat(m.Path(rel)); err != nil || fi.Size() != int64(len(data)) {
			t.Fatalf("stat %s: %v %v, want size %d", rel, fi, err, len(data))
		}
	}
	// The grid is shared: whatever happens here, the nodes run again for
	// the tests after this one.
	stopped := map[int]bool{}
	t.Cleanup(func() {
		for i := range stopped {
			if !g.Storage[i].running() {
				g.StartStorage(t, i)
			}
		}
	})
	stop := func(i int) {
		stopped[i] = true
		g.StopStorage(t, i)
		t.Logf("stopped storage node %s (the client sees %d of %d)", g.Storage[i].Name, g.storageRunning(), tahoeStores)
	}
	limit := tahoeTimeout + 5*time.Second
	noCaps := func(when string) {
		t.Helper()
		if leaks := capLeaks(m.Status(t).String(), d.cap); len(leaks) > 0 {
			t.Errorf("cloudmount status --json %s shows a capability: %s", when, strings.Join(leaks, "; "))
		}
	}

	stop(0)
	res := boundedRun(t, m, limit, "cat", m.Path("cold/f0.bin"))
	if res.err != nil || !bytes.Equal([]byte(res.out), cold["cold/f0.bin"]) {
		t.Errorf("with 1 of 3 storage nodes down, cat cold/f0.bin (never read): %v after %.1fs, %d bytes, want the %d bytes on the grid",
			res.err, res.took.Seconds(), len(res.out), len(cold["cold/f0.bin"]))
	}

	stop(1)
	wantEIO(t, m, limit, "cold/f1.bin", "with 2 of 3 storage nodes down")
	queued := map[string][]byte{
		"queued.txt":  []byte("written while two storage nodes are down\n"),
		"cold/f2.bin": randomBytes(150<<10, 77),
	}
	writeQueued(t, m, limit, queued, "with 2 of 3 storage nodes down")
	noCaps("with 2 of 3 storage nodes down")

	begin := time.Now()
	g.StartStorage(t, 1)
	g.StartStorage(t, 0)
	t.Logf("FIGURE: tahoe faults: the client node was connected to 3 storage nodes again %.1fs after they started", time.Since(begin).Seconds())
	took := m.Sync(t)
	t.Logf("FIGURE: tahoe faults: cloudmount sync after the nodes came back: %.1fs", took.Seconds())
	wantGrid(t, d, queued, "after the sync")
	wantReadsAgain(t, m, "cold/f1.bin", cold["cold/f1.bin"], "with the nodes back")
	if st := m.Status(t); st.QueuedFiles != 0 || len(st.Failed) != 0 {
		t.Errorf("after the sync, status shows queued or failed uploads: %s", st)
	}

	t.Run("frozen nodes", func(t *testing.T) {
		readDirNames(t, m.Dir)
		readDirNames(t, m.Path("cold"))
		g.FreezeStorage(t, 1)
		g.FreezeStorage(t, 2)
		frozen := time.Now()
		t.Logf("froze storage nodes %s and %s (SIGSTOP)", g.Storage[1].Name, g.Storage[2].Name)
		// Writes first: the client node still counts the frozen nodes as
		// connected, so the uploads hang on them (the client node gives up
		// on a silent server after about a minute).
		more := map[string][]byte{
			"frozen.txt":  []byte("written while two storage nodes hang\n"),
			"cold/f5.bin": randomBytes(120<<10, 78),
		}
		writeQueued(t, m, limit, more, "with 2 of 3 storage nodes frozen")
		res := boundedRun(t, m, limit, "ls", "-l", m.Path("cold"))
		t.Logf("with 2 of 3 storage nodes frozen: ls -l cold: %v after %.1fs", res.err, res.took.Seconds())
		wantEIO(t, m, limit, "cold/f4.bin", "with 2 of 3 storage nodes frozen")
		noCaps("with 2 of 3 storage nodes frozen")
		// Let the deadlines in flight pass before the nodes go on.
		if d := time.Until(frozen.Add(tahoeTimeout + time.Second)); d > 0 {
			time.Sleep(d)
		}
		g.ThawStorage(t, 1)
		g.ThawStorage(t, 2)
		if err := g.waitConnected(tahoeStores, time.Minute); err != nil {
			t.Fatal(err)
		}
		took := m.Sync(t)
		t.Logf("FIGURE: tahoe faults: cloudmount sync after frozen nodes went on: %.1fs", took.Seconds())
		wantGrid(t, d, more, "after the frozen nodes went on and the sync")
		wantReadsAgain(t, m, "cold/f4.bin", cold["cold/f4.bin"], "with the nodes going on again")
	})

	m.Unmount(t, "cloudmount")
	if log, err := os.ReadFile(m.LogFile); err == nil {
		if leaks := capLeaks(string(log), d.cap); len(leaks) > 0 {
			t.Errorf("the daemon log of the fault mount shows a capability: %s", strings.Join(leaks, "; "))
		}
	}
}

// wantEIO reads rel (never read before) through the mount: it must fail
// with EIO within limit.
func wantEIO(t *testing.T, m *Mount, limit time.Duration, rel, when string) {
	t.Helper()
	res := boundedRun(t, m, limit, "cat", m.Path(rel))
	t.Logf("%s, cat %s (never read): %v after %.1fs: %s", when, rel, res.err, res.took.Seconds(), firstLine(res.out))
	switch {
	case res.err == nil:
		t.Errorf("%s, cat of a file never read succeeds (%d bytes), want EIO", when, len(res.out))
	case !strings.Contains(res.out, "Input/output error"):
		t.Errorf("%s, cat of a file never read fails with %q, want \"Input/output error\" (EIO)", when, strings.TrimSpace(res.out))
	}
}

// wantReadsAgain reads rel, which failed before, through the mount: it
// must come back within a minute with the bytes on the grid.
func wantReadsAgain(t *testing.T, m *Mount, rel string, want []byte, when string) {
	t.Helper()
	res := withinLimit(t, m, 60*time.Second, "cat", m.Path(rel))
	if res.err != nil || !bytes.Equal([]byte(res.out), want) {
		t.Errorf("%s, cat %s (failed before): %v, %d bytes, want the %d bytes on the grid",
			when, rel, res.err, len(res.out), len(want))
	}
}

// tahoeHangLimit bounds how long boundedRun waits for a command that
// overran its limit, to measure how long it really takes.
const tahoeHangLimit = 2 * time.Minute

// boundedRun runs a command on the mount. One that takes longer than limit
// fails the test (a hang), but is waited for up to tahoeHangLimit so that
// the failure says how long it really took and the test goes on to its
// other checks; after that it is killed and the test stops.
func boundedRun(t *testing.T, m *Mount, limit time.Duration, name string, args ...string) cmdResult {
	t.Helper()
	w := startWatched(t, name, args...)
	if res, ok := w.wait(limit); ok {
		return res
	}
	if res, ok := w.wait(tahoeHangLimit - limit); ok {
		t.Errorf("%s %s hangs: it came back after %.1fs (%v), want within %v (--timeout %v and a margin)",
			name, strings.Join(args, " "), res.took.Seconds(), res.err, limit, tahoeTimeout)
		return res
	}
	t.Errorf("%s %s hangs: no answer after %v (--timeout %v); killing it", name, strings.Join(args, " "), tahoeHangLimit, tahoeTimeout)
	if err := abortFUSE(m.Dir); err != nil {
		t.Logf("abort the FUSE connection: %v", err)
	}
	_ = w.cmd.Process.Kill()
	w.wait(10 * time.Second)
	t.FailNow()
	return cmdResult{}
}

// writeQueued writes files through the mount, each of which must be
// closed within limit, and checks that they wait in the queue: `cloudmount
// status` counts them (JSON and text) and the grid does not have them.
func writeQueued(t *testing.T, m *Mount, limit time.Duration, files map[string][]byte, when string) {
	t.Helper()
	for rel, data := range files {
		done := make(chan error, 1)
		start := time.Now()
		go func() { done <- writeClose(m.Path(rel), data) }()
		var err error
		select {
		case err = <-done:
		case <-time.After(limit):
			select {
			case err = <-done:
				t.Errorf("%s, writing %s hangs: it came back after %.1fs, want within %v", when, rel, time.Since(start).Seconds(), limit)
			case <-time.After(tahoeHangLimit - limit):
				t.Errorf("%s, writing %s hangs: no answer after %v", when, rel, tahoeHangLimit)
				_ = abortFUSE(m.Dir)
				t.FailNow()
			}
		}
		if err != nil {
			t.Errorf("%s, writing %s fails after %.1fs: %v (want it queued)", when, rel, time.Since(start).Seconds(), err)
		}
	}
	// Past --writeback-delay (2 s) and a first try: the uploads cannot
	// place their shares and stay queued.
	time.Sleep(tahoeTimeout + 3*time.Second)
	st := m.Status(t)
	t.Logf("status %s: online %v, %d queued, %d failed, last error %q", when, st.Online, st.QueuedFiles, len(st.Failed), st.LastError)
	if st.QueuedFiles < len(files) {
		t.Errorf("%s, status shows %d queued files, want the %d written: %s", when, st.QueuedFiles, len(files), st)
	}
	for _, f := range st.Failed {
		if f.Permanent {
			t.Errorf("%s, the upload of %s failed for good (%s); want it retried", when, f.Path, f.LastError)
		}
	}
	if text, _, err := m.ctl(30*time.Second, "status", m.Dir); err != nil || !strings.Contains(strings.ToLower(text), "queued") {
		t.Errorf("cloudmount status (text) %s does not mention the queue (%v):\n%s", when, err, text)
	}
}

// wantGrid checks that the grid has each file with its bytes.
func wantGrid(t *testing.T, d *tahoeDir, files map[string][]byte, when string) {
	t.Helper()
	for rel, want := range files {
		if got, err := d.ReadFile(rel); err != nil || !bytes.Equal(got, want) {
			t.Errorf("grid %s: %s is %d bytes %q (%v), want %d bytes %q", when, rel, len(got), clip(got), err, len(want), clip(want))
		}
	}
}

// firstLine is the first line of s, for logs.
func firstLine(s string) string {
	l, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return l
}
