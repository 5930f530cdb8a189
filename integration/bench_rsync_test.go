//go:build bench

package integration

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// benchRsync is workload 5: rsync -a backups of a tree of mixed files: the
// first run, a second run, a run after touching every source file, and a
// run after unmount and mount (same cache directory), with the number of
// files each run transferred.
func benchRsync(r *benchRun) error {
	fx := r.env.fx
	dst := r.name("")
	onServer := r.serverPath(dst)
	var m *benchMount
	target := r.sys.ssh.hostPath(onServer)
	if r.sys.kind != kindSFTP {
		var err error
		if m, err = r.mount(""); err != nil {
			return err
		}
		target = filepath.Join(m.Dir, dst)
	}
	backup := func(metric string) error {
		d, n, err := rsyncBackup(r, fx.treeDir+"/", target+"/")
		if err != nil {
			return fmt.Errorf("%s: %w", metric, err)
		}
		r.record(metric, d.Seconds())
		r.record(metric+".files", float64(n))
		return nil
	}
	// waitServer waits until the server's disk has the whole tree.
	waitServer := func(start time.Time) (time.Duration, error) {
		d, err := waitUntil(start, serverTimeoutBench, 200*time.Millisecond, func() (bool, error) {
			err := treeOnServer(fx.treeDir, onServer, false)
			return err == nil, err
		})
		if err != nil {
			return 0, fmt.Errorf("server copy of the tree: %w", err)
		}
		return d, nil
	}

	start := time.Now()
	if err := backup("rsync.first"); err != nil {
		return err
	}
	if r.sys.grid != nil {
		d, err := waitGrid(m, start, func() error { return gridTree(r.sys.grid, dst, fx.treeDir) })
		if err != nil {
			return err
		}
		r.record("rsync.first.server", d.Seconds())
	} else if r.sys.kind == kindMount {
		d, err := waitServer(start)
		if err != nil {
			return err
		}
		r.record("rsync.first.server", d.Seconds())
	}
	if err := backup("rsync.second"); err != nil {
		return err
	}
	if err := r.env.touchSources(); err != nil {
		return err
	}
	if err := backup("rsync.touch"); err != nil {
		return err
	}
	if r.sys.unmountDropsUploads {
		// rclone mount would drop the queued uploads at unmount: wait
		// until it has uploaded what the last run gave it.
		if err := waitQuiet(onServer, fx.treeDir, rcloneWriteBack+time.Second, r.sys.serverKeepsMtimes); err != nil {
			return err
		}
	}
	if m != nil {
		var err error
		if m, err = r.remount(m); err != nil {
			return fmt.Errorf("remount: %w", err)
		}
		target = filepath.Join(m.Dir, dst)
	}
	if err := backup("rsync.remount"); err != nil {
		return err
	}
	if m != nil {
		return r.unmount(m)
	}
	return nil
}

var rsyncTransferredRE = regexp.MustCompile(`Number of regular files transferred: ([0-9,.]+)`)

