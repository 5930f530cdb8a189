package integration

import (
	"bytes"
	"fmt"
	"os"
	"path"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// conflictCopyName matches "STEM (conflicted copy YYYY-MM-DD HHMMSS HOST)EXT".
func conflictCopyName(stem, ext string) *regexp.Regexp {
	return regexp.MustCompile(`^` + regexp.QuoteMeta(stem) + ` \(conflicted copy (\d{4}-\d{2}-\d{2} \d{6}) (.+)\)` + regexp.QuoteMeta(ext) + `$`)
}

// conflictCopies returns the names in the server's directory dir that are
// conflict copies of stem+ext, after checking the date and host in them.
func conflictCopies(t testing.TB, srv *Server, dir, stem, ext string) []string {
	t.Helper()
	re := conflictCopyName(stem, ext)
	host, _ := os.Hostname()
	var out []string
	for _, name := range readDirNames(t, srv.Path(dir)) {
		m := re.FindStringSubmatch(name)
		if m == nil {
			continue
		}
		out = append(out, name)
		when, err := time.ParseInLocation("2006-01-02 150405", m[1], time.Local)
		if err != nil {
			t.Errorf("conflict copy %q: date %q: %v", name, m[1], err)
		} else if d := time.Since(when); d < -25*time.Hour || d > 25*time.Hour {
			t.Errorf("conflict copy %q: date %s is not about now", name, m[1])
		}
		if host != "" && m[2] != host {
			t.Errorf("conflict copy %q: host %q, want %q", name, m[2], host)
		}
	}
	return out
}

// wantConflictInStatus checks that `cloudmount status --json` lists a
// conflict of rel whose copy is named copyName.
func wantConflictInStatus(t testing.TB, m *Mount, rel, copyName string) {
	t.Helper()
	st := m.Status(t)
	for _, c := range st.Conflicts {
		if strings.TrimPrefix(c.Path, "/") == rel && path.Base(c.Copy) == copyName {
			return
		}
	}
	t.Errorf("status does not list the conflict of %s (copy %q):\n%s", rel, copyName, st)
}

// TestConflict edits a file on the mount while the server's copy changes
// behind its back, before the edit is uploaded: after `cloudmount sync`
// both versions exist, the server's under the original name and the local
// edit as "doc (conflicted copy DATE TIME HOST).txt" beside it, and the
// status lists the conflict. A file created on the mount under a name
// that appears on the server meanwhile never replaces the server's file
// either.
func TestConflict(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		m := mountServer(t, srv, MountOptions{Args: []string{"--writeback-delay=10m"}})
		testConflicts(t, srv, m, srv.Hidden)
	})
}

// testConflicts is TestConflict on mount m of srv (the write-back delay
// long enough that nothing is uploaded before `cloudmount sync`), in a
// new directory c; hidden tells the server's own files, which do not
// count, from the test's.
func testConflicts(t *testing.T, srv *Server, m *Mount, hidden func(string) bool) {
	if err := os.Mkdir(m.Path("c"), 0o755); err != nil {
		t.Fatal(err)
	}

	t.Run("edit", func(t *testing.T) {
		original := []byte("version 1, written through the mount\n")
		local := []byte("version 2, edited on the mount\n")
		remote := []byte("version 3, changed on the server meanwhile, by someone else\n")
		if err := os.WriteFile(m.Path("c/doc.txt"), original, 0o644); err != nil {
			t.Fatal(err)
		}
		m.Sync(t)
		wantFile(t, srv.Path("c/doc.txt"), original)

		if err := os.WriteFile(m.Path("c/doc.txt"), local, 0o644); err != nil {
			t.Fatal(err)
		}
		wantFile(t, m.Path("c/doc.txt"), local)
		wantFile(t, srv.Path("c/doc.txt"), original)
		srv.WriteFile(t, "c/doc.txt", remote, time.Now().Add(time.Minute))
		m.Sync(t)

		copyName := wantOneConflict(t, srv, m, "doc", local, remote)
		// The mount shows both, the server's version under the
		// original name (once its listing and attributes expire).
		eventually(t, 90*time.Second, func() error {
			for name, want := range map[string][]byte{"doc.txt": remote, copyName: local} {
				got, err := os.ReadFile(m.Path("c/" + name))
				if err != nil || !bytes.Equal(got, want) {
					return fmt.Errorf("on the mount, c/%s has %q (%v), want %q", name, got, err, want)
				}
			}
			return nil
		})
	})

	t.Run("create", func(t *testing.T) {
		local := []byte("created on the mount\n")
		remote := []byte("created on the server first\n")
		if err := os.WriteFile(m.Path("c/new.txt"), local, 0o644); err != nil {
			t.Fatal(err)
		}
		wantFile(t, m.Path("c/new.txt"), local)
		srv.WriteFile(t, "c/new.txt", remote, time.Time{})
		m.Sync(t)

		wantOneConflict(t, srv, m, "new", local, remote)
	})

	// Nothing else appeared: no temporary or extra copies.
	got := slices.DeleteFunc(readDirNames(t, srv.Path("c")), hidden)
	if len(got) != 4 {
		t.Errorf("server's c/ after both conflicts: %q, want doc.txt, new.txt and one conflict copy of each", got)
	}
}

// wantOneConflict checks what a sync left of a conflict over c/STEM.txt:
// the server keeps remote under the name and local in the one conflict
// copy beside it, which the status lists. It returns the copy's name.
func wantOneConflict(t *testing.T, srv *Server, m *Mount, stem string, local, remote []byte) string {
	t.Helper()
	rel := "c/" + stem + ".txt"
	wantFile(t, srv.Path(rel), remote)
	copies := conflictCopies(t, srv, "c", stem, ".txt")
	if len(copies) != 1 {
		t.Fatalf("server's c/: want %s.txt and one conflict copy of it, got %q", stem, readDirNames(t, srv.Path("c")))
	}
	wantFile(t, srv.Path("c/"+copies[0]), local)
	wantConflictInStatus(t, m, rel, copies[0])
	return copies[0]
}
