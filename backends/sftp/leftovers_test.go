package sftp

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

func TestIsLeftover(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	age := time.Hour
	stamp := func(d time.Duration) string {
		return UploadPrefix + strconv.FormatInt(now.Add(-d).Unix(), 10) + "-0123456789abcdef"
	}
	for _, tc := range []struct {
		name  string
		mtime time.Duration // before now
		want  bool
	}{
		{stamp(2 * time.Hour), 2 * time.Hour, true},
		{stamp(2 * time.Hour), time.Minute, false},               // still written to
		{stamp(time.Minute), 30 * 24 * time.Hour, false},         // mtime set before the rename
		{stamp(-time.Hour), 2 * time.Hour, false},                // a clock ahead
		{UploadPrefix + "0123456789abcdef", 2 * time.Hour, true}, // an older version's name
		{UploadPrefix + "0123456789abcdef", time.Minute, false},
		{ProbePrefix + "0123456789abcdef", 2 * time.Hour, true},
		{ProbePrefix + "0123456789abcdef", time.Second, false},
		{".cloudmount-other", 2 * time.Hour, false},
		{"plain.txt", 2 * time.Hour, false},
	} {
		if got := isLeftover(tc.name, now.Add(-tc.mtime), now, age); got != tc.want {
			t.Errorf("isLeftover(%q, mtime %v ago) = %v, want %v", tc.name, tc.mtime, got, tc.want)
		}
	}
	if start, ok := tempStarted(tempName(now)); !ok || !start.Equal(now) {
		t.Errorf("tempStarted(tempName(now)) = %v, %v", start, ok)
	}
}

// TestListRemovesLeftovers: a listing hides cloudmount's temporary files
// and removes, in the background, those old enough, never one an upload
// still writes or one that was started recently.
func TestListRemovesLeftovers(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	c.trust(t, s)
	cfg := c.config(s)
	cfg.LeftoverAge = time.Hour
	b := open(t, cfg)
	now := time.Now()
	mk := func(name string, mtime time.Time) string {
		p := filepath.Join(s.dir, name)
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
		return p
	}
	old := mk(tempName(now.Add(-2*time.Hour)), now.Add(-2*time.Hour))
	writing := mk(tempName(now.Add(-2*time.Hour)), now)
	renaming := mk(tempName(now), now.Add(-48*time.Hour))
	oldProbe := mk(ProbePrefix+"0123456789abcdef", now.Add(-2*time.Hour))
	put(t, b, "kept.txt", "data")

	entries, err := b.List(ctxT(t), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 || entries[0].Name != "kept.txt" {
		t.Fatalf("List shows %v, want kept.txt only", entries)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, p := range []string{old, oldProbe} {
		for {
			if _, err := os.Stat(p); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s was not removed", filepath.Base(p))
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	for _, p := range []string{writing, renaming} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s was removed: %v", filepath.Base(p), err)
		}
	}
}

// TestPutLongUploadSetsMetaAfterRename: an upload that took longer than
// half the leftover age still ends with its mode and mtime.
func TestPutLongUploadSetsMetaAfterRename(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	c.trust(t, s)
	cfg := c.config(s)
	cfg.LeftoverAge = time.Nanosecond // every upload is "late"
	b := open(t, cfg)
	mt := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	mode := os.FileMode(0o640)
	e, err := b.Put(ctxT(t), "late.txt", strings.NewReader("late"), 4, backends.PutOptions{Meta: backends.Meta{MTime: &mt, Mode: &mode}})
	if err != nil {
		t.Fatal(err)
	}
	if !e.ModTime.Equal(mt) || e.Meta.Mode == nil || *e.Meta.Mode != mode {
		t.Fatalf("entry mtime %v mode %v, want %v %v", e.ModTime, e.Meta.Mode, mt, mode)
	}
}

// TestRmdirRemovesLeftovers: a directory that holds only leftovers (empty
// in the mount) can be removed; one with a running upload cannot.
func TestRmdirRemovesLeftovers(t *testing.T) {
	s := newTestServer(t)
	c := newClient(t)
	c.trust(t, s)
	cfg := c.config(s)
	cfg.LeftoverAge = time.Hour
	b := open(t, cfg)
	old := time.Now().Add(-2 * time.Hour)
	for _, d := range []string{"gone", "busy"} {
		if err := os.Mkdir(filepath.Join(s.dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
		mtime := old
		if d == "busy" {
			mtime = time.Now()
		}
		p := filepath.Join(s.dir, d, tempName(old))
		if err := os.WriteFile(p, []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.Remove(ctxT(t), "gone"); err != nil {
		t.Fatalf("rmdir of a directory with a leftover only: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.dir, "gone")); !os.IsNotExist(err) {
		t.Fatalf("the directory is still there: %v", err)
	}
	if err := b.Remove(ctxT(t), "busy"); !errors.Is(err, backends.ErrNotEmpty) {
		t.Fatalf("rmdir of a directory with a running upload: %v, want ErrNotEmpty", err)
	}
}

// TestReservedNames: nothing is created under cloudmount's own names,
// which the mount never shows and a listing may take for leftovers.
func TestReservedNames(t *testing.T) {
	b, _ := newBackend(t)
	put(t, b, "f", "x")
	name := tempName(time.Unix(1, 0))
	ctx := ctxT(t)
	for op, err := range map[string]error{
		"put": func() error {
			_, err := b.Put(ctx, "d/"+name, strings.NewReader("x"), 1, backends.PutOptions{})
			return err
		}(),
		"mkdir":   b.Mkdir(ctx, name),
		"rename":  b.Rename(ctx, "f", name, true),
		"symlink": func() error { _, err := b.Symlink(ctx, "f", ProbePrefix+"x"); return err }(),
	} {
		if !errors.Is(err, backends.ErrPermission) {
			t.Errorf("%s under a reserved name: %v, want ErrPermission", op, err)
		}
	}
	if got := readAll(t, b, "f", 0, -1); got != "x" {
		t.Errorf("f holds %q", got)
	}
}
