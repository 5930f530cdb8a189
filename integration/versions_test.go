package integration

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTwoWriters appends to a file on the mount while another client PUTs
// new content over HTTP during the write-back delay: after `cloudmount
// sync` the server keeps the other client's version under the name and a
// conflict copy holds the mount's, on every server, also on those without
// ETags or conditional PUT. When the other client sends exactly the bytes
// the mount has staged, there is no conflict.
func TestTwoWriters(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		m := mountServer(t, srv, MountOptions{Args: []string{"--writeback-delay=10m"}})
		if err := os.Mkdir(m.Path("c"), 0o755); err != nil {
			t.Fatal(err)
		}
		original := []byte("line 1, written through the mount\n")
		if err := os.WriteFile(m.Path("c/log.txt"), original, 0o644); err != nil {
			t.Fatal(err)
		}
		m.Sync(t)
		wantFile(t, srv.Path("c/log.txt"), original)

		f, err := os.OpenFile(m.Path("c/log.txt"), os.O_WRONLY|os.O_APPEND, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write([]byte("line 2, appended on the mount\n")); err != nil {
			t.Fatal(err)
		}
		if err := f.Close(); err != nil {
			t.Fatal(err)
		}
		local := append(append([]byte(nil), original...), "line 2, appended on the mount\n"...)
		remote := []byte("rewritten by another client\n")
		put(t, srv, "c/log.txt", remote)
		m.Sync(t)

		wantOneConflictOf(t, srv, m, "log", local, remote)

		// The other client sends exactly what the mount has staged: no
		// conflict, and the mount's metadata stays.
		same := []byte("the same bytes from both sides\n")
		if err := os.WriteFile(m.Path("c/same.txt"), same, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(m.Path("c/same.txt"), 0o600); err != nil {
			t.Fatal(err)
		}
		put(t, srv, "c/same.txt", same)
		m.Sync(t)
		wantFile(t, srv.Path("c/same.txt"), same)
		if copies := conflictCopies(t, srv, "c", "same", ".txt"); len(copies) > 0 {
			t.Errorf("conflict copies of identical content: %q", copies)
		}
		if st := lstat(t, m.Path("c/same.txt")); st.Mode != 0o100600 {
			t.Errorf("c/same.txt has mode %o after the other client's identical PUT, want 100600", st.Mode)
		}
	})
}

// put stores data at rel with a PUT from another client.
func put(t testing.TB, srv *Server, rel string, data []byte) {
	t.Helper()
	resp, err := srv.Do("PUT", rel, nil, bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusOK {
		t.Fatalf("PUT %s by another client: %s", rel, resp.Status)
	}
}

// wantOneConflictOf is wantOneConflict for c/STEM.txt.
func wantOneConflictOf(t *testing.T, srv *Server, m *Mount, stem string, local, remote []byte) {
	t.Helper()
	wantOneConflict(t, srv, m, stem, local, remote)
}

// TestRsyncChanges copies a tree with rsync, changes 5 of its files and
// copies again: the 5 land on the server with their content and the mount
// shows their mtimes, no conflict copy appears, and the next run transfers
// nothing. rsync writes each changed file to a temporary name and renames
// it over the old one, which must count as an edit of that file on every
// server, with or without ETags.
func TestRsyncChanges(t *testing.T) {
	needTool(t, "rsync")
	eachServer(t, func(t *testing.T, srv *Server) {
		src := filepath.Join(t.TempDir(), "src")
		files := makeTree(t, src, 60, 11)
		m := mountServer(t, srv, MountOptions{})
		rsync := rsyncOnto(src, m.Path("dst"), srv.Kind, files)
		if n := rsync(t, "first run"); n != len(files) {
			t.Errorf("first run transferred %d files, want %d", n, len(files))
		}
		m.Sync(t)
		changed := 0
		for i, f := range files {
			if f.Size == 0 || changed == 5 {
				continue
			}
			p := filepath.Join(src, f.Rel)
			data := []byte(fmt.Sprintf("changed content %d of %s\n", i, f.Rel))
			if err := os.WriteFile(p, data, f.Mode); err != nil {
				t.Fatal(err)
			}
			mt := f.Mtime.Add(time.Hour + 123456789)
			if err := os.Chtimes(p, mt, mt); err != nil {
				t.Fatal(err)
			}
			changed++
		}
		if n := rsync(t, "after 5 changes"); n != 5 {
			t.Errorf("run after 5 changes transferred %d files, want 5", n)
		}
		m.Sync(t)
		compareTree(t, src, m.Path("dst"), true, nil)
		if err := treeDiff(src, srv.Path("dst"), false, srv.Hidden); err != nil {
			t.Error(err)
		}
		if copies := findConflictCopies(t, srv.Path("dst")); len(copies) > 0 {
			t.Errorf("conflict copies on the server: %q", copies)
		}
		if n := rsync(t, "third run"); n != 0 {
			t.Errorf("third run transferred %d files, want 0", n)
		}

		// A second machine: a mount with a fresh cache directory.
		m = m.Remount(t, true)
		if n := rsync(t, "fresh cache"); n != 0 {
			t.Errorf("run with a fresh cache transferred %d files, want 0", n)
		}
		m.Sync(t)
		if copies := findConflictCopies(t, srv.Path("dst")); len(copies) > 0 {
			t.Errorf("conflict copies on the server after a run with a fresh cache: %q", copies)
		}
		if n := rsync(t, "fresh cache, again"); n != 0 {
			t.Errorf("second run with a fresh cache transferred %d files, want 0", n)
		}
		compareTree(t, src, m.Path("dst"), true, nil)
	})
}

// findConflictCopies lists the conflict copies anywhere below dir.
func findConflictCopies(t testing.TB, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if strings.Contains(d.Name(), "(conflicted copy ") {
			out = append(out, p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
