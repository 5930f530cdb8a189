package mountutil

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// MountinfoPath is where the kernel lists this process's mounts.
const MountinfoPath = "/proc/self/mountinfo"

// FDMountpoint reports whether mountpoint is "/dev/fd/N", the form
// mount.fuse3 -o drop_privileges uses to hand over an open /dev/fuse, and
// returns N.
func FDMountpoint(mountpoint string) (int, bool) {
	rest, ok := strings.CutPrefix(mountpoint, "/dev/fd/")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	return n, err == nil && n >= 0
}

// CheckMountpoint verifies that mountpoint can be mounted on: it exists, is
// a directory, is empty (unless nonempty) and is not a mount point already.
// It returns the absolute path, symlinks resolved. Errors name mountpoint
// as the user wrote it. A /dev/fd/N mountpoint is returned unchecked.
func CheckMountpoint(mountpoint string, nonempty bool) (string, error) {
	if _, ok := FDMountpoint(mountpoint); ok {
		return mountpoint, nil
	}
	fi, err := os.Stat(mountpoint)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return "", fmt.Errorf("mountpoint %s does not exist", mountpoint)
	case errors.Is(err, syscall.ENOTCONN):
		return "", fmt.Errorf("mountpoint %s is a dead mount (transport endpoint is not connected): run cloudmount unmount %s", mountpoint, mountpoint)
	case err != nil:
		return "", fmt.Errorf("mountpoint %s: %w", mountpoint, err)
	case !fi.IsDir():
		return "", fmt.Errorf("mountpoint %s is not a directory", mountpoint)
	}
	abs, err := filepath.Abs(mountpoint)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return "", fmt.Errorf("mountpoint %s: %w", mountpoint, err)
	}
	mounted, err := IsMounted(abs)
	if err != nil {
		return "", err
	}
	if mounted {
		return "", fmt.Errorf("mountpoint %s is already a mount point (unmount it first: cloudmount unmount %s)", mountpoint, mountpoint)
	}
	if !nonempty {
		empty, err := isEmptyDir(abs)
		if err != nil {
			return "", fmt.Errorf("mountpoint %s: %w", mountpoint, err)
		}
		if !empty {
			return "", fmt.Errorf("mountpoint %s is not empty (use --nonempty to mount over it)", mountpoint)
		}
	}
	return abs, nil
}

// isEmptyDir reports whether the directory dir has no entries.
func isEmptyDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if err != nil {
		return false, err
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	if errors.Is(err, io.EOF) {
		return true, nil
	}
	return false, err
}

// IsMounted reports whether the absolute path abs is a mount point
// according to /proc/self/mountinfo.
func IsMounted(abs string) (bool, error) {
	f, err := os.Open(MountinfoPath)
	if err != nil {
		return false, fmt.Errorf("list mounts: %w", err)
	}
	defer f.Close()
	points, err := ParseMountinfo(f)
	if err != nil {
		return false, fmt.Errorf("list mounts: %w", err)
	}
	for _, p := range points {
		if p == abs {
			return true, nil
		}
	}
	return false, nil
}

// ParseMountinfo returns the mount points (field 5) listed in a
// /proc/PID/mountinfo file, with the kernel's octal escapes (\040 for a
// space) undone.
func ParseMountinfo(r io.Reader) ([]string, error) {
	var points []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 {
			continue
		}
		points = append(points, UnescapeMountinfo(fields[4]))
	}
	return points, sc.Err()
}

// UnescapeMountinfo undoes the \NNN escapes the kernel writes for blanks,
// newlines and backslashes in the fields of /proc/PID/mountinfo (fstab and
// the secrets files write paths the same way).
func UnescapeMountinfo(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			if n, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(n))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// isOctal reports whether c is an octal digit.
func isOctal(c byte) bool { return c >= '0' && c <= '7' }
