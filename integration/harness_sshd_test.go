package integration

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"text/template"
	"time"
)

// sshdOptions says how startOpenSSH sets up sshd.
type sshdOptions struct {
	// User is the one account sshd lets in (AllowUsers).
	User string
	// Subsystem runs for the sftp subsystem: "internal-sftp" or the path
	// of sftp-server.
	Subsystem string
	// Password allows password logins besides keys (PasswordAuthentication
	// and KbdInteractiveAuthentication; the user needs a real password).
	Password bool
	// ShellPort adds a second port on which commands run in the user's
	// login shell. On the first port every session is internal-sftp
	// (ForceCommand), so a command such as sha256sum never runs there.
	ShellPort bool
	// Alias is the Host name of ClientConfig (default "sshd").
	Alias string
	// LogLevel is sshd's LogLevel (default ERROR).
	LogLevel string
}

// SSHD is an OpenSSH sshd the harness started on 127.0.0.1 with a config,
// host key and authorized_keys of its own: nothing comes from /etc/ssh or
// from anyone's ~/.ssh. It is stopped by the cleanup of the test that
// started it.
type SSHD struct {
	// Base is the directory of its config, keys and log.
	Base string
	// Port is where it listens; ShellPort is the second port (0 without
	// sshdOptions.ShellPort).
	Port, ShellPort int
	// User is the account it lets in.
	User string
	// HostKey is its public host key ("ssh-ed25519 AAAA..."), in the file
	// HostKeyFile.
	HostKey, HostKeyFile string
	// ClientKey is an unencrypted private key in authorized_keys.
	ClientKey string
	// KnownHosts trusts HostKey on Port and ShellPort.
	KnownHosts string
	// ClientConfig is an ssh_config for ssh, sftp, scp, sshfs and rsync -e:
	// Host Alias (Port) and Alias-shell (ShellPort), with the user, the
	// client key and KnownHosts.
	ClientConfig string
	// Alias is the Host of ClientConfig.
	Alias string
	// Log is sshd's stderr (-e).
	Log string

	cmd  *exec.Cmd // the command line, for Restart
	proc *proc
}

var sshdConfTmpl = template.Must(template.New("sshd_config").Parse(`# sshd for the cloudmount tests: nothing from /etc/ssh.
ListenAddress 127.0.0.1:{{.Port}}
{{if .ShellPort}}ListenAddress 127.0.0.1:{{.ShellPort}}
{{end}}HostKey {{.Base}}/host_ed25519
PidFile {{.Base}}/sshd.pid
AuthorizedKeysFile {{.Base}}/authorized_keys
PubkeyAuthentication yes
PasswordAuthentication {{if .Password}}yes{{else}}no{{end}}
KbdInteractiveAuthentication {{if .Password}}yes{{else}}no{{end}}
PermitEmptyPasswords no
UsePAM no
PermitRootLogin prohibit-password
StrictModes no
AllowUsers {{.User}}
MaxStartups 100:30:200
MaxSessions 50
LogLevel {{.LogLevel}}
Subsystem sftp {{.Subsystem}}
{{if .ShellPort}}
# Only SFTP on the first port: any command (sha256sum over exec) gets
# internal-sftp instead.
Match LocalPort {{.Port}}
  ForceCommand internal-sftp
  AllowTcpForwarding no
  X11Forwarding no
  PermitTTY no
{{end}}`))

var sshClientConfTmpl = template.Must(template.New("ssh_config").Parse(`# ssh client config for the cloudmount tests.
Host {{.Alias}}
  HostName 127.0.0.1
  Port {{.Port}}
{{if .ShellPort}}Host {{.Alias}}-shell
  HostName 127.0.0.1
  Port {{.ShellPort}}
{{end}}Host *
  User {{.User}}
  IdentityFile {{.Base}}/id_ed25519
  IdentitiesOnly yes
  UserKnownHostsFile {{.Base}}/known_hosts
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  BatchMode yes
  LogLevel ERROR
`))

