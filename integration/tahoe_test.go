package integration

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTahoe mounts directories of a real Tahoe-LAFS grid (an introducer,
// three storage nodes and a client node on 127.0.0.1, started once for
// all of its subtests; 2-of-3 shares, happy 3) as `cloudmount mount
// tahoe:ALIAS MNT --node-dir CLIENTDIR`, and checks what a user of such a
// mount would: shell use, rsync, read-only caps, the capability file,
// that capabilities never leak, go-fuse's POSIX suite, a large file, and
// storage nodes that go away. Each test has a directory and an alias of
// its own. Run one part with -run 'TestTahoe/Shell'. TAHOE_SOAK=N runs
// the rsync test with N times as many files.
func TestTahoe(t *testing.T) {
	start := time.Now()
	g := newTahoeGrid(t)
	t.Logf("FIGURE: tahoe grid up in %.1fs (introducer, %d storage nodes, client; %d-of-%d shares, happy %d; %s)",
		g.StartedIn.Seconds(), tahoeStores, tahoeNeeded, tahoeTotal, tahoeHappy, g.Tahoe)
	for _, tc := range []struct {
		name string
		fn   func(*testing.T, *tahoeGrid)
	}{
		{"Grid", testTahoeGrid},
		{"Shell", testTahoeShell},
		{"Rsync", testTahoeRsync},
		{"ReadOnly", testTahoeReadOnly},
		{"CapFile", testTahoeCapFile},
		{"NoCapLeaks", testTahoeNoCapLeaks},
		{"POSIX", testTahoePOSIX},
		{"BigFile", testTahoeBigFile},
		{"Fstab", testTahoeFstab},
		// Last: it stops and starts storage nodes of the shared grid.
		{"Faults", testTahoeFaults},
	} {
		t.Run(tc.name, func(t *testing.T) {
			begin := time.Now()
			tc.fn(t, g)
			t.Logf("FIGURE: TestTahoe/%s took %.1fs", tc.name, time.Since(begin).Seconds())
		})
	}
	t.Logf("FIGURE: TestTahoe took %.1fs in all", time.Since(start).Seconds())
	t.Logf("the client node's storage connections (changes):\n%s", strings.Join(g.connectionEvents(), "\n"))
}

// tahoeSoak is the factor of the long variants (TAHOE_SOAK=N), 0 when
// unset: the long variants run only with it.
func tahoeSoak() int {
	var n int
	if _, err := fmt.Sscan(os.Getenv("TAHOE_SOAK"), &n); err != nil || n < 1 {
		return 0
	}
	return n
}

// testTahoeGrid checks the harness itself, without a mount: a file put
// through the web API reads back, is listed with its size, and the
// test's alias works with the tahoe command line (`tahoe get ALIAS:name`).
func testTahoeGrid(t *testing.T, g *tahoeGrid) {
	d := g.newDir(t)
	data := bytes.Repeat([]byte("grid check\n"), 1000)
	d.WriteFile(t, "sub dir/ä b.txt", data)
	got, err := d.ReadFile("sub dir/ä b.txt")
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("the grid returns %d bytes (%v), want the %d put", len(got), err, len(data))
	}
	kids, err := d.List("sub dir")
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := kids["ä b.txt"]; !ok || c.Type != "filenode" || c.Size == nil || *c.Size != int64(len(data)) {
		t.Fatalf("listing of sub dir: %+v", kids)
	}
	out := run(t, "", g.Tahoe, "--node-directory", g.Client.Dir, "get", d.Alias+":sub dir/ä b.txt", "-")
	if out != string(data) {
		t.Fatalf("tahoe get %s:…: %d bytes, want %d", d.Alias, len(out), len(data))
	}
	if n, err := g.connected(); err != nil || n != tahoeStores {
		t.Fatalf("the client is connected to %d storage nodes (%v)", n, err)
	}
}

