package fs

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/memory"
)

// serverTree lists every path on b below the root with "/" after
// directories, sorted.
func serverTree(t *testing.T, b backends.Backend) []string {
	t.Helper()
	var out []string
	var walk func(dir string)
	walk = func(dir string) {
		entries, err := b.List(context.Background(), dir)
		if err != nil {
			t.Fatalf("list %q on the server: %v", dir, err)
		}
		for _, e := range entries {
			p := e.Name
			if dir != "" {
				p = dir + "/" + e.Name
			}
			if e.IsDir {
				out = append(out, p+"/")
				walk(p)
			} else {
				out = append(out, p)
			}
		}
	}
	walk("")
	sort.Strings(out)
	return out
}

// mountTree lists every path below mnt the same way.
func mountTree(t *testing.T, mnt string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(mnt, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p == mnt {
			return nil
		}
		rel, _ := filepath.Rel(mnt, p)
		if d.IsDir() {
			rel += "/"
		}
		out = append(out, rel)
		return nil
	})
	if err != nil {
		t.Fatalf("walk the mount: %v", err)
	}
	sort.Strings(out)
	return out
}

func putFile(t *testing.T, b backends.Backend, p, content string) {
	t.Helper()
	if _, err := b.Put(context.Background(), p, strings.NewReader(content), int64(len(content)), backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestTreeChangesQueueWhileOffline: with the server down, mkdir, a file in
// the new directory, rm, rmdir and mv of a file and of a directory that are
// on the server all succeed at once and show in the mount; once the server
// is back, a sync carries them out in order and the server's tree equals
// the mount's. Entries another client changed meanwhile are kept.
func TestTreeChangesQueueWhileOffline(t *testing.T) {
	b := memory.New()
	for _, d := range []string{"keep", "old", "old/sub", "emptydir"} {
		if err := b.Mkdir(context.Background(), d); err != nil {
			t.Fatal(err)
		}
	}
	for p, c := range map[string]string{"keep/a.txt": "a", "old/x.txt": "x", "old/sub/y.txt": "y",
		"gone.txt": "gone", "edited.txt": "v1", "clash.txt": "mine"} {
		putFile(t, b, p, c)
	}
	mnt, m, store := mountAt(t, b, t.TempDir(), Options{DirCacheTime: time.Hour, AttrTimeout: time.Millisecond,
		WritebackDelay: 10 * time.Millisecond, Timeout: 2 * time.Second})
	t.Cleanup(func() { m.Server.Unmount(); m.Drain(time.Second); store.Close() })
	mountTree(t, mnt) // every listing is cached, as after a look around

	// Another client edits edited.txt and makes taken.txt; this mount's
	// listing does not show it yet.
	putFile(t, b, "edited.txt", "v2 from another client")
	putFile(t, b, "taken.txt", "another client's")

	b.FailWith(backends.ErrUnavailable)
	start := time.Now()
	steps := []struct {
		what string
		do   func() error
	}{
		{"mkdir new", func() error { return os.Mkdir(filepath.Join(mnt, "new"), 0o750) }},
		{"write new/f.txt", func() error { return os.WriteFile(filepath.Join(mnt, "new", "f.txt"), []byte("new file"), 0o644) }},
		{"rm gone.txt", func() error { return os.Remove(filepath.Join(mnt, "gone.txt")) }},
		{"rm edited.txt", func() error { return os.Remove(filepath.Join(mnt, "edited.txt")) }},
		{"rmdir emptydir", func() error { return os.Remove(filepath.Join(mnt, "emptydir")) }},
		{"mv old moved", func() error { return os.Rename(filepath.Join(mnt, "old"), filepath.Join(mnt, "moved")) }},
		{"mv keep/a.txt keep/b.txt", func() error {
			return os.Rename(filepath.Join(mnt, "keep", "a.txt"), filepath.Join(mnt, "keep", "b.txt"))
		}},
		{"mv clash.txt taken.txt", func() error { return os.Rename(filepath.Join(mnt, "clash.txt"), filepath.Join(mnt, "taken.txt")) }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("with the server down: %s: %v", s.what, err)
		}
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("the changes took %v with the server down: they must not wait for it", d)
	}
	if err := os.Remove(filepath.Join(mnt, "keep")); !errors.Is(err, syscall.ENOTEMPTY) {
		t.Errorf("rmdir of a directory with a file in it, server down: %v, want ENOTEMPTY", err)
	}
	want := []string{"keep/", "keep/b.txt", "moved/", "moved/sub/", "moved/sub/y.txt", "moved/x.txt", "new/", "new/f.txt", "taken.txt"}
	if got := mountTree(t, mnt); !slices.Equal(got, want) {
		t.Fatalf("the mount with the server down:\n got %q\nwant %q", got, want)
	}
	if got, err := os.ReadFile(filepath.Join(mnt, "new", "f.txt")); err != nil || string(got) != "new file" {
		t.Fatalf("read new/f.txt with the server down: %q, %v", got, err)
	}
	if st := m.Status(); st.QueuedChanges != 7 || st.QueuedFiles != 1 {
		t.Fatalf("status with the server down: %d changes and %d files queued, want 7 and 1", st.QueuedChanges, st.QueuedFiles)
	}

	b.FailWith(nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := m.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	st := m.Status()
	if st.QueuedChanges != 0 || st.QueuedFiles != 0 {
		t.Fatalf("status after sync: %+v", st)
	}
	got := serverTree(t, b)
	var copyName string
	for _, p := range got {
		if strings.HasPrefix(p, "taken (conflicted copy ") {
			copyName = p
		}
	}
	wantServer := []string{"edited.txt", "keep/", "keep/b.txt", "moved/", "moved/sub/", "moved/sub/y.txt", "moved/x.txt", "new/", "new/f.txt", "taken.txt"}
	if copyName != "" {
		wantServer = append(wantServer, copyName)
		sort.Strings(wantServer)
	}
	if !slices.Equal(got, wantServer) || copyName == "" {
		t.Fatalf("the server after sync:\n got %q\nwant %q and a conflict copy of taken.txt", got, wantServer)
	}
	for p, c := range map[string]string{"edited.txt": "v2 from another client", "taken.txt": "another client's",
		copyName: "mine", "moved/sub/y.txt": "y", "new/f.txt": "new file", "keep/b.txt": "a"} {
		if data, ok := b.Content(p); !ok || !bytes.Equal(data, []byte(c)) {
			t.Errorf("%s on the server: %q, want %q", p, data, c)
		}
	}
	notes := map[string]bool{}
	for _, c := range st.Conflicts {
		notes[c.Path] = c.Note != ""
	}
	if !notes["remove edited.txt"] || !notes["rename clash.txt to taken.txt"] {
		t.Errorf("conflicts in the status: %+v, want the kept edited.txt and the clash at taken.txt", st.Conflicts)
	}
}

// TestTreeChangesReplayAfterRestart: changes queued while the server was
// down survive the end of the daemon (the journal), and the next mount
// carries them out.
func TestTreeChangesReplayAfterRestart(t *testing.T) {
	b := memory.New()
	if err := b.Mkdir(context.Background(), "d"); err != nil {
		t.Fatal(err)
	}
	putFile(t, b, "d/f", "f")
	cacheDir := t.TempDir()
	mnt, m, store := mountAt(t, b, cacheDir, Options{DirCacheTime: time.Hour, Timeout: 2 * time.Second})
	mountTree(t, mnt)
	b.FailWith(backends.ErrUnavailable)
	if err := os.Rename(filepath.Join(mnt, "d"), filepath.Join(mnt, "e")); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(mnt, "e", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	m.Server.Unmount()
	m.Drain(0)
	store.Close()

	b.FailWith(nil)
	_, m2, store2 := mountAt(t, b, cacheDir, Options{})
	t.Cleanup(func() { m2.Server.Unmount(); m2.Drain(time.Second); store2.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := m2.Sync(ctx, nil); err != nil {
		t.Fatal(err)
	}
	if got, want := serverTree(t, b), []string{"e/", "e/f", "e/sub/"}; !slices.Equal(got, want) {
		t.Fatalf("the server after the next mount: %q, want %q", got, want)
	}
}

// TestOfflineAtTheFirstFailedCall: the status says offline as soon as a
// lookup finds the server unreachable (not only after an upload failed),
// a file created in a directory listed long ago queues, and the status is
// online again once the server answers the mount's probe.
func TestOfflineAtTheFirstFailedCall(t *testing.T) {
	b := memory.New()
	if err := b.Mkdir(context.Background(), "d"); err != nil {
		t.Fatal(err)
	}
	putFile(t, b, "d/x", "x")
	mnt, m, store := mountAt(t, b, t.TempDir(), Options{DirCacheTime: 50 * time.Millisecond, AttrTimeout: 10 * time.Millisecond,
		WritebackDelay: time.Hour, Timeout: time.Second})
	t.Cleanup(func() { m.Server.Unmount(); m.Drain(time.Second); store.Close() })
	if _, err := os.ReadDir(filepath.Join(mnt, "d")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the listing is older than the cache time
	b.FailWith(backends.ErrUnavailable)
	if _, err := os.Stat(filepath.Join(mnt, "d", "y")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat of a name the old listing does not have, server down: %v", err)
	}
	if st := m.Status(); st.Online || st.LastError == "" {
		t.Fatalf("status after a lookup found the server down: online=%v last error %q", st.Online, st.LastError)
	}
	if err := os.WriteFile(filepath.Join(mnt, "d", "new"), []byte("n"), 0o644); err != nil {
		t.Fatalf("create in a directory listed long ago, server down: %v", err)
	}
	b.FailWith(nil)
	// The mount's probe of the server finds it back, within its first
	// waits, without any call of a user.
	deadline := time.Now().Add(3 * time.Second)
	for !m.Status().Online && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if st := m.Status(); !st.Online {
		t.Fatalf("status 3 s after the server is back: offline (%q)", st.LastError)
	}
	if _, err := os.ReadDir(filepath.Join(mnt, "d")); err != nil {
		t.Fatal(err)
	}
}

// TestExpiredListingIsReadAgain: once a directory's listing has expired,
// lookups of names it does not have (rsync's temporary names) cost one
// Stat and then one new listing, not a Stat each.
func TestExpiredListingIsReadAgain(t *testing.T) {
	b := memory.New()
	if err := b.Mkdir(context.Background(), "d"); err != nil {
		t.Fatal(err)
	}
	putFile(t, b, "d/x", "x")
	mnt, m, store := mountAt(t, b, t.TempDir(), Options{DirCacheTime: 100 * time.Millisecond, AttrTimeout: time.Millisecond})
	t.Cleanup(func() { m.Server.Unmount(); m.Drain(time.Second); store.Close() })
	if _, err := os.ReadDir(filepath.Join(mnt, "d")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	stats, lists := b.Calls("Stat"), b.Calls("List")
	for i := range 20 {
		if _, err := os.Lstat(filepath.Join(mnt, "d", fmt.Sprintf(".tmp.%d", i))); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("lstat of a name that is not there: %v", err)
		}
	}
	// The new listing may expire again during the lookups on a slow machine.
	if s, l := b.Calls("Stat")-stats, b.Calls("List")-lists; s > 3 || l < 1 || s+l > 5 {
		t.Errorf("20 lookups in a directory whose listing expired: %d Stats and %d listings, want one or two of each", s, l)
	}
}
