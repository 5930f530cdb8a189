//go:build bench

package integration

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"
)

// benchWorkload is one of the workloads of issue 5.
type benchWorkload struct {
	name string
	run  func(r *benchRun) error
	// limits says whether the direct clients (curl, sftp) take part.
	curl, sftp bool
}

// supports reports whether the workload runs on sys.
func (w benchWorkload) supports(sys *benchSystem) bool {
	if sys.workloads != nil && !slices.Contains(sys.workloads, w.name) {
		return false
	}
	switch sys.kind {
	case kindCurl:
		return w.curl
	case kindSFTP:
		return w.sftp
	}
	return true
}

var benchWorkloads = []benchWorkload{
	{name: "write", run: benchWrite, curl: true, sftp: true},
	{name: "read", run: benchRead, curl: true, sftp: true},
	{name: "small", run: benchSmall, curl: true, sftp: true},
	{name: "ls", run: benchList, curl: true, sftp: true},
	{name: "rsync", run: benchRsync, sftp: true},
}

// benchWorkloadNames are the names BENCH_WORKLOADS accepts.
var benchWorkloadNames = []string{"write", "read", "small", "ls", "rsync"}

// serverTimeoutBench is how long a workload waits for the server to have
// everything the mount was given.
const serverTimeoutBench = 30 * time.Minute

// benchWrite is workload 1: write one big file, and measure the time until
// close returns and until the server's disk holds all of it.
func benchWrite(r *benchRun) error {
	size := r.env.cfg.Sizes.BigFile
	name := r.name(".bin")
	onServer := r.serverPath(name)
	switch r.sys.kind {
	case kindCurl:
		d, err := curlUpload(r.sys.web, r.env.fx.bigSrc, name)
		if err != nil {
			return err
		}
		r.record("write.server", d.Seconds())
		return checkSize(onServer, size)
	case kindSFTP:
		d, err := timed(func() error { return scp(r.sys.ssh, r.env.fx.bigSrc, r.sys.ssh.Host+":"+onServer) })
		if err != nil {
			return err
		}
		r.record("write.server", d.Seconds())
		return checkSize(onServer, size)
	}
	m, err := r.mount("")
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	_, _ = rand.NewChaCha8([32]byte{9}).Read(buf)
	start := time.Now()
	f, err := os.Create(filepath.Join(m.Dir, name))
	if err != nil {
		return err
	}
	for n := int64(0); n < size; n += int64(len(buf)) {
		if _, err := f.Write(buf[:min(int64(len(buf)), size-n)]); err != nil {
			f.Close()
			return fmt.Errorf("write: %w", err)
		}
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close: %w", err)
	}
	r.record("write.close", time.Since(start).Seconds())
	if r.sys.kind == kindMount {
		d, err := waitUntil(start, serverTimeoutBench, 20*time.Millisecond, func() (bool, error) {
			fi, err := os.Stat(onServer)
			return err == nil && fi.Size() == size, err
		})
		if err != nil {
			return fmt.Errorf("server copy: %w", err)
		}
		r.record("write.server", d.Seconds())
	}
	return r.unmount(m)
}

// benchRead is workload 2: read the big file through a fresh mount with an
// empty cache after dropping the page cache (cold), then again (warm).
func benchRead(r *benchRun) error {
	size := r.env.cfg.Sizes.BigFile
	var read func() error
	var m *benchMount
	switch r.sys.kind {
	case kindCurl:
		read = func() error { return curlDownload(r.sys.web, benchReadName) }
	case kindSFTP:
		read = func() error {
			return scp(r.sys.ssh, r.sys.ssh.Host+":"+filepath.Join(r.sys.dir, benchReadName), "/dev/null")
		}
	default:
		var err error
		if m, err = r.mount(""); err != nil {
			return err
		}
		read = func() error {
			n, err := readFile(filepath.Join(m.Dir, benchReadName))
			if err == nil && n != size {
				err = fmt.Errorf("read %d bytes, want %d", n, size)
			}
			return err
		}
	}
	_ = dropCaches()
	for _, metric := range []string{"read.cold", "read.warm"} {
		d, err := timed(read)
		if err != nil {
			return fmt.Errorf("%s: %w", metric, err)
		}
		r.record(metric, d.Seconds())
	}
	if m != nil {
		return r.unmount(m)
	}
	return nil
}

// readFile reads a file sequentially in 1 MiB requests and returns its length.
func readFile(name string) (int64, error) {
	f, err := os.Open(name)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return io.CopyBuffer(io.Discard, struct{ io.Reader }{f}, make([]byte, 1<<20))
}

