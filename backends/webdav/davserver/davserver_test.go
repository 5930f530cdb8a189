package davserver_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/webdav"
	"github.com/cloudmount/cloudmount/backends/webdav/davserver"
)

const (
	user = "bob"
	pass = "pa55-w0rd"
)

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// start serves dir with a fresh handler and returns its URL.
func start(t *testing.T, dir string, opts davserver.Options) string {
	t.Helper()
	opts.Logger = quiet()
	h, err := davserver.New(dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL + "/"
}

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

func backend(t *testing.T, url string) *webdav.Backend {
	t.Helper()
	b, err := webdav.New(ctx(t), webdav.Config{URL: url, User: user, Password: pass, Logger: quiet()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func TestNewRejects(t *testing.T) {
	f := filepath.Join(t.TempDir(), "file")
	_ = os.WriteFile(f, nil, 0o644)
	for _, root := range []string{f, filepath.Join(t.TempDir(), "missing")} {
		if _, err := davserver.New(root, davserver.Options{}); err == nil {
			t.Errorf("New(%s) accepted", root)
		}
	}
}

func TestAuth(t *testing.T) {
	url := start(t, t.TempDir(), davserver.Options{User: user, Password: pass})
	for _, c := range []struct {
		user, pass string
		want       int
	}{{"", "", 401}, {user, "wrong", 401}, {"eve", pass, 401}, {user, pass, 207}} {
		req, _ := http.NewRequest("PROPFIND", url, nil)
		req.Header.Set("Depth", "0")
		if c.user != "" {
			req.SetBasicAuth(c.user, c.pass)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("%q/%q: %d, want %d", c.user, c.pass, resp.StatusCode, c.want)
		}
		if c.want == 401 && !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
			t.Errorf("401 without a Basic challenge")
		}
	}
	open := start(t, t.TempDir(), davserver.Options{})
	resp, err := http.Get(open)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode == 401 {
		t.Error("no user configured, yet 401")
	}
}

// TestPropsPersist: dead properties live in xattrs, so a second handler on
// the same directory (a restarted server) sees them, and they travel with
// MOVE.
func TestPropsPersist(t *testing.T) {
	dir := t.TempDir()
	opts := davserver.Options{User: user, Password: pass}
	b1 := backend(t, start(t, dir, opts))
	mt := time.Unix(1234567890, 987654321)
	mode := os.FileMode(0o640)
	uid := uint32(4242)
	if _, err := b1.Put(ctx(t), "f ü#.txt", strings.NewReader("data"), 4, backends.PutOptions{
		Meta: backends.Meta{MTime: &mt, Mode: &mode, UID: &uid, Type: "fifo"},
	}); err != nil {
		t.Fatal(err)
	}
	if err := b1.Mkdir(ctx(t), "d"); err != nil {
		t.Fatal(err)
	}
	if _, err := b1.SetMeta(ctx(t), "d", backends.Meta{Mode: &mode}, ""); err != nil {
		t.Fatal(err)
	}
	if n, err := unix.Getxattr(filepath.Join(dir, "f ü#.txt"), "user.davserver.props", nil); err != nil || n == 0 {
		t.Fatalf("no xattr on disk: %d, %v", n, err)
	}

	b2 := backend(t, start(t, dir, opts))
	e, err := b2.Stat(ctx(t), "f ü#.txt")
	if err != nil {
		t.Fatal(err)
	}
	m := e.Meta
	if m.MTime == nil || !m.MTime.Equal(mt) || m.Mode == nil || *m.Mode != mode || m.UID == nil || *m.UID != uid || m.Type != "fifo" {
		t.Errorf("after restart: %+v", m)
	}
	if !e.ModTime.Equal(mt) {
		t.Errorf("ModTime %v, want %v (ns kept)", e.ModTime, mt)
	}
	if err := b2.Rename(ctx(t), "f ü#.txt", "d/moved", false); err != nil {
		t.Fatal(err)
	}
	if e, err := b2.Stat(ctx(t), "d/moved"); err != nil || e.Meta.Type != "fifo" {
		t.Errorf("after MOVE: %+v, %v", e.Meta, err)
	}
	if e, err := b2.Stat(ctx(t), "d"); err != nil || e.Meta.Mode == nil || *e.Meta.Mode != mode {
		t.Errorf("directory props after restart: %+v, %v", e.Meta, err)
	}
}

// TestEndToEnd: the webdav backend finds every capability it can use.
func TestEndToEnd(t *testing.T) {
	b := backend(t, start(t, t.TempDir(), davserver.Options{User: user, Password: pass}))
	caps, err := b.Capabilities(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	if !caps.StoresAll() || !caps.ConditionalPut || !caps.Quota || caps.MTime.OnPut {
		t.Errorf("capabilities %+v", caps)
	}
	q, err := b.Quota(ctx(t))
	if err != nil || q.Available <= 0 || q.Used <= 0 {
		t.Errorf("quota %+v, %v", q, err)
	}
	e1, err := b.Put(ctx(t), "x", strings.NewReader("1"), 1, backends.PutOptions{IfNoneMatch: true})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Put(ctx(t), "x", strings.NewReader("2"), 1, backends.PutOptions{IfNoneMatch: true}); !errors.Is(err, backends.ErrExist) {
		t.Errorf("If-None-Match on existing: %v", err)
	}
	time.Sleep(5 * time.Millisecond)
	if _, err := b.Put(ctx(t), "x", strings.NewReader("22"), 2, backends.PutOptions{IfMatch: e1.Version}); err != nil {
		t.Errorf("If-Match current: %v", err)
	}
	if _, err := b.Put(ctx(t), "x", strings.NewReader("333"), 3, backends.PutOptions{IfMatch: e1.Version}); !errors.Is(err, backends.ErrPrecondition) {
		t.Errorf("If-Match stale: %v", err)
	}
	ls, err := b.List(ctx(t), "")
	if err != nil || len(ls) != 1 || ls[0].Name != "x" || ls[0].Size != 2 {
		t.Errorf("List: %+v, %v", ls, err)
	}
}
