package integration

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"testing"
	"time"
)

// testSFTPLeftovers kills the daemon (kill -9) while it uploads a file
// through the throttled fault proxy, which leaves the upload's temporary
// file on the server. The next mount with the same cache directory never
// shows it (not listed, not found by name), uploads the file again from
// the journal, and a listing removes the leftover once it is older than
// --leftover-age (a few seconds here, the default is a day). A second
// mount with that short age, listing the directory all through another
// mount's upload that lasts longer than the age, removes nothing of it.
func testSFTPLeftovers(t *testing.T, e *sftpEnv) {
	const age = 4 * time.Second
	ageArgs := []string{"--leftover-age", age.String(), "--dir-cache-time", "1s"}
	proxy := startFaultProxy(t, fmt.Sprintf("127.0.0.1:%d", e.SSHD.Port))
	tmp := t.TempDir()

	t.Run("killed mid-upload", func(t *testing.T) {
		srv := e.server(t)
		m := mountSFTP(t, e, srv, sftpMountOptions{Port: proxy.Port, Args: ageArgs})
		data := uploadInProgress(t, m, proxy, tmp, "big.bin", 7)
		var left []string
		eventually(t, 30*time.Second, func() error {
			if left = uploadTemps(t, srv); len(left) == 0 {
				return errors.New("no temporary upload file on the server")
			}
			return nil
		})
		m.Kill9(t)
		killed := time.Now()
		proxy.Throttle(0)
		t.Logf("left on the server by the killed daemon: %q", left)

		m2 := mountSFTP(t, e, srv, sftpMountOptions{Port: proxy.Port, Args: ageArgs, Dir: m.Dir, CacheDir: m.CacheDir})
		for _, n := range readDirNames(t, m2.Dir) {
			if sftpHidden(n) {
				t.Errorf("the mount lists %s", n)
			}
		}
		for _, l := range left {
			if _, err := os.Lstat(m2.Path(l)); !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("lstat %s on the mount: %v, want ENOENT", l, err)
			}
		}
		if time.Since(killed) < age-time.Second {
			for _, l := range left {
				if _, err := os.Lstat(srv.Path(l)); err != nil {
					t.Errorf("%s went from the server before it was %v old: %v", l, age, err)
				}
			}
		}
		eventually(t, age+30*time.Second, func() error {
			if _, err := os.ReadDir(m2.Dir); err != nil {
				return err
			}
			for _, l := range left {
				if _, err := os.Lstat(srv.Path(l)); err == nil {
					return fmt.Errorf("%s is still on the server %v after the kill", l, time.Since(killed).Round(time.Second))
				}
			}
			return nil
		})
		t.Logf("FIGURE: the leftover was gone %.1fs after the kill (--leftover-age %v)", time.Since(killed).Seconds(), age)
		m2.Sync(t)
		wantFile(t, srv.Path("big.bin"), data)
		if b, _ := os.ReadFile(m2.LogFile); !strings.Contains(string(b), "removed the temporary file") {
			t.Errorf("the daemon's log does not tell of the removal:\n%s", tailFile(m2.LogFile, 20))
		}
	})

	t.Run("another mount's upload", func(t *testing.T) {
		srv := e.server(t)
		writer := mountSFTP(t, e, srv, sftpMountOptions{Port: proxy.Port})
		lister := mountSFTP(t, e, srv, sftpMountOptions{Args: ageArgs})
		start := time.Now()
		data := uploadInProgress(t, writer, proxy, tmp, "slow.bin", 8)
		lists := 0
		eventually(t, 2*time.Minute, func() error {
			if _, err := os.ReadDir(lister.Dir); err != nil {
				return err
			}
			lists++
			if fi, err := os.Stat(srv.Path("slow.bin")); err != nil || fi.Size() != int64(len(data)) {
				return errors.New("the upload is still running")
			}
			return nil
		})
		took := time.Since(start)
		t.Logf("the other mount listed the directory %d times during an upload of %.1fs", lists, took.Seconds())
		if took < age+2*time.Second {
			t.Logf("NOTE: the upload took %v, not much longer than the age %v", took, age)
		}
		writer.Sync(t)
		wantFile(t, srv.Path("slow.bin"), data)
		if b, _ := os.ReadFile(lister.LogFile); strings.Contains(string(b), "removed the temporary file") {
			t.Errorf("the listing mount removed a temporary file of a running upload:\n%s", tailFile(lister.LogFile, 20))
		}
		if st := writer.Status(t); len(st.Failed) > 0 {
			t.Errorf("the writer's status lists failed uploads:\n%s", st)
		}
	})
}

// uploadTemps lists the temporary upload files in srv's directory.
func uploadTemps(t testing.TB, srv *Server) []string {
	t.Helper()
	var out []string
	for _, n := range readDirNames(t, srv.Dir) {
		if strings.HasPrefix(n, ".cloudmount-upload-") {
			out = append(out, n)
		}
	}
	return out
}
