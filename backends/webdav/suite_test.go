package webdav

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"io"
	"path"
	"sort"
	"strings"
	"testing"

	"github.com/cloudmount/cloudmount/backends"
)

// specialNames must survive a round trip through URLs, hrefs and the MOVE
// Destination header.
var specialNames = []string{
	"plain.txt",
	"a b c.txt",
	"ünïcødé €.txt",
	"日本語のファイル",
	"100% sure",
	"%20not-a-space",
	"hash#tag",
	"what?.txt",
	"a&b=c+d",
	"it's",
	`say "hi"`,
	"semi;colon,comma",
	"brackets [1] {2}",
	"~tilde @at $dollar !bang",
	".hidden",
}

// runSuite exercises every method of b in a fresh directory. It is run
// against the in-process servers and, by hand, against real ones
// (TestLiveServer).
func runSuite(t *testing.T, b *Backend) {
	ctx := testContext(t)
	caps, err := b.Capabilities(ctx)
	if err != nil {
		t.Fatalf("Capabilities: %v", err)
	}
	base := "cmtest-" + randomHex(4)
	if err := b.Mkdir(ctx, base); err != nil {
		t.Fatalf("Mkdir(%s): %v", base, err)
	}
	t.Cleanup(func() { removeTree(t, b, base) })
	dir := func(name string) string {
		d := path.Join(base, name)
		if err := b.Mkdir(ctx, d); err != nil {
			t.Fatalf("Mkdir(%s): %v", d, err)
		}
		return d
	}

	t.Run("names", func(t *testing.T) {
		d := dir("names")
		for _, n := range specialNames {
			putString(t, b, path.Join(d, n), "content of "+n)
			if err := b.Mkdir(ctx, path.Join(d, "dir "+n)); err != nil {
				t.Fatalf("Mkdir(dir %q): %v", n, err)
			}
		}
		for _, n := range specialNames {
			p := path.Join(d, n)
			e, err := b.Stat(ctx, p)
			if err != nil {
				t.Fatalf("Stat(%q): %v", p, err)
			}
			if e.Name != n || e.IsDir || e.Size != int64(len("content of "+n)) || e.Version == "" {
				t.Errorf("Stat(%q) = %+v", p, e)
			}
			if got := readAll(t, b, p, 0, -1); got != "content of "+n {
				t.Errorf("Read(%q) = %q", p, got)
			}
			if e, err := b.Stat(ctx, path.Join(d, "dir "+n)); err != nil || !e.IsDir || e.Name != "dir "+n {
				t.Errorf("Stat(dir %q) = %+v, %v", n, e, err)
			}
		}
		entries, err := b.List(ctx, d)
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		var got, want []string
		for _, e := range entries {
			kind := "f:"
			if e.IsDir {
				kind = "d:"
			}
			got = append(got, kind+e.Name)
		}
		for _, n := range specialNames {
			want = append(want, "f:"+n, "d:dir "+n)
		}
		sort.Strings(got)
		sort.Strings(want)
		if strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("List:\n got %q\nwant %q", got, want)
		}
	})

	t.Run("errors", func(t *testing.T) {
		d := dir("errors")
		putString(t, b, path.Join(d, "file"), "x")
		cases := []struct {
			name string
			err  error
			want error
		}{
			{"Stat missing", stat(b, t, path.Join(d, "missing")), backends.ErrNotFound},
			{"Read missing", readErr(b, t, path.Join(d, "missing")), backends.ErrNotFound},
			{"List missing", listErr(b, t, path.Join(d, "missing")), backends.ErrNotFound},
			{"List file", listErr(b, t, path.Join(d, "file")), backends.ErrNotDir},
			{"Mkdir existing dir", b.Mkdir(ctx, d), backends.ErrExist},
			{"Mkdir existing file", b.Mkdir(ctx, path.Join(d, "file")), backends.ErrExist},
			{"Mkdir missing parent", b.Mkdir(ctx, path.Join(d, "no/such")), backends.ErrNotFound},
			{"Put missing parent", putErr(b, t, path.Join(d, "no/such")), backends.ErrNotFound},
			{"Remove missing", b.Remove(ctx, path.Join(d, "missing")), backends.ErrNotFound},
			{"Rename missing", b.Rename(ctx, path.Join(d, "missing"), path.Join(d, "x"), false), backends.ErrNotFound},
			{"Rename to missing parent", b.Rename(ctx, path.Join(d, "file"), path.Join(d, "no/such"), false), backends.ErrNotFound},
			{"Remove root", b.Remove(ctx, ""), backends.ErrPermission},
		}
		for _, c := range cases {
			if !errors.Is(c.err, c.want) {
				t.Errorf("%s: got %v, want %v", c.name, c.err, c.want)
			}
		}
	})

	t.Run("remove", func(t *testing.T) {
		d := dir("remove")
		putString(t, b, path.Join(d, "f"), "x")
		sub := dir("remove/full dir")
		putString(t, b, path.Join(sub, "child"), "x")
		dir("remove/empty dir")
		if err := b.Remove(ctx, path.Join(d, "f")); err != nil {
			t.Errorf("Remove file: %v", err)
		}
		if err := b.Remove(ctx, sub); !errors.Is(err, backends.ErrNotEmpty) {
			t.Errorf("Remove full dir: %v, want ErrNotEmpty", err)
		}
		if _, err := b.Stat(ctx, path.Join(sub, "child")); err != nil {
			t.Errorf("child gone after refused Remove: %v", err)
		}
		if err := b.Remove(ctx, path.Join(d, "empty dir")); err != nil {
			t.Errorf("Remove empty dir: %v", err)
		}
		entries, _ := b.List(ctx, d)
		if len(entries) != 1 || entries[0].Name != "full dir" {
			t.Errorf("after removes: %+v", entries)
		}
	})

	t.Run("rename", func(t *testing.T) {
		d := dir("rename")
		p := func(n string) string { return path.Join(d, n) }
		putString(t, b, p("a"), "A")
		putString(t, b, p("b"), "BB")
		if err := b.Rename(ctx, p("a"), p(`it's "a" #1?`), false); err != nil {
			t.Fatalf("Rename to new name: %v", err)
		}
		if got := readAll(t, b, p(`it's "a" #1?`), 0, -1); got != "A" {
			t.Errorf("renamed content %q", got)
		}
		if err := b.Rename(ctx, p(`it's "a" #1?`), p("b"), false); !errors.Is(err, backends.ErrExist) {
			t.Errorf("Rename onto existing without overwrite: %v, want ErrExist", err)
		}
		if err := b.Rename(ctx, p(`it's "a" #1?`), p("b"), true); err != nil {
			t.Fatalf("Rename with overwrite: %v", err)
		}
		if got := readAll(t, b, p("b"), 0, -1); got != "A" {
			t.Errorf("overwritten content %q", got)
		}
		if _, err := b.Stat(ctx, p(`it's "a" #1?`)); !errors.Is(err, backends.ErrNotFound) {
			t.Errorf("source still there: %v", err)
		}
		src := dir("rename/src dir")
		putString(t, b, path.Join(src, "inner"), "I")
		full := dir("rename/full")
		putString(t, b, path.Join(full, "keep"), "K")
		dir("rename/empty")
		if err := b.Rename(ctx, p("b"), full, true); !errors.Is(err, backends.ErrIsDir) {
			t.Errorf("file onto dir: %v, want ErrIsDir", err)
		}
		if err := b.Rename(ctx, src, p("b"), true); !errors.Is(err, backends.ErrNotDir) {
			t.Errorf("dir onto file: %v, want ErrNotDir", err)
		}
		if err := b.Rename(ctx, src, full, true); !errors.Is(err, backends.ErrNotEmpty) {
			t.Errorf("dir onto full dir: %v, want ErrNotEmpty", err)
		}
		if err := b.Rename(ctx, src, p("empty"), true); err != nil {
			t.Errorf("dir onto empty dir: %v", err)
		}
		if got := readAll(t, b, p("empty/inner"), 0, -1); got != "I" {
			t.Errorf("moved dir content %q", got)
		}
		if err := b.Rename(ctx, p("empty"), p("moved dir ü"), false); err != nil {
			t.Errorf("dir rename: %v", err)
		}
		if got := readAll(t, b, p("moved dir ü/inner"), 0, -1); got != "I" {
			t.Errorf("moved dir content %q", got)
		}
	})

	t.Run("ranged reads", func(t *testing.T) {
		d := dir("ranges")
		const content = "0123456789abcdefghij"
		putString(t, b, path.Join(d, "r"), content)
		for _, c := range []struct {
			off, n int64
			want   string
		}{
			{0, -1, content}, {0, 5, "01234"}, {5, 5, "56789"}, {10, -1, "abcdefghij"},
			{18, 10, "ij"}, {19, 1, "j"}, {20, -1, ""}, {25, 3, ""}, {3, 0, ""},
		} {
			if got := readAll(t, b, path.Join(d, "r"), c.off, c.n); got != c.want {
				t.Errorf("Read(off=%d, n=%d) = %q, want %q", c.off, c.n, got, c.want)
			}
		}
	})

	t.Run("streaming put", func(t *testing.T) {
		d := dir("stream")
		const size = 3<<20 + 17
		for _, declared := range []int64{size, -1} {
			h := sha256.New()
			src := io.TeeReader(io.LimitReader(rand.Reader, size), h)
			p := path.Join(d, "big")
			e, err := b.Put(ctx, p, struct{ io.Reader }{src}, declared, backends.PutOptions{})
			if err != nil {
				t.Fatalf("Put(size=%d): %v", declared, err)
			}
			if e.Size != size {
				t.Errorf("size %d, want %d", e.Size, size)
			}
			rc, err := b.Read(ctx, p, 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			h2 := sha256.New()
			_, err = io.Copy(h2, rc)
			_ = rc.Close()
			if err != nil || !bytes.Equal(h.Sum(nil), h2.Sum(nil)) {
				t.Errorf("read back (size=%d): err %v, hash mismatch %v", declared, err, !bytes.Equal(h.Sum(nil), h2.Sum(nil)))
			}
		}
		e, err := b.Put(ctx, path.Join(d, "empty"), strings.NewReader(""), 0, backends.PutOptions{})
		if err != nil || e.Size != 0 || e.IsDir {
			t.Errorf("empty Put: %+v, %v", e, err)
		}
	})

	suiteConditional(t, b, dir)
	suiteMeta(t, b, caps, base, dir)
}
