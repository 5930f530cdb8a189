package fs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

// VerifyProgress is how far a verify has got, for a progress bar.
type VerifyProgress struct {
	FilesDone  int    `json:"files_done"`
	FilesTotal int    `json:"files_total"`
	BytesDone  int64  `json:"bytes_done"`
	BytesTotal int64  `json:"bytes_total"`
	Path       string `json:"path,omitempty"` // the file being read
}

// VerifyReport is the outcome of a verify: what was read from the server
// and how it compares with the hashes the mount believes in. Paths are
// relative to the mount root.
type VerifyReport struct {
	// Root is the tree (or file) that was verified; "" is the whole mount.
	Root string `json:"root"`
	// Checked counts the files read from the server and hashed; Bytes is
	// what was read.
	Checked int   `json:"checked"`
	Bytes   int64 `json:"bytes"`
	// Matched counts the files whose content has the hash the mount knew.
	Matched int `json:"matched"`
	// NoHash lists the files for which the mount knew no hash: they were
	// hashed, but there was nothing to compare with.
	NoHash []string `json:"no_hash"`
	// Pending lists the files skipped because local changes to them wait
	// in the upload queue (the server has an older version).
	Pending []string `json:"pending"`
	// Skipped counts symlinks and special files, which have no content to
	// hash.
	Skipped int `json:"skipped"`
	// Mismatches lists the files whose server content differs from the
	// hash the mount believes in.
	Mismatches []VerifyMismatch `json:"mismatches"`
	// Errors lists the files and directories that could not be read.
	Errors []VerifyError `json:"errors"`
}

// OK reports whether every file read matched and nothing failed.
func (r VerifyReport) OK() bool { return len(r.Mismatches) == 0 && len(r.Errors) == 0 }

// VerifyMismatch is a file whose server content has another hash than the
// one the mount believes in.
type VerifyMismatch struct {
	Path string `json:"path"`
	Size int64  `json:"size"`
	Want string `json:"want"` // the hash the mount believes in
	Got  string `json:"got"`  // the hash of what the server sent
}

// VerifyError is a file or directory that could not be verified.
type VerifyError struct {
	Path string `json:"path"`
	Err  string `json:"error"`
}

// verifyProgressEvery is the least time between two progress reports
// of a verify (the last one is always reported).
const verifyProgressEvery = 200 * time.Millisecond

// Verify reads every file at or below root from the server (never from the
// block cache), hashes it with SHA-256 and compares the result with the
// hash the mount believes in: the one stored on the server or, where the
// server cannot store one, in the local index. Files with local changes
// not yet uploaded are skipped and listed as pending. Unreadable files and
// directories are listed in the report; the error is for a root that cannot
// be listed or a cancelled ctx. progress, if not nil, is called from the
// calling goroutine.
func (f *fsys) Verify(ctx context.Context, root string, progress func(VerifyProgress)) (VerifyReport, error) {
	root = strings.Trim(path.Clean("/"+root), "/")
	rep := VerifyReport{Root: root}
	files, err := f.verifyWalk(ctx, root, &rep)
	if err != nil {
		return rep, err
	}
	pr := VerifyProgress{FilesTotal: len(files)}
	for _, fe := range files {
		pr.BytesTotal += fe.e.Size
	}
	var last time.Time
	report := func(force bool) {
		if progress != nil && (force || time.Since(last) >= verifyProgressEvery) {
			last = time.Now()
			progress(pr)
		}
	}
	report(true)
	for _, fe := range files {
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("verify %s: %w", displayRoot(root), err)
		}
		pr.Path = fe.p
		report(false)
		start := pr.BytesDone
		f.verifyFile(ctx, fe.p, fe.e, &rep, func(n int64) {
			pr.BytesDone = start + n
			report(false)
		})
		if err := ctx.Err(); err != nil {
			return rep, fmt.Errorf("verify %s: %w", displayRoot(root), err)
		}
		pr.FilesDone++
		pr.BytesDone = start + fe.e.Size
	}
	pr.Path = ""
	pr.BytesDone = pr.BytesTotal
	report(true)
	return rep, nil
}

// displayRoot names a verify root in messages.
func displayRoot(root string) string {
	if root == "" {
		return "the mount root"
	}
	return root
}

// verifyEntry is a file to verify, with its path.
type verifyEntry struct {
	p string
	e backends.Entry
}

// verifyWalk lists the files at or below root on the server, in path
// order. Directories that cannot be listed go into the report's errors;
// only a root that cannot be read is an error.
func (f *fsys) verifyWalk(ctx context.Context, root string, rep *VerifyReport) ([]verifyEntry, error) {
	if root != "" {
		e, err := f.verifyStat(ctx, root)
		if err != nil {
			return nil, fmt.Errorf("verify %s: %w", root, err)
		}
		if !e.IsDir {
			return f.verifyKeep(nil, root, e, rep), nil
		}
	}
	var files []verifyEntry
	dirs := []string{root}
	for len(dirs) > 0 {
		dir := dirs[0]
		dirs = dirs[1:]
		entries, err := f.verifyList(ctx, dir)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("verify %s: %w", displayRoot(root), ctx.Err())
		}
		if err != nil {
			if dir == root {
				return nil, fmt.Errorf("verify %s: %w", displayRoot(root), err)
			}
			rep.Errors = append(rep.Errors, VerifyError{Path: dir, Err: err.Error()})
			continue
		}
		for _, e := range entries {
			if e.Name == "" || e.Name == "." || e.Name == ".." || strings.Contains(e.Name, "/") {
				continue
			}
			p := path.Join(dir, e.Name)
			if e.IsDir {
				dirs = append(dirs, p)
				continue
			}
			files = f.verifyKeep(files, p, e, rep)
		}
	}
	sort.Slice(files, func(i, j int) bool { return files[i].p < files[j].p })
	return files, nil
}

