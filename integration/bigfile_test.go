package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// maxDaemonRSS bounds the daemon's peak resident set whatever the file size.
const maxDaemonRSS = 150 << 20

// TestBigFile writes a 1 GiB file of pseudo-random data through the mount
// (hashing it while writing), checks the sha256 of the file on the server's
// disk, reads it back through a fresh mount, and checks that the daemons'
// peak RSS stayed under 150 MiB. It logs FIGURE lines with the times next
// to curl uploading and downloading the same file to the same server.
// With -short the file is 64 MiB.
func TestBigFile(t *testing.T) {
	curl := needTool(t, "curl")
	size := int64(1 << 30)
	if testing.Short() {
		size = 64 << 20
	}
	mib := float64(size) / (1 << 20)
	eachServer(t, func(t *testing.T, srv *Server) {
		m := mountServer(t, srv, MountOptions{})
		f, err := os.Create(m.Path("big.bin"))
		if err != nil {
			t.Fatal(err)
		}
		h := sha256.New()
		src := io.LimitReader(rand.NewChaCha8([32]byte{1, 2, 3}), size)
		start := time.Now()
		if _, err := io.CopyBuffer(io.MultiWriter(f, h), src, make([]byte, 1<<20)); err != nil {
			t.Fatalf("write through the mount: %v", err)
		}
		if err := f.Close(); err != nil {
			t.Fatalf("close after writing: %v", err)
		}
		wrote := time.Since(start)
		want := hex.EncodeToString(h.Sum(nil))
		t.Logf("FIGURE: %s: cloudmount write of %.0f MiB (until close returns): %.2fs, %.1f MiB/s", srv.Kind, mib, wrote.Seconds(), mib/wrote.Seconds())
		rss := m.PeakRSS(t)
		t.Logf("FIGURE: %s: daemon peak RSS while writing %.0f MiB: %.1f MiB", srv.Kind, mib, float64(rss)/(1<<20))
		if rss > maxDaemonRSS {
			t.Errorf("daemon peak RSS while writing: %d MiB, want under %d MiB", rss>>20, maxDaemonRSS>>20)
		}

		eventually(t, 5*time.Minute, func() error {
			fi, err := os.Stat(srv.Path("big.bin"))
			if err != nil || fi.Size() != size {
				return fmt.Errorf("server file: %v (size %v)", err, fi)
			}
			return nil
		})
		if got, err := sha256File(srv.Path("big.bin")); err != nil || got != want {
			t.Fatalf("sha256 of the file on the server's disk: %s %v, want %s", got, err, want)
		}

		// Read back through a fresh mount with an empty cache, so that the
		// data comes from the server.
		m.Unmount(t, "cloudmount")
		m = mountServer(t, srv, MountOptions{})
		start = time.Now()
		got, err := sha256File(m.Path("big.bin"))
		read := time.Since(start)
		if err != nil || got != want {
			t.Fatalf("sha256 read back through the mount: %s %v, want %s", got, err, want)
		}
		t.Logf("FIGURE: %s: cloudmount read of %.0f MiB (fresh mount, empty cache): %.2fs, %.1f MiB/s", srv.Kind, mib, read.Seconds(), mib/read.Seconds())
		rss = m.PeakRSS(t)
		t.Logf("FIGURE: %s: daemon peak RSS while reading %.0f MiB: %.1f MiB", srv.Kind, mib, float64(rss)/(1<<20))
		if rss > maxDaemonRSS {
			t.Errorf("daemon peak RSS while reading: %d MiB, want under %d MiB", rss>>20, maxDaemonRSS>>20)
		}

		// curl on the same file and server, for comparison.
		up := curlTimed(t, curl, srv, "-T", srv.Path("big.bin"), srv.URLOf("big-curl.bin"))
		t.Logf("FIGURE: %s: curl upload of %.0f MiB: %.2fs, %.1f MiB/s", srv.Kind, mib, up.Seconds(), mib/up.Seconds())
		h.Reset()
		down := curlTimed(t, curl, srv, h, srv.URLOf("big.bin"))
		if got := hex.EncodeToString(h.Sum(nil)); got != want {
			t.Errorf("sha256 of curl's download: %s, want %s", got, want)
		}
		t.Logf("FIGURE: %s: curl download of %.0f MiB: %.2fs, %.1f MiB/s", srv.Kind, mib, down.Seconds(), mib/down.Seconds())
		_ = os.Remove(srv.Path("big-curl.bin"))
	})
}

// curlTimed runs curl with the server's credentials (given on stdin, not
// argv) and returns how long it took. An io.Writer among args receives the
// response body.
func curlTimed(t *testing.T, curl string, srv *Server, args ...any) time.Duration {
	t.Helper()
	argv := []string{"-sS", "--fail", "-K", "-"}
	cmd := exec.Command(curl)
	for _, a := range args {
		switch a := a.(type) {
		case string:
			argv = append(argv, a)
		case io.Writer:
			cmd.Stdout = a
		}
	}
	if cmd.Stdout == nil {
		argv = append(argv, "-o", "/dev/null")
	}
	cmd.Args = append(cmd.Args, argv...)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("user = \"%s:%s\"\n", srv.User, srv.Password))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl %s: %v\n%s", strings.Join(argv, " "), err, stderr.String())
	}
	return time.Since(start)
}
