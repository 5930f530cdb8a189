package fs

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/memory"
	"github.com/cloudmount/cloudmount/cache"
)

// verifySum is the hex SHA-256 of s.
func verifySum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// verifyBackend is a memory backend that can hide its stored metadata (a
// server that keeps none), fail reads of one path, or stall reads.
type verifyBackend struct {
	*memory.Backend
	noMeta   bool
	failRead string
	stall    atomic.Bool
	reads    atomic.Int32
}

// strip hides stored metadata if the backend plays one without it.
func (b *verifyBackend) strip(e backends.Entry) backends.Entry {
	if b.noMeta {
		e.Meta = backends.Meta{Type: e.Meta.Type}
	}
	return e
}

// Stat implements backends.Backend.
func (b *verifyBackend) Stat(ctx context.Context, p string) (backends.Entry, error) {
	e, err := b.Backend.Stat(ctx, p)
	return b.strip(e), err
}

// List implements backends.Backend.
func (b *verifyBackend) List(ctx context.Context, p string) ([]backends.Entry, error) {
	es, err := b.Backend.List(ctx, p)
	for i := range es {
		es[i] = b.strip(es[i])
	}
	return es, err
}

// Read implements backends.Backend, failing or stalling as told.
func (b *verifyBackend) Read(ctx context.Context, p string, off, length int64) (io.ReadCloser, error) {
	b.reads.Add(1)
	if p == b.failRead {
		return nil, fmt.Errorf("read %s: %w", p, backends.ErrPermission)
	}
	if b.stall.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return b.Backend.Read(ctx, p, off, length)
}

// Capabilities implements backends.Backend.
func (b *verifyBackend) Capabilities(ctx context.Context) (backends.Capabilities, error) {
	c, err := b.Backend.Capabilities(ctx)
	if b.noMeta {
		c.MTime, c.Mode, c.Owner, c.Hash, c.Type = backends.MetaField{}, backends.MetaField{}, backends.MetaField{}, backends.MetaField{}, backends.MetaField{}
	}
	return c, err
}

