package main

import (
	"encoding/json"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/memory"
	"github.com/cloudmount/cloudmount/cache"
	cmfs "github.com/cloudmount/cloudmount/fs"
)

// TestControlRealMount serves a real FUSE mount of an in-memory server on
// the control socket and runs status, sync and verify against it, the
// mount found through the kernel's mount table.
func TestControlRealMount(t *testing.T) {
	if _, err := os.Stat("/dev/fuse"); err != nil {
		t.Skip("no /dev/fuse")
	}
	_, _ = controlEnv(t)
	mountinfoPath = "/proc/self/mountinfo"
	b := memory.New()
	store, err := cache.Open(t.TempDir(), cache.Options{})
	if err != nil {
		t.Fatal(err)
	}
	mnt := t.TempDir()
	log := slog.New(slog.DiscardHandler)
	m, err := cmfs.Mount(mnt, b, store, cmfs.Options{UID: uint32(os.Getuid()), GID: uint32(os.Getgid()),
		WritebackDelay: time.Hour, FSName: "memory://test", Logger: log})
	if err != nil {
		store.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := m.Server.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
		m.Drain(10 * time.Second)
		store.Close()
	})
	stop, err := startControl(mnt, m, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)

	if err := os.MkdirAll(filepath.Join(mnt, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "docs", "a.txt"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	// The upload waits an hour: status shows it queued, sync does not wait.
	stdout, stderr, code := runCLI("status", mnt, "--json")
	var st statusOutput
	if code != 0 || json.Unmarshal([]byte(stdout), &st) != nil || st.Status == nil || st.QueuedFiles != 1 ||
		!st.Online || st.Source != "memory://test" {
		t.Fatalf("status: exit %d: %s%s", code, stdout, stderr)
	}
	stdout, stderr, code = runCLI("sync", mnt)
	if code != 0 || !strings.Contains(stdout, "everything queued is on the server") {
		t.Fatalf("sync: exit %d: %s%s", code, stdout, stderr)
	}
	if got, _ := b.Content("docs/a.txt"); string(got) != "hello" {
		t.Fatalf("server has %q after sync", got)
	}

	// verify without an argument: the current directory, in the mount.
	t.Chdir(filepath.Join(mnt, "docs"))
	stdout, stderr, code = runCLI("verify")
	if code != 0 || !strings.Contains(stdout, "1 file with a known hash: all match") {
		t.Fatalf("verify: exit %d: %s%s", code, stdout, stderr)
	}
	e, err := b.Stat(t.Context(), "docs/a.txt")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(t.Context(), "docs/a.txt", strings.NewReader("HELLO"), 5, backends.PutOptions{Meta: e.Meta}); err != nil {
		t.Fatal(err)
	}
	stdout, stderr, code = runCLI("verify", mnt)
	if code != 1 || !strings.Contains(stdout, "MISMATCH "+filepath.Join(mnt, "docs/a.txt")) {
		t.Fatalf("verify after a change behind the mount's back: exit %d: %s%s", code, stdout, stderr)
	}
}
