package integration

import (
	"strconv"
	"strings"
	"testing"
)

// TestDf runs df on the mount. Where the server offers an RFC 4331 quota,
// df must show it; neither Apache mod_dav_fs nor rclone serve webdav offers
// one (the harness asks them), and then df must still work and report
// consistent numbers. The embedded server (cloudmount serve webdav) offers
// one, so it is checked here too.
func TestDf(t *testing.T) {
	eachServer(t, checkDf)
	t.Run("embedded", func(t *testing.T) { checkDf(t, startEmbedded(t)) })
}

// checkDf is TestDf on one server.
func checkDf(t *testing.T, srv *Server) {
	m := mountServer(t, srv, MountOptions{})
	out := run(t, "", "df", "-P", "-B1", m.Dir)
	lines := strings.Split(strings.TrimSpace(out), "\n")
	f := strings.Fields(lines[len(lines)-1])
	if len(f) < 6 || f[len(f)-1] != m.Dir {
		t.Fatalf("df -P %s: no line for the mount:\n%s", m.Dir, out)
	}
	size, err1 := strconv.ParseInt(f[1], 10, 64)
	used, err2 := strconv.ParseInt(f[2], 10, 64)
	avail, err3 := strconv.ParseInt(f[3], 10, 64)
	if err1 != nil || err2 != nil || err3 != nil || used > size || avail > size {
		t.Errorf("df numbers are not consistent (size %s, used %s, available %s):\n%s", f[1], f[2], f[3], out)
	}
	t.Logf("df on %s: %s", srv.Kind, lines[len(lines)-1])
	run(t, "", "stat", "-f", m.Dir)

	qAvail, qUsed, ok, err := srv.Quota()
	if err != nil {
		t.Fatal(err)
	}
	if !ok {
		t.Logf("%s offers no RFC 4331 quota, so df shows what the daemon reports without one", srv.Kind)
		return
	}
	// The server's disk is shared with whatever else runs here, so the
	// figures may move between the two questions.
	slack := max(int64(64<<20), (qAvail+qUsed)/100)
	if abs(avail-qAvail) > slack || abs(size-(qAvail+qUsed)) > slack {
		t.Errorf("df shows size %d available %d; the server's quota is %d available, %d used", size, avail, qAvail, qUsed)
	}
	t.Logf("%s quota: %d available, %d used; df agrees", srv.Kind, qAvail, qUsed)
}

// abs is the absolute value of n.
func abs(n int64) int64 {
	if n < 0 {
		return -n
	}
	return n
}
