package integration

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hanwen/go-fuse/v2/posixtest"
)

// posixSkips are the posixtest tests that a WebDAV mount cannot honour,
// each with the reason. docs/posix.md lists the same tests with the same
// reasons; TestPOSIXDocs keeps the two in step.
var posixSkips = map[string]string{
	"Link":                "hard links: WebDAV gives a resource one name (no BIND on Apache mod_dav or rclone), so link(2) answers ENOTSUP",
	"LinkUnlinkRename":    "needs link(2), which WebDAV cannot provide (see Link)",
	"XAttr":               "user extended attributes are not stored yet: setxattr answers ENOTSUP (never EIO), which cp -a and rsync -X take in their stride",
	"FcntlFlockLocksFile": "expects a lock through one fd to refuse a lock of the same process through another fd; POSIX record locks belong to the process, so ext4 and tmpfs grant it too, as cloudmount does (the kernel keeps the locks)",
}

// posixTestTimeout is how long one posixtest test may take before the
// watchdog aborts the FUSE connection so that the run goes on.
const posixTestTimeout = 3 * time.Minute

// TestPOSIX runs every test of go-fuse's posixtest suite in a fresh
// directory on a foreground mount of each server.
func TestPOSIX(t *testing.T) {
	names := make([]string, 0, len(posixtest.All))
	for name := range posixtest.All {
		names = append(names, name)
	}
	slices.Sort(names)
	eachServer(t, func(t *testing.T, srv *Server) {
		m := mountServer(t, srv, MountOptions{Foreground: true})
		runPOSIXTests(t, m, names, func(name string) string { return posixSkips[name] })
	})
}

// runPOSIXTests runs the posixtest tests names on m, each as a subtest in
// a directory posix/NAME of its own, under a watchdog that aborts the FUSE
// connection if it hangs; a test for which skip gives a reason is skipped
// with it.
func runPOSIXTests(t *testing.T, m *Mount, names []string, skip func(name string) string) {
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			if why := skip(name); why != "" {
				t.Skip(why)
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

// linkPOSIXSkips are the posixtest tests a mount of a backend that may
// offer hard links (SFTP, Tahoe) cannot honour: those of posixSkips that
// are not about hard links.
var linkPOSIXSkips = map[string]string{
	"XAttr":               posixSkips["XAttr"],
	"FcntlFlockLocksFile": posixSkips["FcntlFlockLocksFile"],
}

// runPOSIXWithLinks runs the whole posixtest suite on m but
// linkPOSIXSkips; the link tests run if hardlinks, else they are skipped
// with the reason noLinks.
func runPOSIXWithLinks(t *testing.T, m *Mount, hardlinks bool, noLinks string) {
	names := mapKeys(posixtest.All)
	slices.Sort(names)
	runPOSIXTests(t, m, names, func(name string) string {
		if why, ok := linkPOSIXSkips[name]; ok {
			return why
		}
		if !hardlinks && (name == "Link" || name == "LinkUnlinkRename") {
			return noLinks
		}
		return ""
	})
}

// capsLine finds the capabilities the daemon logged at start-up
// ("capabilities=..." in the "server capabilities" line).
var capsLine = regexp.MustCompile(`capabilities="([^"]*)"`)

// daemonCaps waits up to within for the capabilities in m's daemon log;
// ok is false if they are not there by then.
func daemonCaps(m *Mount, within time.Duration) (caps []string, ok bool) {
	for deadline := time.Now().Add(within); ; time.Sleep(100 * time.Millisecond) {
		log, _ := os.ReadFile(m.LogFile)
		if mm := capsLine.FindSubmatch(log); mm != nil {
			return strings.Fields(string(mm[1])), true
		}
		if time.Now().After(deadline) {
			return nil, false
		}
	}
}

// TestPOSIXDocs checks that docs/posix.md names every posixtest test and
// marks as skipped exactly those in posixSkips, with the same reason.
func TestPOSIXDocs(t *testing.T) {
	f, err := os.Open(filepath.Join(repoRoot, "docs", "posix.md"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	// Rows look like: | `Name` | skip | reason |
	row := regexp.MustCompile("^\\|\\s*`([A-Za-z0-9]+)`\\s*\\|\\s*([^|]*?)\\s*\\|\\s*([^|]*?)\\s*\\|")
	status := map[string]string{}
	reason := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if m := row.FindStringSubmatch(sc.Text()); m != nil {
			status[m[1]], reason[m[1]] = strings.ToLower(m[2]), m[3]
		}
	}
	for name := range posixtest.All {
		if _, ok := status[name]; !ok {
			t.Errorf("docs/posix.md has no row for %s", name)
		}
	}
	for name, st := range status {
		if _, ok := posixtest.All[name]; !ok {
			t.Errorf("docs/posix.md lists %s, which posixtest does not have", name)
		}
		why, skipped := posixSkips[name]
		switch {
		case skipped && st != "skip":
			t.Errorf("%s is skipped in posix_test.go but %q in docs/posix.md", name, st)
		case !skipped && st == "skip":
			t.Errorf("%s is marked skip in docs/posix.md but runs in posix_test.go", name)
		case skipped && reason[name] != why:
			t.Errorf("reason for skipping %s: docs/posix.md says %q, posix_test.go says %q", name, reason[name], why)
		}
	}
}
