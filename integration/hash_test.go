package integration

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestSHA256Xattr reads user.cloudmount.sha256 with getfattr, as a user
// would: for a file written through the mount (known without a download,
// and on Apache still known from a mount with an empty cache), and for a
// file put on the server behind the mount's back (computed on request,
// and computed again once the server has a new version).
func TestSHA256Xattr(t *testing.T) {
	needTool(t, "getfattr")
	eachServer(t, func(t *testing.T, srv *Server) {
		// The server's copy changes behind the mount's back below.
		m := mountServer(t, srv, MountOptions{Args: []string{"--dir-cache-time", "1s"}})
		getfattr := func(name string) string {
			t.Helper()
			out := run(t, "", "getfattr", "--absolute-names", "--only-values", "-n", "user.cloudmount.sha256", m.Path(name))
			return strings.TrimSpace(out)
		}
		sum := func(data []byte) string {
			s := sha256.Sum256(data)
			return hex.EncodeToString(s[:])
		}

		data := []byte(strings.Repeat("backup data\n", 100000))
		if err := os.WriteFile(m.Path("written.txt"), data, 0o644); err != nil {
			t.Fatal(err)
		}
		if got := getfattr("written.txt"); got != sum(data) {
			t.Errorf("written through the mount: getfattr %q, sha256sum %q", got, sum(data))
		}
		if out := run(t, "", "getfattr", "--absolute-names", "-d", m.Path("written.txt")); !strings.Contains(out, "user.cloudmount.sha256=") {
			t.Errorf("getfattr -d does not list the hash of a file written here:\n%s", out)
		}

		// cp of identical content over the file: no PUT reaches the server.
		same := filepath.Join(t.TempDir(), "same.txt")
		os.WriteFile(same, data, 0o644)
		m.Sync(t) // uploads are written back: count them once they are done
		puts := countPuts(t, srv, "/written.txt")
		if puts == 0 {
			t.Fatalf("the access log shows no PUT of written.txt, so uploads cannot be counted")
		}
		run(t, "", "cp", same, m.Path("written.txt"))
		if got := getfattr("written.txt"); got != sum(data) {
			t.Errorf("after cp of the same content: getfattr %q", got)
		}
		m.Sync(t)
		if n := countPuts(t, srv, "/written.txt"); n != puts {
			t.Errorf("cp of identical content sent %d PUT(s) of the file, want none", n-puts)
		}

		other := []byte("put on the server directly\n")
		srv.WriteFile(t, "elsewhere.txt", other, time.Time{})
		if got := getfattr("elsewhere.txt"); got != sum(other) {
			t.Errorf("file from elsewhere: getfattr %q, want %q", got, sum(other))
		}
		changed := []byte("changed on the server, longer than before\n")
		srv.WriteFile(t, "elsewhere.txt", changed, time.Now().Add(time.Minute))
		eventually(t, 30*time.Second, func() error {
			if got := getfattr("elsewhere.txt"); got != sum(changed) {
				return errorf("after a change on the server: getfattr %q, want %q", got, sum(changed))
			}
			return nil
		})

		m = m.Remount(t, true)
		if got := getfattr("written.txt"); got != sum(data) {
			t.Errorf("from a mount with an empty cache: getfattr %q, want %q", got, sum(data))
		}
	})
}

// countPuts counts the uploads of path in the server's access log (see
// isUploadOf).
func countPuts(t *testing.T, srv *Server, path string) int {
	t.Helper()
	n := 0
	for _, r := range srv.Requests(t) {
		if isUploadOf(r, path) {
			n++
		}
	}
	return n
}
