package sftp

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func put(t *testing.T, b *Backend, p, content string) backends.Entry {
	t.Helper()
	e, err := b.Put(ctxT(t), p, strings.NewReader(content), int64(len(content)), backends.PutOptions{})
	if err != nil {
		t.Fatalf("Put %s: %v", p, err)
	}
	return e
}

func readAll(t *testing.T, b *Backend, p string, off, length int64) string {
	t.Helper()
	r, err := b.Read(ctxT(t), p, off, length)
	if err != nil {
		t.Fatalf("Read %s: %v", p, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		t.Fatalf("Read %s: %v", p, err)
	}
	return string(data)
}

func names(es []backends.Entry) []string {
	var out []string
	for _, e := range es {
		out = append(out, e.Name)
	}
	sort.Strings(out)
	return out
}

func TestPutStatListRead(t *testing.T) {
	b, s := newBackend(t)
	ctx := ctxT(t)
	mt := time.Date(2021, 3, 4, 5, 6, 7, 0, time.UTC)
	mode := os.FileMode(0o640)
	e, err := b.Put(ctx, "a.txt", strings.NewReader("hello"), 5, backends.PutOptions{Meta: backends.Meta{MTime: &mt, Mode: &mode}})
	if err != nil {
		t.Fatal(err)
	}
	if e.Name != "a.txt" || e.Size != 5 || e.IsDir || !e.ModTime.Equal(mt) || e.Version == "" {
		t.Fatalf("entry %+v", e)
	}
	if e.Meta.Mode == nil || *e.Meta.Mode != 0o640 {
		t.Fatalf("mode %v", e.Meta.Mode)
	}
	if e.Version != backends.StatVersion(5, mt) {
		t.Fatalf("version %q", e.Version)
	}
	st, err := os.Stat(filepath.Join(s.dir, "a.txt"))
	if err != nil || st.Mode().Perm() != 0o640 || !st.ModTime().Equal(mt) {
		t.Fatalf("on disk: %v %v", st, err)
	}
	got, err := b.Stat(ctx, "a.txt")
	if err != nil || got.Version != e.Version {
		t.Fatalf("Stat: %+v %v", got, err)
	}
	if err := b.Mkdir(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if err := b.Mkdir(ctx, "d"); !errors.Is(err, backends.ErrExist) {
		t.Fatalf("Mkdir twice: %v", err)
	}
	if err := b.Mkdir(ctx, "no/such"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Mkdir without parent: %v", err)
	}
	put(t, b, "d/b.txt", "content of b")
	es, err := b.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if n := names(es); strings.Join(n, ",") != "a.txt,d" {
		t.Fatalf("List: %v", n)
	}
	for _, e := range es {
		if e.Name == "d" && !e.IsDir {
			t.Fatalf("d: %+v", e)
		}
	}
	root, err := b.Stat(ctx, "")
	if err != nil || !root.IsDir || root.Name != "" {
		t.Fatalf("Stat root: %+v %v", root, err)
	}
	if got := readAll(t, b, "d/b.txt", 0, -1); got != "content of b" {
		t.Fatalf("Read: %q", got)
	}
	if got := readAll(t, b, "d/b.txt", 3, 4); got != "tent" {
		t.Fatalf("Read range: %q", got)
	}
	if got := readAll(t, b, "d/b.txt", 100, 4); got != "" {
		t.Fatalf("Read past the end: %q", got)
	}
	if _, err := b.Stat(ctx, "nope"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Stat missing: %v", err)
	}
	if _, err := b.List(ctx, "a.txt"); !errors.Is(err, backends.ErrNotDir) {
		t.Fatalf("List file: %v", err)
	}
	if _, err := b.List(ctx, "nope"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("List missing: %v", err)
	}
	if _, err := b.Read(ctx, "nope", 0, -1); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Read missing: %v", err)
	}
}

func TestBigPutAndRead(t *testing.T) {
	b, _ := newBackend(t)
	data := make([]byte, 3<<20+12345)
	for i := range data {
		data[i] = byte(i * 7)
	}
	ctx := ctxT(t)
	if _, err := b.Put(ctx, "big", bytes.NewReader(data), int64(len(data)), backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, b, "big", 0, -1); got != string(data) {
		t.Fatalf("read back %d bytes, differ", len(got))
	}
	if got := readAll(t, b, "big", 1<<20+5, 2<<20); got != string(data[1<<20+5:3<<20+5]) {
		t.Fatalf("range read differs")
	}
	r, err := b.ReadSized(ctx, "big", 10, -1, int64(len(data)))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(got) != string(data[10:]) {
		t.Fatalf("ReadSized: %d bytes, %v", len(got), err)
	}
	if _, err := b.ReadSized(ctx, "big", 0, -1, 5); !errors.Is(err, backends.ErrProtocol) {
		t.Fatalf("ReadSized with a wrong size: %v", err)
	}
	// unknown size: sequential writes
	if _, err := b.Put(ctx, "big2", io.MultiReader(bytes.NewReader(data)), -1, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, b, "big2", 0, -1); got != string(data) {
		t.Fatalf("read back differs")
	}
	// a source shorter than its size
	if _, err := b.Put(ctx, "short", strings.NewReader("abc"), 10, backends.PutOptions{}); err == nil {
		t.Fatal("short source accepted")
	}
	if _, err := b.Stat(ctx, "short"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("short upload left a file: %v", err)
	}
}

func TestConditionalPut(t *testing.T) {
	b, _ := newBackend(t)
	ctx := ctxT(t)
	e := put(t, b, "f", "one")
	// IfMatch with the current version
	e2, err := b.Put(ctx, "f", strings.NewReader("two!"), 4, backends.PutOptions{IfMatch: e.Version})
	if err != nil {
		t.Fatal(err)
	}
	// stale IfMatch
	_, err = b.Put(ctx, "f", strings.NewReader("three"), 5, backends.PutOptions{IfMatch: e.Version})
	if !errors.Is(err, backends.ErrPrecondition) {
		t.Fatalf("stale IfMatch: %v", err)
	}
	if got := readAll(t, b, "f", 0, -1); got != "two!" {
		t.Fatalf("target changed: %q", got)
	}
	if _, err := b.Put(ctx, "missing", strings.NewReader("x"), 1, backends.PutOptions{IfMatch: e2.Version}); !errors.Is(err, backends.ErrPrecondition) {
		t.Fatalf("IfMatch on a missing file: %v", err)
	}
	// IfNoneMatch
	if _, err := b.Put(ctx, "f", strings.NewReader("x"), 1, backends.PutOptions{IfNoneMatch: true}); !errors.Is(err, backends.ErrExist) {
		t.Fatalf("IfNoneMatch over a file: %v", err)
	}
	if _, err := b.Put(ctx, "new", strings.NewReader("x"), 1, backends.PutOptions{IfNoneMatch: true}); err != nil {
		t.Fatalf("IfNoneMatch on a new name: %v", err)
	}
	es, err := b.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if n := names(es); strings.Join(n, ",") != "f,new" {
		t.Fatalf("List: %v", n)
	}
	if err := b.Mkdir(ctx, "dir"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, "dir", strings.NewReader("x"), 1, backends.PutOptions{}); !errors.Is(err, backends.ErrIsDir) {
		t.Fatalf("Put over a directory: %v", err)
	}
	if _, err := b.Put(ctx, "nodir/x", strings.NewReader("x"), 1, backends.PutOptions{}); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Put without parent: %v", err)
	}
}

