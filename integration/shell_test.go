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

// randomBytes returns n deterministic pseudo-random bytes.
func randomBytes(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 42))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// subdir makes a fresh directory on the mount for one subtest and returns
// its path on the mount and its path relative to the server's root.
func subdir(t *testing.T, m *Mount, name string) (string, string) {
	t.Helper()
	if err := os.Mkdir(m.Path(name), 0o755); err != nil {
		t.Fatalf("mkdir on the mount: %v", err)
	}
	return m.Path(name), name
}

// TestShell does what a shell user does on the mount, against each server,
// and checks both what the mount shows and what the server has on disk.
func TestShell(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		// Some cases change files on the server behind the mount's back:
		// the mount trusts its listings for --dir-cache-time, 1 s here.
		m := mountServer(t, srv, MountOptions{Args: []string{"--dir-cache-time", "1s"}})
		for _, c := range shellCases {
			t.Run(c.name, func(t *testing.T) {
				dir, rel := subdir(t, m, c.name)
				c.fn(t, m, srv, dir, rel)
			})
		}
	})
}

// shellCases are the subtests of TestShell; each gets a fresh directory.
var shellCases = []struct {
	name string
	fn   func(t *testing.T, m *Mount, srv *Server, dir, rel string)
}{
	{"ls-stat-cat", shellLsStatCat},
	{"cp", shellCp},
	{"mv", shellMv},
	{"rm", shellRm},
	{"mkdir-rmdir", shellMkdirRmdir},
	{"touch", shellTouch},
	{"truncate", shellTruncate},
	{"append", shellAppend},
	{"overwrite", shellOverwrite},
	{"cp-a", shellCpA},
	{"zero-bytes", shellZeroBytes},
}

func shellLsStatCat(t *testing.T, m *Mount, srv *Server, dir, rel string) {
	mtime := time.Date(2015, 3, 4, 5, 6, 7, 0, time.UTC)
	srv.WriteFile(t, rel+"/from server.txt", []byte("data from the server\n"), mtime)
	bash(t, dir, `printf 'made on the mount\n' > mounted.txt`)
	eventually(t, 10*time.Second, func() error {
		out, err := runCmd(dir, time.Minute, "ls", "-la")
		if err != nil || !strings.Contains(out, "from server.txt") || !strings.Contains(out, "mounted.txt") {
			return fmt.Errorf("ls -la: %v\n%s", err, out)
		}
		return nil
	})
	if got := strings.TrimSpace(run(t, dir, "stat", "-c", "%s %Y %F", "from server.txt")); got != fmt.Sprintf("21 %d regular file", mtime.Unix()) {
		t.Errorf("stat of a file the server has: %q, want size 21, mtime %d, regular file", got, mtime.Unix())
	}
	if got := strings.TrimSpace(run(t, dir, "stat", "-c", "%s %F", "mounted.txt")); got != "18 regular file" {
		t.Errorf("stat of a file made on the mount: %q", got)
	}
	if got := strings.TrimSpace(run(t, m.Dir, "stat", "-c", "%F", rel)); got != "directory" {
		t.Errorf("stat of the directory: %q", got)
	}
	if got := run(t, dir, "cat", "from server.txt", "mounted.txt"); got != "data from the server\nmade on the mount\n" {
		t.Errorf("cat: %q", got)
	}
	wantServerFile(t, srv, rel+"/mounted.txt", []byte("made on the mount\n"))
	if out, err := runCmd(dir, time.Minute, "stat", "missing"); err == nil || !strings.Contains(out, "No such file or directory") {
		t.Errorf("stat of a missing file: %v %s", err, out)
	}
}

