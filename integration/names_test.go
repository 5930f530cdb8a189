package integration

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// awkwardNames are file names that a WebDAV client must escape in URLs or
// XML: spaces, unicode, %, #, ?, &, quotes and other shell-special signs.
var awkwardNames = []string{
	"with space.txt",
	"  two leading spaces",
	"Ünïcødé ñ.txt",
	"日本語のファイル",
	"emoji 🙂",
	"100%.txt",
	"%20not-a-space",
	"%",
	"hash#tag",
	"#start",
	"what?.txt",
	"?",
	"a&b=c",
	"single'quote",
	`double"quote`,
	`mixed '"%#?& all`,
	"plus+sign",
	"semi;colon",
	"brackets[1]{2}",
	"dollar$HOME",
	"back`tick`",
	"less<greater>",
	"tilde~ comma,",
}

// TestNames creates, lists, reads, renames and removes files and
// directories with awkward names through the mount, and checks that the
// server stores exactly those names.
func TestNames(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		// Files appear on the server behind the mount's back below: trust
		// listings for a second, not the default minute.
		m := mountServer(t, srv, MountOptions{Args: []string{"--dir-cache-time", "1s"}})
		dir, rel := subdir(t, m, "names")
		var want []string
		for _, name := range awkwardNames {
			content := []byte("content of " + name + "\n")
			if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
				t.Errorf("create %q: %v", name, err)
				continue
			}
			wantFile(t, filepath.Join(dir, name), content)
			wantServerFile(t, srv, rel+"/"+name, content)
			if err := os.Mkdir(filepath.Join(dir, name+" dir"), 0o755); err != nil {
				t.Errorf("mkdir %q: %v", name+" dir", err)
				continue
			}
			inner := filepath.Join(name+" dir", name)
			if err := os.WriteFile(filepath.Join(dir, inner), content, 0o644); err != nil {
				t.Errorf("create %q: %v", inner, err)
				continue
			}
			wantServerFile(t, srv, rel+"/"+inner, content)
			want = append(want, name, name+" dir")
		}
		slices.Sort(want)
		if got := readDirNames(t, dir); !slices.Equal(got, want) {
			t.Errorf("listing on the mount:\n got %q\nwant %q", got, want)
		}
		var onServer []string
		for _, name := range readDirNames(t, srv.Path(rel)) {
			if !srv.Hidden(name) {
				onServer = append(onServer, name)
			}
		}
		if got := onServer; !slices.Equal(got, want) {
			t.Errorf("listing on the server:\n got %q\nwant %q", got, want)
		}

		// Renames to and from awkward names, of files and directories.
		for _, name := range awkwardNames {
			content := []byte("content of " + name + "\n")
			from, to := filepath.Join(dir, name), filepath.Join(dir, "renamed "+name)
			if err := os.Rename(from, to); err != nil {
				t.Errorf("rename %q: %v", name, err)
				continue
			}
			wantGone(t, from)
			wantFile(t, to, content)
			wantServerGone(t, srv, rel+"/"+name)
			wantServerFile(t, srv, rel+"/renamed "+name, content)
			if err := os.Rename(filepath.Join(dir, name+" dir"), filepath.Join(dir, name+" moved")); err != nil {
				t.Errorf("rename directory %q: %v", name+" dir", err)
				continue
			}
			wantFile(t, filepath.Join(dir, name+" moved", name), content)
			wantServerFile(t, srv, rel+"/"+name+" moved/"+name, content)
		}

		// Names the server has that the mount did not make. The mount may
		// trust what it listed for --dir-cache-time (1 s here), so they
		// must show up within a few seconds, not at once.
		for _, name := range awkwardNames {
			srv.WriteFile(t, rel+"/server side/"+name, []byte(name), time.Time{})
		}
		want = slices.Clone(awkwardNames)
		slices.Sort(want)
		eventually(t, 10*time.Second, func() error {
			got, err := listNames(filepath.Join(dir, "server side"))
			if err != nil {
				return err
			}
			if !slices.Equal(got, want) {
				return errorf("listing of files made on the server:\n got %q\nwant %q", got, want)
			}
			return nil
		})
		for _, name := range awkwardNames {
			wantFile(t, filepath.Join(dir, "server side", name), []byte(name))
		}

		run(t, m.Dir, "rm", "-r", "names")
		wantServerGone(t, srv, rel)
	})
}

// readDirNames lists a directory, sorted, without the server's own entries.
func readDirNames(t testing.TB, dir string) []string {
	t.Helper()
	names, err := listNames(dir)
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// listNames is the sorted listing of dir, without Apache's .DAV.
func listNames(dir string) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range ents {
		if e.Name() == ".DAV" {
			continue
		}
		names = append(names, e.Name())
	}
	slices.Sort(names)
	return names, nil
}
