package webdav

import (
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/backendtest"
	"github.com/cloudmount/cloudmount/backends/webdav/davserver"
)

// faultModes are the ways of the davserver's Faults the backend is tested
// against, one at a time and together as nginx has them.
var faultModes = map[string]davserver.Faults{
	"first property only": {FirstPropOnly: true},
	"no dead properties":  {NoDeadProps: true},
	"no ETags":            {NoETags: true},
	"collection slash":    {CollectionSlash: true},
	"as nginx":            {NoDeadProps: true, NoETags: true, CollectionSlash: true},
}

// faultyServer serves a temp directory with the davserver and faults,
// with next (if not nil) seeing each request after the server answered it.
func faultyServer(t *testing.T, faults davserver.Faults, next func(r *http.Request, dir string)) (url, dir string) {
	t.Helper()
	dir = t.TempDir()
	h, err := davserver.New(dir, davserver.Options{Faults: faults, Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	var hh http.Handler = h
	if next != nil {
		hh = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			h.ServeHTTP(w, r)
			next(r, dir)
		})
	}
	return serve(t, hh).URL + "/", dir
}

// TestFaultyServersContract runs the conformance suite against the
// davserver in each fault mode.
func TestFaultyServersContract(t *testing.T) {
	for name, faults := range faultModes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url, _ := faultyServer(t, faults, nil)
			backendtest.Run(t, subdirOpener(t, testConfig(url)))
		})
	}
}

// TestFaultyServersCapabilities checks what the probe makes of each fault
// mode, that it leaves nothing in the root, and that metadata comes back
// from the server as stored (rsync-grade: mtime to the nanosecond) after a
// new connection where the server keeps it, and that the root takes
// metadata on every server.
func TestFaultyServersCapabilities(t *testing.T) {
	for name, faults := range faultModes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url, dir := faultyServer(t, faults, nil)
			b := connect(t, url)
			caps, err := b.Capabilities(testContext(t))
			if err != nil {
				t.Fatal(err)
			}
			wantStored := !faults.FirstPropOnly && !faults.NoDeadProps
			if caps.MTime.Stored != wantStored || caps.Mode.Stored != wantStored || caps.Hash.Stored != wantStored {
				t.Errorf("metadata stored: mtime %v, mode %v, hash %v; want %v\nnotes: %q",
					caps.MTime.Stored, caps.Mode.Stored, caps.Hash.Stored, wantStored, caps.Notes)
			}
			if faults.NoETags && caps.ConditionalPut {
				t.Errorf("ConditionalPut on a server that ignores If-Match")
			}
			if ents, _ := os.ReadDir(dir); len(ents) != 0 {
				t.Errorf("the probe left %v in the root", ents)
			}

			mtime := time.Unix(1e9, 123456789)
			mode := os.FileMode(0o640)
			meta := backends.Meta{MTime: &mtime, Mode: &mode}
			if _, err := b.Put(testContext(t), "f", strings.NewReader("abc"), 3, backends.PutOptions{Meta: meta, IfNoneMatch: true}); err != nil {
				t.Fatalf("Put: %v", err)
			}
			again := connect(t, url)
			e, err := again.Stat(testContext(t), "f")
			if err != nil {
				t.Fatal(err)
			}
			if wantStored && (e.Meta.MTime == nil || !e.Meta.MTime.Equal(mtime) || !e.ModTime.Equal(mtime) || e.Meta.Mode == nil || *e.Meta.Mode != mode) {
				t.Errorf("after a new connection: %+v, want mtime %v and mode %v from the server", e, mtime, mode)
			}
			if !wantStored && e.Meta.MTime != nil {
				t.Errorf("after a new connection: mtime %v from a server that was not trusted with it", e.Meta.MTime)
			}
			if _, err := b.SetMeta(testContext(t), "", meta, ""); err != nil {
				t.Errorf("SetMeta of the root: %v", err)
			}
		})
	}
}

