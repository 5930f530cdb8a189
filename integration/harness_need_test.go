package integration

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// need stops a test whose prerequisite (a tool, a server, root, FUSE) is
// missing. With CI set it fails the test, because in CI a missing
// prerequisite is a broken run, never a silent skip; elsewhere it skips with
// the reason. Every such check in this package goes through here.
func need(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") != "" {
		t.Fatalf("CI is set, so this is a failure and not a skip: %s", msg)
	}
	t.Skipf("skipped (set CI=1 to make this a failure): %s", msg)
}

// needTool returns the path of a program, looking in $PATH and then in the
// sbin directories that a non-root $PATH often lacks.
func needTool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	need(t, "%s is not installed (`make test` installs it)", name)
	return ""
}

// needRoot stops a test that only means something when run as root.
func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		need(t, "this test must run as root (euid is %d)", os.Geteuid())
	}
}

// needMountable stops a test that mounts when the binary did not build or
// FUSE is not usable here. A build failure is always a failure.
func needMountable(t testing.TB) {
	t.Helper()
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	if _, err := os.Stat("/dev/fuse"); err != nil {
		need(t, "no /dev/fuse: %v", err)
	}
	needTool(t, "fusermount3")
}
