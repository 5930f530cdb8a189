package integration

import (
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// tahoePOSIXSkips are the posixtest tests a Tahoe mount cannot honour,
// with the reason: those of posixSkips that are not about hard links.
// The link tests run when the daemon reports "hardlinks" among the
// backend's capabilities.
var tahoePOSIXSkips = map[string]string{
	"XAttr":               posixSkips["XAttr"],
	"FcntlFlockLocksFile": posixSkips["FcntlFlockLocksFile"],
}

// testTahoePOSIX runs go-fuse's posixtest suite on a foreground mount of
// a grid directory, each test in a directory of its own.
func testTahoePOSIX(t *testing.T, g *tahoeGrid) {
	d := g.newDir(t)
	m := mountTahoe(t, d, tahoeMountOptions{Foreground: true})
	var caps []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		log, _ := os.ReadFile(m.LogFile)
		if mm := capsLine.FindSubmatch(log); mm != nil {
			caps = strings.Fields(string(mm[1]))
			t.Logf("capabilities: %s", strings.Join(caps, " "))
			break
		}
		if time.Now().After(deadline) {
			t.Logf("NOTE: no capabilities=\"...\" line in the daemon log; the link tests are skipped:\n%s", tailFile(m.LogFile, 20))
			break
		}
	}
	hardlinks := slices.Contains(caps, "hardlinks")
	names := mapKeys(posixtest.All)
	slices.Sort(names)
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if why, ok := tahoePOSIXSkips[name]; ok {
				t.Skip(why)
			}
			if !hardlinks && (name == "Link" || name == "LinkUnlinkRename") {
				t.Skip("the daemon does not report hard links for a Tahoe grid (link(2) answers ENOTSUP)")
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
