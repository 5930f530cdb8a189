//go:build bench

package integration

import (
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"testing"
	"time"
)

// sshServer is the OpenSSH sshd of the benchmark (harness_sshd_test.go
// starts it), for cloudmount-sftp, rclone-sftp, sshfs and sftp, with the
// directory they use.
type sshServer struct {
	*SSHD
	// Dir is the directory on disk that the mounts mount and sftp writes to.
	Dir string
	// Host is the Host alias of ClientConfig ("bench").
	Host string

	// mux is the ControlPath of a master connection that the direct
	// clients (sftp, scp, rsync -e ssh) share; the mounts make their own.
	mux string
}

// sftpServerPath is Debian's sftp-server, the subsystem sshd runs.
const sftpServerPath = "/usr/lib/openssh/sftp-server"

// startSSHD starts sshd -D for the user running the benchmark, with
// sftp-server as its SFTP subsystem and keys only, and stops it in
// t.Cleanup. It returns an error (never skips) so that the caller can
// report sshfs and sftp as not available.
func startSSHD(t *testing.T) (*sshServer, error) {
	t.Helper()
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	sshd, err := startOpenSSH(t, sshdOptions{User: u.Username, Subsystem: sftpServerPath, Alias: "bench"})
	if err != nil {
		return nil, err
	}
	s := &sshServer{SSHD: sshd, Dir: filepath.Join(sshd.Base, "data"), Host: sshd.Alias}
	if err := os.Mkdir(s.Dir, 0o755); err != nil {
		return nil, err
	}
	return s, s.startMaster(t, filepath.Join(sshd.Base, "mux"))
}

// startMaster opens the shared connection of the direct clients, so that
// their times leave out the ssh handshake (about 0.4 s here), which a
// mount pays once, when it mounts. It is stopped in t.Cleanup (before
// sshd, which was started first).
func (s *sshServer) startMaster(t *testing.T, mux string) error {
	cmd := exec.Command("ssh", "-F", s.ClientConfig, "-o", "ControlMaster=yes", "-o", "ControlPath="+mux, "-N", s.Host)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LANG=C"}
	p, err := startProc("ssh master", cmd)
	if err != nil {
		return err
	}
	t.Cleanup(func() { _ = p.stop(10 * time.Second) })
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(mux); err == nil {
			s.mux = mux
			return nil
		}
		if p.exited() || time.Now().After(deadline) {
			return fmt.Errorf("ssh master connection did not start: %v", p.waitErr)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// clientArgs are the options of ssh, scp and sftp for the direct clients:
// the benchmark's config and the shared connection.
func (s *sshServer) clientArgs() []string {
	return []string{"-F", s.ClientConfig, "-o", "ControlMaster=no", "-o", "ControlPath=" + s.mux}
}
