package integration

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// sftpEnv is what the SFTP tests share: one OpenSSH sshd for the whole
// run (TestSFTP starts it and its cleanup stops it), and the local user
// it lets in, with the harness's key and a password. Each test gets a
// directory of its own in the user's home (sftpEnv.server).
type sftpEnv struct {
	SSHD *SSHD
	// User is the account the mounts log in as; the server's files are
	// its own.
	User LocalUser
	// Password is User's password in /etc/shadow.
	Password string
}

// newSFTPEnv makes the test user (with a home and a password) and starts
// sshd for it: internal-sftp only on SSHD.Port, a login shell on
// SSHD.ShellPort, keys and passwords on both. Everything is removed in
// t.Cleanup, sshd before the user.
func newSFTPEnv(t *testing.T) *sftpEnv {
	t.Helper()
	needRoot(t) // a local user, and sshd checking passwords in /etc/shadow
	chpasswd := needTool(t, "chpasswd")
	if _, err := toolPath("sshd"); err != nil {
		need(t, "%v", err)
	}
	u := addLocalUser(t, true)
	e := &sftpEnv{User: u, Password: "pw-" + randomHex(t, 12)}
	cmd := exec.Command(chpasswd)
	cmd.Stdin = strings.NewReader(u.Name + ":" + e.Password + "\n")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("chpasswd: %v\n%s", err, out)
	}
	sshd, err := startOpenSSH(t, sshdOptions{User: u.Name, Subsystem: "internal-sftp", Password: true, ShellPort: true, LogLevel: "VERBOSE"})
	if err != nil {
		need(t, "%v", err)
	}
	e.SSHD = sshd
	return e
}

// server makes a fresh directory for one test in the user's home, owned
// by the user and removed by t.Cleanup, and returns it as a Server: Dir
// is the directory, URL is sftp://USER@127.0.0.1:PORT/DIR/ on the
// SFTP-only port, files written with Server.WriteFile belong to the user.
func (e *sftpEnv) server(t *testing.T) *Server {
	t.Helper()
	name := "t-" + regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-") + "-" + randomHex(t, 3)
	s := &Server{Kind: "sftp", User: e.User.Name, Password: e.Password, Dir: filepath.Join(e.User.Home, name),
		ErrorLog: e.SSHD.Log, AccessLog: e.SSHD.Log, uid: e.User.UID, gid: e.User.GID}
	if err := s.mkdirAll(s.Dir); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(s.Dir) })
	s.URL = e.sourceURL(s, e.SSHD.Port)
	return s
}

// sourceURL is the sftp:// source of srv's directory on port, with the user.
func (e *sftpEnv) sourceURL(srv *Server, port int) string {
	return fmt.Sprintf("sftp://%s@127.0.0.1:%d%s/", e.User.Name, port, srv.Dir)
}

// canonicalURL is the URL that the secrets file names for srv's directory
// on port: the source without the user, ending in "/".
func (e *sftpEnv) canonicalURL(srv *Server, port int) string {
	return fmt.Sprintf("sftp://127.0.0.1:%d%s/", port, srv.Dir)
}

// rel is srv's directory relative to the user's home (the login directory).
func (e *sftpEnv) rel(srv *Server) string {
	r, _ := filepath.Rel(e.User.Home, srv.Dir)
	return r
}

// knownHosts writes a known_hosts file in a fresh directory that trusts
// the server's host key on the given ports of 127.0.0.1.
func (e *sftpEnv) knownHosts(t testing.TB, ports ...int) string {
	t.Helper()
	f := filepath.Join(t.TempDir(), "known_hosts")
	if err := writeKnownHosts(f, e.SSHD.HostKey, ports...); err != nil {
		t.Fatal(err)
	}
	return f
}

// acceptedLogins counts the logins of the test user that sshd logged with
// the given method ("publickey", "password").
func (e *sftpEnv) acceptedLogins(t testing.TB, method string) int {
	t.Helper()
	b, err := os.ReadFile(e.SSHD.Log)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Count(b, []byte("Accepted "+method+" for "+e.User.Name+" "))
}

// sftpHidden reports whether a name in a server directory is the SFTP
// backend's own (a probe or an upload in progress), not user data.
func sftpHidden(name string) bool {
	return strings.HasPrefix(name, ".cloudmount-")
}

