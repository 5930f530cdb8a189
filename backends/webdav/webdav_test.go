package webdav

import (
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/cloudmount/cloudmount/backends"
	"github.com/cloudmount/cloudmount/backends/backendtest"
	"github.com/cloudmount/cloudmount/backends/tlsclient"
)

// TestContract runs the backend conformance suite against each in-process
// server, each subtest in a fresh directory of it; a read-only server,
// where no directory can be made, and the davserver mounted at its root are
// started afresh for each subtest.
func TestContract(t *testing.T) {
	for name, url := range servers(t) {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			backendtest.Run(t, subdirOpener(t, testConfig(url)))
		})
	}
	for name, h := range map[string]func(t *testing.T) http.Handler{
		"dir without dead props": dirHandler,
		"X-OC-Mtime":             ocMtime,
	} {
		url := serve(t, h(t)).URL + "/"
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			backendtest.Run(t, subdirOpener(t, testConfig(url)))
		})
	}
	for name, h := range map[string]func(t *testing.T) http.Handler{
		"read-only":           func(t *testing.T) http.Handler { return readOnly(memHandler("/")) },
		"davserver, its root": davserverHandler, // quota is answered on the root only
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			backendtest.Run(t, func(t *testing.T) backends.Backend {
				return connect(t, serve(t, h(t)).URL+"/")
			})
		})
	}
}

// subdirOpener returns the opener of backendtest.Run for the server of
// cfg: it makes a directory of its own in the server's root for each
// subtest, mounts that, and removes it afterwards.
func subdirOpener(t *testing.T, cfg Config) func(t *testing.T) backends.Backend {
	root, err := New(testContext(t), cfg)
	if err != nil {
		t.Fatalf("New(%s): %v", cfg.URL, err)
	}
	t.Cleanup(func() { _ = root.Close() })
	return func(t *testing.T) backends.Backend {
		dir := "cmtest-" + randomHex(4)
		if err := root.Mkdir(testContext(t), dir); err != nil {
			t.Fatalf("Mkdir(%s): %v", dir, err)
		}
		t.Cleanup(func() { removeTree(t, root, dir) })
		sub := cfg
		sub.URL = cfg.URL + dir + "/"
		b, err := New(testContext(t), sub)
		if err != nil {
			t.Fatalf("New(%s): %v", sub.URL, err)
		}
		t.Cleanup(func() { _ = b.Close() })
		return b
	}
}

// TestLiveServer runs the suite against a real server, when
// CLOUDMOUNT_TEST_WEBDAV_URL (and _USER, _PASSWORD, _CA_FILE) name one, in
// directories it makes in that URL's collection, and logs its
// capabilities. Example:
//
//	CLOUDMOUNT_TEST_WEBDAV_URL=http://127.0.0.1:8080/dav/ go test -run Live -v ./backends/webdav/
func TestLiveServer(t *testing.T) {
	url := os.Getenv("CLOUDMOUNT_TEST_WEBDAV_URL")
	if url == "" {
		t.Skip("CLOUDMOUNT_TEST_WEBDAV_URL not set")
	}
	cfg := Config{
		URL:      url,
		User:     os.Getenv("CLOUDMOUNT_TEST_WEBDAV_USER"),
		Password: os.Getenv("CLOUDMOUNT_TEST_WEBDAV_PASSWORD"),
		TLS:      tlsclient.Settings{CAFile: os.Getenv("CLOUDMOUNT_TEST_WEBDAV_CA_FILE")},
		Timeout:  10 * time.Second,
		Logger:   quietLogger(),
	}
	b, err := New(testContext(t), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	caps, err := b.Capabilities(testContext(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%s: %+v", b, caps)
	if q, err := b.Quota(testContext(t)); err == nil {
		t.Logf("quota: %+v", q)
	}
	if len(cfg.URL) > 0 && cfg.URL[len(cfg.URL)-1] != '/' {
		cfg.URL += "/"
	}
	backendtest.Run(t, subdirOpener(t, cfg))
}
