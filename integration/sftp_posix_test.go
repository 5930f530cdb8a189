package integration

import (
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// sftpPOSIXSkips are the posixtest tests an SFTP mount cannot honour:
// those of posixSkips that are not about hard links (which OpenSSH offers
// with hardlink@openssh.com).
var sftpPOSIXSkips = map[string]string{
	"XAttr":               posixSkips["XAttr"],
	"FcntlFlockLocksFile": posixSkips["FcntlFlockLocksFile"],
}

// capsLine finds the capabilities the daemon logged at start-up
// ("capabilities=..." in the "server capabilities" line).
var capsLine = regexp.MustCompile(`capabilities="([^"]*)"`)

// testSFTPPOSIX runs go-fuse's posixtest suite on a foreground mount,
// each test in a directory of its own. The link tests run when the
// daemon reports "hardlinks" among the server's capabilities (OpenSSH
// has hardlink@openssh.com); otherwise they are skipped, saying so.
func testSFTPPOSIX(t *testing.T, e *sftpEnv) {
	srv := e.server(t)
	m := mountSFTP(t, e, srv, sftpMountOptions{Foreground: true})
	var caps []string
	eventually(t, 10*time.Second, func() error {
		log, _ := os.ReadFile(m.LogFile)
		mm := capsLine.FindSubmatch(log)
		if mm == nil {
			return errorf("no capabilities=\"...\" line in the daemon log:\n%s", tailFile(m.LogFile, 20))
		}
		caps = strings.Fields(string(mm[1]))
		return nil
	})
	t.Logf("capabilities: %s", strings.Join(caps, " "))
	hardlinks := slices.Contains(caps, "hardlinks")
	if !hardlinks {
		t.Errorf("OpenSSH offers hardlink@openssh.com, but the daemon's capabilities lack \"hardlinks\": %s", caps)
	}
	names := mapKeys(posixtest.All)
	slices.Sort(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if why, ok := sftpPOSIXSkips[name]; ok {
				t.Skip(why)
			}
			if !hardlinks && (name == "Link" || name == "LinkUnlinkRename") {
				t.Skip("the daemon does not report hard links for this server")
			}
			dir := m.Path("posix/" + name)
			if err := os.MkdirAll(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			watchdog := time.AfterFunc(posixTestTimeout, func() {
				t.Errorf("%s hangs after %v: aborting the FUSE connection", name, posixTestTimeout)
				if err := abortFUSE(m.Dir); err != nil {
					t.Errorf("abort: %v", err)
				}
			})
			defer watchdog.Stop()
			posixtest.All[name](t, dir)
		})
	}
}
