package integration

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// testSFTPPOSIX runs go-fuse's posixtest suite on a foreground mount,
// each test in a directory of its own. The link tests run when the
// daemon reports "hardlinks" among the server's capabilities (OpenSSH
// has hardlink@openssh.com); otherwise they are skipped, saying so.
func testSFTPPOSIX(t *testing.T, e *sftpEnv) {
	srv := e.server(t)
	m := mountSFTP(t, e, srv, sftpMountOptions{Foreground: true})
	caps, ok := daemonCaps(m, 10*time.Second)
	if !ok {
		t.Fatalf("after %v: no capabilities=\"...\" line in the daemon log:\n%s", 10*time.Second, tailFile(m.LogFile, 20))
	}
	t.Logf("capabilities: %s", strings.Join(caps, " "))
	hardlinks := slices.Contains(caps, "hardlinks")
	if !hardlinks {
		t.Errorf("OpenSSH offers hardlink@openssh.com, but the daemon's capabilities lack \"hardlinks\": %s", caps)
	}
	runPOSIXWithLinks(t, m, hardlinks, "the daemon does not report hard links for this server")
}
