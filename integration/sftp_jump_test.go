package integration

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testSFTPJump mounts the shared sshd through a second sshd as the
// ProxyJump host named in the ssh config (--ssh-config; the jump host's
// user and key from its own Host block, as ssh does): the jump host's
// log must show the login and the forwarded connection to the target, and
// a file written on the mount reaches the server. Two hops (the second
// sshd, then the shared sshd's shell port) work too. The jump host's key
// is checked like the target's: an unknown one is refused with its SHA256
// fingerprint, a changed one loudly; "ProxyJump none" in an earlier Host
// block connects directly though a later block names a jump host that
// does not answer.
func testSFTPJump(t *testing.T, e *sftpEnv) {
	jump, err := startOpenSSH(t, sshdOptions{User: e.User.Name, Subsystem: "internal-sftp", Alias: "jump", LogLevel: "DEBUG1"})
	if err != nil {
		need(t, "%v", err)
	}
	jumpFP := fingerprint(t, jump.HostKeyFile)
	closed := freePort(t) // nothing listens there
	dir := t.TempDir()
	conf := filepath.Join(dir, "ssh_config")
	writeFile(t, conf, fmt.Sprintf(`Host target
  HostName 127.0.0.1
  Port %[1]d
  ProxyJump jumphost
Host twohops
  HostName 127.0.0.1
  Port %[1]d
  ProxyJump jumphost,%[4]s@127.0.0.1:%[2]d
Host jumphost
  HostName 127.0.0.1
  Port %[3]d
  User %[4]s
  IdentityFile %[5]s
Host direct
  ProxyJump none
Host direct
  HostName 127.0.0.1
  Port %[1]d
  ProxyJump 127.0.0.1:%[6]d
`, e.SSHD.Port, e.SSHD.ShellPort, jump.Port, e.User.Name, jump.ClientKey, closed))
	trustBoth := filepath.Join(dir, "known_hosts")
	writeFile(t, trustBoth, fmt.Sprintf("[127.0.0.1]:%d %s\n[127.0.0.1]:%d %s\n[127.0.0.1]:%d %s\n",
		e.SSHD.Port, e.SSHD.HostKey, e.SSHD.ShellPort, e.SSHD.HostKey, jump.Port, jump.HostKey))

	srv := e.server(t)
	source := func(alias string) string { return fmt.Sprintf("sftp://%s@%s%s/", e.User.Name, alias, srv.Dir) }
	// forwards counts the jump host's logins and the connections it
	// forwarded to port.
	forwards := func(port int) (logins, forwarded int) {
		b, err := os.ReadFile(jump.Log)
		if err != nil {
			t.Fatal(err)
		}
		logins = strings.Count(string(b), "Accepted publickey for "+e.User.Name+" ")
		forwarded = strings.Count(string(b), fmt.Sprintf("target 127.0.0.1 port %d", port))
		return logins, forwarded
	}
	// works mounts alias and writes a file; the jump host must have
	// forwarded a connection to port (0: no jump).
	works := func(t *testing.T, alias string, port int) {
		t.Helper()
		wantJump := port != 0
		logins, forwarded := forwards(port)
		m := mountSFTP(t, e, srv, sftpMountOptions{Source: source(alias), SSHConfig: conf, KnownHosts: trustBoth})
		name := alias + ".txt"
		data := []byte("written through " + alias + "\n")
		if err := os.WriteFile(m.Path(name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		m.Sync(t)
		wantFile(t, srv.Path(name), data)
		l, f := forwards(port)
		switch {
		case wantJump && (l == logins || f == forwarded):
			t.Errorf("the jump host logged %d new logins and %d new connections forwarded to port %d, want some:\n%s",
				l-logins, f-forwarded, port, tailFile(jump.Log, 20))
		case !wantJump && l != logins:
			t.Errorf("the jump host logged %d logins for a mount with ProxyJump none", l-logins)
		}
		t.Logf("%s: %d logins on the jump host, %d connections forwarded", alias, l-logins, f-forwarded)
	}

	t.Run("one hop", func(t *testing.T) { works(t, "target", e.SSHD.Port) })
	// The jump host forwards to the second hop, the shell port (which
	// allows forwarding), and that one to the SFTP port.
	t.Run("two hops", func(t *testing.T) { works(t, "twohops", e.SSHD.ShellPort) })
	t.Run("ProxyJump none", func(t *testing.T) { works(t, "direct", 0) })

	t.Run("unknown jump host key", func(t *testing.T) {
		kh := e.knownHosts(t, e.SSHD.Port) // the target only
		before, _ := os.ReadFile(kh)
		out := wantMountFails(t, e, srv, sftpMountOptions{Source: source("target"), SSHConfig: conf, KnownHosts: kh})
		t.Logf("refused: %s", strings.TrimSpace(out))
		if !strings.Contains(out, jumpFP) || !strings.Contains(out, "ProxyJump") {
			t.Errorf("the refusal does not name the jump host and its key %s (ssh-keygen -lf):\n%s", jumpFP, out)
		}
		if after, _ := os.ReadFile(kh); string(after) != string(before) {
			t.Errorf("known_hosts changed after a refused key:\n%s", after)
		}
	})

	t.Run("changed jump host key", func(t *testing.T) {
		kh := filepath.Join(t.TempDir(), "known_hosts")
		// The target's key on record for the jump host's port.
		if err := writeKnownHosts(kh, e.SSHD.HostKey, e.SSHD.Port, jump.Port); err != nil {
			t.Fatal(err)
		}
		out := wantMountFails(t, e, srv, sftpMountOptions{Source: source("target"), SSHConfig: conf, KnownHosts: kh,
			Args: []string{"--accept-new-host-key"}})
		t.Logf("refused: %s", strings.TrimSpace(out))
		if !strings.Contains(out, "CHANGED") || !strings.Contains(out, jumpFP) {
			t.Errorf("the refusal of a changed jump host key does not say so with its key %s:\n%s", jumpFP, out)
		}
	})
}

// writeFile writes a test fixture (mode 0600) or fails the test.
func writeFile(t testing.TB, name, content string) {
	t.Helper()
	if err := os.WriteFile(name, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}