// newVerifyFsys builds the shared state of a mount over b, without FUSE.
func newVerifyFsys(t *testing.T, b backends.Backend) *fsys {
	t.Helper()
	store, err := cache.Open(t.TempDir(), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	caps, err := b.Capabilities(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return &fsys{be: b, store: store, caps: caps, opts: Options{Timeout: 2 * time.Second},
		log: slog.New(slog.DiscardHandler), inos: newInodeNumbers(), dirs: newDirCache(time.Minute),
		live: &liveNodes{byP: map[string]*Node{}}}
}

// put stores a file on the server with the hash the mount will believe in
// ("" for none).
func put(t *testing.T, b *memory.Backend, p, content, sum string) backends.Entry {
	t.Helper()
	e, err := b.Put(t.Context(), p, strings.NewReader(content), int64(len(content)),
		backends.PutOptions{Meta: backends.Meta{SHA256: sum}})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func TestVerify(t *testing.T) {
	mem := memory.New()
	ctx := t.Context()
	for _, d := range []string{"d", "d/sub", "e"} {
		if err := mem.Mkdir(ctx, d); err != nil {
			t.Fatal(err)
		}
	}
	put(t, mem, "good.txt", "good", verifySum("good"))
	put(t, mem, "d/bad.txt", "changed behind our back", verifySum("original"))
	put(t, mem, "d/sub/nohash.bin", "no hash", "")
	put(t, mem, "d/sub/UPPER", "upper", strings.ToUpper(verifySum("upper")))
	put(t, mem, "e/denied", "x", verifySum("x"))
	put(t, mem, "e/empty", "", verifySum(""))
	put(t, mem, "link", "good.txt", "")
	if _, err := mem.SetMeta(ctx, "link", backends.Meta{Type: "symlink"}, ""); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name       string
		root       string
		checked    int
		matched    int
		noHash     []string
		mismatches []string
		errors     []string
		skipped    int
		bytes      int64
	}{
		{name: "whole mount", root: "", checked: 5, matched: 3, noHash: []string{"d/sub/nohash.bin"},
			mismatches: []string{"d/bad.txt"}, errors: []string{"e/denied"}, skipped: 1,
			bytes: int64(len("good") + len("changed behind our back") + len("no hash") + len("upper"))},
		{name: "subtree", root: "/d/sub/", checked: 2, matched: 1, noHash: []string{"d/sub/nohash.bin"},
			bytes: int64(len("no hash") + len("upper"))},
		{name: "one file", root: "d/bad.txt", checked: 1, mismatches: []string{"d/bad.txt"},
			bytes: int64(len("changed behind our back"))},
		{name: "dot dot stays inside", root: "../../good.txt", checked: 1, matched: 1, bytes: 4},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := &verifyBackend{Backend: mem, failRead: "e/denied"}
			f := newVerifyFsys(t, b)
			var seen []VerifyProgress
			rep, err := f.Verify(ctx, tc.root, func(p VerifyProgress) { seen = append(seen, p) })
			if err != nil {
				t.Fatalf("verify: %v", err)
			}
			var mism, errs []string
			for _, m := range rep.Mismatches {
				mism = append(mism, m.Path)
				if m.Got == m.Want || len(m.Got) != 64 {
					t.Errorf("mismatch %+v", m)
				}
			}
			for _, e := range rep.Errors {
				errs = append(errs, e.Path)
				if !strings.Contains(e.Err, "permission") {
					t.Errorf("error %+v does not say why", e)
				}
			}
			if rep.Checked != tc.checked || rep.Matched != tc.matched || rep.Skipped != tc.skipped ||
				rep.Bytes != tc.bytes || !slices.Equal(rep.NoHash, tc.noHash) ||
				!slices.Equal(mism, tc.mismatches) || !slices.Equal(errs, tc.errors) {
				t.Fatalf("report %+v\nwant checked %d matched %d skipped %d bytes %d nohash %v mismatches %v errors %v",
					rep, tc.checked, tc.matched, tc.skipped, tc.bytes, tc.noHash, tc.mismatches, tc.errors)
			}
			if rep.OK() != (len(tc.mismatches) == 0 && len(tc.errors) == 0) {
				t.Fatalf("OK() = %v", rep.OK())
			}
			if len(seen) < 2 {
				t.Fatalf("progress reported %d times", len(seen))
			}
			first, last := seen[0], seen[len(seen)-1]
			if first.FilesDone != 0 || last.FilesDone != last.FilesTotal || last.BytesDone != last.BytesTotal ||
				last.FilesTotal != tc.checked+len(tc.errors) {
				t.Fatalf("progress from %+v to %+v", first, last)
			}
			for i := 1; i < len(seen); i++ {
				if seen[i].BytesDone < seen[i-1].BytesDone || seen[i].FilesDone < seen[i-1].FilesDone {
					t.Fatalf("progress went back: %+v after %+v", seen[i], seen[i-1])
				}
			}
		})
	}
}

