package integration

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// sftpTimeout is the --timeout of the dead-link mount: every operation
// must come back within it and a margin.
const sftpTimeout = 5 * time.Second

// testSFTPDeadLink mounts through the fault proxy with --timeout 5s and
// breaks the link while an upload of a few MiB runs:
//   - blackholed (nothing passes, nothing is closed): ls, stat and cat of
//     files never read, cat of a file read before, and writing a new file
//     each come back within the timeout and 5 s, with an error or with the
//     right data, never hanging; once the link is back, `cloudmount sync`
//     finishes and the server has every byte;
//   - every connection reset while an upload runs: the same;
//   - sshd killed (with its session processes) while an upload runs and
//     started again on the same port: the same.
func testSFTPDeadLink(t *testing.T, e *sftpEnv) {
	srv := e.server(t)
	warm := []byte("read once before the link dies\n")
	srv.WriteFile(t, "warm.txt", warm, time.Time{})
	cold := map[string][]byte{}
	for i := 0; i < 3; i++ {
		rel := fmt.Sprintf("cold/f%d.txt", i)
		cold[rel] = bytes.Repeat([]byte(fmt.Sprintf("never read before the link dies %d\n", i)), 1000)
		srv.WriteFile(t, rel, cold[rel], time.Time{})
	}
	proxy := startFaultProxy(t, fmt.Sprintf("127.0.0.1:%d", e.SSHD.Port))
	m := mountSFTP(t, e, srv, sftpMountOptions{Port: proxy.Port, Args: []string{"--timeout", sftpTimeout.String()}})
	wantFile(t, m.Path("warm.txt"), warm)
	tmp := t.TempDir()

	for round := 0; round < sftpSoak(); round++ {
		t.Run(fmt.Sprintf("blackhole %d", round), func(t *testing.T) {
			name := fmt.Sprintf("big-%d.bin", round)
			big := uploadInProgress(t, m, proxy, tmp, name, int64(round))
			proxy.Blackhole()
			dead := time.Now()
			limit := sftpTimeout + 5*time.Second
			if round == 0 {
				deadOps(t, m, limit, warm, cold, fmt.Sprintf("offline-%d.txt", round))
			}
			// Let every deadline in flight pass before the link heals.
			if d := time.Until(dead.Add(sftpTimeout + time.Second)); d > 0 {
				time.Sleep(d)
			}
			proxy.Resume()
			syncAfterFault(t, m, srv, proxy, name, big)
			if round == 0 {
				wantServerFile(t, srv, "offline-0.txt", []byte("written while the link is dead\n"))
				for rel, want := range cold {
					wantFile(t, m.Path(rel), want)
				}
			}
		})
	}

	t.Run("connections reset", func(t *testing.T) {
		big := uploadInProgress(t, m, proxy, tmp, "reset.bin", 100)
		name := "reset.bin"
		if n := proxy.Cut(); n == 0 {
			t.Fatalf("the proxy had no connection to reset")
		}
		syncAfterFault(t, m, srv, proxy, name, big)
	})

	t.Run("sshd killed", func(t *testing.T) {
		big := uploadInProgress(t, m, proxy, tmp, "killed.bin", 200)
		name := "killed.bin"
		pid := e.SSHD.PID()
		e.SSHD.Kill(t)
		t.Logf("killed sshd %d and its sessions during the upload; starting it again on port %d", pid, e.SSHD.Port)
		time.Sleep(2 * time.Second)
		e.SSHD.Restart(t)
		syncAfterFault(t, m, srv, proxy, name, big)
		st := m.Status(t)
		if len(st.Failed) > 0 {
			t.Errorf("after the sync, status lists failed uploads:\n%s", st)
		}
	})

	if names := readDirNames(t, srv.Dir); len(names) > 0 {
		var left []string
		for _, n := range names {
			if strings.HasPrefix(n, ".cloudmount-") {
				left = append(left, n)
			}
		}
		if len(left) > 0 {
			t.Logf("NOTE: the server's directory keeps temporary files of uploads that were cut off: %q", left)
		}
	}
}

