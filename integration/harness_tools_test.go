package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// runCmd runs a program in dir (the test's cwd when "") with a deadline and
// returns its combined output and error.
func runCmd(dir string, timeout time.Duration, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (killed after %v)", err, timeout)
	}
	return string(out), err
}

// run runs a program in dir and fails the test if it fails.
func run(t testing.TB, dir, name string, args ...string) string {
	t.Helper()
	out, err := runCmd(dir, 10*time.Minute, name, args...)
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return out
}

// bash runs a script with `bash -euo pipefail` in dir and fails the test if
// it fails. Scripts keep the shell commands of a test readable.
func bash(t testing.TB, dir, script string) string {
	t.Helper()
	out, err := runCmd(dir, 10*time.Minute, "bash", "-euo", "pipefail", "-c", script)
	if err != nil {
		t.Fatalf("in %s:\n%s\n%v\n%s", dir, script, err, out)
	}
	return out
}

// eventually retries check until it succeeds or timeout passes, then fails
// the test with the last error. It waits for uploads that may finish after
// close once the write-back queue exists.
func eventually(t testing.TB, timeout time.Duration, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %v", timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// serverTimeout is how long the server may lag behind the mount.
const serverTimeout = 30 * time.Second

// wantServerFile waits until the server's disk has rel with content want.
func wantServerFile(t testing.TB, srv *Server, rel string, want []byte) {
	t.Helper()
	eventually(t, serverTimeout, func() error {
		got, err := os.ReadFile(srv.Path(rel))
		if err != nil {
			return fmt.Errorf("server: %w", err)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("server has %s with %d bytes %q, want %d bytes %q", rel, len(got), clip(got), len(want), clip(want))
		}
		return nil
	})
}

// wantServerDir waits until the server's disk has the directory rel.
func wantServerDir(t testing.TB, srv *Server, rel string) {
	t.Helper()
	eventually(t, serverTimeout, func() error {
		fi, err := os.Stat(srv.Path(rel))
		if err != nil {
			return fmt.Errorf("server: %w", err)
		}
		if !fi.IsDir() {
			return fmt.Errorf("server: %s is not a directory", rel)
		}
		return nil
	})
}

// wantServerGone waits until the server's disk has no rel.
func wantServerGone(t testing.TB, srv *Server, rel string) {
	t.Helper()
	eventually(t, serverTimeout, func() error {
		if _, err := os.Lstat(srv.Path(rel)); !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("server still has %s (%v)", rel, err)
		}
		return nil
	})
}

// wantFile checks that a local path (on the mount or not) holds want.
func wantFile(t testing.TB, name string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s has %d bytes %q, want %d bytes %q", name, len(got), clip(got), len(want), clip(want))
	}
}

// wantGone checks that a path does not exist.
func wantGone(t testing.TB, name string) {
	t.Helper()
	if _, err := os.Lstat(name); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s: want ENOENT, got %v", name, err)
	}
}

// clip shortens data for messages.
func clip(b []byte) []byte {
	if len(b) > 64 {
		return append(b[:64:64], "..."...)
	}
	return b
}

// lstat returns the raw stat of a path.
func lstat(t testing.TB, name string) unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(name, &st); err != nil {
		t.Fatalf("lstat %s: %v", name, err)
	}
	return st
}

// mtimeOf returns the mtime of a path with nanoseconds.
func mtimeOf(t testing.TB, name string) time.Time {
	t.Helper()
	st := lstat(t, name)
	return time.Unix(st.Mtim.Unix())
}