// rsyncBackup runs rsync -a --stats and returns its time and the number of
// regular files it transferred. A partial transfer (exit 23 or 24: some
// attribute or file could not be set) is noted, not fatal: the peers differ
// in what they refuse.
func rsyncBackup(r *benchRun, src, target string) (time.Duration, int, error) {
	args := []string{"-a", "--stats"}
	if r.sys.kind == kindSFTP {
		args = append(args, "-e", "ssh "+strings.Join(r.sys.ssh.clientArgs(), " "))
	}
	args = append(args, src, target)
	// A mount whose server never answers one request (Tahoe's SFTP
	// frontend on some failures) would keep rsync waiting for ever.
	ctx, cancel := context.WithTimeout(context.Background(), serverTimeoutBench)
	defer cancel()
	cmd := exec.CommandContext(ctx, "rsync", args...)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if ctx.Err() != nil {
		return 0, 0, fmt.Errorf("rsync %s: killed after %v: the mount stopped answering\n%s", strings.Join(args, " "), serverTimeoutBench, clipString(stderr.String()))
	}
	if err != nil {
		var ee *exec.ExitError
		if !errors.As(err, &ee) || (ee.ExitCode() != 23 && ee.ExitCode() != 24) {
			return 0, 0, fmt.Errorf("rsync %s: %v\n%s", strings.Join(args, " "), err, clipString(stderr.String()))
		}
		r.env.res.warn(r.sys.ID, fmt.Sprintf("rsync -a exits with %d (partial transfer) on %s: %s", ee.ExitCode(), r.sys.ID, oneLine(stderr.String())))
	}
	m := rsyncTransferredRE.FindStringSubmatch(out.String())
	if m == nil {
		return 0, 0, fmt.Errorf("no \"Number of regular files transferred\" in the output of rsync:\n%s", clipString(out.String()))
	}
	n, err := strconv.Atoi(strings.NewReplacer(",", "", ".", "").Replace(m[1]))
	return d, n, err
}

// touchSources touches every file of the shared rsync source tree. rsync
// compares mtimes to the second here, so two touches are at least two
// seconds apart: each one is a change.
func (e *benchEnv) touchSources() error {
	if wait := 2*time.Second - time.Since(e.lastTouch); wait > 0 {
		time.Sleep(wait)
	}
	e.lastTouch = time.Now()
	return touchTree(e.fx.treeDir, e.lastTouch)
}

// touchTree sets the mtime of every regular file under root, as touch does.
func touchTree(root string, t time.Time) error {
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		return os.Chtimes(p, t, t)
	})
}

// treeOnServer checks that dst on the server's disk has every regular file
// of src with its size and, with mtimes, its mtime to the second.
func treeOnServer(src, dst string, mtimes bool) error {
	missing, total := 0, 0
	var first string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		total++
		rel, _ := filepath.Rel(src, p)
		want, err := d.Info()
		if err != nil {
			return err
		}
		got, err := os.Stat(filepath.Join(dst, rel))
		if err != nil || got.Size() != want.Size() || mtimes && got.ModTime().Unix() != want.ModTime().Unix() {
			missing++
			if first == "" {
				first = rel
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if missing > 0 {
		return fmt.Errorf("%d of %d files are not (yet) on the server, e.g. %s", missing, total, first)
	}
	return nil
}

// rcloneWriteBack is rclone mount's default --vfs-write-back delay.
const rcloneWriteBack = 5 * time.Second

// waitQuiet waits at least minWait, then until the server's copy dst has
// every file of src and has not changed (names, sizes, mtimes) for two
// seconds: the uploads queued by a write-back mount are done. With mtimes
// (a server that keeps the mtimes the mount sets), every file must also
// have its source's mtime: after a touch the sizes match already, and a
// slow queue of uploads can leave the copy unchanged for two seconds.
func waitQuiet(dst, src string, minWait time.Duration, mtimes bool) error {
	time.Sleep(minWait)
	deadline := time.Now().Add(serverTimeoutBench)
	last, stable := "", 0
	for {
		sig, err := treeSignature(dst)
		if err == nil && sig == last && treeOnServer(src, dst, mtimes) == nil {
			stable++
			if stable >= 4 {
				return nil
			}
		} else {
			stable = 0
		}
		last = sig
		if time.Now().After(deadline) {
			return fmt.Errorf("the server's copy did not settle in %v", serverTimeoutBench)
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// treeSignature sums up a tree: its entries, sizes and the newest mtime.
func treeSignature(root string) (string, error) {
	var n, size int64
	var newest time.Time
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		n++
		size += fi.Size()
		if fi.ModTime().After(newest) {
			newest = fi.ModTime()
		}
		return nil
	})
	return fmt.Sprintf("%d %d %d", n, size, newest.UnixNano()), err
}