// uploadInProgress copies a file of 12 MiB of random bytes onto the mount
// (files of 8 MiB and more are uploaded at once), with the proxy limited
// to 2 MiB/s, and returns once the upload has sent its first MiB through
// the proxy. It returns the file's bytes.
func uploadInProgress(t *testing.T, m *Mount, proxy *faultProxy, tmp, name string, seed int64) []byte {
	t.Helper()
	data := make([]byte, 12<<20)
	rng := rand.New(rand.NewPCG(uint64(seed), 99))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	src := filepath.Join(tmp, name)
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	proxy.Throttle(2 << 20)
	t.Cleanup(func() { proxy.Throttle(0) })
	sent := proxy.Sent()
	if res := withinLimit(t, m, 30*time.Second, "cp", src, m.Path(name)); res.err != nil {
		t.Fatalf("cp %s onto the mount: %v\n%s", name, res.err, res.out)
	}
	eventually(t, 60*time.Second, func() error {
		if got := proxy.Sent() - sent; got < 1<<20 {
			return fmt.Errorf("the upload of %s has sent %d bytes through the proxy, want 1 MiB before the fault", name, got)
		}
		return nil
	})
	return data
}

// syncAfterFault lifts the proxy's throttle and runs `cloudmount sync`,
// which must finish, and checks that the server has name with data.
func syncAfterFault(t *testing.T, m *Mount, srv *Server, proxy *faultProxy, name string, data []byte) {
	t.Helper()
	proxy.Throttle(0)
	d := m.Sync(t)
	t.Logf("FIGURE: cloudmount sync after the fault: %.1fs", d.Seconds())
	got, err := os.ReadFile(srv.Path(name))
	if err != nil {
		t.Fatalf("server: %v", err)
	}
	if !bytes.Equal(got, data) {
		t.Fatalf("server has %s with %d bytes, not the %d bytes copied onto the mount", name, len(got), len(data))
	}
}

// deadOps runs what a user does while the link is dead, each with a
// watchdog: every command must come back within limit.
func deadOps(t *testing.T, m *Mount, limit time.Duration, warm []byte, cold map[string][]byte, offline string) {
	t.Helper()
	for _, op := range []struct {
		name string
		args []string
		want []byte // the output when the command succeeds; nil: anything
		must bool   // the command must succeed
	}{
		{"ls -l cold/", []string{"ls", "-l", m.Path("cold")}, nil, false},
		{"stat cold/f0.txt", []string{"stat", m.Path("cold/f0.txt")}, nil, false},
		{"cat cold/f1.txt", []string{"cat", m.Path("cold/f1.txt")}, cold["cold/f1.txt"], false},
		{"cat warm.txt (read before)", []string{"cat", m.Path("warm.txt")}, warm, false},
		{"ls -l of the root", []string{"ls", "-l", m.Dir}, nil, false},
		{"write a new file", []string{"sh", "-c", "echo 'written while the link is dead' > " + shellQuote(m.Path(offline))}, []byte{}, true},
		{"cat cold/f2.txt", []string{"cat", m.Path("cold/f2.txt")}, cold["cold/f2.txt"], false},
	} {
		res := withinLimit(t, m, limit, op.args[0], op.args[1:]...)
		first, _, _ := strings.Cut(strings.TrimSpace(res.out), "\n")
		t.Logf("while the link is dead: %s: %v after %.1fs: %s", op.name, res.err, res.took.Seconds(), first)
		switch {
		case res.err != nil && op.must:
			t.Errorf("%s while the link is dead fails (%.1fs): %v\n%s", op.name, res.took.Seconds(), res.err, res.out)
		case res.err == nil && op.want != nil && !bytes.Equal([]byte(res.out), op.want):
			t.Errorf("%s while the link is dead succeeds with the wrong data: %q, want %q", op.name, clip([]byte(res.out)), clip(op.want))
		}
	}
}

// withinLimit runs a command on the mount with a watchdog: if it does not
// come back within limit, the test fails, and the FUSE connection is
// aborted so that the command (stuck in the kernel) ends.
func withinLimit(t *testing.T, m *Mount, limit time.Duration, name string, args ...string) cmdResult {
	t.Helper()
	w := startWatched(t, name, args...)
	if res, ok := w.wait(limit); ok {
		return res
	}
	t.Errorf("%s %s hangs: no answer after %v (--timeout %v); aborting the FUSE connection", name, strings.Join(args, " "), limit, sftpTimeout)
	if err := abortFUSE(m.Dir); err != nil {
		t.Errorf("abort: %v", err)
	}
	if _, ok := w.wait(10 * time.Second); !ok {
		_ = w.cmd.Process.Kill()
	}
	t.FailNow()
	return cmdResult{}
}