// testTahoeShell runs everyday shell commands (shellScript: cp, cat,
// ls -l, mkdir, mv, rm, chmod, touch -d, ln -s, names with spaces and
// unicode) in a local directory and on the mount and compares the two.
// After `cloudmount sync` the grid has the same names and, read through
// the web API, the same bytes, and the edges of the touched files carry
// the mtime in their metadata. A remount with a fresh cache directory
// shows the same tree, modes, symlinks and mtimes (to the microsecond:
// they come from the grid).
func testTahoeShell(t *testing.T, g *tahoeGrid) {
	d := g.newDir(t)
	m := mountTahoe(t, d, tahoeMountOptions{})
	// The root has no edge of its own; it still needs a real time (ls -ld,
	// find -newer, backup tools).
	if mt := mtimeOf(t, m.Dir); mt.Before(time.Unix(0, 0)) || mt.After(time.Now().Add(time.Hour)) {
		t.Errorf("the mount's root directory has mtime %v (ls -ld shows it): want a real time, such as the directory's last change or the mount's", mt)
	}
	local := runShellScript(t, m, randomBytes(700<<10, 1))

	took := m.Sync(t)
	t.Logf("FIGURE: tahoe shell: cloudmount sync took %.1fs", took.Seconds())
	if err := tahoeDiffTree(d, local); err != nil {
		t.Errorf("grid vs local directory after cloudmount sync: %v", err)
	}
	for rel, want := range shellTouched {
		dir, name := filepath.Split(rel)
		kids, err := d.List(strings.TrimSuffix(dir, "/"))
		if err != nil {
			t.Fatal(err)
		}
		got, ok := kids[name].edgeMtime()
		switch {
		case !ok:
			t.Errorf("grid: the edge of %s has no \"mtime\" in its metadata (%v); other Tahoe clients (tahoe ls -l, tahoe backup, the SFTP frontend) read it there", rel, kids[name].Metadata)
		case absDuration(got.Sub(want)) > time.Microsecond:
			t.Errorf("grid: the edge metadata of %s says mtime %v, want %v as touch set it", rel, got, want)
		}
	}

	// The same cache: what the mount knew.
	m = remountTahoe(t, d, m, false, tahoeMountOptions{})
	if err := diffTrees(local, m.Dir, treeCompare{mtimes: shellTouched}); err != nil {
		t.Errorf("mount vs local directory after unmount and mount: %v", err)
	}
	// A fresh cache directory: all of it from the grid.
	m = remountTahoe(t, d, m, true, tahoeMountOptions{})
	if err := diffTrees(local, m.Dir, treeCompare{}); err != nil {
		t.Errorf("mount with a fresh cache directory vs local directory: %v", err)
	}
	for rel, want := range shellTouched {
		if got := mtimeOf(t, m.Path(rel)); absDuration(got.Sub(want)) > time.Microsecond {
			t.Errorf("mount with a fresh cache directory: mtime of %s is %v, want %v as touch set it", rel, got, want)
		}
	}
	compareLsL(t, local, m.Dir)
}

// absDuration is |d|.
func absDuration(d time.Duration) time.Duration {
	if d < 0 {
		return -d
	}
	return d
}

