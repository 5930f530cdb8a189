package integration

import (
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// mountFails runs a mount that must fail: non-zero exit, output containing
// every one of wants, nothing mounted and no daemon left running.
func mountFails(t *testing.T, srv *Server, opts MountOptions, wants ...string) {
	t.Helper()
	before := binaryProcs()
	start := time.Now()
	m, out, err := tryMount(t, srv, opts)
	if err == nil {
		t.Fatalf("mount succeeded, want an error with %q", wants)
	}
	t.Logf("failed after %.1fs as expected: %v\n%s", time.Since(start).Seconds(), err, strings.TrimSpace(out))
	for _, w := range wants {
		if !strings.Contains(out, w) {
			t.Errorf("output does not say %q:\n%s", w, out)
		}
	}
	if _, ok := mountedAt(m.Dir); ok {
		t.Errorf("%s is mounted after a failed mount", m.Dir)
	}
	// The command returns once the daemon has ended; allow a moment for
	// the kernel to reap it.
	deadline := time.Now().Add(2 * time.Second)
	for {
		var left []int
		for _, pid := range binaryProcs() {
			if !slices.Contains(before, pid) {
				left = append(left, pid)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("processes of cloudmount left after a failed mount: %v", left)
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMountErrors: each way a mount can fail gives a clear message, a
// non-zero exit, nothing mounted and no daemon.
func TestMountErrors(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		srv.WriteFile(t, "a file.txt", []byte("not a collection\n"), time.Time{})
		t.Run("wrong password", func(t *testing.T) {
			bad := *srv
			bad.Password = "wrong-" + srv.Password
			mountFails(t, &bad, MountOptions{}, "wrong user name or password")
		})
		t.Run("wrong user", func(t *testing.T) {
			bad := *srv
			bad.User = "mallory"
			mountFails(t, &bad, MountOptions{}, "wrong user name or password")
		})
		t.Run("not a collection", func(t *testing.T) {
			mountFails(t, srv, MountOptions{URL: srv.URLOf("a file.txt")}, "not a WebDAV collection")
		})
		if srv.Kind == "apache" {
			t.Run("not WebDAV", func(t *testing.T) {
				u := mustURL(t, srv.URL)
				u.Path = "/plain/"
				mountFails(t, srv, MountOptions{URL: u.String()}, "not a WebDAV collection")
			})
		}
		t.Run("mountpoint missing", func(t *testing.T) {
			mountFails(t, srv, MountOptions{Dir: filepath.Join(t.TempDir(), "missing")}, "does not exist")
		})
		t.Run("mountpoint not empty", func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "something"), nil, 0o644); err != nil {
				t.Fatal(err)
			}
			mountFails(t, srv, MountOptions{Dir: dir}, "is not empty")
		})
		t.Run("secrets file 0644", func(t *testing.T) {
			mountFails(t, srv, MountOptions{SecretsMode: 0o644}, "secrets", "600")
		})
	})

	t.Run("unreachable", func(t *testing.T) {
		srv := &Server{Kind: "none", User: "alice", Password: "pw-unreachable"}
		srv.URL = fmt.Sprintf("http://127.0.0.1:%d/dav/", closedPort(t))
		mountFails(t, srv, MountOptions{}, "cannot reach")
	})

	// Go's TLS test server stands in for an https server with a
	// self-signed certificate; it answers every request with a web page.
	tls := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintln(w, "<p>a web page, not WebDAV</p>")
	}))
	// The refused handshake is the point of the test, not news.
	tls.Config.ErrorLog = log.New(io.Discard, "", 0)
	tls.StartTLS()
	t.Cleanup(tls.Close)
	tlsSrv := &Server{Kind: "none", URL: tls.URL + "/dav/", User: "alice", Password: "pw-tls"}
	t.Run("TLS untrusted", func(t *testing.T) {
		mountFails(t, tlsSrv, MountOptions{}, "not trusted", "--ca FILE (-o ca=FILE)")
	})
	t.Run("TLS with --ca-file", func(t *testing.T) {
		ca := filepath.Join(t.TempDir(), "ca.pem")
		cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tls.Certificate().Raw})
		if err := os.WriteFile(ca, cert, 0o644); err != nil {
			t.Fatal(err)
		}
		// The certificate is trusted now; what is left is that the URL is
		// a web page and not a WebDAV collection.
		mountFails(t, tlsSrv, MountOptions{Args: []string{"--ca-file", ca}}, "not a WebDAV collection")
	})
}
