package integration

import (
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"
)

// TestServers checks the harness's servers on their own, without a mount:
// they come up, demand and accept basic auth, store what is PUT in Dir, log
// requests, and shut down cleanly.
func TestServers(t *testing.T) {
	eachServer(t, func(t *testing.T, srv *Server) {
		code, body, err := srv.Propfind("", "1", "")
		if err != nil || code != http.StatusMultiStatus {
			t.Fatalf("authenticated PROPFIND %s: %d %v\n%s", srv.URL, code, err, body)
		}

		for _, c := range []struct{ name, user, pass string }{
			{"no credentials", "", ""},
			{"wrong password", srv.User, srv.Password + "x"},
		} {
			req, _ := http.NewRequest("PROPFIND", srv.URL, nil)
			req.Header.Set("Depth", "0")
			if c.user != "" {
				req.SetBasicAuth(c.user, c.pass)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("PROPFIND with %s: status %d, want 401", c.name, resp.StatusCode)
			}
		}

		const content = "hello from the harness\n"
		resp, err := srv.Do("PUT", "dir test/hello wörld.txt", nil, strings.NewReader(content))
		if err == nil {
			resp.Body.Close()
		}
		// Apache has no implicit MKCOL: make the collection, then PUT.
		if err != nil || resp.StatusCode >= 300 {
			mk, err := srv.Do("MKCOL", "dir test/", nil, nil)
			if err != nil {
				t.Fatal(err)
			}
			mk.Body.Close()
			if mk.StatusCode != http.StatusCreated {
				t.Fatalf("MKCOL: %d", mk.StatusCode)
			}
			resp, err = srv.Do("PUT", "dir test/hello wörld.txt", nil, strings.NewReader(content))
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
		}
		if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusNoContent {
			t.Fatalf("PUT: status %d", resp.StatusCode)
		}
		if got, err := os.ReadFile(srv.Path("dir test/hello wörld.txt")); err != nil || string(got) != content {
			t.Fatalf("file on the server's disk: %q, %v", got, err)
		}

		srv.WriteFile(t, "behind/the back.txt", []byte("written on disk"), time.Unix(1e9, 0))
		get, err := srv.Do("GET", "behind/the back.txt", nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(get.Body)
		get.Body.Close()
		if get.StatusCode != http.StatusOK || string(got) != "written on disk" {
			t.Fatalf("GET of a file written behind the server's back: %d %q", get.StatusCode, got)
		}

		var puts int
		for _, r := range srv.Requests(t) {
			// Apache and nginx log status and bytes received; rclone neither.
			if r.Method == "PUT" && r.Path == "/dir test/hello wörld.txt" &&
				(srv.Kind == "rclone" || r.Status == http.StatusCreated && r.Received > int64(len(content))) {
				puts++
			}
		}
		if puts == 0 {
			t.Errorf("access log %s has no PUT of /dir test/hello wörld.txt:\n%s", srv.AccessLog, tailFile(srv.AccessLog, 20))
		}

		_, _, ok, err := srv.Quota()
		if err != nil {
			t.Errorf("quota PROPFIND: %v", err)
		}
		t.Logf("%s offers an RFC 4331 quota: %v", srv.Kind, ok)

		addr := mustURL(t, srv.URL).Host
		pid := srv.proc.pid()
		if err := srv.proc.stop(15 * time.Second); err != nil {
			t.Fatal(err)
		}
		if members := groupMembers(pid); len(members) > 0 {
			t.Errorf("processes of %s left after stop: %v", srv.Kind, members)
		}
		if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
			c.Close()
			t.Errorf("%s still answers on %s after stop", srv.Kind, addr)
		}
		t.Logf("%s at %s stopped cleanly", srv.Kind, addr)
	})
}
