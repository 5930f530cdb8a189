package sidecar

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/backendtest"
	"github.com/cloudmount/cloudmount/backends/memory"
	"github.com/cloudmount/cloudmount/backends/webdav"
	"github.com/cloudmount/cloudmount/backends/webdav/davserver"
)

// bareCaps is a server that keeps no metadata (nginx, rclone serve), with
// or without conditional puts.
func bareCaps(conditional bool) backends.Capabilities {
	return backends.Capabilities{ConditionalPut: conditional, AtomicPut: true, AtomicRename: true}
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func testLogger(buf io.Writer) *slog.Logger {
	if os.Getenv("CLOUDMOUNT_TEST_DEBUG") != "" {
		buf = os.Stderr
	}
	return slog.New(slog.NewTextHandler(buf, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

func wrap(t *testing.T, inner backends.Backend) (*Backend, *syncBuffer) {
	t.Helper()
	logs := &syncBuffer{}
	return Wrap(inner, Options{Logger: testLogger(logs), Timeout: 10 * time.Second}), logs
}

func ctxOf(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestContractMemory runs the conformance suite against the wrapper over
// a memory server that keeps no metadata, with and without conditional
// puts.
func TestContractMemory(t *testing.T) {
	for _, cond := range []bool{true, false} {
		t.Run(fmt.Sprintf("conditional=%v", cond), func(t *testing.T) {
			backendtest.Run(t, func(t *testing.T) backends.Backend {
				b, _ := wrap(t, memory.NewWith(bareCaps(cond)))
				return b
			})
		})
	}
}

// TestContractPassThrough: over a server that keeps everything, the
// wrapper changes nothing.
func TestContractPassThrough(t *testing.T) {
	backendtest.Run(t, func(t *testing.T) backends.Backend {
		b, _ := wrap(t, memory.New())
		return b
	})
	inner := memory.New()
	b, _ := wrap(t, inner)
	caps, err := b.Capabilities(ctxOf(t))
	if err != nil {
		t.Fatal(err)
	}
	if caps.MetaFile != "" {
		t.Errorf("MetaFile %q over a server that keeps every kind", caps.MetaFile)
	}
	mt := time.Unix(5, 0)
	if _, err := b.Put(ctxOf(t), "f", strings.NewReader("x"), 1, backends.PutOptions{Meta: backends.Meta{MTime: &mt}}); err != nil {
		t.Fatal(err)
	}
	if _, ok := inner.Content(backends.MetaFileName); ok {
		t.Errorf("a metadata file was written over a server that keeps every kind")
	}
}

// davFaults are the davserver's ways of nginx and of servers that lose
// properties, which the wrapper must make whole.
var davFaults = map[string]davserver.Faults{
	"as nginx":            {NoDeadProps: true, NoETags: true, CollectionSlash: true, HideDotNames: true},
	"first property only": {FirstPropOnly: true},
	"no dead properties":  {NoDeadProps: true},
}

// davBackend serves a temp directory with faults and connects to it.
func davBackend(t *testing.T, faults davserver.Faults) (url string, dir string) {
	t.Helper()
	dir = t.TempDir()
	h, err := davserver.New(dir, davserver.Options{Faults: faults, Logger: testLogger(io.Discard)})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL + "/", dir
}

func connectDAV(t *testing.T, url string) backends.Backend {
	t.Helper()
	b, err := webdav.New(ctxOf(t), webdav.Config{URL: url, Timeout: 10 * time.Second, Logger: testLogger(io.Discard)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// contractFaults are davFaults without hidden dot names, which the
// conformance suite's names would trip over whatever the wrapper does.
func contractFaults() map[string]davserver.Faults {
	out := map[string]davserver.Faults{}
	for k, f := range davFaults {
		f.HideDotNames = false
		out[k] = f
	}
	return out
}

// TestContractDAV runs the conformance suite against the wrapper over the
// project's WebDAV server in the fault modes of servers without dead
// properties, each subtest in a directory of its own.
func TestContractDAV(t *testing.T) {
	for name, faults := range contractFaults() {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url, _ := davBackend(t, faults)
			root := connectDAV(t, url)
			n := 0
			var mu sync.Mutex
			backendtest.Run(t, func(t *testing.T) backends.Backend {
				mu.Lock()
				n++
				sub := fmt.Sprintf("t%d", n)
				mu.Unlock()
				if err := root.Mkdir(ctxOf(t), sub); err != nil {
					t.Fatal(err)
				}
				inner, err := webdav.New(ctxOf(t), webdav.Config{URL: url + sub + "/", Timeout: 10 * time.Second, Logger: testLogger(io.Discard)})
				if err != nil {
					t.Fatal(err)
				}
				b, _ := wrap(t, inner)
				t.Cleanup(func() { b.Close() })
				return b
			})
		})
	}
}

// TestFreshWrapperSeesMetadata: what one mount stored, a second one with
// nothing cached (a second machine) sees, to the nanosecond, in listings
// and in Stat, for files, directories and the root, on every fault mode.
func TestFreshWrapperSeesMetadata(t *testing.T) {
	for name, faults := range davFaults {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url, dir := davBackend(t, faults)
			a, _ := wrap(t, connectDAV(t, url))
			ctx := ctxOf(t)
			caps, err := a.Capabilities(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if !caps.StoresAll() || caps.MetaFile != backends.MetaFileName || caps.MTime.Precision != 0 {
				t.Fatalf("capabilities %+v: want every kind stored in %s", caps, backends.MetaFileName)
			}
			if faults.HideDotNames && !caps.UnlistedDotNames {
				t.Errorf("the probe did not find that listings leave out dot names")
			}
			mt := time.Date(2001, 2, 3, 4, 5, 6, 123456789, time.UTC)
			mode := os.FileMode(0o640)
			uid := uint32(1234)
			m := backends.Meta{MTime: &mt, Mode: &mode, UID: &uid, GID: &uid, SHA256: strings.Repeat("ab", 32)}
			if err := a.Mkdir(ctx, "d"); err != nil {
				t.Fatal(err)
			}
			for _, p := range []string{"f", "d/g"} {
				if _, err := a.Put(ctx, p, strings.NewReader("content"), 7, backends.PutOptions{Meta: m}); err != nil {
					t.Fatal(err)
				}
			}
			dm := backends.Meta{MTime: &mt, Mode: &mode}
			for _, p := range []string{"d", ""} {
				if _, err := a.SetMeta(ctx, p, dm, ""); err != nil {
					t.Fatalf("SetMeta(%q): %v", p, err)
				}
			}
			if _, err := os.Stat(dir + "/" + backends.MetaFileName); err != nil {
				t.Errorf("no metadata file on the server: %v", err)
			}

			b, _ := wrap(t, connectDAV(t, url))
			check := func(where string, e backends.Entry, want backends.Meta) {
				t.Helper()
				if !e.ModTime.Equal(*want.MTime) {
					t.Errorf("%s: ModTime %v, want %v", where, e.ModTime, want.MTime)
				}
				if e.Meta.Mode == nil || *e.Meta.Mode != *want.Mode {
					t.Errorf("%s: mode %v, want %v", where, e.Meta.Mode, *want.Mode)
				}
				if want.UID != nil && (e.Meta.UID == nil || *e.Meta.UID != *want.UID) {
					t.Errorf("%s: uid %v, want %v", where, e.Meta.UID, *want.UID)
				}
				if e.Meta.SHA256 != want.SHA256 {
					t.Errorf("%s: sha256 %q, want %q", where, e.Meta.SHA256, want.SHA256)
				}
			}
			for _, c := range []struct {
				p    string
				want backends.Meta
			}{{"f", m}, {"d/g", m}, {"d", dm}, {"", dm}} {
				e, err := b.Stat(ctx, c.p)
				if err != nil {
					t.Fatal(err)
				}
				check("Stat "+c.p, e, c.want)
			}
			for _, d := range []string{"", "d"} {
				ents, err := b.List(ctx, d)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range ents {
					if e.Name == backends.MetaFileName {
						t.Errorf("List(%q) shows the metadata file", d)
					}
					switch e.Name {
					case "f", "g":
						check("List "+e.Name, e, m)
					case "d":
						check("List d", e, dm)
					}
				}
			}
		})
	}
}

// TestRequestsPerDirectory counts the requests of a fresh wrapper: a
// listing of a directory reads its file once, and a second listing of an
// unchanged directory does not read it again.
func TestRequestsPerDirectory(t *testing.T) {
	inner := memory.NewWith(bareCaps(false))
	a, _ := wrap(t, inner)
	ctx := ctxOf(t)
	mt := time.Unix(1e9, 5)
	for i := range 20 {
		if _, err := a.Put(ctx, fmt.Sprintf("f%d", i), strings.NewReader("x"), 1, backends.PutOptions{Meta: backends.Meta{MTime: &mt}}); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := wrap(t, inner)
	reads := inner.Calls("Read")
	for range 3 {
		ents, err := b.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 20 || !ents[0].ModTime.Equal(mt) {
			t.Fatalf("listing: %d entries, first %+v", len(ents), ents[0])
		}
	}
	if n := inner.Calls("Read") - reads; n != 1 {
		t.Errorf("three listings of an unchanged directory read its metadata file %d times, want 1", n)
	}
}

// TestGroupCommit: many uploads into one directory at once share the
// writes of its file, and every one's metadata is there afterwards.
func TestGroupCommit(t *testing.T) {
	for _, cond := range []bool{true, false} {
		t.Run(fmt.Sprintf("conditional=%v", cond), func(t *testing.T) {
			inner := memory.NewWith(bareCaps(cond))
			b, _ := wrap(t, slow{inner})
			ctx := ctxOf(t)
			const n = 64
			var wg sync.WaitGroup
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					mt := time.Unix(1e9, int64(i))
					e, err := b.Put(ctx, fmt.Sprintf("f%02d", i), strings.NewReader("x"), 1, backends.PutOptions{Meta: backends.Meta{MTime: &mt}})
					if err != nil {
						t.Error(err)
						return
					}
					if !e.ModTime.Equal(mt) {
						t.Errorf("Put returned ModTime %v, want %v", e.ModTime, mt)
					}
				}()
			}
			wg.Wait()
			writes := inner.Calls("Put") - n
			t.Logf("FIGURE: %d concurrent uploads into one directory: %d writes of its metadata file", n, writes)
			if writes >= n/2 {
				t.Errorf("%d uploads cost %d writes of the metadata file, want far fewer", n, writes)
			}
			fresh, _ := wrap(t, inner)
			ents, err := fresh.List(ctx, "")
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range ents {
				var i int
				fmt.Sscanf(e.Name, "f%02d", &i)
				if !e.ModTime.Equal(time.Unix(1e9, int64(i))) {
					t.Errorf("%s: ModTime %v after the batch", e.Name, e.ModTime)
				}
			}
		})
	}
}

// slow is a memory server at a few milliseconds a request, as one on a
// network is.
type slow struct{ *memory.Backend }

const slowDelay = 3 * time.Millisecond

func (s slow) Put(ctx context.Context, p string, r io.Reader, size int64, opts backends.PutOptions) (backends.Entry, error) {
	time.Sleep(slowDelay)
	return s.Backend.Put(ctx, p, r, size, opts)
}

func (s slow) Stat(ctx context.Context, p string) (backends.Entry, error) {
	time.Sleep(slowDelay)
	return s.Backend.Stat(ctx, p)
}

func (s slow) Read(ctx context.Context, p string, off, n int64) (io.ReadCloser, error) {
	time.Sleep(slowDelay)
	return s.Backend.Read(ctx, p, off, n)
}

// TestStaleEntry: a change of a file by a client that does not know the
// metadata file makes its entry stale: the server's values show.
func TestStaleEntry(t *testing.T) {
	inner := memory.NewWith(bareCaps(true))
	b, _ := wrap(t, inner)
	ctx := ctxOf(t)
	mt := time.Unix(1e9, 7)
	if _, err := b.Put(ctx, "f", strings.NewReader("one"), 3, backends.PutOptions{Meta: backends.Meta{MTime: &mt}}); err != nil {
		t.Fatal(err)
	}
	if _, err := inner.Put(ctx, "f", strings.NewReader("two"), 3, backends.PutOptions{}); err != nil {
		t.Fatal(err)
	}
	fresh, _ := wrap(t, inner)
	for _, w := range []*Backend{b, fresh} {
		ents, err := w.List(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 || ents[0].ModTime.Equal(mt) || ents[0].Meta.MTime != nil {
			t.Errorf("after another client's edit: %+v, want the server's mtime", ents)
		}
	}
}

// TestReservedName: the metadata file is never shown and its name cannot
// be used through the wrapper.
func TestReservedName(t *testing.T) {
	inner := memory.NewWith(bareCaps(true))
	b, _ := wrap(t, inner)
	ctx := ctxOf(t)
	mt := time.Unix(1e9, 7)
	if _, err := b.Put(ctx, "f", strings.NewReader("x"), 1, backends.PutOptions{Meta: backends.Meta{MTime: &mt}}); err != nil {
		t.Fatal(err)
	}
	name := backends.MetaFileName
	if _, err := b.Stat(ctx, name); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Stat: %v", err)
	}
	if _, err := b.Read(ctx, name, 0, -1); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Read: %v", err)
	}
	if _, err := b.Put(ctx, "d/"+name, strings.NewReader("x"), 1, backends.PutOptions{}); !errors.Is(err, backends.ErrPermission) ||
		!strings.Contains(err.Error(), "reserved") {
		t.Errorf("Put: %v", err)
	}
	if err := b.Mkdir(ctx, name); !errors.Is(err, backends.ErrPermission) {
		t.Errorf("Mkdir: %v", err)
	}
	if err := b.Rename(ctx, "f", name, true); !errors.Is(err, backends.ErrPermission) {
		t.Errorf("Rename onto it: %v", err)
	}
	if err := b.Rename(ctx, name, "g", true); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Rename of it: %v", err)
	}
	if err := b.Remove(ctx, name); !errors.Is(err, backends.ErrNotFound) {
		t.Errorf("Remove: %v", err)
	}
	ents, err := b.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 || ents[0].Name != "f" {
		t.Errorf("List: %+v", ents)
	}
	if _, ok := inner.Content(name); !ok {
		t.Errorf("no metadata file on the server")
	}
}

// TestRenameAndRemove: renames carry the metadata (files across
// directories, directories with their files), and a directory emptied of
// its files can be removed, also where its metadata file was left.
func TestRenameAndRemove(t *testing.T) {
	for name, faults := range davFaults {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url, dir := davBackend(t, faults)
			b, _ := wrap(t, connectDAV(t, url))
			ctx := ctxOf(t)
			mt := time.Date(2005, 1, 1, 0, 0, 0, 999, time.UTC)
			put := func(p string) {
				t.Helper()
				if _, err := b.Put(ctx, p, strings.NewReader("x"), 1, backends.PutOptions{Meta: backends.Meta{MTime: &mt}}); err != nil {
					t.Fatal(err)
				}
			}
			for _, d := range []string{"a", "b", "a/sub"} {
				if err := b.Mkdir(ctx, d); err != nil {
					t.Fatal(err)
				}
			}
			put("a/f")
			put("a/sub/g")
			if _, err := b.SetMeta(ctx, "a/sub", backends.Meta{MTime: &mt}, ""); err != nil {
				t.Fatal(err)
			}
			if err := b.Rename(ctx, "a/f", "b/f2", false); err != nil {
				t.Fatal(err)
			}
			if err := b.Rename(ctx, "a/sub", "b/sub2", false); err != nil {
				t.Fatal(err)
			}
			fresh, _ := wrap(t, connectDAV(t, url))
			for _, p := range []string{"b/f2", "b/sub2", "b/sub2/g"} {
				e, err := fresh.Stat(ctx, p)
				if err != nil {
					t.Fatal(err)
				}
				if !e.ModTime.Equal(mt) {
					t.Errorf("%s after the renames: ModTime %v, want %v", p, e.ModTime, mt)
				}
			}
			// a is empty now but may still hold its metadata file.
			if err := b.Remove(ctx, "a"); err != nil {
				t.Errorf("Remove of an emptied directory: %v", err)
			}
			// A directory holding only a metadata file (left by another
			// machine) counts as empty, for Remove and for a Rename onto it.
			for _, d := range []string{"c", "e"} {
				if err := os.Mkdir(dir+"/"+d, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(dir+"/"+d+"/"+backends.MetaFileName, []byte(`{"format":"cloudmount-meta/1","entries":{}}`), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if err := fresh.Remove(ctx, "c"); err != nil {
				t.Errorf("Remove of a directory holding only its metadata file: %v", err)
			}
			if err := fresh.Mkdir(ctx, "x"); err != nil {
				t.Fatal(err)
			}
			if err := fresh.Rename(ctx, "x", "e", true); err != nil {
				t.Errorf("Rename onto a directory holding only its metadata file: %v", err)
			}
			for _, d := range []string{"a", "c"} {
				if _, err := os.Stat(dir + "/" + d); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s after Remove: %v", d, err)
				}
			}
			// Files removed: their entries go, and the file with them.
			if err := b.Remove(ctx, "b/f2"); err != nil {
				t.Fatal(err)
			}
			if err := b.Remove(ctx, "b/sub2/g"); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(dir + "/b/sub2/" + backends.MetaFileName); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("metadata file of a directory without entries: %v", err)
			}
			if err := b.Remove(ctx, "b/sub2"); err != nil {
				t.Errorf("rmdir: %v", err)
			}
		})
	}
}
