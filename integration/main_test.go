package integration

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

var (
	// binPath is the cloudmount binary that TestMain builds for this run.
	binPath string
	// buildErr says why the binary could not be built; tests that mount fail with it.
	buildErr error
	// repoRoot is the module root, the parent of this package's directory.
	repoRoot string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

// runMain builds the binary once, runs the tests, and then makes sure that
// no mount made by this process is left behind.
func runMain(m *testing.M) int {
	flag.Parse()
	// A hung test makes `go test -timeout` panic, and then no t.Cleanup
	// runs: clean up shortly before that.
	if f := flag.Lookup("test.timeout"); f != nil {
		if d, ok := f.Value.(flag.Getter).Get().(time.Duration); ok && d > 0 {
			timer := time.AfterFunc(d-min(d/10, time.Minute), emergencyCleanup)
			defer timer.Stop()
		}
	}
	root, err := filepath.Abs("..")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	repoRoot = root
	binDir, err := os.MkdirTemp("", "cloudmount-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	defer os.RemoveAll(binDir)
	// The unprivileged-mount test runs the binary as another user.
	if err := os.Chmod(binDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "integration:", err)
		return 1
	}
	binPath = filepath.Join(binDir, "cloudmount")
	build := exec.Command("go", "build", "-o", binPath, "./cmd/cloudmount")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		buildErr = fmt.Errorf("go build ./cmd/cloudmount: %v\n%s", err, out)
	}

	code := m.Run()

	if left := leftoverMounts(); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "integration: mounts left behind (now lazily unmounted): %q\n", left)
		for _, dir := range left {
			_ = exec.Command("fusermount3", "-uz", dir).Run()
		}
		code = 1
	}
	return code
}
