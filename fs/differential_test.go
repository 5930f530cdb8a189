package fs

import (
	"context"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/memory"
	"github.com/cloudmount/cloudmount/backends/webdav"
	"github.com/cloudmount/cloudmount/backends/webdav/davserver"
	"github.com/cloudmount/cloudmount/fs/difftest"
)

// backendFiles reads every regular file of b with its bytes.
func backendFiles(b backends.Backend) (map[string][]byte, error) {
	files := map[string][]byte{}
	var walk func(dir string) error
	walk = func(dir string) error {
		entries, err := b.List(context.Background(), dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			p := path.Join(dir, e.Name)
			if e.IsDir {
				if err := walk(p); err != nil {
					return err
				}
				continue
			}
			rc, err := b.Read(context.Background(), p, 0, -1)
			if err != nil {
				return err
			}
			data, err := io.ReadAll(rc)
			rc.Close()
			if err != nil {
				return err
			}
			files[p] = data
		}
		return nil
	}
	return files, walk("")
}

// runDifferential drives a mount of b and a local directory alike; after
// every checkpoint's sync the server's files must equal the local ones.
func runDifferential(t *testing.T, b backends.Backend, ops int) {
	if raceEnabled {
		ops /= 4 // make unit runs -race; make soak runs many more
	}
	mnt := mountMem(t, b, Options{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()),
		AttrTimeout: time.Millisecond, WritebackDelay: 50 * time.Millisecond})
	difftest.Run(t, mnt, t.TempDir(), difftest.Config{
		Ops:         ops,
		Sync:        func() error { return syncErr(mnt) },
		ServerFiles: func() (map[string][]byte, error) { return backendFiles(b) },
		Hash:        true,
	})
}

// syncErr waits until the mount at mnt has uploaded everything.
func syncErr(mnt string) error {
	mountsMu.Lock()
	m := mounts[mnt]
	mountsMu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	return m.Sync(ctx, nil)
}

func TestDifferentialMemory(t *testing.T) {
	runDifferential(t, memory.New(), 2000)
}

// The in-process WebDAV server stores files in a directory and dead
// properties in xattrs, as a real server does.
func TestDifferentialWebDAV(t *testing.T) {
	dir := t.TempDir()
	h, err := davserver.New(dir, davserver.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	b, err := webdav.New(context.Background(), webdav.Config{URL: srv.URL + "/", Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	runDifferential(t, b, 2000)
}

func TestMain(m *testing.M) {
	difftest.MaybeChild()
	difftest.InProcess()
	os.Exit(m.Run())
}