func shellCp(t *testing.T, m *Mount, srv *Server, dir, rel string) {
	local := t.TempDir()
	data := randomBytes(300<<10, 1)
	if err := os.WriteFile(filepath.Join(local, "src.bin"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, dir, "cp", filepath.Join(local, "src.bin"), "dst.bin")
	wantFile(t, filepath.Join(dir, "dst.bin"), data)
	wantServerFile(t, srv, rel+"/dst.bin", data)

	run(t, dir, "cp", "dst.bin", "copy on mount.bin")
	wantFile(t, filepath.Join(dir, "copy on mount.bin"), data)
	wantServerFile(t, srv, rel+"/copy on mount.bin", data)

	run(t, dir, "cp", "dst.bin", filepath.Join(local, "back.bin"))
	wantFile(t, filepath.Join(local, "back.bin"), data)

	tree := filepath.Join(local, "tree")
	makeTree(t, tree, 40, 2)
	run(t, dir, "cp", "-r", tree, "tree")
	compareTree(t, tree, filepath.Join(dir, "tree"), false, nil)
	eventually(t, serverTimeout, func() error {
		return treeDiff(tree, srv.Path(rel+"/tree"), false, srv.Hidden)
	})
}

func shellMv(t *testing.T, m *Mount, srv *Server, dir, rel string) {
	bash(t, dir, `
printf 'content a\n' > a
mv a b
mkdir sub
mv b sub/b
printf 'new content\n' > c
mv c sub/b
mkdir -p d1/inner/deeper
printf x > d1/x
printf y > d1/inner/y
printf z > d1/inner/deeper/z
mv d1 d2
mv d2 sub/
`)
	for _, gone := range []string{"a", "b", "c", "d1", "d2"} {
		wantGone(t, filepath.Join(dir, gone))
		wantServerGone(t, srv, rel+"/"+gone)
	}
	for p, want := range map[string]string{
		"sub/b":                 "new content\n",
		"sub/d2/x":              "x",
		"sub/d2/inner/y":        "y",
		"sub/d2/inner/deeper/z": "z",
	} {
		wantFile(t, filepath.Join(dir, p), []byte(want))
		wantServerFile(t, srv, rel+"/"+p, []byte(want))
	}
	if got := run(t, dir, "ls", "sub"); got != "b\nd2\n" {
		t.Errorf("ls sub after mv: %q", got)
	}
}

func shellRm(t *testing.T, m *Mount, srv *Server, dir, rel string) {
	bash(t, dir, `
printf data > f
mkdir -p tree/a/b
printf 1 > tree/one
printf 2 > tree/a/two
printf 3 > tree/a/b/three
`)
	wantServerFile(t, srv, rel+"/tree/a/b/three", []byte("3"))
	run(t, dir, "rm", "f")
	wantGone(t, filepath.Join(dir, "f"))
	wantServerGone(t, srv, rel+"/f")
	run(t, dir, "rm", "-r", "tree")
	wantGone(t, filepath.Join(dir, "tree"))
	wantServerGone(t, srv, rel+"/tree")
	if out, err := runCmd(dir, time.Minute, "rm", "f"); err == nil || !strings.Contains(out, "No such file or directory") {
		t.Errorf("rm of a missing file: %v %s", err, out)
	}
	if got := run(t, dir, "ls", "-A"); got != "" {
		t.Errorf("ls -A after rm: %q", got)
	}
}

func shellMkdirRmdir(t *testing.T, m *Mount, srv *Server, dir, rel string) {
	run(t, dir, "mkdir", "d")
	run(t, dir, "mkdir", "-p", "a/b/c")
	for _, d := range []string{"d", "a/b/c"} {
		if fi, err := os.Stat(filepath.Join(dir, d)); err != nil || !fi.IsDir() {
			t.Fatalf("%s after mkdir: %v", d, err)
		}
		wantServerDir(t, srv, rel+"/"+d)
	}
	if out, err := runCmd(dir, time.Minute, "mkdir", "d"); err == nil || !strings.Contains(out, "File exists") {
		t.Errorf("mkdir of an existing directory: %v %s", err, out)
	}
	if out, err := runCmd(dir, time.Minute, "rmdir", "a"); err == nil || !strings.Contains(out, "Directory not empty") {
		t.Errorf("rmdir of a non-empty directory: %v %s", err, out)
	}
	wantServerDir(t, srv, rel+"/a/b/c")
	run(t, dir, "rmdir", "a/b/c")
	run(t, dir, "rmdir", "a/b")
	run(t, dir, "rmdir", "a", "d")
	for _, d := range []string{"a", "d"} {
		wantGone(t, filepath.Join(dir, d))
		wantServerGone(t, srv, rel+"/"+d)
	}
}

func shellTouch(t *testing.T, m *Mount, srv *Server, dir, rel string) {
	run(t, dir, "touch", "new")
	wantFile(t, filepath.Join(dir, "new"), nil)
	wantServerFile(t, srv, rel+"/new", nil)

	run(t, dir, "touch", "-d", "2011-12-13 14:15:16.123456789 UTC", "new")
	want := time.Date(2011, 12, 13, 14, 15, 16, 123456789, time.UTC)
	if got := mtimeOf(t, filepath.Join(dir, "new")); !got.Equal(want) {
		t.Errorf("mtime after touch -d: %v, want %v", got.UTC(), want)
	}

	bash(t, dir, `printf keep > old`)
	run(t, dir, "touch", "-d", "2001-01-01 00:00:00 UTC", "old")
	before := time.Now()
	run(t, dir, "touch", "old")
	if got := mtimeOf(t, filepath.Join(dir, "old")); got.Before(before.Add(-2*time.Second)) || got.After(time.Now().Add(2*time.Second)) {
		t.Errorf("mtime after touch of an existing file: %v, want about %v", got, before)
	}
	wantFile(t, filepath.Join(dir, "old"), []byte("keep"))
	wantServerFile(t, srv, rel+"/old", []byte("keep"))
}

func shellTruncate(t *testing.T, m *Mount, srv *Server, dir, rel string) {
	data := randomBytes(10000, 3)
	if err := os.WriteFile(filepath.Join(dir, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		size int
		want []byte
	}{
		{4000, data[:4000]},
		{6000, append(append([]byte{}, data[:4000]...), make([]byte, 2000)...)},
		{0, nil},
		{100, make([]byte, 100)},
	}
	for _, s := range steps {
		run(t, dir, "truncate", "-s", fmt.Sprint(s.size), "f")
		wantFile(t, filepath.Join(dir, "f"), s.want)
		wantServerFile(t, srv, rel+"/f", s.want)
	}
	run(t, dir, "truncate", "-s", "3000", "created by truncate")
	wantFile(t, filepath.Join(dir, "created by truncate"), make([]byte, 3000))
	wantServerFile(t, srv, rel+"/created by truncate", make([]byte, 3000))
}

func shellAppend(t *testing.T, m *Mount, srv *Server, dir, rel string) {
	bash(t, dir, `
printf 'one\n' > f
printf 'two\n' >> f
echo three >> f
`)
	want := []byte("one\ntwo\nthree\n")
	wantFile(t, filepath.Join(dir, "f"), want)
	wantServerFile(t, srv, rel+"/f", want)

	big := randomBytes(1<<20, 4)
	if err := os.WriteFile(filepath.Join(dir, "big"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	bash(t, dir, `echo tail >> big`)
	want = append(big, "tail\n"...)
	wantFile(t, filepath.Join(dir, "big"), want)
	wantServerFile(t, srv, rel+"/big", want)
}

func shellOverwrite(t *testing.T, m *Mount, srv *Server, dir, rel string) {
	data := randomBytes(1<<20, 5)
	if err := os.WriteFile(filepath.Join(dir, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	wantServerFile(t, srv, rel+"/f", data)
	bash(t, dir, `
printf XYZ | dd of=f bs=1 seek=500000 conv=notrunc status=none
printf 'across a boundary' | dd of=f bs=1 seek=65530 conv=notrunc status=none
`)
	want := bytes.Clone(data)
	copy(want[500000:], "XYZ")
	copy(want[65530:], "across a boundary")
	wantFile(t, filepath.Join(dir, "f"), want)
	wantServerFile(t, srv, rel+"/f", want)

	bash(t, dir, `printf 'a long first version\n' > g; printf 'short\n' > g`)
	wantFile(t, filepath.Join(dir, "g"), []byte("short\n"))
	wantServerFile(t, srv, rel+"/g", []byte("short\n"))
}

func shellCpA(t *testing.T, m *Mount, srv *Server, dir, rel string) {
	local := t.TempDir()
	src := filepath.Join(local, "src")
	bash(t, local, `
mkdir -p src/sub
printf 'private\n' > src/private.txt
printf '#!/bin/sh\necho hi\n' > src/sub/script.sh
chmod 0640 src/private.txt
chmod 0755 src/sub/script.sh
chmod 0750 src/sub
touch -d '2012-02-03 04:05:06.987654321 UTC' src/private.txt
touch -d '2013-03-04 05:06:07.5 UTC' src/sub/script.sh
touch -d '2014-04-05 06:07:08 UTC' src/sub
`)
	run(t, dir, "cp", "-a", src, "dst")
	for _, p := range []string{"private.txt", "sub/script.sh", "sub"} {
		want, got := lstat(t, filepath.Join(src, p)), lstat(t, filepath.Join(dir, "dst", p))
		if got.Mode != want.Mode {
			t.Errorf("%s after cp -a: mode %o, want %o", p, got.Mode, want.Mode)
		}
		if got.Mtim != want.Mtim {
			t.Errorf("%s after cp -a: mtime %v, want %v", p, time.Unix(got.Mtim.Unix()).UTC(), time.Unix(want.Mtim.Unix()).UTC())
		}
	}
	wantFile(t, filepath.Join(dir, "dst/sub/script.sh"), []byte("#!/bin/sh\necho hi\n"))
	wantServerFile(t, srv, rel+"/dst/private.txt", []byte("private\n"))
	if got := run(t, dir, "dst/sub/script.sh"); got != "hi\n" {
		t.Errorf("running a script copied with cp -a: %q", got)
	}
}

func shellZeroBytes(t *testing.T, m *Mount, srv *Server, dir, rel string) {
	local := t.TempDir()
	empty := filepath.Join(local, "empty")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	bash(t, dir, `: > made-by-redirect`)
	run(t, dir, "cp", empty, "copied")
	run(t, dir, "cp", "-a", empty, "copied-a")
	for _, name := range []string{"made-by-redirect", "copied", "copied-a"} {
		if got := strings.TrimSpace(run(t, dir, "stat", "-c", "%s %F", name)); got != "0 regular empty file" {
			t.Errorf("stat %s: %q", name, got)
		}
		if got := run(t, dir, "cat", name); got != "" {
			t.Errorf("cat %s: %q", name, got)
		}
		wantServerFile(t, srv, rel+"/"+name, nil)
	}
	if got, want := mtimeOf(t, filepath.Join(dir, "copied-a")), mtimeOf(t, empty); !got.Equal(want) {
		t.Errorf("mtime of a 0-byte file after cp -a: %v, want %v", got, want)
	}
	// A file emptied on the mount.
	bash(t, dir, `printf 'not for long' > emptied; : > emptied`)
	wantFile(t, filepath.Join(dir, "emptied"), nil)
	wantServerFile(t, srv, rel+"/emptied", nil)
}
