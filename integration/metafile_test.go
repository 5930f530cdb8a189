package integration

import (
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestMetaFileSecondMachine: after an rsync onto the mount, a second
// machine (a mount with a new cache directory) sees every mtime to the
// nanosecond and every mode, so its `rsync -a` of the unchanged tree
// transfers nothing and makes no conflict copy, on every server: Apache
// keeps them as dead properties, nginx and rclone serve in a metadata
// file per directory. That file is never seen in the mount, and a
// directory emptied of its files can be removed.
func TestMetaFileSecondMachine(t *testing.T) {
	needTool(t, "rsync")
	eachServer(t, func(t *testing.T, srv *Server) {
		src := filepath.Join(t.TempDir(), "src")
		files := makeTree(t, src, 120, 23)
		m := mountServer(t, srv, MountOptions{})
		rsync := rsyncOnto(src, m.Path("dst"), srv.Kind, files)
		if n := rsync(t, "first run"); n != len(files) {
			t.Errorf("first run transferred %d files, want %d", n, len(files))
		}
		m.Sync(t)
		metaFiles := findNamed(t, srv.Path("dst"), metaFileName)
		t.Logf("FIGURE: %s: %d metadata files on the server for %d files", srv.Kind, len(metaFiles), len(files))
		switch {
		case srv.DeadProps && len(metaFiles) > 0:
			t.Errorf("%s keeps dead properties, yet metadata files were written: %q", srv.Kind, metaFiles)
		case !srv.DeadProps && len(metaFiles) == 0:
			t.Errorf("%s keeps no dead properties and no metadata file was written", srv.Kind)
		}

		m = m.Remount(t, true)
		mark := len(srv.Requests(t))
		if n := rsync(t, "second machine"); n != 0 {
			t.Errorf("rsync -a from a second machine (a fresh cache) transferred %d files, want 0", n)
		}
		reqs := srv.Requests(t)[mark:]
		gets := 0
		for _, r := range reqs {
			if r.Method == "GET" && strings.HasSuffix(r.Path, "/"+metaFileName) {
				gets++
			}
		}
		t.Logf("FIGURE: %s: rsync from a second machine: %d requests in all, %d GETs of metadata files", srv.Kind, len(reqs), gets)
		m.Sync(t)
		if copies := findConflictCopies(t, srv.Path("dst")); len(copies) > 0 {
			t.Errorf("conflict copies on the server after the second machine's rsync: %q", copies)
		}
		for _, f := range files {
			st := lstat(t, m.Path(filepath.Join("dst", f.Rel)))
			if got := time.Unix(st.Mtim.Unix()); !got.Equal(f.Mtime) {
				t.Errorf("second machine: %s: mtime %v, want %v", f.Rel, got.UTC(), f.Mtime.UTC())
			}
			if os.FileMode(st.Mode).Perm() != f.Mode {
				t.Errorf("second machine: %s: mode %o, want %o", f.Rel, st.Mode&0o7777, f.Mode)
			}
		}

		// Never seen in the mount: find, ls -a, a lookup by name.
		if out := bash(t, m.Dir, "find . -name "+metaFileName); strings.TrimSpace(out) != "" {
			t.Errorf("find shows the metadata file: %q", out)
		}
		if names := readDirNames(t, m.Path("dst")); slices.Contains(names, metaFileName) {
			t.Errorf("ls -a shows the metadata file")
		}
		if out := bash(t, m.Dir, "ls -a dst"); strings.Contains(out, metaFileName) {
			t.Errorf("ls -a shows the metadata file: %q", out)
		}
		if _, err := os.Lstat(m.Path("dst/" + metaFileName)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("stat of the metadata file's name in the mount: %v, want ENOENT", err)
		}
		if err := os.WriteFile(m.Path("dst/"+metaFileName), []byte("x"), 0o644); err == nil && !srv.DeadProps {
			t.Errorf("creating a file of the metadata file's name succeeded")
		}

		// A directory emptied of its files can be removed.
		var sub string
		for _, f := range files {
			if d := filepath.Dir(f.Rel); d != "." {
				sub = d
				break
			}
		}
		if sub == "" {
			t.Fatal("the tree has no subdirectory")
		}
		// rm -r: unlink of each file, then rmdir.
		if err := os.RemoveAll(m.Path(filepath.Join("dst", sub))); err != nil {
			t.Errorf("rm -r of %s on the mount: %v", sub, err)
		}
		m.Sync(t)
		if _, err := os.Stat(srv.Path(filepath.Join("dst", sub))); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("after rm -r of %s on the mount, the server still has it: %v", sub, err)
		}
	})
}

// findNamed lists the paths below dir whose name is name.
func findNamed(t testing.TB, dir, name string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Name() == name {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
