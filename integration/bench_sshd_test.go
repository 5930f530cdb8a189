//go:build bench

package integration

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"
)

// sshServer is an OpenSSH sshd that the benchmark started on loopback with
// its own config, host key and authorized_keys, for sshfs and sftp.
type sshServer struct {
	// Dir is the directory on disk that sshfs mounts and sftp writes to.
	Dir string
	// Host is the Host alias of ClientConfig ("bench").
	Host string
	// ClientConfig is an ssh_config for ssh, sftp, scp, sshfs and rsync -e:
	// port, user, key, and a known_hosts file with the server's host key.
	ClientConfig string
	// Port is where sshd listens on 127.0.0.1.
	Port int

	// mux is the ControlPath of a master connection that the direct
	// clients (sftp, scp, rsync -e ssh) share; sshfs makes its own.
	mux string

	proc *proc
	log  string
}

// sftpServerPath is Debian's sftp-server, the subsystem sshd runs.
const sftpServerPath = "/usr/lib/openssh/sftp-server"

var sshdConf = template.Must(template.New("sshd_config").Parse(`# sshd for the cloudmount benchmark: nothing from /etc/ssh.
ListenAddress 127.0.0.1
Port {{.Port}}
HostKey {{.Base}}/host_ed25519
PidFile {{.Base}}/sshd.pid
AuthorizedKeysFile {{.Base}}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
PermitRootLogin prohibit-password
StrictModes no
AllowUsers {{.User}}
Subsystem sftp {{.SFTPServer}}
LogLevel ERROR
`))

var sshClientConf = template.Must(template.New("ssh_config").Parse(`# ssh client config for the cloudmount benchmark.
Host bench
  HostName 127.0.0.1
  Port {{.Port}}
  User {{.User}}
  IdentityFile {{.Base}}/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile {{.Base}}/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR
`))

// startSSHD starts sshd -D with a config of its own in a temp directory and
// stops it in t.Cleanup. It returns an error (never skips) so that the
// caller can report sshfs and sftp as not available.
func startSSHD(t *testing.T) (*sshServer, error) {
	t.Helper()
	if err := lookTools("sshd", "ssh", "ssh-keygen"); err != nil {
		return nil, err
	}
	if _, err := os.Stat(sftpServerPath); err != nil {
		return nil, fmt.Errorf("sftp-server: %w", err)
	}
	sshd, _ := lookTool("sshd")
	u, err := user.Current()
	if err != nil {
		return nil, err
	}
	// sshd refuses to start without its privilege separation directory.
	if _, err := os.Stat("/run/sshd"); errors.Is(err, os.ErrNotExist) {
		if err := os.Mkdir("/run/sshd", 0o755); err != nil {
			return nil, fmt.Errorf("sshd needs /run/sshd: %w", err)
		}
	}
	base := t.TempDir()
	s := &sshServer{Dir: filepath.Join(base, "data"), Host: "bench", ClientConfig: filepath.Join(base, "ssh_config"), log: filepath.Join(base, "sshd.log")}
	if err := os.Mkdir(s.Dir, 0o755); err != nil {
		return nil, err
	}
	for _, k := range []string{"host_ed25519", "id_ed25519"} {
		out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cloudmount-bench", "-f", filepath.Join(base, k)).CombinedOutput()
		if err != nil {
			return nil, fmt.Errorf("ssh-keygen: %v %s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(base, "id_ed25519.pub"))
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(base, "authorized_keys"), pub, 0o600); err != nil {
		return nil, err
	}
	hostPub, err := os.ReadFile(filepath.Join(base, "host_ed25519.pub"))
	if err != nil {
		return nil, err
	}
	hostKey := strings.Join(strings.Fields(string(hostPub))[:2], " ")

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s.Port = freePort(t)
		vars := map[string]any{"Base": base, "Port": s.Port, "User": u.Username, "SFTPServer": sftpServerPath}
		for _, f := range []struct {
			tmpl *template.Template
			name string
		}{{sshdConf, filepath.Join(base, "sshd_config")}, {sshClientConf, s.ClientConfig}} {
			var b strings.Builder
			if err := f.tmpl.Execute(&b, vars); err != nil {
				return nil, err
			}
			if err := os.WriteFile(f.name, []byte(b.String()), 0o600); err != nil {
				return nil, err
			}
		}
		known := fmt.Sprintf("[127.0.0.1]:%d %s\n", s.Port, hostKey)
		if err := os.WriteFile(filepath.Join(base, "known_hosts"), []byte(known), 0o600); err != nil {
			return nil, err
		}
		out, err := os.Create(s.log)
		if err != nil {
			return nil, err
		}
		// sshd wants to be started by its absolute path (it re-executes itself).
		cmd := exec.Command(sshd, "-D", "-e", "-f", filepath.Join(base, "sshd_config"))
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LANG=C"}
		cmd.Stdout, cmd.Stderr = out, out
		p, err := startProc("sshd", cmd)
		out.Close()
		if err != nil {
			return nil, err
		}
		s.proc = p
		if lastErr = s.waitReady(20 * time.Second); lastErr == nil {
			t.Cleanup(func() {
				if err := p.stop(15 * time.Second); err != nil {
					t.Errorf("stop sshd: %v", err)
				}
			})
			return s, s.startMaster(t, filepath.Join(base, "mux"))
		}
		_ = p.stop(10 * time.Second)
		lastErr = fmt.Errorf("%v\n%s", lastErr, tailFile(s.log, 20))
		if !strings.Contains(lastErr.Error(), "in use") {
			break
		}
	}
	return nil, fmt.Errorf("sshd did not start: %w", lastErr)
}

// waitReady waits until `ssh bench true` succeeds: sshd listens and
// accepts the key, and the client trusts the host key.
func (s *sshServer) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if s.proc.exited() {
			return fmt.Errorf("sshd exited: %v", s.proc.waitErr)
		}
		out, err := runCmd("", 10*time.Second, "ssh", "-F", s.ClientConfig, s.Host, "true")
		if err == nil {
			return nil
		}
		last = fmt.Errorf("ssh %s true: %v %s", s.Host, err, strings.TrimSpace(out))
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v: %v", timeout, last)
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
