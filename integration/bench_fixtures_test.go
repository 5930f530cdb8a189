//go:build bench

package integration

import (
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const (
	// benchReadName is the file of workload 2, prepared on every server.
	benchReadName = "read.bin"
	// benchListName is the tree of workload 4, prepared on every server.
	benchListName = "tree"
)

// benchFixtures are the local files the workloads copy, and the local
// directory that stands for "local disk".
type benchFixtures struct {
	// bigSrc holds BigFile pseudo-random bytes: what curl and scp upload,
	// and what every server has as read.bin.
	bigSrc string
	// smallDir has the small files (dNN/fNNNN); smallTar is a tar of it.
	smallDir, smallTar string
	// smallRel are the small files, relative to smallDir.
	smallRel []string
	// treeDir is the source tree of the rsync backups.
	treeDir   string
	treeFiles int
	treeBytes int64
	// localDir is the "local disk" system's directory, with read.bin and tree/.
	localDir string
	// listDirs are the directories of tree/ (relative, "tree/d000"), which
	// hold listFiles files in all.
	listDirs  []string
	listFiles int
}

// makeBenchFixtures writes the local fixtures once for the whole run.
func makeBenchFixtures(t *testing.T, sz benchSizes) *benchFixtures {
	t.Helper()
	start := time.Now()
	base := t.TempDir()
	fx := &benchFixtures{
		bigSrc:    filepath.Join(base, "big.bin"),
		smallDir:  filepath.Join(base, "small"),
		smallTar:  filepath.Join(base, "small.tar"),
		treeDir:   filepath.Join(base, "tree-src"),
		localDir:  filepath.Join(base, "local"),
		listFiles: sz.ListFiles,
	}
	for _, d := range []string{fx.smallDir, fx.localDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}

	f, err := os.Create(fx.bigSrc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.CopyBuffer(f, io.LimitReader(rand.NewChaCha8([32]byte{5}), sz.BigFile), make([]byte, 1<<20)); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}

	rng := rand.NewChaCha8([32]byte{3})
	buf := make([]byte, sz.SmallSize)
	for i := 0; i < sz.SmallFiles; i++ {
		d := fmt.Sprintf("d%02d", i%sz.SmallDirs)
		rel := filepath.Join(d, fmt.Sprintf("f%04d", i))
		if i < sz.SmallDirs {
			if err := os.Mkdir(filepath.Join(fx.smallDir, d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
		_, _ = rng.Read(buf)
		if err := os.WriteFile(filepath.Join(fx.smallDir, rel), buf, 0o644); err != nil {
			t.Fatal(err)
		}
		fx.smallRel = append(fx.smallRel, rel)
	}
	run(t, "", "tar", "-cf", fx.smallTar, "-C", fx.smallDir, ".")

	for i := 0; i < sz.ListDirs; i++ {
		fx.listDirs = append(fx.listDirs, fmt.Sprintf("%s/d%03d", benchListName, i))
	}
	fx.treeFiles, fx.treeBytes = makeBenchTree(t, fx.treeDir, sz.TreeFiles, sz.TreeBytes, 11)
	placeServerFixtures(t, fx, fx.localDir, os.Getuid(), os.Getgid())
	t.Logf("bench: fixtures ready in %v (rsync tree: %d files, %.1f MiB)", time.Since(start).Round(time.Millisecond), fx.treeFiles, float64(fx.treeBytes)/(1<<20))
	return fx
}

// placeServerFixtures puts read.bin (a hard link to bigSrc, or a copy) and
// the listing tree into dir, owned by uid:gid (the server's user).
func placeServerFixtures(t *testing.T, fx *benchFixtures, dir string, uid, gid int) {
	t.Helper()
	read := filepath.Join(dir, benchReadName)
	if err := os.Link(fx.bigSrc, read); err != nil {
		run(t, "", "cp", fx.bigSrc, read)
		if err := os.Chown(read, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chmod(read, 0o644); err != nil {
		t.Fatal(err)
	}
	content := make([]byte, 1024)
	for i := range content {
		content[i] = byte('a' + i%26)
	}
	mkdir := func(p string) {
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, uid, gid); err != nil {
			t.Fatal(err)
		}
	}
	mkdir(filepath.Join(dir, benchListName))
	n := len(fx.listDirs)
	files := 0
	for i, d := range fx.listDirs {
		mkdir(filepath.Join(dir, d))
		// Spread the files evenly over the directories.
		for ; files < (i+1)*fx.listFiles/n; files++ {
			p := filepath.Join(dir, d, fmt.Sprintf("file-%05d.txt", files))
			if err := os.WriteFile(p, content[:files%len(content)], 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, uid, gid); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// benchTreeNames are the name parts of the rsync tree: plain, with spaces,
// with non-ASCII letters.
var benchTreeNames = []string{"report", "notes", "a b", "Ünïcødé", "日本語", "photo 2019", "data_set", "README"}

// makeBenchTree writes a deterministic tree of n regular files of mixed
// sizes, total bytes in all, for the rsync backup: 10% empty, most under
// 8 KiB, a quarter up to 256 KiB and a few MiB-sized files, in nested
// directories, with modes 0644/0600/0755 and mtimes in the past.
func makeBenchTree(t *testing.T, root string, n int, total int64, seed uint64) (int, int64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, seed^0x5851f42d4c957f2d))
	sizes := make([]int64, n)
	var sum int64
	for i := range sizes {
		switch r := rng.IntN(100); {
		case r < 10:
			sizes[i] = 0
		case r < 65:
			sizes[i] = 1 + rng.Int64N(8<<10)
		case r < 95:
			sizes[i] = 8<<10 + rng.Int64N(248<<10)
		default:
			sizes[i] = 256<<10 + rng.Int64N(4<<20)
		}
		sum += sizes[i]
	}
	// Scale the sizes so that the tree holds about total bytes.
	var bytes int64
	for i := range sizes {
		sizes[i] = int64(float64(sizes[i]) * float64(total) / float64(max(sum, 1)))
		bytes += sizes[i]
	}
	dirs := []string{""}
	for len(dirs) < max(n/25, 2) {
		parent := dirs[rng.IntN(len(dirs))]
		if strings.Count(parent, "/") < 3 {
			dirs = append(dirs, filepath.Join(parent, fmt.Sprintf("%s %02d", benchTreeNames[rng.IntN(len(benchTreeNames))], len(dirs))))
		}
	}
	for _, d := range dirs {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	base := time.Date(2019, 6, 1, 12, 0, 0, 0, time.UTC)
	data := rand.NewChaCha8([32]byte{byte(seed)})
	buf := make([]byte, 0, 8<<20)
	for i, size := range sizes {
		rel := filepath.Join(dirs[rng.IntN(len(dirs))], fmt.Sprintf("%04d %s.dat", i, benchTreeNames[rng.IntN(len(benchTreeNames))]))
		if int64(cap(buf)) < size {
			buf = make([]byte, size)
		}
		buf = buf[:size]
		_, _ = data.Read(buf)
		p := filepath.Join(root, rel)
		mode := []os.FileMode{0o644, 0o644, 0o600, 0o755}[rng.IntN(4)]
		if err := os.WriteFile(p, buf, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		mt := base.Add(time.Duration(rng.Int64N(int64(4 * 365 * 24 * time.Hour))))
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
	}
	return n, bytes
}
