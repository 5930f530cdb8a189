package integration

import (
	"slices"
	"strings"
	"testing"
	"time"
)

// testTahoePOSIX runs go-fuse's posixtest suite on a foreground mount of
// a grid directory, each test in a directory of its own. The link tests
// run when the daemon reports "hardlinks" among the backend's
// capabilities.
func testTahoePOSIX(t *testing.T, g *tahoeGrid) {
	d := g.newDir(t)
	m := mountTahoe(t, d, tahoeMountOptions{Foreground: true})
	caps, ok := daemonCaps(m, 10*time.Second)
	if ok {
		t.Logf("capabilities: %s", strings.Join(caps, " "))
	} else {
		t.Logf("NOTE: no capabilities=\"...\" line in the daemon log; the link tests are skipped:\n%s", tailFile(m.LogFile, 20))
	}
	runPOSIXWithLinks(t, m, slices.Contains(caps, "hardlinks"), "the daemon does not report hard links for a Tahoe grid (link(2) answers ENOTSUP)")
}