func TestPutKeepsModeOfReplacedFile(t *testing.T) {
	b, s := newBackend(t)
	ctx := ctxT(t)
	mode := os.FileMode(0o600)
	if _, err := b.Put(ctx, "secret", strings.NewReader("a"), 1, backends.PutOptions{Meta: backends.Meta{Mode: &mode}}); err != nil {
		t.Fatal(err)
	}
	put(t, b, "secret", "bb")
	st, err := os.Stat(filepath.Join(s.dir, "secret"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode after rewrite: %v %v", st.Mode(), err)
	}
}

func TestTempFilesHidden(t *testing.T) {
	b, s := newBackend(t)
	ctx := ctxT(t)
	// a leftover of a crashed upload, and the probe's file
	for _, n := range []string{UploadPrefix + "0123456789abcdef", ProbePrefix + "x"} {
		if err := os.WriteFile(filepath.Join(s.dir, n), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Stat(ctx, n); !errors.Is(err, backends.ErrNotFound) {
			t.Fatalf("Stat %s: %v", n, err)
		}
	}
	put(t, b, "visible", "x")
	es, err := b.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if n := names(es); strings.Join(n, ",") != "visible" {
		t.Fatalf("List: %v", n)
	}
	if _, err := b.Put(ctx, UploadPrefix+"mine", strings.NewReader("x"), 1, backends.PutOptions{}); !errors.Is(err, backends.ErrPermission) {
		t.Fatalf("Put to a reserved name: %v", err)
	}
	// a failed upload leaves nothing
	_, err = b.Put(ctx, "f", &failingReader{after: 100000}, 200000, backends.PutOptions{})
	if err == nil {
		t.Fatal("failing source accepted")
	}
	ents, _ := os.ReadDir(s.dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), UploadPrefix) && e.Name() != UploadPrefix+"0123456789abcdef" {
			t.Fatalf("temporary file left: %s", e.Name())
		}
	}
}