// sha256File returns the hex sha256 of a file.
func sha256File(name string) (string, error) {
	f, err := os.Open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// rsyncTransferred reads "Number of regular files transferred: N" from the
// output of rsync --stats (N may have thousands separators).
func rsyncTransferred(t testing.TB, out string) int {
	t.Helper()
	m := regexp.MustCompile(`Number of regular files transferred: ([0-9,.]+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no \"Number of regular files transferred\" in rsync output:\n%s", out)
	}
	n, err := strconv.Atoi(strings.NewReplacer(",", "", ".", "").Replace(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// treeFile is one regular file of a generated tree.
type treeFile struct {
	Rel   string
	Size  int
	Mode  os.FileMode
	Mtime time.Time
}

// treeNames are name parts a generated tree mixes in: plain, with spaces,
// unicode, and the characters that URLs escape.
var treeNames = []string{
	"file", "notes", "a b", "Ünïcødé", "日本語", "100%", "hash#tag", "what?", "this&that",
	`it's`, `say "hi"`, "semi;colon", "plus+sign", "emoji 🙂", "UPPER",
}

// makeTree writes a deterministic tree of n mixed regular files under root:
// 0-byte, small, medium and a few MiB-sized files, nested directories,
// modes 0644/0600/0755/0640, mtimes in the past with nanoseconds.
func makeTree(t testing.TB, root string, n int, seed uint64) []treeFile {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	dirs := []string{""}
	var files []treeFile
	base := time.Date(2019, 6, 1, 12, 0, 0, 0, time.UTC)
	for i := 0; i < n; i++ {
		if rng.IntN(8) == 0 && len(dirs) < n/10+2 {
			parent := dirs[rng.IntN(len(dirs))]
			if strings.Count(parent, "/") < 3 {
				d := filepath.Join(parent, fmt.Sprintf("dir %02d %s", len(dirs), treeNames[rng.IntN(len(treeNames))]))
				dirs = append(dirs, d)
			}
		}
		var size int
		switch r := rng.IntN(100); {
		case r < 10:
			size = 0
		case r < 70:
			size = 1 + rng.IntN(4096)
		case r < 97:
			size = 4096 + rng.IntN(200<<10)
		default:
			size = 1<<20 + rng.IntN(2<<20)
		}
		f := treeFile{
			Rel:   filepath.Join(dirs[rng.IntN(len(dirs))], fmt.Sprintf("%03d %s.bin", i, treeNames[rng.IntN(len(treeNames))])),
			Size:  size,
			Mode:  []os.FileMode{0o644, 0o644, 0o600, 0o755, 0o640}[rng.IntN(5)],
			Mtime: base.Add(time.Duration(rng.Int64N(int64(4 * 365 * 24 * time.Hour)))),
		}
		files = append(files, f)
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 3<<20)
	for _, f := range files {
		for i := 0; i < f.Size; i += 8 {
			v := rng.Uint64()
			for j := 0; j < 8 && i+j < f.Size; j++ {
				buf[i+j] = byte(v >> (8 * j))
			}
		}
		p := filepath.Join(root, f.Rel)
		if err := os.WriteFile(p, buf[:f.Size], f.Mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, f.Mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, f.Mtime, f.Mtime); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// compareTree checks that got holds every regular file of want with the
// same content, and, with meta, the same mode and mtime (to the second, as
// rsync compares), and nothing else. skip names entries of got that are not
// user data (Server.Hidden).
func compareTree(t testing.TB, want, got string, meta bool, skip func(name string) bool) {
	t.Helper()
	if err := treeDiff(want, got, meta, skip); err != nil {
		t.Fatal(err)
	}
}

// treeDiff is compareTree returning the differences as an error.
func treeDiff(want, got string, meta bool, skip func(name string) bool) error {
	var problems []string
	count := 0
	err := filepath.WalkDir(want, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		if !d.Type().IsRegular() {
			return nil
		}
		count++
		wfi, err := os.Stat(p)
		if err != nil {
			return err
		}
		gp := filepath.Join(got, rel)
		gfi, err := os.Stat(gp)
		if err != nil {
			problems = append(problems, err.Error())
			return nil
		}
		ws, _ := sha256File(p)
		gs, err := sha256File(gp)
		if err != nil || ws != gs || wfi.Size() != gfi.Size() {
			problems = append(problems, fmt.Sprintf("%s: size %d sha %s, want size %d sha %s (%v)", rel, gfi.Size(), gs, wfi.Size(), ws, err))
		}
		if meta {
			if gfi.Mode().Perm() != wfi.Mode().Perm() {
				problems = append(problems, fmt.Sprintf("%s: mode %v, want %v", rel, gfi.Mode().Perm(), wfi.Mode().Perm()))
			}
			if gfi.ModTime().Unix() != wfi.ModTime().Unix() {
				problems = append(problems, fmt.Sprintf("%s: mtime %v, want %v", rel, gfi.ModTime(), wfi.ModTime()))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	extra := 0
	_ = filepath.WalkDir(got, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if skip != nil && skip(d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(got, p)
		if _, err := os.Lstat(filepath.Join(want, rel)); err != nil {
			extra++
			if extra <= 10 {
				problems = append(problems, fmt.Sprintf("%s: present in %s only", rel, got))
			}
		}
		return nil
	})
	if len(problems) == 0 {
		return nil
	}
	if len(problems) > 30 {
		problems = append(problems[:30], fmt.Sprintf("... and %d more", len(problems)-30))
	}
	return fmt.Errorf("%s differs from %s (%d files compared):\n%s", got, want, count, strings.Join(problems, "\n"))
}

// errorf is fmt.Errorf, for checks inside eventually.
func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