// sftpMountOptions says how mountSFTP runs `cloudmount mount`. The zero
// value mounts the test's directory as sftp://USER@127.0.0.1:PORT/DIR/
// with the harness's key (--identity), a known_hosts file that trusts the
// server (--known-hosts), --ssh-config none, no agent, no password, and
// HOME set to an empty directory, so that nothing of the machine's ~/.ssh
// matters.
type sftpMountOptions struct {
	// Source is the SOURCE argument; "": srv.URL, or the same directory on
	// Port when Port is set.
	Source string
	// Port is the port of the default source and of the default
	// known_hosts file; 0: the SFTP-only port.
	Port int
	// Identities are --identity files; nil: the harness's key.
	Identities []string
	// NoIdentity passes no --identity at all.
	NoIdentity bool
	// KnownHosts is --known-hosts; "": a fresh file trusting the server
	// on Port; "-": no --known-hosts.
	KnownHosts string
	// SSHConfig is --ssh-config; "": none; "-": no --ssh-config.
	SSHConfig string
	// Secret, when set, goes into a 0600 secrets file (--secrets-file) as
	// "SecretURL USER Secret".
	Secret string
	// SecretURL is the URL of the secrets line; "": the canonical URL of
	// the default source.
	SecretURL string
	// Home is HOME of the command; "": a fresh empty directory.
	Home string
	// Env is added to the command's environment.
	Env []string
	// Args are extra arguments after the harness's flags.
	Args []string
	// Foreground adds -f; the daemon is the child the harness started.
	Foreground bool
	// Terminal runs the command on a pseudo-terminal that types the next
	// of these answers at each passphrase prompt; nil: no terminal.
	Terminal []string
	// Dir and CacheDir are the mountpoint and the cache directory; "":
	// fresh ones.
	Dir, CacheDir string
}

// mountSFTP mounts srv with the built binary; any failure fails the test.
// The mount is unmounted by t.Cleanup.
func mountSFTP(t *testing.T, e *sftpEnv, srv *Server, o sftpMountOptions) *Mount {
	t.Helper()
	m, out, err := tryMountSFTP(t, e, srv, o)
	if err != nil {
		t.Fatalf("%v\n%s\nsshd log (tail):\n%s", err, out, tailFile(e.SSHD.Log, 15))
	}
	return m
}

// tryMountSFTP runs the mount command and returns its output and, unless
// it ended with a mounted daemon, an error. Whatever it leaves behind is
// cleaned up by t.Cleanup.
func tryMountSFTP(t *testing.T, e *sftpEnv, srv *Server, o sftpMountOptions) (*Mount, string, error) {
	t.Helper()
	needMountable(t)
	tmp := t.TempDir()
	if o.Port == 0 {
		o.Port = e.SSHD.Port
	}
	if o.Source == "" {
		o.Source = e.sourceURL(srv, o.Port)
	}
	m := newHomeMount(t, tmp, srv, o.Foreground, &o.Dir, &o.CacheDir, &o.Home)

	args := []string{"mount", o.Source, m.Dir, "--cache-dir", m.CacheDir, "-v"}
	if !o.Foreground {
		args = append(args, "--log-file", m.LogFile)
	} else {
		args = append(args, "-f")
	}
	if !o.NoIdentity {
		ids := o.Identities
		if ids == nil {
			ids = []string{e.SSHD.ClientKey}
		}
		for _, id := range ids {
			args = append(args, "--identity", id)
		}
	}
	switch o.KnownHosts {
	case "":
		args = append(args, "--known-hosts", e.knownHosts(t, o.Port))
	case "-":
	default:
		args = append(args, "--known-hosts", o.KnownHosts)
	}
	switch o.SSHConfig {
	case "":
		args = append(args, "--ssh-config", "none")
	case "-":
	default:
		args = append(args, "--ssh-config", o.SSHConfig)
	}
	if o.Secret != "" {
		u := o.SecretURL
		if u == "" {
			u = e.canonicalURL(srv, o.Port)
		}
		secrets := filepath.Join(tmp, "secrets")
		writeSecrets(t, secrets, 0o600, u, e.User.Name, o.Secret)
		args = append(args, "--secrets-file", secrets)
	}
	args = append(args, o.Args...)
	m.env = append(homeEnv(o.Home, "SSH_AUTH_SOCK="), o.Env...)
	cmd := exec.Command(binPath, args...)
	cmd.Env = m.env
	if o.Terminal != nil {
		out, err := m.runMountCmdTTY(t, cmd, binPath+" "+strings.Join(args, " "), "passphrase for key", o.Terminal)
		return m, out, err
	}
	out, err := m.runMountCmd(t, cmd, binPath+" "+strings.Join(args, " "))
	return m, out, err
}

// remountSFTP unmounts m with `cloudmount unmount` and mounts srv again on
// the same mountpoint with the same cache directory and options o.
func remountSFTP(t *testing.T, e *sftpEnv, m *Mount, o sftpMountOptions) *Mount {
	t.Helper()
	m.Unmount(t, "cloudmount")
	o.Dir, o.CacheDir = m.Dir, m.CacheDir
	return mountSFTP(t, e, m.Server, o)
}

// wantMountFails runs a mount that must fail: the command exits non-zero,
// nothing is mounted and no daemon stays behind. It returns the output.
func wantMountFails(t *testing.T, e *sftpEnv, srv *Server, o sftpMountOptions) string {
	t.Helper()
	m, out, err := tryMountSFTP(t, e, srv, o)
	checkMountFailed(t, m, out, err, "the mount")
	return out
}