type failingReader struct{ after int }

func (r *failingReader) Read(p []byte) (int, error) {
	if r.after <= 0 {
		return 0, errors.New("disk on fire")
	}
	n := min(len(p), r.after)
	r.after -= n
	return n, nil
}

func TestRenameRemove(t *testing.T) {
	b, _ := newBackend(t)
	ctx := ctxT(t)
	put(t, b, "a", "A")
	put(t, b, "b", "B")
	if err := b.Rename(ctx, "a", "b", false); !errors.Is(err, backends.ErrExist) {
		t.Fatalf("Rename onto a file without overwrite: %v", err)
	}
	if err := b.Rename(ctx, "a", "b", true); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, b, "b", 0, -1); got != "A" {
		t.Fatalf("b: %q", got)
	}
	if _, err := b.Stat(ctx, "a"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("a after rename: %v", err)
	}
	if err := b.Rename(ctx, "a", "c", false); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Rename missing: %v", err)
	}
	if err := b.Rename(ctx, "b", "c", false); err != nil {
		t.Fatal(err)
	}
	if err := b.Mkdir(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	put(t, b, "d/x", "x")
	if err := b.Rename(ctx, "c", "d", true); !errors.Is(err, backends.ErrIsDir) {
		t.Fatalf("file over dir: %v", err)
	}
	if err := b.Remove(ctx, "d"); !errors.Is(err, backends.ErrNotEmpty) {
		t.Fatalf("Remove non-empty dir: %v", err)
	}
	if err := b.Remove(ctx, "d/x"); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(ctx, "d"); err != nil {
		t.Fatal(err)
	}
	if err := b.Remove(ctx, "d"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Remove twice: %v", err)
	}
	if err := b.Remove(ctx, ""); err == nil {
		t.Fatal("Remove of the root accepted")
	}
	if err := b.Remove(ctx, "/"); err == nil {
		t.Fatal("Remove of the root accepted")
	}
	if err := b.Rename(ctx, "c", "nodir/c", false); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Rename into a missing dir: %v", err)
	}
	if err := b.Mkdir(ctx, "e"); err != nil {
		t.Fatal(err)
	}
	if err := b.Rename(ctx, "e", "e2", false); err != nil {
		t.Fatalf("Rename a dir: %v", err)
	}
}