// startOpenSSH starts sshd -D -e with a config of its own on free ports of
// 127.0.0.1, waits until it lets the client key in, and stops it (and
// every session process it forked) in t.Cleanup. It returns an error,
// never skips: the caller decides whether that is a failure.
func startOpenSSH(t testing.TB, o sshdOptions) (*SSHD, error) {
	if o.Alias == "" {
		o.Alias = "sshd"
	}
	if o.LogLevel == "" {
		o.LogLevel = "ERROR"
	}
	sshd, err := toolPath("sshd")
	if err != nil {
		return nil, err
	}
	for _, tool := range []string{"ssh", "sftp", "ssh-keygen"} {
		if _, err := toolPath(tool); err != nil {
			return nil, err
		}
	}
	if o.Subsystem != "internal-sftp" {
		if _, err := os.Stat(o.Subsystem); err != nil {
			return nil, fmt.Errorf("sftp subsystem: %w", err)
		}
	}
	// sshd refuses to start without its privilege separation directory.
	if _, err := os.Stat("/run/sshd"); errors.Is(err, os.ErrNotExist) && os.Geteuid() == 0 {
		if err := os.Mkdir("/run/sshd", 0o755); err != nil {
			return nil, fmt.Errorf("sshd needs /run/sshd: %w", err)
		}
	}
	base := t.TempDir()
	// sshd reads authorized_keys as the user it logs in.
	for _, d := range []string{filepath.Dir(base), base} {
		if err := os.Chmod(d, 0o755); err != nil {
			return nil, err
		}
	}
	s := &SSHD{Base: base, User: o.User, Alias: o.Alias, Log: filepath.Join(base, "sshd.log"),
		HostKeyFile: filepath.Join(base, "host_ed25519.pub"), ClientKey: filepath.Join(base, "id_ed25519"),
		KnownHosts: filepath.Join(base, "known_hosts"), ClientConfig: filepath.Join(base, "ssh_config")}
	for _, k := range []string{"host_ed25519", "id_ed25519"} {
		if err := sshKeygen(filepath.Join(base, k), ""); err != nil {
			return nil, err
		}
	}
	pub, err := os.ReadFile(s.ClientKey + ".pub")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(base, "authorized_keys"), pub, 0o644); err != nil {
		return nil, err
	}
	if s.HostKey, err = publicKeyLine(s.HostKeyFile); err != nil {
		return nil, err
	}

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		s.Port = freePort(t)
		if o.ShellPort {
			s.ShellPort = freePort(t)
		}
		vars := map[string]any{"Base": base, "Port": s.Port, "ShellPort": s.ShellPort, "User": o.User,
			"Subsystem": o.Subsystem, "Password": o.Password, "LogLevel": o.LogLevel, "Alias": o.Alias}
		conf := filepath.Join(base, "sshd_config")
		for _, f := range []struct {
			tmpl *template.Template
			name string
		}{{sshdConfTmpl, conf}, {sshClientConfTmpl, s.ClientConfig}} {
			var b strings.Builder
			if err := f.tmpl.Execute(&b, vars); err != nil {
				return nil, err
			}
			if err := os.WriteFile(f.name, []byte(b.String()), 0o644); err != nil {
				return nil, err
			}
		}
		ports := []int{s.Port}
		if s.ShellPort != 0 {
			ports = append(ports, s.ShellPort)
		}
		if err := writeKnownHosts(s.KnownHosts, s.HostKey, ports...); err != nil {
			return nil, err
		}
		// sshd wants to be started by its absolute path (it re-executes itself).
		s.cmd = exec.Command(sshd, "-D", "-e", "-f", conf)
		s.cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "LANG=C"}
		if lastErr = s.start(20 * time.Second); lastErr == nil {
			t.Cleanup(func() {
				if err := s.stop(); err != nil {
					t.Errorf("stop sshd: %v", err)
				}
			})
			return s, nil
		}
		if !strings.Contains(lastErr.Error(), "in use") {
			break
		}
	}
	return nil, fmt.Errorf("sshd did not start: %w", lastErr)
}

// toolPath finds a program in $PATH or in the sbin directories that a
// non-root $PATH often lacks.
func toolPath(name string) (string, error) {
	if p, err := exec.LookPath(name); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed (`make test` installs openssh-server and openssh-client)", name)
}

// sshKeygen makes an ed25519 key pair at file (and file.pub), encrypted
// with passphrase unless it is empty.
func sshKeygen(file, passphrase string) error {
	out, err := runCmd("", time.Minute, "ssh-keygen", "-q", "-t", "ed25519", "-N", passphrase, "-C", "cloudmount-test", "-f", file)
	if err != nil {
		return fmt.Errorf("ssh-keygen: %v %s", err, out)
	}
	return nil
}

// publicKeyLine is "TYPE BASE64" of a public key file, without the comment.
func publicKeyLine(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", err
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return "", fmt.Errorf("%s is not a public key: %q", file, b)
	}
	return f[0] + " " + f[1], nil
}

// writeKnownHosts writes a known_hosts file (mode 0600) that trusts key
// for 127.0.0.1 on each port.
func writeKnownHosts(file, key string, ports ...int) error {
	var b strings.Builder
	for _, p := range ports {
		fmt.Fprintf(&b, "[127.0.0.1]:%d %s\n", p, key)
	}
	return os.WriteFile(file, []byte(b.String()), 0o600)
}

// fingerprint is the SHA256:... fingerprint of a public key file, as
// ssh-keygen -lf prints it.
func fingerprint(t testing.TB, pubFile string) string {
	t.Helper()
	out := run(t, "", "ssh-keygen", "-l", "-E", "sha256", "-f", pubFile)
	for _, f := range strings.Fields(out) {
		if strings.HasPrefix(f, "SHA256:") {
			return f
		}
	}
	t.Fatalf("no SHA256: fingerprint in ssh-keygen -lf %s: %s", pubFile, out)
	return ""
}

