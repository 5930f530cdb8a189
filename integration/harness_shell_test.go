package integration

// The shell-use test shared by the SFTP and Tahoe suites, and the tree
// and listing comparisons it rests on.

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// shellScript is what runShellScript runs, in a local directory and on the
// mount: the commands of everyday shell use, on names with spaces and
// unicode. $SRC is a file of random bytes outside both.
const shellScript = `
mkdir -p "dir one/sub ü"
printf 'hello world\n' > "a file.txt"
cp "$SRC" "dir one/data copy.bin"
cat "a file.txt"
echo 'second line' >> "a file.txt"
mv "a file.txt" "dir one/renamed file.txt"
cp "dir one/renamed file.txt" "Ünïcødé 日本語 ✓.txt"
chmod 600 "Ünïcødé 日本語 ✓.txt"
printf '#!/bin/sh\necho hi\n' > run.sh
chmod 755 run.sh
touch -d '2021-03-04 05:06:07.123456789' "dir one/renamed file.txt"
touch -d '2001-02-03 04:05:06' "dir one/data copy.bin"
ln -s "dir one/renamed file.txt" "link to renamed"
readlink "link to renamed"
cat "link to renamed"
ln -s "../nowhere at all" "dir one/dangling"
readlink "dir one/dangling"
echo gone > "to be removed.txt"
rm "to be removed.txt"
mkdir "empty dir" "removed dir"
rmdir "removed dir"
mv "dir one/sub ü" "moved sub ü"
echo inside > "moved sub ü/inside.txt"
chmod 750 "moved sub ü"
cat "moved sub ü/inside.txt"
sha256sum "dir one/data copy.bin" | cut -d' ' -f1
`

// shellTouched are the files whose mtime the script sets, with the time.
var shellTouched = map[string]time.Time{
	"dir one/renamed file.txt": time.Date(2021, 3, 4, 5, 6, 7, 123456789, time.Local),
	"dir one/data copy.bin":    time.Date(2001, 2, 3, 4, 5, 6, 0, time.Local),
}

// runShellScript runs shellScript, its SRC a file of data, in a fresh
// local directory and on m, and compares the two: the script's output,
// `ls -l` of the top and of "dir one", and the trees (names, types, modes,
// sizes, contents, symlink targets and the mtimes touch set, to the
// nanosecond). It returns the local directory.
func runShellScript(t *testing.T, m *Mount, data []byte) string {
	t.Helper()
	tmp := t.TempDir()
	src := filepath.Join(tmp, "src.bin")
	if err := os.WriteFile(src, data, 0o644); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(tmp, "local")
	if err := os.Mkdir(local, 0o755); err != nil {
		t.Fatal(err)
	}
	script := "SRC=" + shellQuote(src) + "\n" + shellScript
	wantOut := bash(t, local, script)
	gotOut := bash(t, m.Dir, script)
	if gotOut != wantOut {
		t.Errorf("the script's output on the mount:\n%s\nin a local directory:\n%s", gotOut, wantOut)
	}
	compareLsL(t, local, m.Dir)
	compareLsL(t, filepath.Join(local, "dir one"), m.Path("dir one"))
	if err := diffTrees(local, m.Dir, treeCompare{mtimes: shellTouched}); err != nil {
		t.Errorf("mount vs local directory: %v", err)
	}
	return local
}

// shellQuote quotes s for bash.
func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// compareLsL compares `ls -l` of two directories: type and permissions,
// size (of files) and names (with symlink targets). Owners are the same
// user on both; link counts and directory sizes are the file system's.
func compareLsL(t *testing.T, want, got string) {
	t.Helper()
	parse := func(dir string) map[string]string {
		out := run(t, "", "ls", "-l", "--time-style=+%s", dir)
		rows := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
			f := strings.Fields(line)
			if len(f) < 7 || f[0] == "total" {
				continue
			}
			name := strings.Join(f[6:], " ")
			size := f[4]
			if strings.HasPrefix(f[0], "d") {
				size = "-"
			}
			rows[name] = f[0][:10] + " " + size
		}
		return rows
	}
	w, g := parse(want), parse(got)
	for name, row := range w {
		if g[name] != row {
			t.Errorf("ls -l %s: %q is %q, want %q as in a local directory", got, name, g[name], row)
		}
	}
	for name := range g {
		if _, ok := w[name]; !ok {
			t.Errorf("ls -l %s shows %q, which a local directory does not have", got, name)
		}
	}
}

// treeCompare says what diffTrees compares besides names, types, modes,
// contents and symlink targets.
type treeCompare struct {
	// mtimes are the files whose mtime must be the given one.
	mtimes map[string]time.Time
	// seconds compares those mtimes to the second (the server's precision).
	seconds bool
	// skip names entries of got that are not user data.
	skip func(name string) bool
}

// treeEntry is what diffTrees sees of one path.
type treeEntry struct {
	kind   string // "file", "dir", "symlink"
	perm   fs.FileMode
	size   int64
	sum    string
	target string
	mtime  time.Time
}

// scanTree lists every path under root with its type, mode, size, sha256
// and symlink target.
func scanTree(root string, skip func(string) bool) (map[string]treeEntry, error) {
	out := map[string]treeEntry{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == root {
			return nil
		}
		if skip != nil && skip(d.Name()) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		e := treeEntry{perm: fi.Mode().Perm(), mtime: fi.ModTime()}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			e.kind, e.perm = "symlink", 0
			if e.target, err = os.Readlink(p); err != nil {
				return err
			}
		case fi.IsDir():
			e.kind = "dir"
		case fi.Mode().IsRegular():
			e.kind, e.size = "file", fi.Size()
			if e.sum, err = sha256File(p); err != nil {
				return err
			}
		default:
			e.kind = fi.Mode().Type().String()
		}
		out[rel] = e
		return nil
	})
	return out, err
}

// diffTrees compares the tree got with the tree want: the same paths, and
// for each the same type, mode, size, content and symlink target, and the
// mtimes of c.mtimes.
func diffTrees(want, got string, c treeCompare) error {
	w, err := scanTree(want, nil)
	if err != nil {
		return err
	}
	g, err := scanTree(got, c.skip)
	if err != nil {
		return err
	}
	var problems []string
	for _, rel := range sortedKeys(w) {
		we := w[rel]
		ge, ok := g[rel]
		if !ok {
			problems = append(problems, fmt.Sprintf("%q: missing", rel))
			continue
		}
		we.mtime, ge.mtime = time.Time{}, time.Time{}
		if ge != we {
			problems = append(problems, fmt.Sprintf("%q: %+v, want %+v", rel, ge, we))
		}
	}
	for _, rel := range sortedKeys(g) {
		if _, ok := w[rel]; !ok {
			problems = append(problems, fmt.Sprintf("%q: only here (%+v)", rel, g[rel]))
		}
	}
	for rel, want := range c.mtimes {
		ge, ok := g[rel]
		if !ok {
			continue
		}
		if c.seconds {
			want = want.Truncate(time.Second)
		}
		if !ge.mtime.Equal(want) {
			problems = append(problems, fmt.Sprintf("%q: mtime %v, want %v", rel, ge.mtime, want))
		}
	}
	if len(problems) > 0 {
		return fmt.Errorf("%s differs from %s:\n%s", got, want, strings.Join(problems, "\n"))
	}
	return nil
}

// mapKeys lists the keys of m.
func mapKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return keys
}

// sortedKeys lists the keys of m in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := mapKeys(m)
	slices.Sort(keys)
	return keys
}