func TestSymlinkAndHardLink(t *testing.T) {
	b, s := newBackend(t)
	ctx := ctxT(t)
	put(t, b, "target.txt", "data")
	e, err := b.Symlink(ctx, "target.txt", "link")
	if err != nil {
		t.Fatal(err)
	}
	if e.Meta.Type != "symlink" || e.LinkTarget != "target.txt" || e.Size != int64(len("target.txt")) || e.Version == "" {
		t.Fatalf("link entry %+v", e)
	}
	if got, err := os.Readlink(filepath.Join(s.dir, "link")); err != nil || got != "target.txt" {
		t.Fatalf("on disk: %q %v", got, err)
	}
	if _, err := b.Symlink(ctx, "x", "link"); !errors.Is(err, backends.ErrExist) {
		t.Fatalf("Symlink over a link: %v", err)
	}
	// a dangling link, and one to a directory: listed as links, not followed
	if err := os.Symlink("/nonexistent", filepath.Join(s.dir, "dangling")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(".", filepath.Join(s.dir, "loop")); err != nil {
		t.Fatal(err)
	}
	es, err := b.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	targets := map[string]string{}
	for _, e := range es {
		if e.Meta.Type == "symlink" {
			targets[e.Name] = e.LinkTarget
			if e.IsDir {
				t.Fatalf("%s followed", e.Name)
			}
		}
	}
	if targets["link"] != "target.txt" || targets["dangling"] != "/nonexistent" || targets["loop"] != "." {
		t.Fatalf("targets %v", targets)
	}
	if err := b.Remove(ctx, "loop"); err != nil {
		t.Fatal(err)
	}

	// hard link
	if !b.hardlink {
		t.Fatal("the test server lists hardlink@openssh.com")
	}
	le, err := b.Link(ctx, "target.txt", "hard")
	if err != nil {
		t.Fatal(err)
	}
	if le.Size != 4 || le.Meta.Type != "" {
		t.Fatalf("hard link entry %+v", le)
	}
	if _, err := b.Link(ctx, "target.txt", "hard"); !errors.Is(err, backends.ErrExist) {
		t.Fatalf("Link over a file: %v", err)
	}
	if _, err := b.Link(ctx, "missing", "hard2"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Link of a missing file: %v", err)
	}
	a, _ := os.Stat(filepath.Join(s.dir, "target.txt"))
	h, _ := os.Stat(filepath.Join(s.dir, "hard"))
	if !os.SameFile(a, h) {
		t.Fatal("not the same file")
	}
}

func TestSpecialFilesHidden(t *testing.T) {
	b, s := newBackend(t)
	ctx := ctxT(t)
	if err := mkfifo(filepath.Join(s.dir, "fifo")); err != nil {
		t.Skip("no fifo:", err)
	}
	es, err := b.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 0 {
		t.Fatalf("List: %v", names(es))
	}
	if _, err := b.Stat(ctx, "fifo"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("Stat fifo: %v", err)
	}
}

func TestSetMeta(t *testing.T) {
	b, s := newBackend(t)
	ctx := ctxT(t)
	e := put(t, b, "f", "x")
	mt := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	mode := os.FileMode(0o751)
	e2, err := b.SetMeta(ctx, "f", backends.Meta{MTime: &mt, Mode: &mode, SHA256: "ab"}, e.Version)
	if err != nil {
		t.Fatal(err)
	}
	if !e2.ModTime.Equal(mt) || *e2.Meta.Mode != 0o751 {
		t.Fatalf("entry %+v", e2)
	}
	st, _ := os.Stat(filepath.Join(s.dir, "f"))
	if st.Mode().Perm() != 0o751 || !st.ModTime().Equal(mt) {
		t.Fatalf("on disk %v %v", st.Mode(), st.ModTime())
	}
	if _, err := b.SetMeta(ctx, "f", backends.Meta{Mode: &mode}, e.Version); !errors.Is(err, backends.ErrPrecondition) {
		t.Fatalf("stale version: %v", err)
	}
	if _, err := b.SetMeta(ctx, "missing", backends.Meta{Mode: &mode}, ""); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}
}

func TestCapabilitiesQuotaHash(t *testing.T) {
	b, s := newBackend(t, withExec)
	ctx := ctxT(t)
	c, err := b.Capabilities(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !c.MTime.Stored || !c.MTime.OnPut || c.MTime.Precision != time.Second || !c.Mode.Stored ||
		c.Owner.Stored || c.Hash.Stored || c.Type.Stored || !c.Symlinks || !c.HardLinks ||
		c.ConditionalPut || !c.AtomicPut || !c.AtomicRename || c.ReadOnly || !c.Quota {
		t.Fatalf("capabilities %+v", c)
	}
	if len(c.Notes) == 0 {
		t.Fatal("no notes")
	}
	if ents, _ := os.ReadDir(s.dir); len(ents) != 0 {
		t.Fatalf("the probe left %v", ents)
	}
	q, err := b.Quota(ctx)
	if err != nil || q.Available <= 0 || q.Used <= 0 {
		t.Fatalf("quota %+v %v", q, err)
	}
	if !b.CanHash() {
		t.Fatalf("no hashes: %s", b.hashNote)
	}
	put(t, b, "it's here", "hello")
	sum, err := b.SHA256(ctx, "it's here")
	if err != nil || sum != "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824" {
		t.Fatalf("SHA256: %q %v", sum, err)
	}
	if _, err := b.SHA256(ctx, "missing"); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("SHA256 of a missing file: %v", err)
	}
}