// tahoeDiffTree compares the grid's directory d with the local tree want:
// every directory has the same names on the grid, directories are
// dirnodes, and regular files have the same bytes (read through the web
// API). Symbolic links must be there under their name; how they are kept
// is the backend's business.
func tahoeDiffTree(d *tahoeDir, want string) error {
	var problems []string
	err := filepath.WalkDir(want, func(p string, e fs.DirEntry, err error) error {
		if err != nil || !e.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(want, p)
		rel = filepath.ToSlash(rel)
		if rel == "." {
			rel = ""
		}
		kids, err := d.List(rel)
		if err != nil {
			problems = append(problems, err.Error())
			return filepath.SkipDir
		}
		ents, err := os.ReadDir(p)
		if err != nil {
			return err
		}
		seen := map[string]bool{}
		for _, e := range ents {
			seen[e.Name()] = true
			child := strings.TrimPrefix(rel+"/"+e.Name(), "/")
			k, ok := kids[e.Name()]
			switch {
			case !ok:
				problems = append(problems, fmt.Sprintf("%q: missing on the grid", child))
			case e.IsDir() && k.Type != "dirnode":
				problems = append(problems, fmt.Sprintf("%q: a %s on the grid, want a dirnode", child, k.Type))
			case e.Type().IsRegular():
				wantData, err := os.ReadFile(filepath.Join(p, e.Name()))
				if err != nil {
					return err
				}
				got, err := d.ReadFile(child)
				if err != nil {
					problems = append(problems, err.Error())
				} else if !bytes.Equal(got, wantData) {
					problems = append(problems, fmt.Sprintf("%q: the grid has %d bytes %q, want %d bytes %q", child, len(got), clip(got), len(wantData), clip(wantData)))
				}
			}
		}
		for name := range kids {
			if !seen[name] {
				problems = append(problems, fmt.Sprintf("%q: on the grid only (%s)", strings.TrimPrefix(rel+"/"+name, "/"), kids[name].Type))
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	if len(problems) > 0 {
		if len(problems) > 30 {
			problems = append(problems[:30], fmt.Sprintf("... and %d more", len(problems)-30))
		}
		return fmt.Errorf("the grid's directory %s differs from %s:\n%s", d.Name, want, strings.Join(problems, "\n"))
	}
	return nil
}

// testTahoeRsync copies a tree of 200 files (0 bytes to 3 MiB, nested
// directories, unicode names, modes and old mtimes) with rsync -a: a
// second run transfers nothing, the grid has every byte after `cloudmount
// sync`, and after an unmount and a mount with a fresh cache directory
// rsync still transfers nothing (mtimes and modes come from the grid).
func testTahoeRsync(t *testing.T, g *tahoeGrid) {
	rsync := needTool(t, "rsync")
	n := 200
	if s := tahoeSoak(); s > 0 {
		n *= s
	}
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src, n, 7)
	d := g.newDir(t)
	m := mountTahoe(t, d, tahoeMountOptions{})
	dst := m.Path("backup")

	first := time.Now()
	// The mount holds back writers while too much waits for the grid, so
	// the first run of a large tree lasts about as long as its uploads.
	out, err := runCmd("", 10*time.Minute*time.Duration(max(1, tahoeSoak())), rsync, "-a", "--stats", src+"/", dst+"/")
	if err != nil {
		t.Fatalf("rsync: %v\n%s", err, out)
	}
	t.Logf("FIGURE: tahoe rsync of %d files, first run: %.1fs", n, time.Since(first).Seconds())
	if got := rsyncTransferred(t, out); got != n {
		t.Errorf("first rsync transferred %d files, want %d", got, n)
	}
	begin := time.Now()
	out = run(t, "", rsync, "-a", "--stats", src+"/", dst+"/")
	t.Logf("FIGURE: tahoe rsync second run: %.2fs", time.Since(begin).Seconds())
	if got := rsyncTransferred(t, out); got != 0 {
		t.Errorf("second rsync transferred %d files, want 0:\n%s", got, out)
	}
	took := m.Sync(t)
	t.Logf("FIGURE: tahoe rsync of %d files: cloudmount sync after the runs took %.1fs; on the grid %.1fs after the first run started",
		n, took.Seconds(), time.Since(first).Seconds())
	// The second run's quick check saw the sizes and mtimes through the
	// mount; the bytes are compared on the grid here and through a fresh
	// mount below (reading them through this mount would fetch them all
	// from the grid a third time).
	begin = time.Now()
	if err := tahoeDiffTree(d.at("backup"), src); err != nil {
		t.Errorf("grid vs source after cloudmount sync: %v", err)
	}
	t.Logf("compared the grid (web API) with the source in %.1fs", time.Since(begin).Seconds())

	begin = time.Now()
	m = remountTahoe(t, d, m, true, tahoeMountOptions{})
	t.Logf("unmounted and mounted with a fresh cache directory in %.1fs", time.Since(begin).Seconds())
	begin = time.Now()
	out = run(t, "", rsync, "-a", "--stats", src+"/", m.Path("backup")+"/")
	t.Logf("FIGURE: tahoe rsync after a mount with a fresh cache directory: %.1fs", time.Since(begin).Seconds())
	if got := rsyncTransferred(t, out); got != 0 {
		t.Errorf("rsync after a mount with a fresh cache directory transferred %d files, want 0:\n%s", got, out)
	}
	begin = time.Now()
	compareTree(t, src, m.Path("backup"), true, nil)
	t.Logf("compared the fresh mount (every byte from the grid) with the source in %.1fs", time.Since(begin).Seconds())
}