// verifyKeep adds a regular file to files; symlinks and special files are
// only counted.
func (f *fsys) verifyKeep(files []verifyEntry, p string, e backends.Entry, rep *VerifyReport) []verifyEntry {
	e = f.resolve(p, e)
	if e.Meta.Type != "" {
		rep.Skipped++
		return files
	}
	return append(files, verifyEntry{p: p, e: e})
}

// remoteCall returns a context for one remote call of a verify: bounded by
// the mount's timeout, and ended with ctx.
func (f *fsys) remoteCall(ctx context.Context) (context.Context, context.CancelFunc) {
	cctx, cancel := f.call(ctx)
	stop := context.AfterFunc(ctx, cancel)
	return cctx, func() { stop(); cancel() }
}

// verifyStat stats p on the server, with a deadline.
func (f *fsys) verifyStat(ctx context.Context, p string) (backends.Entry, error) {
	cctx, cancel := f.remoteCall(ctx)
	defer cancel()
	return f.be.Stat(cctx, p)
}

// verifyList lists dir on the server, with a deadline.
func (f *fsys) verifyList(ctx context.Context, dir string) ([]backends.Entry, error) {
	cctx, cancel := f.remoteCall(ctx)
	defer cancel()
	entries, err := f.be.List(cctx, dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", displayRoot(dir), err)
	}
	return entries, nil
}

// verifyFile reads one file from the server and adds the outcome to rep.
// read is told how many bytes were read so far.
func (f *fsys) verifyFile(ctx context.Context, p string, e backends.Entry, rep *VerifyReport, read func(int64)) {
	if f.pendingUpload(p) {
		rep.Pending = append(rep.Pending, p)
		return
	}
	want := strings.ToLower(e.Meta.SHA256)
	got, n, err := f.hashRemote(ctx, p, read)
	if ctx.Err() != nil {
		return
	}
	if err != nil {
		rep.Errors = append(rep.Errors, VerifyError{Path: p, Err: err.Error()})
		return
	}
	rep.Checked++
	rep.Bytes += n
	switch {
	case want == "":
		rep.NoHash = append(rep.NoHash, p)
	case want == got:
		rep.Matched++
	case f.pendingUpload(p):
		// Written here while it was read.
		rep.Checked--
		rep.Pending = append(rep.Pending, p)
	default:
		cur, err := f.verifyStat(ctx, p)
		if err == nil && !sameVersion(cur, e) {
			rep.Errors = append(rep.Errors, VerifyError{Path: p, Err: "changed on the server while it was verified; verify it again"})
			return
		}
		rep.Mismatches = append(rep.Mismatches, VerifyMismatch{Path: p, Size: n, Want: want, Got: got})
	}
}

// sameVersion reports whether two entries of a file describe the same
// server version of its content.
func sameVersion(a, b backends.Entry) bool { return a.Version == b.Version }

// pendingUpload reports whether local content of p waits in the upload
// queue, so that the server's version is not the one the mount shows.
func (f *fsys) pendingUpload(p string) bool {
	if f.live == nil {
		return false
	}
	n := f.live.get(p)
	if n == nil {
		return false
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.staged != nil && !n.unlinked && (n.staged.dirty || n.local)
}

// hashRemote downloads p from the server and returns its SHA-256 in hex
// and its length. The download fails when no data arrives for the mount's
// timeout, and ends with ctx.
func (f *fsys) hashRemote(ctx context.Context, p string, read func(int64)) (string, int64, error) {
	wctx, wd := newWatchdog(ctx, f.opts.Timeout)
	defer wd.stop()
	stop := context.AfterFunc(ctx, wd.stop)
	defer stop()
	rc, err := f.be.Read(wctx, p, 0, -1)
	if err != nil {
		return "", 0, fmt.Errorf("read %s: %w", p, idleError(wctx, ctx, f.opts.Timeout, err))
	}
	defer rc.Close()
	h := sha256.New()
	n, err := io.Copy(h, &countingReader{r: kickReader{rc, wd}, read: read})
	if err != nil {
		return "", n, fmt.Errorf("read %s: %w", p, idleError(wctx, ctx, f.opts.Timeout, err))
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}

// idleError explains an error of a watched stream: a stall of the server
// is a deadline, not a cancellation.
func idleError(wctx, ctx context.Context, d time.Duration, err error) error {
	if wctx.Err() != nil && ctx.Err() == nil && !errors.Is(err, context.DeadlineExceeded) {
		return fmt.Errorf("no data for %v: %w", d, context.DeadlineExceeded)
	}
	return err
}

// countingReader tells read the running total of the bytes read.
type countingReader struct {
	r    io.Reader
	n    int64
	read func(int64)
}

// Read reads from the stream and reports the running total.
func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if n > 0 && c.read != nil {
		c.read(c.n)
	}
	return n, err
}

// Verify compares the hashes the mount believes in with the server's
// content at or below root (see fsys.Verify); it serves cloudmount verify.
func (m *Mounted) Verify(ctx context.Context, root string, progress func(VerifyProgress)) (VerifyReport, error) {
	return m.f.Verify(ctx, root, progress)
}