func TestNoExec(t *testing.T) {
	b, _ := newBackend(t)
	if b.CanHash() {
		t.Fatal("hashes without exec")
	}
	if _, err := b.SHA256(ctxT(t), "x"); !errors.Is(err, backends.ErrUnsupported) {
		t.Fatalf("SHA256: %v", err)
	}
	c, err := b.Capabilities(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(strings.Join(c.Notes, "\n"), "hashes on the server: no") {
		t.Fatalf("notes %q", c.Notes)
	}
}

func TestReadOnlyRoot(t *testing.T) {
	if os.Geteuid() == 0 {
		t.Skip("root ignores permissions")
	}
	b, s := newBackend(t)
	if err := os.Chmod(s.dir, 0o555); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Chmod(s.dir, 0o755) })
	c, err := b.Capabilities(ctxT(t))
	if err != nil {
		t.Fatal(err)
	}
	if !c.ReadOnly {
		t.Fatalf("not read-only: %q", c.Notes)
	}
	if _, err := b.Put(ctxT(t), "x", strings.NewReader("x"), 1, backends.PutOptions{}); !errors.Is(err, backends.ErrPermission) {
		t.Fatalf("Put: %v", err)
	}
}

func TestLoginDirectoryAndString(t *testing.T) {
	s := newTestServer(t, withWorkDir)
	c := newClient(t)
	c.trust(t, s)
	if err := os.Mkdir(filepath.Join(s.dir, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := c.config(s)
	cfg.Path = ""
	b := open(t, cfg)
	if b.root != s.dir {
		t.Fatalf("root %q, want %q", b.root, s.dir)
	}
	cfg.Path = "sub"
	b2 := open(t, cfg)
	if b2.root != filepath.Join(s.dir, "sub") {
		t.Fatalf("root %q", b2.root)
	}
	if want := "sftp://tester@127.0.0.1:" + strings.Split(s.addr, ":")[1] + s.dir + "/sub"; b2.String() != want {
		t.Fatalf("String %q, want %q", b2.String(), want)
	}
	cfg.Path = "missing"
	if _, err := New(ctxT(t), cfg); !errors.Is(err, backends.ErrNotFound) {
		t.Fatalf("missing root: %v", err)
	}
	if err := os.WriteFile(filepath.Join(s.dir, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	cfg.Path = "file"
	if _, err := New(ctxT(t), cfg); !errors.Is(err, backends.ErrNotDir) {
		t.Fatalf("file as root: %v", err)
	}
}

func TestPutInPlace(t *testing.T) {
	b, s := newBackend(t)
	ctx := ctxT(t)
	put(t, b, "a", "old content")
	if _, err := b.Link(ctx, "a", "b"); err != nil {
		t.Fatal(err)
	}
	mt := time.Date(2022, 2, 2, 2, 2, 2, 0, time.UTC)
	e, err := b.Put(ctx, "a", strings.NewReader("new"), 3, backends.PutOptions{InPlace: true, Meta: backends.Meta{MTime: &mt}})
	if err != nil {
		t.Fatal(err)
	}
	if e.Size != 3 || !e.ModTime.Equal(mt) {
		t.Fatalf("entry %+v", e)
	}
	if got := readAll(t, b, "b", 0, -1); got != "new" {
		t.Fatalf("the other name holds %q", got)
	}
	// a stale condition leaves the file alone
	if _, err := b.Put(ctx, "a", strings.NewReader("x"), 1, backends.PutOptions{InPlace: true, IfMatch: "~stale"}); !errors.Is(err, backends.ErrPrecondition) {
		t.Fatalf("stale InPlace: %v", err)
	}
	// InPlace of a new file is an ordinary create
	put(t, b, "c", "")
	if _, err := b.Put(ctx, "d", strings.NewReader("dd"), 2, backends.PutOptions{InPlace: true}); err != nil {
		t.Fatal(err)
	}
	ents, _ := os.ReadDir(s.dir)
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), UploadPrefix) {
			t.Fatalf("temporary file left: %s", e.Name())
		}
	}
}
