package mountutil

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Unmount unmounts the FUSE mount at mountpoint: with umount(2) when running
// as root, else with fusermount3 -u (fusermount if there is no
// fusermount3). It then waits, up to timeout in all, until the mount is gone
// from /proc/self/mountinfo and its daemon has exited.
func Unmount(mountpoint string, timeout time.Duration) error {
	abs := absMountpoint(mountpoint)
	mounted, err := IsMounted(abs)
	if err != nil {
		return err
	}
	if !mounted {
		return fmt.Errorf("%s is not mounted", mountpoint)
	}
	pids := DaemonPIDs(abs)
	if os.Geteuid() == 0 {
		err = unix.Unmount(abs, 0)
		if errors.Is(err, unix.EBUSY) {
			return fmt.Errorf("unmount %s: busy, a process is using it (see fuser -vm %s)", mountpoint, mountpoint)
		}
		if err != nil {
			return fmt.Errorf("unmount %s: %w", mountpoint, err)
		}
	} else if err := fusermountUnmount(abs); err != nil {
		return fmt.Errorf("unmount %s: %w", mountpoint, err)
	}
	deadline := time.Now().Add(timeout)
	if err := WaitUnmounted(abs, timeout); err != nil {
		return err
	}
	// The daemon finishes after the kernel let go (closing the cache,
	// later draining uploads): wait for it too, so that "unmount && poweroff"
	// is safe.
	for _, pid := range pids {
		if !waitExit(pid, abs, time.Until(deadline)) {
			return fmt.Errorf("%s is unmounted, but its daemon (pid %d) is still running after %v; see its log", mountpoint, pid, timeout)
		}
	}
	return nil
}

// absMountpoint is the path mountinfo lists for mountpoint. Resolving
// symlinks may fail on a dead mount; the plain absolute path is used then.
func absMountpoint(mountpoint string) string {
	abs, err := filepath.Abs(mountpoint)
	if err != nil {
		return filepath.Clean(mountpoint)
	}
	if dir, err := filepath.EvalSymlinks(filepath.Dir(abs)); err == nil {
		abs = filepath.Join(dir, filepath.Base(abs))
	}
	return abs
}

// fusermountUnmount runs fusermount3 -u (or fusermount -u) on abs.
func fusermountUnmount(abs string) error {
	bin, err := exec.LookPath("fusermount3")
	if err != nil {
		if bin, err = exec.LookPath("fusermount"); err != nil {
			return errors.New("neither fusermount3 nor fusermount found in $PATH (install fuse3)")
		}
	}
	var stderr bytes.Buffer
	cmd := exec.Command(bin, "-u", "--", abs)
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		if msg := strings.TrimSpace(stderr.String()); msg != "" {
			return fmt.Errorf("%s: %s", filepath.Base(bin), msg)
		}
		return fmt.Errorf("%s: %w", filepath.Base(bin), err)
	}
	return nil
}

// WaitUnmounted polls /proc/self/mountinfo until abs is no longer a mount
// point, failing after timeout.
func WaitUnmounted(abs string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		mounted, err := IsMounted(abs)
		if err != nil || !mounted {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s is still mounted after %v", abs, timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// DaemonPIDs returns the cloudmount daemons serving the mount at abs, found
// by their argv (see DaemonArgs).
func DaemonPIDs(abs string) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && isDaemonOf(pid, abs) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// isDaemonOf reports whether process pid is a daemon serving abs.
func isDaemonOf(pid int, abs string) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
	return len(args) == 4 && args[1] == DaemonVerb && args[3] == abs
}

// waitExit waits up to timeout for the daemon pid of abs to exit.
func waitExit(pid int, abs string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for isDaemonOf(pid, abs) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(50 * time.Millisecond)
	}
	return true
}
