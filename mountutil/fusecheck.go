package mountutil

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
)

// fusermountNames are where go-fuse looks for its mount helper.
var fusermountNames = []string{"fusermount3", "/bin/fusermount3", "fusermount", "/bin/fusermount"}

// CheckFUSE says in words what a mount would miss: /dev/fuse (absent or not
// usable by this user) and fusermount3, which mounts and unmounts for a
// user without root (and for root too, as go-fuse mounts through it).
func CheckFUSE() error {
	f, err := os.OpenFile("/dev/fuse", os.O_RDWR, 0)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return errors.New("/dev/fuse does not exist: load the fuse kernel module (modprobe fuse), or in a container pass the device (docker run --device /dev/fuse --cap-add SYS_ADMIN)")
	case errors.Is(err, fs.ErrPermission):
		mode := ""
		if fi, serr := os.Stat("/dev/fuse"); serr == nil {
			mode = fmt.Sprintf(" (mode %04o)", fi.Mode().Perm())
		}
		return fmt.Errorf("/dev/fuse is not usable by this user%s: install fuse3 (apt-get install fuse3), whose udev rule opens it to every user, or as root: chmod 0666 /dev/fuse", mode)
	case err != nil:
		return fmt.Errorf("/dev/fuse: %w", err)
	}
	f.Close()
	for _, name := range fusermountNames {
		if _, err := exec.LookPath(name); err == nil {
			return nil
		}
	}
	return errors.New("fusermount3 not found: install fuse3 (apt-get install fuse3)")
}