// TestFaultyServersDirectories: directories are renamed and removed on
// every fault mode (nginx wants the trailing slash).
func TestFaultyServersDirectories(t *testing.T) {
	for name, faults := range faultModes {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			url, dir := faultyServer(t, faults, nil)
			b := connect(t, url)
			ctx := testContext(t)
			if err := b.Mkdir(ctx, "d"); err != nil {
				t.Fatal(err)
			}
			putString(t, b, "d/f", "x")
			if err := b.Rename(ctx, "d", "e", false); err != nil {
				t.Fatalf("Rename of a directory: %v", err)
			}
			if err := b.Mkdir(ctx, "empty"); err != nil {
				t.Fatal(err)
			}
			if err := b.Rename(ctx, "empty", "e2", true); err != nil {
				t.Fatalf("Rename of an empty directory with overwrite: %v", err)
			}
			if err := b.Remove(ctx, "e2"); err != nil {
				t.Fatalf("Remove of a directory: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "e", "f")); err != nil {
				t.Errorf("after the rename: %v", err)
			}
			if _, err := os.Stat(filepath.Join(dir, "e2")); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("after Remove: %v", err)
			}
		})
	}
}

// TestUnconditionalServerKeepsOthersChanges: on a server that ignores
// If-Match and If-None-Match, a change by another client while an upload
// runs is never replaced: a new file that appears meanwhile makes the
// create fail with ErrExist, an edit of a file changed meanwhile fails with
// ErrPrecondition, and no temporary file stays.
func TestUnconditionalServerKeepsOthersChanges(t *testing.T) {
	var other []byte
	url, dir := faultyServer(t, davserver.Faults{NoETags: true}, func(r *http.Request, dir string) {
		// Right after the upload's temporary file is stored, another
		// client writes the target, each time with another size.
		if r.Method == http.MethodPut && strings.Contains(r.URL.Path, UploadPrefix) {
			target := filepath.Join(dir, filepath.Dir(filepath.FromSlash(r.URL.Path)), "target")
			other = append(other, "written by another client during the upload\n"...)
			_ = os.WriteFile(target, other, 0o644)
			later := time.Now().Add(time.Hour)
			_ = os.Chtimes(target, later, later)
		}
	})
	b := connect(t, url)
	ctx := testContext(t)
	if caps, err := b.Capabilities(ctx); err != nil || caps.ConditionalPut {
		t.Fatalf("Capabilities: %+v, %v; want no ConditionalPut", caps, err)
	}

	_, err := b.Put(ctx, "target", strings.NewReader("mine"), 4, backends.PutOptions{IfNoneMatch: true})
	if !errors.Is(err, backends.ErrExist) {
		t.Errorf("create while another client creates the file: %v, want ErrExist", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "target")); string(got) != string(other) {
		t.Errorf("the other client's file holds %q", got)
	}

	e, err := b.Stat(ctx, "target")
	if err != nil {
		t.Fatal(err)
	}
	_, err = b.Put(ctx, "target", strings.NewReader("edit"), 4, backends.PutOptions{IfMatch: e.Version})
	if !errors.Is(err, backends.ErrPrecondition) {
		t.Errorf("edit while another client changes the file: %v, want ErrPrecondition", err)
	}
	if got, _ := os.ReadFile(filepath.Join(dir, "target")); string(got) != string(other) {
		t.Errorf("the other client's file holds %q", got)
	}
	ents, _ := os.ReadDir(dir)
	if len(ents) != 1 {
		t.Errorf("the root holds %v, want only target", ents)
	}

	// Without another writer, an edit goes through the temporary file and
	// lands.
	putString(t, b, "quiet", "v1")
	e, err = b.Stat(ctx, "quiet")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx, "quiet", strings.NewReader("v2"), 2, backends.PutOptions{IfMatch: e.Version}); err != nil {
		t.Fatalf("edit: %v", err)
	}
	rc, err := b.Read(ctx, "quiet", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if string(got) != "v2" {
		t.Errorf("after the edit: %q", got)
	}
}

// TestProbeFindsUnlistedDotNames: the probe finds a server whose listings
// leave out names that start with a dot (nginx's dav-ext), says so, and
// leaves nothing behind.
func TestProbeFindsUnlistedDotNames(t *testing.T) {
	for _, hide := range []bool{false, true} {
		url, dir := faultyServer(t, davserver.Faults{HideDotNames: hide}, nil)
		caps, err := connect(t, url).Capabilities(testContext(t))
		if err != nil {
			t.Fatal(err)
		}
		if caps.UnlistedDotNames != hide {
			t.Errorf("HideDotNames %v: UnlistedDotNames %v\nnotes: %q", hide, caps.UnlistedDotNames, caps.Notes)
		}
		if ents, _ := os.ReadDir(dir); len(ents) != 0 {
			t.Errorf("the probe left %v in the root", ents)
		}
	}
}