// benchSmall is workload 3: untar many small files in a few directories;
// the time until tar has closed the last file, and until the server's disk
// has them all.
func benchSmall(r *benchRun) error {
	sz := r.env.cfg.Sizes
	dst := r.name("")
	onServer := r.serverPath(dst)
	switch r.sys.kind {
	case kindCurl:
		d, err := timed(func() error { return curlSmallFiles(r.sys.web, r.env.fx, dst, sz.SmallDirs) })
		if err != nil {
			return err
		}
		r.record("small.server", d.Seconds())
		return checkSmall(onServer, sz)
	case kindSFTP:
		d, err := timed(func() error { return sftpSmallFiles(r.sys.ssh, r.env.fx, onServer, sz.SmallDirs) })
		if err != nil {
			return err
		}
		r.record("small.server", d.Seconds())
		return checkSmall(onServer, sz)
	}
	m, err := r.mount("")
	if err != nil {
		return err
	}
	target := filepath.Join(m.Dir, dst)
	if err := os.Mkdir(target, 0o755); err != nil {
		return err
	}
	start := time.Now()
	// As a user would untar: no chown of every file (tar does that as root).
	if out, err := runCmd("", serverTimeoutBench, "tar", "--no-same-owner", "-xf", r.env.fx.smallTar, "-C", target); err != nil {
		return fmt.Errorf("tar: %v\n%s", err, out)
	}
	r.record("small.close", time.Since(start).Seconds())
	if r.sys.grid != nil {
		d, err := waitGrid(m, start, func() error { return gridSmall(r.sys.grid, dst, sz) })
		if err != nil {
			return fmt.Errorf("grid copies: %w", err)
		}
		r.record("small.server", d.Seconds())
	} else if r.sys.kind == kindMount {
		d, err := waitUntil(start, serverTimeoutBench, 100*time.Millisecond, func() (bool, error) {
			err := checkSmall(onServer, sz)
			return err == nil, err
		})
		if err != nil {
			return fmt.Errorf("server copies: %w", err)
		}
		r.record("small.server", d.Seconds())
	}
	return r.unmount(m)
}

// checkSmall checks that dir on the server's disk has all the small files
// at their full size.
func checkSmall(dir string, sz benchSizes) error {
	n := 0
	for i := 0; i < sz.SmallDirs; i++ {
		ents, err := os.ReadDir(filepath.Join(dir, fmt.Sprintf("d%02d", i)))
		if err != nil {
			continue
		}
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") || !e.Type().IsRegular() {
				continue
			}
			if fi, err := e.Info(); err == nil && fi.Size() == int64(sz.SmallSize) {
				n++
			}
		}
	}
	if n != sz.SmallFiles {
		return fmt.Errorf("server has %d of %d small files", n, sz.SmallFiles)
	}
	return nil
}

// checkSize checks the size of a file on the server's disk.
func checkSize(name string, size int64) error {
	fi, err := os.Stat(name)
	if err != nil {
		return err
	}
	if fi.Size() != size {
		return fmt.Errorf("%s has %d bytes, want %d", name, fi.Size(), size)
	}
	return nil
}

// benchList is workload 4: ls -lR, then find | wc -l, over the tree
// prepared on the server, each cold (fresh mount, empty cache, page cache
// dropped) and warm (right after).
func benchList(r *benchRun) error {
	want := r.env.fx.listFiles
	switch r.sys.kind {
	case kindCurl, kindSFTP:
		list := func() error { return curlPropfinds(r.sys.web, r.env.fx) }
		if r.sys.kind == kindSFTP {
			list = func() error { return sftpListings(r.sys.ssh, r.sys.dir, r.env.fx) }
		}
		_ = dropCaches()
		for _, metric := range []string{"ls.cold", "ls.warm"} {
			d, err := timed(list)
			if err != nil {
				return fmt.Errorf("%s: %w", metric, err)
			}
			r.record(metric, d.Seconds())
		}
		return nil
	}
	for _, c := range []struct {
		cold, warm string
		cmd        []string
		count      func(out string) int
	}{
		{"ls.cold", "ls.warm", []string{"ls", "-lR"}, countLsFiles},
		{"find.cold", "find.warm", []string{"bash", "-c", "find . -type f | wc -l"}, atoi},
	} {
		m, err := r.mount("")
		if err != nil {
			return err
		}
		dir := filepath.Join(m.Dir, benchListName)
		_ = dropCaches()
		for _, metric := range []string{c.cold, c.warm} {
			var out string
			d, err := timed(func() error {
				var err error
				out, err = runListing(dir, c.cmd)
				return err
			})
			if err != nil {
				return fmt.Errorf("%s: %v\n%s", metric, err, clipString(out))
			}
			if n := c.count(out); n != want {
				return fmt.Errorf("%s: %s saw %d files, want %d", metric, strings.Join(c.cmd, " "), n, want)
			}
			r.record(metric, d.Seconds())
		}
		if err := r.unmount(m); err != nil {
			return err
		}
	}
	return nil
}

// countLsFiles counts the regular files in the output of ls -lR.
func countLsFiles(out string) int {
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "-") {
			n++
		}
	}
	return n
}

func atoi(s string) int {
	var n int
	_, _ = fmt.Sscan(strings.TrimSpace(s), &n)
	return n
}

func clipString(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}

// timed runs fn and returns how long it took.
func timed(fn func() error) (time.Duration, error) {
	start := time.Now()
	err := fn()
	return time.Since(start), err
}