func TestVerifyUsesLocalIndexHash(t *testing.T) {
	mem := memory.New()
	b := &verifyBackend{Backend: mem, noMeta: true}
	f := newVerifyFsys(t, b)
	e1 := put(t, mem, "a", "alpha", "")
	e2 := put(t, mem, "b", "beta", "")
	put(t, mem, "c", "gamma", "")
	if err := f.store.Index.Set("a", e1, backends.Meta{SHA256: verifySum("alpha")}); err != nil {
		t.Fatal(err)
	}
	if err := f.store.Index.Set("b", e2, backends.Meta{SHA256: verifySum("not beta")}); err != nil {
		t.Fatal(err)
	}
	rep, err := f.Verify(t.Context(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checked != 3 || rep.Matched != 1 || len(rep.Mismatches) != 1 || rep.Mismatches[0].Path != "b" ||
		rep.Mismatches[0].Want != verifySum("not beta") || rep.Mismatches[0].Got != verifySum("beta") ||
		!slices.Equal(rep.NoHash, []string{"c"}) {
		t.Fatalf("report %+v", rep)
	}
}

func TestVerifySkipsPendingUploads(t *testing.T) {
	mem := memory.New()
	f := newVerifyFsys(t, mem)
	put(t, mem, "old", "server version", verifySum("server version"))
	put(t, mem, "edited", "server version", verifySum("local version"))
	f.live.set("edited", &Node{fs: f, staged: &staging{dirty: true}})
	rep, err := f.Verify(t.Context(), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Checked != 1 || rep.Matched != 1 || len(rep.Mismatches) != 0 || !slices.Equal(rep.Pending, []string{"edited"}) {
		t.Fatalf("report %+v", rep)
	}
}

func TestVerifyErrors(t *testing.T) {
	t.Run("root cannot be listed", func(t *testing.T) {
		mem := memory.New()
		f := newVerifyFsys(t, mem)
		mem.FailWith(backends.ErrUnavailable)
		if _, err := f.Verify(t.Context(), "", nil); !errors.Is(err, backends.ErrUnavailable) {
			t.Fatalf("err = %v, want ErrUnavailable", err)
		}
	})
	t.Run("root does not exist", func(t *testing.T) {
		f := newVerifyFsys(t, memory.New())
		if _, err := f.Verify(t.Context(), "nope", nil); !errors.Is(err, backends.ErrNotFound) {
			t.Fatalf("err = %v, want ErrNotFound", err)
		}
	})
	t.Run("stalled read has a deadline", func(t *testing.T) {
		mem := memory.New()
		put(t, mem, "slow", "data", verifySum("data"))
		b := &verifyBackend{Backend: mem}
		b.stall.Store(true)
		f := newVerifyFsys(t, b)
		f.opts.Timeout = 100 * time.Millisecond
		start := time.Now()
		rep, err := f.Verify(t.Context(), "", nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(rep.Errors) != 1 || !strings.Contains(rep.Errors[0].Err, "deadline") || time.Since(start) > 5*time.Second {
			t.Fatalf("report %+v after %v", rep, time.Since(start))
		}
	})
	t.Run("cancelled", func(t *testing.T) {
		mem := memory.New()
		put(t, mem, "a", "data", verifySum("data"))
		put(t, mem, "b", "data", verifySum("data"))
		b := &verifyBackend{Backend: mem}
		b.stall.Store(true)
		f := newVerifyFsys(t, b)
		f.opts.Timeout = time.Minute
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(50*time.Millisecond, cancel)
		if _, err := f.Verify(ctx, "", nil); !errors.Is(err, context.Canceled) {
			t.Fatalf("err = %v, want context.Canceled", err)
		}
		if n := b.reads.Load(); n != 1 {
			t.Fatalf("%d reads after cancel, want 1", n)
		}
	})
}

// TestVerifyReadsServerNotCache mounts, writes a file, reads it so the block
// cache holds it, then changes the server's content behind the mount's back
// (keeping the stored hash, as a server-side edit that ignores dead
// properties would): verify must see the server's bytes.
func TestVerifyReadsServerNotCache(t *testing.T) {
	b := memory.New()
	mnt := mountMem(t, b, Options{UID: uint32(os.Getuid()), GID: uint32(os.Getgid())})
	p := filepath.Join(mnt, "doc.txt")
	if err := os.WriteFile(p, []byte("the original text"), 0o644); err != nil {
		t.Fatal(err)
	}
	syncMount(t, mnt)
	mountsMu.Lock()
	m := mounts[mnt]
	mountsMu.Unlock()
	rep, err := m.Verify(t.Context(), "", nil)
	if err != nil || rep.Checked != 1 || rep.Matched != 1 || !rep.OK() {
		t.Fatalf("verify after upload: %+v %v", rep, err)
	}
	if got, err := os.ReadFile(p); err != nil || string(got) != "the original text" {
		t.Fatalf("read back %q %v", got, err)
	}
	e, err := b.Stat(t.Context(), "doc.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(t.Context(), "doc.txt", strings.NewReader("THE ORIGINAL TEXT"), 17, backends.PutOptions{Meta: e.Meta}); err != nil {
		t.Fatal(err)
	}
	rep, err = m.Verify(t.Context(), "doc.txt", nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Mismatches) != 1 || rep.Mismatches[0].Got != verifySum("THE ORIGINAL TEXT") ||
		rep.Mismatches[0].Want != verifySum("the original text") {
		t.Fatalf("report %+v, want one mismatch", rep)
	}
}