// start runs sshd from s.cmd and waits until every port lets the client
// key in.
func (s *SSHD) start(timeout time.Duration) error {
	out, err := os.OpenFile(s.Log, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(s.cmd.Path, s.cmd.Args[1:]...)
	cmd.Env, cmd.Stdout, cmd.Stderr = s.cmd.Env, out, out
	p, err := startProc("sshd", cmd)
	out.Close()
	if err != nil {
		return err
	}
	s.proc = p
	if err := s.waitReady(timeout); err != nil {
		_ = s.stop()
		return fmt.Errorf("%v\n%s", err, tailFile(s.Log, 20))
	}
	return nil
}

// waitReady waits until sshd answers with its banner on every port and
// the client key gets in: an sftp session on Port, `ssh true` on ShellPort.
func (s *SSHD) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		if s.proc.exited() {
			return fmt.Errorf("sshd exited: %v", s.proc.waitErr)
		}
		if last = s.probe(); last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("not ready after %v: %v", timeout, last)
}

// probe checks each port once.
func (s *SSHD) probe() error {
	for _, port := range []int{s.Port, s.ShellPort} {
		if port == 0 {
			continue
		}
		if err := sshBanner(fmt.Sprintf("127.0.0.1:%d", port)); err != nil {
			return err
		}
	}
	// An SFTP session on the first port, a command on the shell port.
	out, err := runCmd("", 20*time.Second, "sftp", "-F", s.ClientConfig, "-b", "/dev/null", s.Alias)
	if err != nil {
		return fmt.Errorf("sftp -b /dev/null %s: %v %s", s.Alias, err, strings.TrimSpace(out))
	}
	if s.ShellPort != 0 {
		out, err := runCmd("", 20*time.Second, "ssh", "-F", s.ClientConfig, s.Alias+"-shell", "true")
		if err != nil {
			return fmt.Errorf("ssh %s-shell true: %v %s", s.Alias, err, strings.TrimSpace(out))
		}
	}
	return nil
}

// sshBanner connects to addr and reads the SSH identification line.
func sshBanner(addr string) error {
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("%s: no SSH banner: %w", addr, err)
	}
	if !strings.HasPrefix(line, "SSH-2.0-") {
		return fmt.Errorf("%s: not an SSH server: %q", addr, line)
	}
	return nil
}

// PID is the process ID of the listening sshd.
func (s *SSHD) PID() int { return s.proc.pid() }

// Kill kills sshd with SIGKILL, as a crash would: every per-connection
// process it forked (they run in sessions of their own, so the process
// group does not hold them) and the listener. Every connection to it is
// cut; the ports are refused until Restart.
func (s *SSHD) Kill(t testing.TB) {
	t.Helper()
	if s.proc.exited() {
		t.Fatalf("Kill: sshd %d is not running", s.PID())
	}
	killSessions(s.PID())
	if err := syscall.Kill(s.PID(), syscall.SIGKILL); err != nil {
		t.Fatalf("kill -9 sshd %d: %v", s.PID(), err)
	}
	if !s.proc.wait(10 * time.Second) {
		t.Fatalf("sshd %d still runs 10s after SIGKILL", s.PID())
	}
}

// Restart starts sshd again after Kill with the same config: the same
// ports, keys and log.
func (s *SSHD) Restart(t testing.TB) {
	t.Helper()
	if !s.proc.exited() {
		t.Fatalf("Restart: sshd %d is running", s.PID())
	}
	if err := s.start(30 * time.Second); err != nil {
		t.Fatalf("sshd did not start again on port %d: %v", s.Port, err)
	}
}

// stop ends the session processes sshd forked, then sshd.
func (s *SSHD) stop() error {
	if !s.proc.exited() { // else the PID may belong to someone else by now
		killSessions(s.PID())
	}
	return s.proc.stop(10 * time.Second)
}

// killSessions kills the descendants of pid with SIGKILL, the deepest
// first, and waits for each generation to be reaped by its parent before
// killing the parents: a process whose parent dies first is left to
// init, which in a container often reaps nothing.
func killSessions(pid int) {
	gens := descendants(pid)
	for i := len(gens) - 1; i >= 0; i-- {
		for _, p := range gens[i] {
			_ = syscall.Kill(p, syscall.SIGKILL)
		}
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) && slices.ContainsFunc(gens[i], func(p int) bool {
			_, err := os.Stat(fmt.Sprintf("/proc/%d", p))
			return err == nil
		}) {
			time.Sleep(10 * time.Millisecond)
		}
	}
}

// descendants lists the children of pid, then their children, and so on:
// one slice per generation.
func descendants(pid int) [][]int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if pp, err := procPPid(p); err == nil {
			children[pp] = append(children[pp], p)
		}
	}
	var gens [][]int
	for gen := children[pid]; len(gen) > 0; {
		gens = append(gens, gen)
		var next []int
		for _, p := range gen {
			next = append(next, children[p]...)
		}
		gen = next
	}
	return gens
}

// procPPid reads the parent of pid from /proc/PID/stat.
func procPPid(pid int) (int, error) { return procStatField(pid, 1) }
