package webdav

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/net/webdav"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/webdav/davserver"
)

const (
	testUser = "alice"
	testPass = "s3cret-Pa55"
)

// basicAuth wraps h with the test credentials.
func basicAuth(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		if !ok || u != testUser || p != testPass {
			w.Header().Set("WWW-Authenticate", `Basic realm="test"`)
			http.Error(w, "no", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// memHandler is x/net/webdav over an in-memory tree (keeps dead
// properties, ignores If-Match), served under prefix.
func memHandler(prefix string) http.Handler {
	return &webdav.Handler{
		Prefix:     strings.TrimSuffix(prefix, "/"),
		FileSystem: webdav.NewMemFS(),
		LockSystem: webdav.NewMemLS(),
	}
}

// dirHandler is x/net/webdav over a directory (no dead properties).
func dirHandler(t *testing.T) http.Handler {
	return &webdav.Handler{FileSystem: webdav.Dir(t.TempDir()), LockSystem: webdav.NewMemLS()}
}

// davserverHandler is our demo server over a temp directory.
func davserverHandler(t *testing.T) http.Handler {
	h, err := davserver.New(t.TempDir(), davserver.Options{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// serve starts h behind basic auth and returns the server.
func serve(t *testing.T, h http.Handler) *httptest.Server {
	t.Helper()
	ts := httptest.NewServer(basicAuth(h))
	t.Cleanup(ts.Close)
	return ts
}

// testConfig is a Config for url with the test credentials.
func testConfig(url string) Config {
	return Config{URL: url, User: testUser, Password: testPass, Timeout: 5 * time.Second, Logger: quietLogger()}
}

func quietLogger() *slog.Logger {
	if os.Getenv("CLOUDMOUNT_TEST_DEBUG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(discard{}, nil))
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }

// connect runs New against url and closes the backend at the end.
func connect(t *testing.T, url string) *Backend {
	t.Helper()
	b, err := New(testContext(t), testConfig(url))
	if err != nil {
		t.Fatalf("New(%s): %v", url, err)
	}
	t.Cleanup(func() { _ = b.Close() })
	return b
}

func testContext(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// servers are the in-process servers every functional test runs against.
func servers(t *testing.T) map[string]string {
	return map[string]string{
		"memfs":     serve(t, memHandler("/dav/")).URL + "/dav/",
		"davserver": serve(t, davserverHandler(t)).URL + "/",
	}
}

// putString uploads s to p and fails the test on error.
func putString(t *testing.T, b *Backend, p, s string) {
	t.Helper()
	if _, err := b.Put(testContext(t), p, strings.NewReader(s), int64(len(s)), backends.PutOptions{}); err != nil {
		t.Fatalf("Put(%q): %v", p, err)
	}
}

func readAll(t *testing.T, b *Backend, p string, off, n int64) string {
	t.Helper()
	rc, err := b.Read(testContext(t), p, off, n)
	if err != nil {
		t.Fatalf("Read(%q, %d, %d): %v", p, off, n, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("Read(%q): %v", p, err)
	}
	return string(data)
}

func stat(b *Backend, t *testing.T, p string) error {
	_, err := b.Stat(testContext(t), p)
	return err
}

func readErr(b *Backend, t *testing.T, p string) error {
	rc, err := b.Read(testContext(t), p, 0, -1)
	if err == nil {
		_ = rc.Close()
	}
	return err
}

func putErr(b *Backend, t *testing.T, p string) error {
	_, err := b.Put(testContext(t), p, strings.NewReader("x"), 1, backends.PutOptions{})
	return err
}

// removeTree deletes a test directory with one recursive DELETE.
func removeTree(t *testing.T, b *Backend, p string) {
	resp, err := b.call(testContext(t), &request{method: "DELETE", path: p, dir: true})
	if err != nil {
		t.Logf("cleanup %s: %v", p, err)
		return
	}
	drain(resp)
}

func randomHex(n int) string {
	buf := make([]byte, n)
	_, _ = rand.Read(buf)
	return hex.EncodeToString(buf)
}
